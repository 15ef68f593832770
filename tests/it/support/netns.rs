//! Network namespaces for tests: uniquely named, always deleted, and a way
//! to run code (and the plugins it spawns) inside one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{is_root, require};

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The real plugins the real-plugin tests run.
pub const REAL_PLUGIN_DIR: &str = "/usr/lib/cni";

/// A named network namespace (`ip netns add lcni-<label>-<pid>-<n>`),
/// deleted on drop, also when the test panics.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    path: PathBuf,
}

impl NetNs {
    /// Creates a fresh namespace; its `lo` stays down.
    pub fn new(label: &str) -> NetNs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lcni-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run_ip(&["netns", "add", &name]);
        let ns = NetNs {
            path: Path::new(NETNS_DIR).join(&name),
            name,
        };
        // Built first, so that a failed assertion still deletes it.
        assert!(
            ns.path.exists(),
            "ip netns add {} did not create {}",
            ns.name,
            ns.path.display()
        );
        ns
    }

    /// Creates a namespace to act as the test's private "host", with `lo` up
    /// (plugins such as portmap talk to the host's loopback).
    pub fn host(label: &str) -> NetNs {
        let ns = NetNs::new(label);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace path (`/run/netns/<name>`), as `CNI_NETNS` wants it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace path as a string.
    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("netns paths are UTF-8")
    }

    /// Runs `ip -n <name> <args>` and returns its stdout; panics with its
    /// stderr if it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// Runs `ip netns exec <name> <program> <args>` and returns its stdout;
    /// panics with its stderr if it fails.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// The names of the links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// Whether the namespace has a link named `name`.
    pub fn has_link(&self, name: &str) -> bool {
        self.links().iter().any(|l| l == name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = try_run("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: could not delete netns {}: {e}", self.name);
        }
    }
}

fn try_run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
        ))
    }
}

fn run_ip(args: &[&str]) -> String {
    try_run("ip", args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `f` on a fresh thread that has entered `ns`'s network namespace, so
/// every process it spawns (the plugins) starts there. A panic in `f` is
/// propagated to the caller (whose `NetNs` values then clean up).
pub fn run_in<T: Send>(ns: &NetNs, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(ns.path())
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", ns.path().display()));
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            // The fd stays open for the whole thread.
            let file = file;
            // SAFETY: setns on a valid, open namespace fd; it changes only
            // this thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {}: {}",
                ns.name(),
                std::io::Error::last_os_error()
            );
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs a future to completion on a current-thread tokio runtime (call it
/// inside [`run_in`]).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime")
        .block_on(fut)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(program);
            p.is_file()
                && std::fs::metadata(&p).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
    })
}

/// Whether everything the real-plugin tests need is here: root, `ip` and
/// `iptables` on `PATH`, and the plugins in [`REAL_PLUGIN_DIR`]. Under CI a
/// missing prerequisite fails the test (see [`require`]).
pub fn real_prereqs() -> bool {
    if !require(is_root(), "real-plugin tests need root") {
        return false;
    }
    if !require(
        on_path("ip"),
        "real-plugin tests need `ip` (iproute2) on PATH",
    ) {
        return false;
    }
    if !require(
        on_path("iptables"),
        "real-plugin tests need `iptables` on PATH",
    ) {
        return false;
    }
    for plugin in [
        "bridge",
        "host-local",
        "portmap",
        "tuning",
        "loopback",
        "ptp",
    ] {
        let p = Path::new(REAL_PLUGIN_DIR).join(plugin);
        if !require(
            p.is_file(),
            &format!(
                "{} missing (install containernetworking-plugins)",
                p.display()
            ),
        ) {
            return false;
        }
    }
    true
}
