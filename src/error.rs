//! The library's one error type.
//!
//! [`Error`] carries an [`ErrorKind`] (what went wrong, with the data a caller
//! needs to act on it) plus the context it happened in: the config file, the
//! network, the plugin and the operation, each available through an accessor.
//! Low-level causes (I/O, JSON) hang off [`std::error::Error::source`].

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::ExitStatus;
pub use crate::op::Op;
use crate::plugin_error::PluginError;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a network configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The top level (or a plugin entry) is not a JSON object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The network has no `name`.
    #[error("missing `name`")]
    MissingName,
    /// The network name does not match the spec's rules.
    #[error(
        "invalid network name {name:?}: must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`"
    )]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}, found {found}")]
    FieldType {
        /// The field, as a path such as `plugins[1].ipam.type`.
        field: String,
        /// What the spec requires.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A boolean field holds a string other than `true`/`false`.
    #[error("invalid value {value:?} for `{field}`: expected true or false")]
    InvalidBool {
        /// The field name.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// The JSON nests objects and arrays deeper than the cap
    /// ([`ConfigLoader::with_max_depth`](crate::ConfigLoader::with_max_depth)).
    #[error("JSON nested deeper than {limit} levels")]
    TooDeep {
        /// The cap.
        limit: usize,
    },
    /// The config file is not a regular file (a FIFO, a device, ...).
    #[error("not a regular file")]
    NotARegularFile,
    /// A network list without `plugins` (and no drop-in plugin configs).
    #[error("no plugins: missing `plugins` and no drop-in plugin configs")]
    MissingPlugins,
    /// `plugins` is an empty array.
    #[error("`plugins` is empty")]
    NoPlugins,
    /// `loadOnlyInlinedPlugins` is set but there is no `plugins` key.
    #[error("`loadOnlyInlinedPlugins` is true and there is no `plugins` key")]
    InlinedPluginsMissing,
    /// A plugin has no (or an empty) `type`.
    #[error("plugin {index}: missing `type`")]
    MissingType {
        /// Index of the plugin in the list.
        index: usize,
    },
    /// A plugin `type` that cannot name a binary in a plugin directory.
    #[error("plugin {index}: invalid type {plugin_type:?}: must be a file name, not a path")]
    InvalidPluginType {
        /// Index of the plugin in the list.
        index: usize,
        /// The offending type.
        plugin_type: String,
    },
    /// A `cniVersion` (or `cniVersions` entry) that does not parse.
    #[error("invalid {field} {version:?}: {reason}")]
    InvalidVersion {
        /// `cniVersion` or `cniVersions[i]`.
        field: String,
        /// The value found.
        version: String,
        /// Why it does not parse.
        reason: VersionProblem,
    },
}

/// Why a version string does not parse (libcni's `ParseVersion` rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionProblem {
    /// More than three dot-separated parts.
    #[error("too many parts")]
    TooManyParts,
    /// A part is not a decimal integer.
    #[error("{part} version part {value:?} is not an integer")]
    NotANumber {
        /// `major`, `minor` or `micro`.
        part: &'static str,
        /// The offending part.
        value: String,
    },
}

/// Why the cache, or a cache file, cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheProblem {
    /// A directory or file inside the cache directory is a symlink.
    #[error("{what} is a symlink; not following it")]
    Symlink {
        /// What it is: `the results directory`, `the cache file`, ...
        what: &'static str,
    },
    /// `results` or `locks` is not a directory.
    #[error("`{name}` is not a directory")]
    NotADirectory {
        /// The directory's name.
        name: &'static str,
    },
    /// The cache file is not a regular file (a FIFO, a directory, ...).
    #[error("the cache file is not a regular file")]
    NotARegularFile,
    /// The cache directory could not be opened (see the operation's log).
    #[error("the cache directory cannot be used")]
    Unusable,
    /// The file is not valid JSON.
    #[error("not valid JSON: {reason}")]
    NotJson {
        /// The parser's message.
        reason: String,
    },
    /// The file is JSON but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A field has the wrong JSON type.
    #[error("`{field}` is not {expected}")]
    FieldType {
        /// The field.
        field: &'static str,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },
    /// `config` is not standard base64.
    #[error("`config` is not base64")]
    NotBase64,
    /// The file is not a `cniCacheV1` entry.
    #[error("wrong kind {kind:?}, expected \"cniCacheV1\"")]
    WrongKind {
        /// The `kind` found.
        kind: String,
    },
    /// The entry has no interface name or no network name.
    #[error("the entry has no interface or network name")]
    MissingNames,
    /// The cached result cannot be used for this network (it does not
    /// parse, or does not convert to the network's version); the cause is
    /// the error's source.
    #[error("cannot use the cached result: {reason}")]
    UnusableResult {
        /// The cause, as text.
        reason: String,
    },
}

/// Which field of an attachment is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachmentField {
    /// The container ID (`CNI_CONTAINERID`).
    ContainerId,
    /// The network name.
    NetworkName,
    /// The interface name (`CNI_IFNAME`).
    IfName,
}

impl fmt::Display for AttachmentField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachmentField::ContainerId => "container ID",
            AttachmentField::NetworkName => "network name",
            AttachmentField::IfName => "interface name",
        })
    }
}

/// What went wrong. Each variant carries the data needed to act on it; the
/// file, network, plugin and operation are on [`Error`] itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An I/O operation failed; the cause is the [`source`](StdError::source).
    #[error("{action} failed")]
    #[non_exhaustive]
    Io {
        /// What was being done, e.g. `reading config file`.
        action: &'static str,
    },
    /// A file is not valid JSON.
    #[error("invalid JSON at line {line}, column {column}")]
    #[non_exhaustive]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A configuration is valid JSON but not a valid CNI configuration.
    #[error("{problem}")]
    #[non_exhaustive]
    InvalidConfig {
        /// What is wrong with it.
        problem: ConfigProblem,
    },
    /// A config file is larger than the cap
    /// ([`ConfigLoader::with_max_file_size`](crate::ConfigLoader::with_max_file_size));
    /// it was not read.
    #[error("config file is {size} bytes, over the cap of {limit} bytes")]
    #[non_exhaustive]
    ConfigTooLarge {
        /// Its size (at least; it may be growing).
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The config directory holds no `.conf`, `.conflist` or `.json` file.
    #[error("no network configurations found in `{}`", dir.display())]
    #[non_exhaustive]
    NoConfigs {
        /// The directory searched.
        dir: PathBuf,
    },
    /// No valid config defines the network. Files that were skipped because
    /// they could not be loaded are in `skipped`.
    #[error("no network configuration named {network:?} in `{}`{}", dir.display(), skipped_note(skipped))]
    #[non_exhaustive]
    NetworkNotFound {
        /// The network looked up.
        network: String,
        /// The directory searched.
        dir: PathBuf,
        /// Errors for the files that could not be loaded.
        skipped: Vec<Error>,
    },
    /// The directory has config files but none of them loads.
    #[error("no valid network configuration in `{}`{}", dir.display(), skipped_note(skipped))]
    #[non_exhaustive]
    NoValidConfig {
        /// The directory searched.
        dir: PathBuf,
        /// Errors for the files that could not be loaded.
        skipped: Vec<Error>,
    },
    /// The plugin type cannot name a file in a plugin directory.
    #[error("invalid plugin name {name:?}")]
    #[non_exhaustive]
    InvalidPluginName {
        /// The offending name.
        name: String,
    },
    /// No plugin directories were configured.
    #[error("no plugin directories configured")]
    NoPluginDirs,
    /// The plugin binary is in none of the plugin directories.
    #[error("plugin {plugin:?} not found in {}", display_paths(dirs))]
    #[non_exhaustive]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The directories searched, in order.
        dirs: Vec<PathBuf>,
    },
    /// The first file found for the plugin has no execute permission.
    #[error("plugin binary `{}` is not executable", path.display())]
    #[non_exhaustive]
    PluginNotExecutable {
        /// The file found.
        path: PathBuf,
    },
    /// The plugin process could not be started; see the source.
    #[error("cannot start plugin `{}`", path.display())]
    #[non_exhaustive]
    Spawn {
        /// The binary.
        path: PathBuf,
    },
    /// The plugin did not finish in time; its process group was killed.
    #[error("timed out after {after:?}; its process group was killed{}", if *escaped {
        "; a process that left the group (setsid or a double fork) still holds its output open and was not killed"
    } else { "" })]
    #[non_exhaustive]
    Timeout {
        /// The timeout that expired.
        after: Duration,
        /// Whether, after the group was killed, a process outside it (one
        /// the plugin started with `setsid` or a double fork) still held the
        /// plugin's stdout or stderr open: it could not be killed with the
        /// group and may still be running.
        escaped: bool,
    },
    /// The plugin wrote more than the output cap
    /// ([`Cni::with_max_output`](crate::Cni::with_max_output)) to stdout or
    /// stderr; its process group was killed and the output dropped.
    #[error("wrote more than {limit} bytes to {stream}; its process group was killed")]
    #[non_exhaustive]
    OutputTooLarge {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The plugin failed and reported a CNI error object.
    #[error("{error}")]
    #[non_exhaustive]
    Plugin {
        /// The plugin's error (code, message, details).
        error: PluginError,
    },
    /// The plugin failed without a parsable CNI error object.
    #[error("plugin failed ({status}){}", describe_output(stdout, stderr))]
    #[non_exhaustive]
    PluginExit {
        /// How it ended (displayed as `exit status 2`, `killed by signal 9`).
        status: ExitStatus,
        /// What it printed on stdout (possibly truncated).
        stdout: String,
        /// What it printed on stderr (possibly truncated).
        stderr: String,
    },
    /// The plugin succeeded but printed nothing where a result was required.
    #[error("plugin printed no result")]
    EmptyResult,
    /// The plugin's (or cache's) result is not a valid CNI result.
    #[error("invalid result: {reason}")]
    #[non_exhaustive]
    InvalidResult {
        /// Why it is invalid.
        reason: String,
    },
    /// A result claims a spec version this library has no type for.
    #[error("unsupported CNI result version {version:?}")]
    #[non_exhaustive]
    UnsupportedResultVersion {
        /// The version found.
        version: String,
    },
    /// A result cannot be converted to the requested version.
    #[error("cannot convert result from version {from} to {to}: {reason}")]
    #[non_exhaustive]
    Conversion {
        /// The result's version.
        from: String,
        /// The version asked for.
        to: String,
        /// Why.
        reason: &'static str,
    },
    /// A version string does not parse.
    #[error("invalid version {version:?}: {problem}")]
    #[non_exhaustive]
    InvalidVersion {
        /// The string.
        version: String,
        /// Why.
        problem: VersionProblem,
    },
    /// The call's deadline passed ([`RuntimeConfig::with_deadline`](crate::RuntimeConfig::with_deadline));
    /// the running plugin's process group was killed.
    #[error("the call's deadline passed; the running plugin's process group was killed")]
    DeadlineExceeded,
    /// The plugin's `VERSION` reply is not valid.
    #[error("invalid VERSION reply: {reason}")]
    #[non_exhaustive]
    InvalidVersionInfo {
        /// Why.
        reason: String,
    },
    /// The plugin does not support the network's spec version.
    #[error("plugin does not support config version {version:?} (supports {supported:?})")]
    #[non_exhaustive]
    IncompatibleVersion {
        /// The network's version.
        version: String,
        /// What the plugin reported.
        supported: Vec<String>,
    },
    /// The network's version is too old for the operation.
    #[error("configuration version {version:?} does not support the {op} command")]
    #[non_exhaustive]
    OpNotSupported {
        /// The network's version.
        version: String,
        /// The operation.
        op: Op,
    },
    /// A container ID, network name or interface name is invalid, or would
    /// escape the cache directory.
    #[error("invalid {field} {value:?}: {reason}")]
    #[non_exhaustive]
    InvalidAttachment {
        /// Which field.
        field: AttachmentField,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The cache, or a cache file, exists but cannot be used.
    #[error("unusable cache: {problem}")]
    #[non_exhaustive]
    Cache {
        /// Why.
        problem: CacheProblem,
    },
    /// A GC finished with failures; each names what failed.
    #[error("{} failure(s): {}", failures.len(), join_failures(failures))]
    #[non_exhaustive]
    Gc {
        /// Every failure, in the order they happened.
        failures: Vec<GcFailure>,
    },
    /// Several independent checks failed (network validation).
    #[error("{} errors: {}", errors.len(), join_errors(errors))]
    #[non_exhaustive]
    Multiple {
        /// The individual errors.
        errors: Vec<Error>,
    },
}

fn skipped_note(skipped: &[Error]) -> String {
    match skipped.len() {
        0 => String::new(),
        1 => format!(" (1 file skipped: {})", skipped[0]),
        n => format!(" ({n} files skipped: {})", join_errors(skipped)),
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
    format!("[{}]", v.join(", "))
}

fn describe_output(stdout: &str, stderr: &str) -> String {
    let mut s = String::new();
    if !stdout.is_empty() {
        s.push_str(&format!("; stdout: {stdout:?}"));
    }
    if !stderr.is_empty() {
        s.push_str(&format!("; stderr: {stderr:?}"));
    }
    if s.is_empty() {
        s.push_str(" with no output");
    }
    s
}

fn join_failures(failures: &[GcFailure]) -> String {
    let v: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
    v.join("; ")
}

/// One failure of a GC ([`ErrorKind::Gc`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcFailure {
    /// Deleting a stale attachment failed (its cache entry is kept, so a
    /// later GC tries again).
    #[error("deleting stale attachment {container_id}/{ifname}: {error}")]
    #[non_exhaustive]
    StaleAttachment {
        /// The attachment's container ID.
        container_id: String,
        /// The attachment's interface name.
        ifname: String,
        /// Why.
        error: Error,
    },
    /// A plugin's GC failed (or its binary was not found).
    #[error("{error}")]
    #[non_exhaustive]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// Why.
        error: Error,
    },
    /// The cached attachments could not be listed.
    #[error("listing cached attachments: {error}")]
    #[non_exhaustive]
    Cache {
        /// Why.
        error: Error,
    },
}

fn join_errors(errors: &[Error]) -> String {
    let v: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    v.join("; ")
}

#[derive(Debug, Default)]
struct Context {
    path: Option<PathBuf>,
    network: Option<String>,
    plugin: Option<String>,
    op: Option<Op>,
    rollback: Option<Result<(), Error>>,
}

/// The error type of every fallible function in this crate.
///
/// Match on [`kind`](Error::kind); read where it happened with
/// [`path`](Error::path), [`network`](Error::network),
/// [`plugin`](Error::plugin) and [`op`](Error::op).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    ctx: Context,
    source: Option<BoxError>,
}

impl ErrorKind {
    /// A short, stable name of the kind in `snake_case` (`"plugin"`,
    /// `"timeout"`, `"plugin_not_found"`...), without its data: a label for
    /// metrics and the `error.type` of spans.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Io { .. } => "io",
            ErrorKind::Syntax { .. } => "syntax",
            ErrorKind::InvalidConfig { .. } => "invalid_config",
            ErrorKind::NoConfigs { .. } => "no_configs",
            ErrorKind::NetworkNotFound { .. } => "network_not_found",
            ErrorKind::NoValidConfig { .. } => "no_valid_config",
            ErrorKind::InvalidPluginName { .. } => "invalid_plugin_name",
            ErrorKind::NoPluginDirs => "no_plugin_dirs",
            ErrorKind::PluginNotFound { .. } => "plugin_not_found",
            ErrorKind::PluginNotExecutable { .. } => "plugin_not_executable",
            ErrorKind::Spawn { .. } => "spawn",
            ErrorKind::Timeout { .. } => "timeout",
            ErrorKind::Plugin { .. } => "plugin",
            ErrorKind::PluginExit { .. } => "plugin_exit",
            ErrorKind::EmptyResult => "empty_result",
            ErrorKind::InvalidResult { .. } => "invalid_result",
            ErrorKind::UnsupportedResultVersion { .. } => "unsupported_result_version",
            ErrorKind::Conversion { .. } => "conversion",
            ErrorKind::InvalidVersion { .. } => "invalid_version",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::InvalidVersionInfo { .. } => "invalid_version_info",
            ErrorKind::IncompatibleVersion { .. } => "incompatible_version",
            ErrorKind::OpNotSupported { .. } => "op_not_supported",
            ErrorKind::InvalidAttachment { .. } => "invalid_attachment",
            ErrorKind::Cache { .. } => "cache",
            ErrorKind::Gc { .. } => "gc",
            ErrorKind::Multiple { .. } => "multiple",
            ErrorKind::ConfigTooLarge { .. } => "config_too_large",
            ErrorKind::OutputTooLarge { .. } => "output_too_large",
        }
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                ctx: Context::default(),
                source: None,
            }),
        }
    }

    pub(crate) fn with_source(kind: ErrorKind, source: impl Into<BoxError>) -> Error {
        let mut e = Error::new(kind);
        e.inner.source = Some(source.into());
        e
    }

    /// An I/O error while doing `action` (e.g. `"reading plugin output"`) on
    /// `path`: [`ErrorKind::Io`], with `err` as the source. For
    /// [`PluginExec`](crate::PluginExec) implementations, as are
    /// [`spawn`](Self::spawn) and [`timeout`](Self::timeout); the caller adds
    /// the network, plugin and operation.
    pub fn io(action: &'static str, path: &Path, err: std::io::Error) -> Error {
        Error::with_source(ErrorKind::Io { action }, err).at_path(path)
    }

    /// The plugin binary at `path` could not be started: [`ErrorKind::Spawn`],
    /// with `err` as the source.
    pub fn spawn(path: impl Into<PathBuf>, err: impl Into<BoxError>) -> Error {
        Error::with_source(ErrorKind::Spawn { path: path.into() }, err)
    }

    /// The plugin ran longer than `after` and was killed:
    /// [`ErrorKind::Timeout`].
    pub fn timeout(after: Duration) -> Error {
        Error::new(ErrorKind::Timeout {
            after,
            escaped: false,
        })
    }

    /// The plugin wrote more than `limit` bytes to `stream` (`stdout` or
    /// `stderr`) and was killed: [`ErrorKind::OutputTooLarge`].
    pub fn output_too_large(stream: &'static str, limit: usize) -> Error {
        Error::new(ErrorKind::OutputTooLarge { stream, limit })
    }

    pub(crate) fn config(problem: ConfigProblem) -> Error {
        Error::new(ErrorKind::InvalidConfig { problem })
    }

    /// Sets the file the error is about (if not set yet).
    pub(crate) fn at_path(mut self, path: impl Into<PathBuf>) -> Error {
        if self.inner.ctx.path.is_none() {
            self.inner.ctx.path = Some(path.into());
        }
        self
    }

    /// Sets the network the error is about (if not set yet).
    pub(crate) fn in_network(mut self, network: impl Into<String>) -> Error {
        if self.inner.ctx.network.is_none() {
            self.inner.ctx.network = Some(network.into());
        }
        self
    }

    /// Sets the plugin the error is about (if not set yet).
    pub(crate) fn for_plugin(mut self, plugin: impl Into<String>) -> Error {
        if self.inner.ctx.plugin.is_none() {
            self.inner.ctx.plugin = Some(plugin.into());
        }
        self
    }

    /// Sets the operation the error is about (if not set yet).
    pub(crate) fn during(mut self, op: Op) -> Error {
        if self.inner.ctx.op.is_none() {
            self.inner.ctx.op = Some(op);
        }
        self
    }

    /// Attaches the outcome of the rollback that followed this error.
    pub(crate) fn with_rollback(mut self, outcome: Result<(), Error>) -> Error {
        self.inner.ctx.rollback = Some(outcome);
        self
    }

    /// Whether what the failed operation had set up was rolled back, and
    /// how that went: `None` when no rollback ran (it is off by default, see
    /// [`Cni::with_rollback`](crate::Cni::with_rollback)), `Some(Ok(()))`
    /// when it succeeded, `Some(Err(e))` with the rollback's own error.
    pub fn rollback(&self) -> Option<Result<(), &Error>> {
        self.inner
            .ctx
            .rollback
            .as_ref()
            .map(|r| r.as_ref().map(|_| ()))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The file (config or cache) the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.ctx.path.as_deref()
    }

    /// The network the error is about, if any.
    pub fn network(&self) -> Option<&str> {
        self.inner.ctx.network.as_deref()
    }

    /// The plugin type the error is about, if any.
    pub fn plugin(&self) -> Option<&str> {
        self.inner.ctx.plugin.as_deref()
    }

    /// The operation that failed, if any.
    pub fn op(&self) -> Option<Op> {
        self.inner.ctx.op
    }

    /// The plugin's CNI error, if the plugin reported one.
    pub fn plugin_error(&self) -> Option<&PluginError> {
        match &self.inner.kind {
            ErrorKind::Plugin { error } => Some(error),
            _ => None,
        }
    }

    /// Whether retrying later may succeed: the plugin reported code 11
    /// ("try again later").
    pub fn is_retryable(&self) -> bool {
        self.plugin_error()
            .is_some_and(|e| e.code() == crate::plugin_error::ErrorCode::TryAgainLater)
    }

    /// Whether a plugin answered STATUS with "not ready": code 50 (plugin
    /// not available) or 51 (not available, existing containers may have
    /// limited connectivity). A runtime reports such a network as
    /// `NetworkReady=false`.
    pub fn is_not_ready(&self) -> bool {
        self.plugin_error().is_some_and(|e| {
            matches!(
                e.code(),
                crate::plugin_error::ErrorCode::NotAvailable
                    | crate::plugin_error::ErrorCode::LimitedConnectivity
            )
        })
    }

    /// Whether the error is a timeout: of a plugin run, or of the call's
    /// deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Timeout { .. } | ErrorKind::DeadlineExceeded
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ctx = &self.inner.ctx;
        let mut wrote = false;
        if let Some(op) = ctx.op {
            write!(f, "{op}")?;
            wrote = true;
        }
        if let Some(plugin) = &ctx.plugin {
            if wrote {
                f.write_str(" ")?;
            }
            write!(f, "plugin `{plugin}`")?;
            wrote = true;
        }
        if let Some(network) = &ctx.network {
            if wrote {
                f.write_str(" in ")?;
            }
            write!(f, "network `{network}`")?;
            wrote = true;
        }
        if let Some(path) = &ctx.path {
            if wrote {
                f.write_str(" (")?;
                write!(f, "`{}`)", path.display())?;
            } else {
                write!(f, "`{}`", path.display())?;
            }
            wrote = true;
        }
        if wrote {
            f.write_str(": ")?;
        }
        write!(f, "{}", self.inner.kind)?;
        match &ctx.rollback {
            Some(Ok(())) => f.write_str(" (rolled back)"),
            Some(Err(e)) => write!(f, " (rollback failed: {e})"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        let ctx = &self.inner.ctx;
        if let Some(p) = &ctx.path {
            d.field("path", p);
        }
        if let Some(n) = &ctx.network {
            d.field("network", n);
        }
        if let Some(p) = &ctx.plugin {
            d.field("plugin", p);
        }
        if let Some(o) = &ctx.op {
            d.field("op", o);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_leads_with_context() {
        let e = Error::timeout(Duration::from_secs(10))
            .for_plugin("bridge")
            .in_network("mynet")
            .during(Op::Add);
        assert_eq!(
            e.to_string(),
            "ADD plugin `bridge` in network `mynet`: timed out after 10s; its process group was killed"
        );
        let e = Error::config(ConfigProblem::MissingName).at_path("/etc/cni/net.d/a.conf");
        assert_eq!(e.to_string(), "`/etc/cni/net.d/a.conf`: missing `name`");
    }
}
