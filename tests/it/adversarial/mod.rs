//! The adversarial suite: crashes, output floods, escaping processes,
//! repeated and out-of-order operations, hostile names and files, long
//! concurrent runs with the real plugins, a churning pod facade, and
//! resource hygiene. Each test names what it proves; counts are small
//! enough for CI, and `LIBCNI_ADV_SCALE=<n>` multiplies them for a longer
//! opt-in run (see the README).

mod churn;
mod corpus;
mod crash;
mod escape;
mod hostile;
mod hygiene;
mod idempotence;
mod output;
mod soak;

use std::path::{Path, PathBuf};

/// The factor `LIBCNI_ADV_SCALE` gives the suite's counts (default 1).
pub fn scale() -> usize {
    std::env::var("LIBCNI_ADV_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(1)
}

/// A small deterministic generator (xorshift64*), seeded and printed so a
/// failing run can be replayed (`LIBCNI_ADV_SEED`).
pub struct Rng(u64);

impl Rng {
    pub fn new(what: &str) -> Rng {
        let seed = std::env::var("LIBCNI_ADV_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64;
                t ^ u64::from(std::process::id())
            })
            | 1;
        eprintln!("{what}: LIBCNI_ADV_SEED={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes an executable `/bin/sh` plugin `bin/<name>` running `body`.
pub fn script(bin: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = bin.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

pub use crate::support::names;

/// Asserts that a cache directory holds no entry, no lock file and no temp
/// file.
pub fn assert_cache_clean(cache: &Path) {
    for sub in ["results", "locks", "results.tmp"] {
        let left = names(&cache.join(sub));
        assert!(left.is_empty(), "{sub}/ still holds {left:?}");
    }
}

/// Every file under `dir` (recursively, not following symlinks) with its
/// contents (a symlink: its target), to compare before and after.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((p.clone(), b"<dir>".to_vec()));
                stack.push(p);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((p, t.into_os_string().into_encoded_bytes()));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// The pids of live processes whose environment has `CNI_CONTAINERID`
/// starting with `prefix` (plugins of this test still running).
pub fn plugins_running_for(prefix: &str) -> Vec<u32> {
    let needle = format!("CNI_CONTAINERID={prefix}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env
            .split(|b| *b == 0)
            .any(|kv| kv.starts_with(needle.as_bytes()))
            && crate::support::process_running(pid)
        {
            out.push(pid);
        }
    }
    out
}

/// Re-runs this test binary for one test (`name`, exact) with `env` set:
/// the way a test gets a process of its own (to be killed, or to count
/// its own file descriptors without other tests' noise).
pub fn self_command(name: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Watches directories (not recursively) with inotify for any open, read,
/// write, creation, deletion or attribute change of what is in them: the
/// way to assert that nothing outside the cache directory was even read.
pub struct Untouched {
    fd: std::os::fd::OwnedFd,
    dirs: Vec<PathBuf>,
}

impl Untouched {
    pub fn watch(dirs: &[&Path]) -> Untouched {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: inotify_init1 has no preconditions; the fd is owned here.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            raw >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh, valid descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_OPEN
            | libc::IN_ACCESS
            | libc::IN_MODIFY
            | libc::IN_ATTRIB
            | libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_DELETE_SELF;
        for d in dirs {
            let c = std::ffi::CString::new(d.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid inotify fd and C string.
            let w = unsafe { libc::inotify_add_watch(raw, c.as_ptr(), mask) };
            assert!(
                w >= 0,
                "watching {}: {}",
                d.display(),
                std::io::Error::last_os_error()
            );
        }
        Untouched {
            fd,
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        }
    }

    /// Asserts that no event happened since `watch`.
    pub fn assert_untouched(&self, what: &str) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let err = std::io::Error::last_os_error();
        assert!(
            n < 0 && err.kind() == std::io::ErrorKind::WouldBlock,
            "{what}: something opened, read or changed files in {:?} ({n} bytes of inotify events)",
            self.dirs
        );
    }
}
