//! Operations on networks: ADD, CHECK, DEL, VERSION, validation, and cache
//! lookups.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::cache::{self, Attachment, Cache, CachedConfig};
use crate::config::{NetworkConfigList, PluginConfig, valid_name};
use crate::error::{AttachmentField, Error, ErrorKind, Op};
use crate::exec::{ExecOutput, ExecRequest, PluginExec, ProcessExec};
use crate::lock::AttachmentLock;
use crate::plan::{self, Invocation, Plan, RuntimeConfig};
use crate::result::{CniResult, PluginError};
use crate::version::{Version, VersionInfo};

/// The default time a plugin may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The default time between `SIGTERM` and `SIGKILL` when a plugin times out.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// How much of a failed plugin's stdout and stderr an error keeps.
const OUTPUT_LIMIT: usize = 4096;

/// The CNI runtime: where plugins are, where results are cached, how long a
/// plugin may run, and the operations.
///
/// Operations on different attachments run concurrently; two operations on
/// the same attachment (network, container ID, interface name) wait for
/// each other, in this process and across processes (an `flock` on
/// `<cache dir>/locks/<network>-<container id>-<ifname>`).
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), libcni::Error> {
/// use std::time::Duration;
/// use libcni::{Cni, ConfigLoader, RuntimeConfig};
///
/// let cni = Cni::new(["/opt/cni/bin"])
///     .cache_dir("/var/lib/cni")
///     .timeout(Duration::from_secs(30));
/// let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?;
/// let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0");
/// let result = cni.add_network_list(&net, &rt).await?;
/// println!("{}", String::from_utf8_lossy(&result.to_json()));
/// cni.del_network_list(&net, &rt).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cni<E = ProcessExec> {
    plugin_dirs: Vec<PathBuf>,
    cache: Cache,
    cache_dir: PathBuf,
    timeout: Duration,
    kill_grace: Duration,
    exec: E,
}

impl Cni<ProcessExec> {
    /// A runtime looking for plugins in `plugin_dirs`, in order (libcni's
    /// default is `/opt/cni/bin`), running them as processes.
    pub fn new<I, P>(plugin_dirs: I) -> Cni<ProcessExec>
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        let cache_dir = PathBuf::from(cache::DEFAULT_CACHE_DIR);
        Cni {
            plugin_dirs: plugin_dirs.into_iter().map(Into::into).collect(),
            cache: Cache::new(cache_dir.clone()),
            cache_dir,
            timeout: DEFAULT_TIMEOUT,
            kill_grace: DEFAULT_KILL_GRACE,
            exec: ProcessExec::new(),
        }
    }
}

impl<E> Cni<E> {
    /// Sets the cache directory. Default: `/var/lib/cni`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Cni<E> {
        self.cache_dir = dir.into();
        self.cache = Cache::new(self.cache_dir.clone());
        self
    }

    /// Sets how long one plugin run may take before its process group is
    /// terminated. Default: 120 s. A zero duration is raised to 1 ms.
    pub fn timeout(mut self, timeout: Duration) -> Cni<E> {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a timed-out plugin's group has between `SIGTERM` and
    /// `SIGKILL`. Default: 3 s.
    pub fn kill_grace(mut self, grace: Duration) -> Cni<E> {
        self.kill_grace = grace;
        self
    }

    /// Uses another plugin executor (for tests, or special spawning needs).
    pub fn with_exec<E2: PluginExec>(self, exec: E2) -> Cni<E2> {
        Cni {
            plugin_dirs: self.plugin_dirs,
            cache: self.cache,
            cache_dir: self.cache_dir,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            exec,
        }
    }

    /// The plugin directories.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The cache directory.
    pub fn cache_path(&self) -> &Path {
        &self.cache_dir
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.exec
    }
}

fn invalid(field: AttachmentField, value: &str, reason: &'static str) -> Error {
    Error::new(ErrorKind::InvalidAttachment {
        field,
        value: value.to_owned(),
        reason,
    })
}

/// libcni's ADD-time checks (`ValidateContainerID`, `ValidateNetworkName`,
/// `ValidateInterfaceName`).
fn validate_add(network: &str, rt: &RuntimeConfig) -> Result<(), Error> {
    let cid = rt.container_id();
    if cid.is_empty() {
        return Err(invalid(
            AttachmentField::ContainerId,
            cid,
            "missing container ID",
        ));
    }
    if !valid_name(cid) {
        return Err(invalid(
            AttachmentField::ContainerId,
            cid,
            "must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`",
        ));
    }
    if network.is_empty() {
        return Err(invalid(
            AttachmentField::NetworkName,
            network,
            "missing network name",
        ));
    }
    if !valid_name(network) {
        return Err(invalid(
            AttachmentField::NetworkName,
            network,
            "must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`",
        ));
    }
    let ifname = rt.ifname();
    let reason = if ifname.is_empty() {
        "interface name is empty"
    } else if ifname.len() > 15 {
        "interface name is too long; interface name should be less than 16 characters"
    } else if ifname == "." || ifname == ".." {
        "interface name is . or .."
    } else if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        "interface name contains / or : or whitespace characters"
    } else {
        return Ok(());
    };
    Err(invalid(AttachmentField::IfName, ifname, reason))
}

fn truncate(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= OUTPUT_LIMIT {
        return s.into_owned();
    }
    let mut end = OUTPUT_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], bytes.len())
}

/// The plugin's whole environment: the runtime's, less the CNI variables
/// `cni` sets, then those.
fn full_env(cni: &[(String, String)]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| !cni.iter().any(|(name, _)| k == name.as_str()))
        .chain(cni.iter().map(|(k, v)| (k.into(), v.into())))
        .collect()
}

/// The error for a plugin that exited unsuccessfully.
fn plugin_failure(out: &ExecOutput) -> Error {
    let stderr = truncate(&out.stderr);
    match PluginError::from_output(&out.stdout) {
        Some(pe) => Error::new(ErrorKind::Plugin {
            error: pe.with_stderr(stderr),
        }),
        None => Error::new(ErrorKind::PluginExit {
            status: out.status.to_string(),
            stdout: truncate(&out.stdout),
            stderr,
        }),
    }
}

/// Whether a list's version is at least `min` (0.4.0 for CHECK and a cached
/// prevResult on DEL).
fn version_at_least(list: &NetworkConfigList, min: Version) -> Result<bool, Error> {
    let v = Version::parse(list.cni_version()).map_err(|e| e.in_network(list.name()))?;
    Ok(v >= min)
}

const V0_4_0: Version = Version::new(0, 4, 0);

/// CHECK exists from spec 0.4.0 on.
fn check_supported(list: &NetworkConfigList) -> Result<(), Error> {
    let ctx = |e: Error| e.in_network(list.name()).during(Op::Check);
    if version_at_least(list, V0_4_0).map_err(ctx)? {
        Ok(())
    } else {
        Err(ctx(Error::new(ErrorKind::OpNotSupported {
            version: list.cni_version().to_owned(),
            op: Op::Check,
        })))
    }
}

impl<E: PluginExec> Cni<E> {
    fn find(&self, plugin: &PluginConfig) -> Result<PathBuf, Error> {
        self.exec.find(plugin.plugin_type(), &self.plugin_dirs)
    }

    /// Runs one invocation; a non-zero exit becomes an error.
    async fn run(
        &self,
        inv: &Invocation,
        stdin: &[u8],
        network: &str,
    ) -> Result<ExecOutput, Error> {
        let ctx = |e: Error| {
            e.for_plugin(inv.plugin_type())
                .in_network(network)
                .during(inv.op())
        };
        let span = tracing::info_span!(
            "plugin",
            plugin = inv.plugin_type(),
            command = inv.op().as_str(),
            network,
            path = %inv.path().display(),
            duration_ms = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let started = Instant::now();
        let env = full_env(inv.env());
        let req = ExecRequest {
            path: inv.path(),
            op: inv.op(),
            env: &env,
            stdin,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
        };
        let res = self.exec.exec(req).instrument(span.clone()).await;
        let _entered = span.enter();
        span.record("duration_ms", started.elapsed().as_secs_f64() * 1e3);
        match &res {
            Ok(out) => {
                span.record("status", tracing::field::display(out.status));
                tracing::debug!("plugin finished");
            }
            Err(e) => {
                span.record("status", "not run to completion");
                tracing::warn!(error = %e, "plugin run failed");
            }
        }
        let out = res.map_err(ctx)?;
        if !out.stderr.is_empty() {
            tracing::info!(
                stderr = %String::from_utf8_lossy(&out.stderr),
                "plugin wrote to stderr"
            );
        }
        if !out.status.success() {
            return Err(ctx(plugin_failure(&out)));
        }
        Ok(out)
    }

    /// The cached result of an attachment, converted to the list's version.
    fn read_cached(
        &self,
        list: &NetworkConfigList,
        path: &Path,
    ) -> Result<Option<CniResult>, Error> {
        let ctx = |e: Error| e.at_path(path).in_network(list.name());
        let Some(bytes) = self.cache.read(path).map_err(ctx)? else {
            return Ok(None);
        };
        let result = cache::cached_result(&bytes)
            .and_then(|r| r.convert(list.cni_version()))
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Cache {
                        reason: format!("cannot use the cached result: {e}"),
                    },
                    e,
                )
            })
            .map_err(ctx)?;
        Ok(Some(result))
    }

    /// The invocation plan of `op` (ADD, CHECK or DEL) for an attachment,
    /// without running anything: a dry run. For CHECK and DEL the cached
    /// result is read as the operation would.
    ///
    /// # Errors
    ///
    /// As the operation would fail before running a plugin: a plugin not
    /// found, an invalid attachment, an unusable cache (CHECK).
    pub fn plan(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Plan, Error> {
        let path = self
            .cache
            .file(list.name(), rt)
            .map_err(|e| e.in_network(list.name()).during(op))?;
        match op {
            Op::Add => {
                validate_add(list.name(), rt).map_err(|e| e.in_network(list.name()).during(op))?;
                self.build(op, list, rt, None)
            }
            Op::Check => {
                check_supported(list)?;
                let cached = self.read_cached(list, &path).map_err(|e| e.during(op))?;
                let mut plan = self.build(op, list, rt, cached)?;
                if list.disable_check() {
                    plan.clear();
                }
                Ok(plan)
            }
            Op::Del => {
                let cached = self.del_prev_result(list, &path)?;
                self.build(op, list, rt, cached)
            }
            other => Err(Error::new(ErrorKind::OpNotSupported {
                version: list.cni_version().to_owned(),
                op: other,
            })
            .in_network(list.name())),
        }
    }

    fn build(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
        cached: Option<CniResult>,
    ) -> Result<Plan, Error> {
        plan::build(
            list,
            op,
            rt,
            &self.plugin_dirs,
            cached.map(|r| r.to_json()),
            |p| self.find(p),
        )
    }

    /// Adds an attachment: runs the plugins in order, each getting the
    /// previous one's result as `prevResult`, caches the last result and
    /// returns it in the last plugin's version (convert it with
    /// [`CniResult::convert`]).
    ///
    /// Every plugin binary is found before the first runs. There is no
    /// rollback when a plugin fails (as in libcni): call
    /// [`del_network_list`](Self::del_network_list) to clean up.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`] (libcni's container ID, network and
    /// interface name rules), the plugin lookup errors, the plugin run errors
    /// ([`ErrorKind::Plugin`], [`ErrorKind::PluginExit`],
    /// [`ErrorKind::Timeout`], [`ErrorKind::Spawn`], [`ErrorKind::EmptyResult`],
    /// [`ErrorKind::InvalidResult`], [`ErrorKind::UnsupportedResultVersion`]),
    /// and [`ErrorKind::Io`] if the cache cannot be written.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group
    /// (`SIGKILL`); plugins that already ran stay configured and nothing is
    /// cached.
    pub async fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        let span = tracing::info_span!(
            "cni",
            op = "ADD",
            network = list.name(),
            container_id = rt.container_id(),
            ifname = rt.ifname()
        );
        self.add_inner(list, rt).instrument(span).await
    }

    async fn add_inner(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        let started = Instant::now();
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Add);
        validate_add(net, rt).map_err(ctx)?;
        let path = self.cache.file(net, rt).map_err(ctx)?;
        let plan = self.build(Op::Add, list, rt, None)?;
        let _lock = AttachmentLock::acquire(&self.cache_dir, &path).await;
        let mut prev: Option<CniResult> = None;
        for inv in plan.invocations() {
            let prev_json = prev.as_ref().map(CniResult::to_json);
            let stdin = inv.stdin_with(prev_json.as_deref());
            let out = self.run(inv, &stdin, net).await?;
            let result = CniResult::from_plugin_output(&out.stdout, list.cni_version())
                .map_err(|e| ctx(e.for_plugin(inv.plugin_type())))?;
            prev = Some(result);
        }
        let result = prev.expect("a network has at least one plugin");
        self.cache
            .write(&path, net, rt, list.bytes(), &result)
            .map_err(ctx)?;
        tracing::info!(
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "ADD done"
        );
        Ok(result)
    }

    /// Checks an attachment: runs the plugins in order with the cached result
    /// as `prevResult` (none if nothing is cached, as in libcni).
    ///
    /// Networks older than 0.4.0 do not support CHECK; with `disableCheck`
    /// nothing runs and the check succeeds.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OpNotSupported`] below 0.4.0, [`ErrorKind::InvalidVersion`]
    /// for an unparsable version, [`ErrorKind::Cache`] for a cache file that
    /// cannot be used, and the plugin lookup and run errors.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group.
    pub async fn check_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let span = tracing::info_span!(
            "cni",
            op = "CHECK",
            network = list.name(),
            container_id = rt.container_id(),
            ifname = rt.ifname()
        );
        self.check_inner(list, rt).instrument(span).await
    }

    async fn check_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Check);
        check_supported(list)?;
        if list.disable_check() {
            tracing::debug!("disableCheck is set; not running plugins");
            return Ok(());
        }
        let path = self.cache.file(net, rt).map_err(ctx)?;
        let _lock = AttachmentLock::acquire(&self.cache_dir, &path).await;
        let cached = self.read_cached(list, &path).map_err(ctx)?;
        let plan = self.build(Op::Check, list, rt, cached)?;
        for inv in plan.invocations() {
            self.run(inv, &inv.stdin(), net).await?;
        }
        Ok(())
    }

    /// The prevResult DEL sends: the cached result converted to the list's
    /// version, from 0.4.0 on. A missing, corrupt or unconvertible cache
    /// does not stop DEL: it runs without one.
    fn del_prev_result(
        &self,
        list: &NetworkConfigList,
        path: &Path,
    ) -> Result<Option<CniResult>, Error> {
        let ctx = |e: Error| e.in_network(list.name()).during(Op::Del);
        if !version_at_least(list, V0_4_0).map_err(ctx)? {
            return Ok(None);
        }
        match self.read_cached(list, path) {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::warn!(error = %e, "cached result unusable; deleting without prevResult");
                Ok(None)
            }
        }
    }

    /// Deletes an attachment: runs the plugins in reverse order with the
    /// cached result as `prevResult`, then removes the cache entry.
    ///
    /// A missing or corrupt cache does not stop DEL (libcni 1.1 fails on a
    /// 0-byte cache file forever; 1.3 deletes the file before running
    /// anything). The cache entry is removed only once every plugin
    /// succeeded, so a failed DEL can be retried with the same prevResult.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidVersion`], [`ErrorKind::InvalidAttachment`] for
    /// names that would escape the cache directory, and the plugin lookup and
    /// run errors (the first failing plugin stops the run).
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group; the
    /// cache entry is kept.
    pub async fn del_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let span = tracing::info_span!(
            "cni",
            op = "DEL",
            network = list.name(),
            container_id = rt.container_id(),
            ifname = rt.ifname()
        );
        self.del_inner(list, rt).instrument(span).await
    }

    async fn del_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Del);
        let path = self.cache.file(net, rt).map_err(ctx)?;
        let lock = AttachmentLock::acquire(&self.cache_dir, &path).await;
        let cached = self.del_prev_result(list, &path)?;
        let plan = self.build(Op::Del, list, rt, cached)?;
        for inv in plan.invocations() {
            self.run(inv, &inv.stdin(), net).await?;
        }
        if let Err(e) = self.cache.remove(&path) {
            tracing::warn!(error = %e, "could not remove cache file");
        }
        lock.release_and_remove();
        Ok(())
    }

    /// ADD of a single plugin configuration (a `.conf`), named and versioned
    /// by its own `name` and `cniVersion`; the plugin's JSON is cached as the
    /// config (libcni's `AddNetwork`).
    ///
    /// # Errors
    ///
    /// As [`add_network_list`](Self::add_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`add_network_list`](Self::add_network_list).
    pub async fn add_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        self.add_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// CHECK of a single plugin configuration (libcni's `CheckNetwork`; no
    /// `disableCheck`).
    ///
    /// # Errors
    ///
    /// As [`check_network_list`](Self::check_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`check_network_list`](Self::check_network_list).
    pub async fn check_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.check_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// DEL of a single plugin configuration (libcni's `DelNetwork`).
    ///
    /// # Errors
    ///
    /// As [`del_network_list`](Self::del_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`del_network_list`](Self::del_network_list).
    pub async fn del_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.del_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// Asks a plugin which spec versions it supports (`VERSION`). A plugin
    /// that answers with the error `unknown CNI_COMMAND: VERSION` predates
    /// the command and supports 0.1.0 only.
    ///
    /// # Errors
    ///
    /// The plugin lookup and run errors, [`ErrorKind::InvalidVersionInfo`]
    /// for a malformed reply.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the plugin's process group.
    pub async fn version_info(&self, plugin_type: &str) -> Result<VersionInfo, Error> {
        let ctx = |e: Error| e.for_plugin(plugin_type).during(Op::Version);
        let path = self
            .exec
            .find(plugin_type, &self.plugin_dirs)
            .map_err(ctx)?;
        let inv = plan::version_invocation(plugin_type, path);
        let env = full_env(inv.env());
        let req = ExecRequest {
            path: inv.path(),
            op: Op::Version,
            env: &env,
            stdin: &inv.stdin(),
            timeout: self.timeout,
            kill_grace: self.kill_grace,
        };
        let out = self.exec.exec(req).await.map_err(ctx)?;
        if !out.status.success() {
            if let Some(pe) = PluginError::from_output(&out.stdout) {
                if pe.msg() == "unknown CNI_COMMAND: VERSION" && pe.details().is_empty() {
                    return Ok(VersionInfo::legacy());
                }
            }
            return Err(ctx(plugin_failure(&out)));
        }
        VersionInfo::from_json(&out.stdout).map_err(ctx)
    }

    /// Validates a network: every plugin is found and supports the network's
    /// version (by exact string; `""` means 0.1.0). Returns the capabilities
    /// the network's plugins declare, sorted and de-duplicated.
    ///
    /// # Errors
    ///
    /// The one error, or [`ErrorKind::Multiple`] with all of them: plugin
    /// lookup and `VERSION` errors, [`ErrorKind::IncompatibleVersion`].
    pub async fn validate_network_list(
        &self,
        list: &NetworkConfigList,
    ) -> Result<Vec<String>, Error> {
        let mut errors = Vec::new();
        let version = if list.cni_version().is_empty() {
            "0.1.0"
        } else {
            list.cni_version()
        };
        for plugin in list.plugins() {
            match self.version_info(plugin.plugin_type()).await {
                Ok(vi) if vi.supports(version) => {}
                Ok(vi) => errors.push(
                    Error::new(ErrorKind::IncompatibleVersion {
                        version: version.to_owned(),
                        supported: vi.supported_versions().to_vec(),
                    })
                    .for_plugin(plugin.plugin_type()),
                ),
                Err(e) => errors.push(e),
            }
        }
        let mut errors: Vec<Error> = errors
            .into_iter()
            .map(|e| e.in_network(list.name()))
            .collect();
        match errors.len() {
            0 => Ok(list.capabilities().into_iter().map(str::to_owned).collect()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::new(ErrorKind::Multiple { errors }).in_network(list.name())),
        }
    }

    /// Validates a single plugin configuration (see
    /// [`validate_network_list`](Self::validate_network_list)).
    ///
    /// # Errors
    ///
    /// As [`validate_network_list`](Self::validate_network_list).
    pub async fn validate_network(&self, plugin: &PluginConfig) -> Result<Vec<String>, Error> {
        self.validate_network_list(&NetworkConfigList::single(plugin))
            .await
    }

    /// The cached result of the last ADD of an attachment, converted to the
    /// network's version; `None` if nothing is cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`] for names that would escape the cache,
    /// [`ErrorKind::Cache`] for a cache file that cannot be used.
    pub fn cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CniResult>, Error> {
        let path = self
            .cache
            .file(list.name(), rt)
            .map_err(|e| e.in_network(list.name()))?;
        self.read_cached(list, &path)
    }

    /// What the last ADD of an attachment cached: the config bytes and the
    /// runtime config with the cached arguments; `None` if nothing is cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`], and [`ErrorKind::Cache`] for a file
    /// that is not a `cniCacheV1` entry (no legacy fallback, as in libcni).
    pub fn cached_config(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CachedConfig>, Error> {
        let path = self
            .cache
            .file(list.name(), rt)
            .map_err(|e| e.in_network(list.name()))?;
        let ctx = |e: Error| e.at_path(&path).in_network(list.name());
        let Some(bytes) = self.cache.read(&path).map_err(ctx)? else {
            return Ok(None);
        };
        cache::cached_config(&bytes, rt).map(Some).map_err(ctx)
    }

    /// The attachments recorded in the cache, of `container_id` or (if it
    /// is empty) of every container, in file-name order.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the cache directory cannot be read,
    /// [`ErrorKind::Cache`] if its `results` directory is a symlink.
    pub fn cached_attachments(&self, container_id: &str) -> Result<Vec<Attachment>, Error> {
        self.cache.attachments(container_id)
    }
}
