//! Rootless use: cnitool (and so the library) run by an unprivileged user,
//! with a cache directory and a plugin directory that user owns, does
//! everything it does as root.
//!
//! Run as root, the commands run as `nobody` (uid and gid 65534, no
//! supplementary groups, a clean environment); run as anyone else, as that
//! user. Everything lives in a fresh directory directly under `/tmp` (whose
//! parents every user can traverse), owned by that user; cnitool and the
//! test plugin are copied there, since the target directory may not be
//! readable by `nobody` (it is under `/root` with mode 0700 on many machines).

#[path = "../../tests/it/support/mod.rs"]
mod support;

use std::fs::{DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{cnitool_bin, is_root, read_jsonl, test_plugin_bin};

/// `nobody`/`nogroup` on Debian.
const NOBODY: u32 = 65534;

/// A directory under `/tmp` owned by the user, removed on drop.
struct Home {
    root: PathBuf,
    uid: u32,
    gid: u32,
    /// Whether the commands switch to `uid`/`gid` (we are root).
    switch: bool,
}

impl Home {
    fn new() -> Home {
        let (uid, gid, switch) = if is_root() {
            (NOBODY, NOBODY, true)
        } else {
            // SAFETY: geteuid and getegid have no preconditions.
            unsafe { (libc::geteuid(), libc::getegid(), false) }
        };
        let root = Path::new("/tmp").join(format!("libcni-unpriv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = Home {
            root,
            uid,
            gid,
            switch,
        };
        home.mkdir(&home.root);
        home
    }

    /// Creates `dir` (mode 0755) owned by the user.
    fn mkdir(&self, dir: &Path) {
        DirBuilder::new().mode(0o755).create(dir).unwrap();
        std::fs::set_permissions(dir, Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Copies `from` to `to` (mode `mode`), owned by the user.
    fn copy(&self, from: &Path, to: &Path, mode: u32) {
        std::fs::copy(from, to).unwrap();
        std::fs::set_permissions(to, Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(to, Some(self.uid), Some(self.gid)).unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// cnitool as the user, on the user's directories, in a clean environment.
    fn cnitool(&self, args: &[&str], container_id: &str) -> Output {
        let mut c = Command::new(self.path("tool/cnitool"));
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.root)
            .env("NETCONFPATH", self.path("net.d"))
            .env("CNI_PATH", self.path("bin"))
            .env("CNI_CACHE_DIR", self.path("cache"))
            .env("CNI_CONTAINERID", container_id)
            .current_dir(&self.root);
        if self.switch {
            // std drops the supplementary groups (setgroups(0)) before setuid.
            c.uid(self.uid).gid(self.gid);
        }
        c.output().unwrap()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "cnitool {what} as an unprivileged user failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "cnitool {what} warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Every file and directory under `dir` (itself included), depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn cnitool_works_unprivileged_on_directories_the_user_owns() {
    let home = Home::new();
    // Every parent of the directory must be traversable by the user.
    for dir in home.root.ancestors().skip(1) {
        let mode = std::fs::metadata(dir).unwrap().mode();
        assert!(
            mode & 0o001 != 0,
            "{} (mode {mode:o}) is not traversable by others",
            dir.display()
        );
    }
    for d in ["tool", "bin", "net.d"] {
        home.mkdir(&home.path(d));
    }
    home.copy(&cnitool_bin(), &home.path("tool/cnitool"), 0o755);
    // The plugin logs its calls to `<argv0>.calls.jsonl`, so `bin/` is the user's.
    home.copy(&test_plugin_bin(), &home.path("bin/p"), 0o755);
    let conf = home.path("net.d/10-u.conflist");
    std::fs::write(
        &conf,
        json!({"cniVersion": "1.1.0", "name": "u", "plugins": [{"type": "p"}]}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&conf, Permissions::from_mode(0o644)).unwrap();
    let cache = home.path("cache");
    let entry = |cid: &str| cache.join("results").join(format!("u-{cid}-eth0"));

    // ADD creates the cache directory itself.
    let out = ok(
        &home.cnitool(&["add", "u", "/var/run/netns/c1"], "c1"),
        "add",
    );
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["interfaces"][0]["sandbox"], "/var/run/netns/c1");
    assert_eq!(result["ips"][0]["address"], "10.99.0.2/24");
    let cached: Value = serde_json::from_slice(&std::fs::read(entry("c1")).unwrap()).unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], "c1");
    assert_eq!(cached["result"], result);
    // Everything the cache holds is the user's and private to it.
    for p in walk(&cache) {
        let meta = p.symlink_metadata().unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (home.uid, home.gid),
            "{} is not the user's",
            p.display()
        );
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(meta.mode() & 0o7777, want, "{}", p.display());
    }

    ok(
        &home.cnitool(&["check", "u", "/var/run/netns/c1"], "c1"),
        "check",
    );
    ok(
        &home.cnitool(&["status", "u", "/var/run/netns/c1"], "c1"),
        "status",
    );
    ok(
        &home.cnitool(&["add", "u", "/var/run/netns/c2"], "c2"),
        "add",
    );
    assert!(entry("c2").exists());
    // GC keeps c1 and deletes c2.
    let out = home.cnitool(
        &["gc", "u", "/var/run/netns/c1", "--valid", "c1/eth0"],
        "c1",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "cnitool: deleted stale attachment c2/eth0"
    );
    assert!(entry("c1").exists());
    assert!(!entry("c2").exists());
    ok(
        &home.cnitool(&["del", "u", "/var/run/netns/c1"], "c1"),
        "del",
    );
    assert!(!entry("c1").exists());
    ok(&home.cnitool(&["gc", "u", "/var/run/netns/c1"], "c1"), "gc");
    let left: Vec<PathBuf> = walk(&cache).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");

    // The plugin ran as the user: its log is the user's, and it saw the
    // clean environment.
    let log = home.path("bin/p.calls.jsonl");
    let meta = std::fs::metadata(&log).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (home.uid, home.gid));
    let calls = read_jsonl(&log);
    let commands: Vec<&str> = calls
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        ["ADD", "CHECK", "STATUS", "ADD", "DEL", "GC", "DEL", "GC"]
    );
    for c in &calls {
        assert_eq!(c["env"]["HOME"], home.root.to_str().unwrap());
        assert_eq!(c["env"]["CNI_CACHE_DIR"], cache.to_str().unwrap());
    }
}
