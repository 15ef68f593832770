//! Shared helpers: a private temp environment per test, the test plugin,
//! and prerequisite checks that fail under CI instead of skipping.

#![allow(dead_code)]

pub mod capture;
pub mod netns;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libcni::{Cni, NetworkConfigList};
use serde_json::Value;

/// The test double plugin (package `cni-test-plugin`).
pub fn test_plugin_bin() -> PathBuf {
    // Set only in the test plugin's own tests.
    option_env!("CARGO_BIN_EXE_cni-test-plugin")
        .map_or_else(|| workspace_bin("cni-test-plugin"), PathBuf::from)
}

/// The cnitool binary (package `cnitool`).
pub fn cnitool_bin() -> PathBuf {
    // Set only in cnitool's own tests.
    option_env!("CARGO_BIN_EXE_cnitool").map_or_else(|| workspace_bin("cnitool"), PathBuf::from)
}

/// A binary of another workspace package. Cargo only gives a test the
/// binaries of its own package (`CARGO_BIN_EXE_*`), so this looks in the
/// target directory the test executable runs from: the test is
/// `target/<profile>/deps/<test>-<hash>`, the binaries are
/// `target/<profile>/<name>`. `cargo test` at the workspace root builds
/// them (the test plugin and cnitool have integration tests of their own).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .unwrap_or_else(|| {
            panic!(
                "test executable {} is not in <target>/<profile>/deps",
                exe.display()
            )
        });
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test` from the workspace root, which builds `{name}` \
         (`cargo test -p libcni` alone does not build the other packages' binaries)",
        bin.display()
    );
    bin
}

/// Whether this run is CI (`CI=true`): missing prerequisites then fail.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns whether a prerequisite holds. When it does not: under CI the test
/// fails; elsewhere it prints why it is skipped.
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!under_ci(), "prerequisite missing under CI: {what}");
        eprintln!("skipping: {what}");
    }
    ok
}

/// Whether we are root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A temp root with `net.d/`, `bin/` and `cache/`, removed on drop.
pub struct TestEnv {
    pub root: PathBuf,
    pub net_d: PathBuf,
    pub bin: PathBuf,
    pub cache: PathBuf,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "libcni-it-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let env = TestEnv {
            net_d: root.join("net.d"),
            bin: root.join("bin"),
            cache: root.join("cache"),
            root,
        };
        for d in [&env.net_d, &env.bin] {
            std::fs::create_dir_all(d).unwrap();
        }
        env
    }

    /// Installs the test plugin as `bin/<name>` (a symlink) and returns its path.
    pub fn plugin(&self, name: &str) -> PathBuf {
        let p = self.bin.join(name);
        if !p.exists() {
            std::os::unix::fs::symlink(test_plugin_bin(), &p).unwrap();
        }
        p
    }

    /// Writes `net.d/<file>` and returns its path.
    pub fn write_config(&self, file: &str, text: &str) -> PathBuf {
        let p = self.net_d.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Parses a conflist given as JSON text.
    pub fn list(&self, text: &str) -> NetworkConfigList {
        NetworkConfigList::from_bytes(text.as_bytes()).unwrap()
    }

    /// A path under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A runtime on `bin/` and `cache/` with short timeouts.
    pub fn cni(&self) -> Cni {
        Cni::new([&self.bin])
            .with_cache_dir(&self.cache)
            .with_timeout(Duration::from_secs(20))
            .with_kill_grace(Duration::from_millis(500))
    }

    /// The cnitool binary with a clean environment pointed at this
    /// environment (`NETCONFPATH`, `CNI_PATH`, `CNI_CACHE_DIR`, `PATH`),
    /// run from the root: nothing from the host's config leaks in.
    pub fn cnitool(&self) -> std::process::Command {
        let mut c = std::process::Command::new(cnitool_bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NETCONFPATH", &self.net_d)
            .env("CNI_PATH", &self.bin)
            .env("CNI_CACHE_DIR", &self.cache)
            .current_dir(&self.root);
        c
    }

    /// What plugin `name` logged, one JSON object per call.
    pub fn calls(&self, name: &str) -> Vec<Value> {
        read_jsonl(&self.bin.join(format!("{name}.calls.jsonl")))
    }

    /// The cache files in `cache/results`, by name.
    pub fn cache_files(&self) -> Vec<String> {
        names(&self.cache.join("results"))
    }
}

/// The names in a directory (missing: none), sorted, lossy.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A conflist of test plugins in `env`: `plugins` are (type, testPlugin
/// actions).
pub fn conflist(
    env: &TestEnv,
    name: &str,
    version: &str,
    plugins: &[(&str, Value)],
) -> libcni::NetworkConfigList {
    let plugins: Vec<Value> = plugins
        .iter()
        .map(|(t, actions)| {
            env.plugin(t);
            serde_json::json!({"type": t, "testPlugin": actions})
        })
        .collect();
    let text =
        serde_json::json!({"cniVersion": version, "name": name, "plugins": plugins}).to_string();
    env.list(&text)
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Reads a JSON-lines file (missing: empty).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The stdin a logged call received, parsed.
pub fn stdin_of(call: &Value) -> Value {
    serde_json::from_str(call["stdin"].as_str().unwrap()).unwrap()
}

/// Whether process `pid` is still running (not a zombie, not gone).
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

/// The pids listed in a pid file.
pub fn pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits (without asserting on time) until none of `pids` is running.
pub fn wait_gone(pids: &[u32]) -> Vec<u32> {
    for _ in 0..500 {
        if pids.iter().all(|p| !process_running(*p)) {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pids.iter()
        .copied()
        .filter(|p| process_running(*p))
        .collect()
}

pub fn kill(pids: &[u32]) {
    for p in pids {
        // SAFETY: plain kill(2) of a pid the test spawned.
        unsafe {
            libc::kill(*p as i32, libc::SIGKILL);
        }
    }
}

/// Asserts that the `mark` file of `runs` plugin runs shows them one after
/// the other: `start P`, `end P`, `start Q`, `end Q`, ...
pub fn assert_turns(marks: &Path, runs: usize) {
    let lines: Vec<String> = std::fs::read_to_string(marks)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2 * runs, "{lines:?}");
    for pair in lines.chunks(2) {
        assert!(
            pair[0].starts_with("start ") && pair[1].starts_with("end "),
            "interleaved: {lines:?}"
        );
        assert_eq!(pair[0][6..], pair[1][4..], "interleaved: {lines:?}");
    }
}

/// Asserts that the `started` processes listed in `pid_files` all started
/// and are all gone (waited out, not timed); kills any survivor first so a
/// failing test leaves nothing behind.
pub fn assert_all_gone(pid_files: &[&Path], started: usize, what: &str) {
    let all: Vec<u32> = pid_files.iter().flat_map(|f| pids(f)).collect();
    assert_eq!(
        all.len(),
        started,
        "{what}: processes that started: {all:?}"
    );
    let left = wait_gone(&all);
    kill(&left);
    assert!(left.is_empty(), "{what}: survivors: {left:?}");
}

/// Runs a future on a two-worker multi-thread tokio runtime.
pub fn block_on_mt<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
