//! Errors as a person reads them: what failed, where, and what to do.
//!
//! Every error cnitool prints goes through [`Explained::new`], which finds
//! the library's [`libcni::Error`] in the chain (if there is one) and adds
//! hints from what is on disk: for a plugin that is not found, what each
//! searched directory holds instead and where the plugin does exist; for a
//! network that is not found, the networks that do load; and so on. The
//! same data is printed as JSON (kind `error`) under `--json`.

use std::error::Error as _;
use std::path::{Path, PathBuf};

use libcni::{CacheProblem, ConfigLoader, ErrorKind, GcFailure};
use serde::Serialize;

use crate::opts::Globals;

/// Where the plugins of Debian's and upstream's packages live.
pub const WELL_KNOWN_PLUGIN_DIRS: [&str; 3] = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"];

/// The install advice for missing plugins.
pub const INSTALL_HINT: &str = "install the reference plugins: `apt-get install containernetworking-plugins` (Debian, Ubuntu; into /usr/lib/cni), or unpack a release of github.com/containernetworking/plugins into /opt/cni/bin";

/// The plugins of github.com/containernetworking/plugins.
const REFERENCE_PLUGINS: [&str; 18] = [
    "bandwidth",
    "bridge",
    "dhcp",
    "dummy",
    "firewall",
    "host-device",
    "host-local",
    "ipvlan",
    "loopback",
    "macvlan",
    "portmap",
    "ptp",
    "sbr",
    "static",
    "tap",
    "tuning",
    "vlan",
    "vrf",
];

/// A skipped config or cache file.
#[derive(Serialize, Debug, Clone)]
pub struct Skipped {
    /// The file.
    pub file: Option<String>,
    /// Why, without the file's name.
    pub reason: String,
    /// The position of a JSON syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The position of a JSON syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Skipped {
    pub fn new(e: &libcni::Error) -> Skipped {
        let (line, column) = match e.kind() {
            ErrorKind::Syntax { line, column, .. } => (Some(*line), Some(*column)),
            _ => (None, None),
        };
        Skipped {
            file: e.path().map(|p| p.display().to_string()),
            reason: with_causes(e.kind().to_string(), e),
            line,
            column,
        }
    }
}

/// An error's message and, for an I/O error, its causes.
pub fn with_causes(mut msg: String, e: &libcni::Error) -> String {
    if matches!(e.kind(), ErrorKind::Io { .. }) {
        let mut cause = e.source();
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
    }
    msg
}

/// An error with its context and the advice cnitool can give.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Explained {
    /// The whole message, causes included.
    pub message: String,
    /// The kind of error: the library's `ErrorKind::name` in camelCase
    /// (`pluginNotFound`, `timeout`, ...), `usage` for a bad flag or
    /// environment value, `other` for the rest.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The CNI error code a plugin returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
    /// What to do about it, one piece of advice each.
    pub hints: Vec<String>,
}

impl Explained {
    pub fn new(err: &anyhow::Error, g: &Globals) -> Explained {
        let message = format!("{err:#}");
        let Some(e) = err.chain().find_map(|c| c.downcast_ref::<libcni::Error>()) else {
            let kind = if err.chain().any(|c| c.is::<Usage>()) {
                "usage"
            } else {
                "other"
            }
            .to_owned();
            return Explained {
                message,
                kind,
                file: None,
                network: None,
                plugin: None,
                op: None,
                code: None,
                hints: Vec::new(),
            };
        };
        Explained {
            message,
            kind: kind_name(e.kind()),
            file: e.path().map(|p| p.display().to_string()),
            network: e.network().map(str::to_owned),
            plugin: e.plugin().map(str::to_owned),
            op: e.op().map(|o| o.to_string()),
            code: e.plugin_error().map(|p| p.code().as_u64()),
            hints: hints(e, g),
        }
    }

    /// The text for stderr: the message, then one `hint:` line each.
    pub fn human(&self) -> String {
        let mut out = format!("cnitool: {}\n", self.message);
        for h in &self.hints {
            out.push_str("  hint: ");
            out.push_str(h);
            out.push('\n');
        }
        out
    }
}

/// A usage error: a flag or environment value cnitool cannot use.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The library's stable kind name (`plugin_not_found`) in camelCase
/// (`pluginNotFound`), as cnitool's JSON spells names.
fn kind_name(k: &ErrorKind) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in k.name().chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// What each plugin directory holds, for a plugin that is not in any.
fn describe_dir(dir: &Path, plugin: &str) -> String {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return format!("{} does not exist", dir.display());
        }
        Err(e) => return format!("{} cannot be read: {e}", dir.display()),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        return format!("{} is empty", dir.display());
    }
    let similar: Vec<&String> = names.iter().filter(|n| similar(n, plugin)).collect();
    let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    let mut s = format!(
        "{} holds {} file{}: {}{}",
        dir.display(),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(", and {more} more")
        } else {
            String::new()
        }
    );
    if !similar.is_empty() {
        let v: Vec<&str> = similar.iter().map(|s| s.as_str()).collect();
        s.push_str(&format!(" (did you mean {}?)", v.join(" or ")));
    }
    s
}

/// Names a typo away: same letters but case, or one edit apart.
fn similar(a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 || a.len() < 3 {
        return false;
    }
    // Levenshtein distance <= 1.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 1
}

/// The well-known directories (not searched) that hold `plugin`.
fn found_elsewhere(plugin: &str, searched: &[PathBuf]) -> Vec<PathBuf> {
    WELL_KNOWN_PLUGIN_DIRS
        .iter()
        .map(PathBuf::from)
        .filter(|d| !searched.contains(d) && d.join(plugin).is_file())
        .collect()
}

fn hints(e: &libcni::Error, g: &Globals) -> Vec<String> {
    let mut h = Vec::new();
    match e.kind() {
        ErrorKind::PluginNotFound { plugin, dirs, .. } => {
            for d in dirs {
                h.push(format!("searched {}", describe_dir(d, plugin)));
            }
            let elsewhere = found_elsewhere(plugin, dirs);
            if let Some(d) = elsewhere.first() {
                h.push(format!(
                    "`{plugin}` is in {}: add `--plugin-dir {}` (or put it in CNI_PATH)",
                    d.display(),
                    d.display()
                ));
            } else if REFERENCE_PLUGINS.contains(&plugin.as_str()) {
                h.push(INSTALL_HINT.to_owned());
            } else {
                h.push(format!(
                    "`{plugin}` is not one of the reference plugins: install it as its project documents, into one of the directories searched"
                ));
            }
        }
        ErrorKind::NoPluginDirs => {
            let plugin = e.plugin().unwrap_or("bridge");
            let there: Vec<String> = WELL_KNOWN_PLUGIN_DIRS
                .iter()
                .filter(|d| Path::new(d).join(plugin).is_file())
                .map(|d| d.to_string())
                .collect();
            if there.is_empty() {
                h.push("set CNI_PATH or pass --plugin-dir DIR to say where the plugins are".into());
                h.push(INSTALL_HINT.to_owned());
            } else {
                h.push(format!(
                    "set CNI_PATH or pass --plugin-dir: `{plugin}` is in {}",
                    there.join(" and ")
                ));
            }
        }
        ErrorKind::PluginNotExecutable { path, .. } => {
            h.push(format!("make it executable: chmod +x {}", path.display()));
        }
        ErrorKind::Spawn { path, .. } => {
            h.push(format!(
                "{} exists but cannot be run: check that it is a binary for this machine (`file {}`) and that its interpreter exists",
                path.display(),
                path.display()
            ));
        }
        ErrorKind::NetworkNotFound { dir, skipped, .. } => {
            let names = ConfigLoader::new(dir).load_all().map(|l| {
                l.networks()
                    .iter()
                    .map(|n| n.name().to_owned())
                    .collect::<Vec<_>>()
            });
            match names {
                Ok(n) if !n.is_empty() => h.push(format!(
                    "networks in {}: {} (`cnitool list` shows them)",
                    dir.display(),
                    n.join(", ")
                )),
                _ => {}
            }
            if !skipped.is_empty() {
                h.push(format!(
                    "{} file{} could not be loaded (listed above); the network may be in one of them",
                    skipped.len(),
                    if skipped.len() == 1 { "" } else { "s" }
                ));
            }
            h.push("use --conf-dir DIR (or NETCONFPATH) for another directory".into());
        }
        ErrorKind::NoConfigs { dir, .. } => {
            h.push(format!(
                "write a .conflist (or .conf/.json) into {}, or point --conf-dir (NETCONFPATH) at your configs; `cnitool demo` shows a working network without touching it",
                dir.display()
            ));
        }
        ErrorKind::NoValidConfig { .. } => {
            h.push("fix the files listed above; `cnitool list` shows each with the reason".into());
        }
        ErrorKind::Timeout { .. } | ErrorKind::DeadlineExceeded => {
            h.push("if the plugin is merely slow, raise --timeout (or CNITOOL_TIMEOUT)".into());
        }
        ErrorKind::IncompatibleVersion { supported, .. } => {
            h.push(format!(
                "set the network's cniVersion to one the plugin supports: {}",
                supported.join(", ")
            ));
        }
        ErrorKind::OpNotSupported { .. } => {
            h.push("CHECK needs cniVersion 0.4.0 or later, GC and STATUS 1.1.0".into());
        }
        ErrorKind::InvalidAttachment { .. } => {
            h.push("choose another value with --container-id or --ifname".into());
        }
        ErrorKind::Plugin { error, .. } => match error.code().as_u64() {
            11 => h.push("the plugin asks to try again later (code 11)".into()),
            50 | 51 => h.push("the plugin is not ready (STATUS); try again once it is".into()),
            _ => h.extend(reproduce(e)),
        },
        ErrorKind::PluginExit { .. }
        | ErrorKind::InvalidResult { .. }
        | ErrorKind::EmptyResult
        | ErrorKind::UnsupportedResultVersion { .. } => h.extend(reproduce(e)),
        ErrorKind::Cache { problem, .. } => match problem {
            CacheProblem::Symlink { .. } => h.push(format!(
                "the cache under {} holds a symlink, which is never followed; remove it",
                cache_dir(g).display()
            )),
            _ => h.push(format!(
                "inspect the cache under {} (choose another with --cache-dir)",
                cache_dir(g).display()
            )),
        },
        ErrorKind::Io { .. } => {
            let denied = e
                .source()
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
            if denied {
                h.push(
                    "run as root, or use directories you can write: --cache-dir DIR (CNI_CACHE_DIR)"
                        .into(),
                );
            }
        }
        ErrorKind::Gc { failures, .. } => {
            for f in failures {
                let inner = match f {
                    GcFailure::StaleAttachment { error, .. }
                    | GcFailure::Plugin { error, .. }
                    | GcFailure::Cache { error, .. } => error,
                    _ => continue,
                };
                h.extend(hints(inner, g));
            }
        }
        ErrorKind::Multiple { errors, .. } => {
            for inner in errors {
                h.extend(hints(inner, g));
            }
        }
        _ => {}
    }
    h.dedup();
    h
}

/// How to see exactly what the failing plugin got.
fn reproduce(e: &libcni::Error) -> Option<String> {
    let op = e.op()?;
    let net = e.network()?;
    let target = if matches!(op, libcni::Op::Gc | libcni::Op::Status) {
        ""
    } else {
        " NETNS"
    };
    Some(format!(
        "`cnitool plan {} {net}{target}` prints the exact environment and stdin the plugin got, to run it by hand",
        op.as_str().to_lowercase()
    ))
}

fn cache_dir(g: &Globals) -> PathBuf {
    g.cache_dir()
        .unwrap_or_else(|| PathBuf::from(libcni::DEFAULT_CACHE_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_similar() {
        assert!(similar("bridge", "brigde") || similar("bridge", "bridg"));
        assert!(similar("bridge", "bridg"));
        assert!(similar("Bridge", "bridge"));
        assert!(similar("host-local", "host-locl"));
        assert!(!similar("bridge", "bridge"));
        assert!(!similar("bridge", "vlan"));
        assert!(!similar("ab", "a"));
    }
}
