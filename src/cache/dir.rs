//! The cache's file system layer.
//!
//! Every operation works relative to directory file descriptors: the
//! configured cache directory is opened once (it may itself be a symlink:
//! nodes often point `/var/lib/cni` at another disk), then `results/`,
//! `locks/` and `results.tmp/` are opened relative to it with
//! `O_DIRECTORY|O_NOFOLLOW`, and files inside them with `openat`,
//! `renameat` and `unlinkat` and `O_NOFOLLOW`. So nothing inside the cache
//! directory is ever followed through a symlink, and a check cannot go
//! stale between looking at a path and using it.
//!
//! Writes are atomic and durable: the new entry is written to a temp file
//! in `results.tmp/` (a sibling of `results/` on the same file system, so
//! nothing that lists `results/` ever sees a partial file), `fdatasync`ed,
//! renamed into `results/`, and `results/` is `fsync`ed. Temp files left by
//! a crash are swept (see [`OpenCache::sweep_temp_files`]). Concurrent
//! writers in one process share directory syncs (group commit, see
//! [`sync_dir`]): each still returns only once an `fsync` of `results/`
//! that began after its own rename has succeeded.

use std::collections::HashSet;
use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{CacheProblem, Error, ErrorKind};

/// The directory of cached results, as libcni names it.
pub(crate) const RESULTS: &str = "results";
/// The directory of per-attachment lock files (ours; libcni ignores it).
pub(crate) const LOCKS: &str = "locks";
/// Where entries are written before they are renamed into `results/`.
pub(crate) const TMP: &str = "results.tmp";

/// A temp file whose writer is gone is swept at once; one whose writer
/// still seems alive (a pid reused, or a writer in another pid namespace)
/// only once it is this old.
const TEMP_MAX_AGE: Duration = Duration::from_secs(600);

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits)
}

fn io_err(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// The cache directory as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheDir {
    path: PathBuf,
}

/// An opened cache directory: the fd of the cache directory and the path it
/// was opened at (for messages).
#[derive(Debug)]
pub(crate) struct OpenCache {
    root: OwnedFd,
    path: PathBuf,
}

/// Why a sub-directory of the cache cannot be used.
fn symlink_error(path: PathBuf, what: &'static str) -> Error {
    Error::new(ErrorKind::Cache {
        problem: CacheProblem::Symlink { what },
    })
    .at_path(path)
}

impl CacheDir {
    pub(crate) fn new(path: PathBuf) -> CacheDir {
        CacheDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the cache directory, following a symlink at the configured path
    /// itself. With `create`, a missing directory is created (`0700`, with
    /// its parents); without, a missing one is `Ok(None)`.
    pub(crate) fn open(&self, create: bool) -> Result<Option<OpenCache>, Error> {
        let flags = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
        let root = match rustix::fs::open(&self.path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.path)
                    .map_err(|e| Error::io("creating cache directory", &self.path, e))?;
                rustix::fs::open(&self.path, flags, Mode::empty())
                    .map_err(|e| Error::io("opening cache directory", &self.path, io_err(e)))?
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io("opening cache directory", &self.path, io_err(e))),
        };
        Ok(Some(OpenCache {
            root,
            path: self.path.clone(),
        }))
    }
}

impl OpenCache {
    /// The path of `name` in sub-directory `sub` (for messages).
    pub(crate) fn file_path(&self, sub: &str, name: &str) -> PathBuf {
        self.path.join(sub).join(name)
    }

    /// Opens sub-directory `sub` without following a symlink. With `create`
    /// a missing one is created (`0700`); without, it is `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Cache`] when it is a symlink or not a directory,
    /// [`ErrorKind::Io`] otherwise.
    pub(crate) fn subdir(&self, sub: &'static str, create: bool) -> Result<Option<OwnedFd>, Error> {
        let path = || self.path.join(sub);
        let mut created = false;
        loop {
            match rustix::fs::openat(&self.root, sub, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOENT) if create && !created => {
                    match rustix::fs::mkdirat(&self.root, sub, mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => created = true,
                        Err(e) => {
                            return Err(Error::io("creating cache directory", &path(), io_err(e)));
                        }
                    }
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let st = rustix::fs::statat(&self.root, sub, AtFlags::SYMLINK_NOFOLLOW);
                    return Err(match st {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                            symlink_error(
                                path(),
                                if sub == RESULTS {
                                    "the results directory"
                                } else if sub == LOCKS {
                                    "the locks directory"
                                } else {
                                    "the temp directory"
                                },
                            )
                        }
                        _ => Error::new(ErrorKind::Cache {
                            problem: CacheProblem::NotADirectory { name: sub },
                        })
                        .at_path(path()),
                    });
                }
                Err(e) => return Err(Error::io("opening cache directory", &path(), io_err(e))),
            }
        }
    }

    /// Reads entry `name` of `results/`. `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Cache`] when it is a symlink or not a regular file,
    /// [`ErrorKind::Io`] when it cannot be read.
    pub(crate) fn read(
        &self,
        results: BorrowedFd<'_>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let path = || self.file_path(RESULTS, name);
        // O_NONBLOCK: opening a FIFO planted in the cache must not hang.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(results, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(symlink_error(path(), "the cache file")),
            Err(e) => return Err(Error::io("reading cache file", &path(), io_err(e))),
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io("reading cache file", &path(), io_err(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::new(ErrorKind::Cache {
                problem: CacheProblem::NotARegularFile,
            })
            .at_path(path()));
        }
        let mut buf = Vec::with_capacity(usize::try_from(st.st_size).unwrap_or(0).min(1 << 20));
        File::from(fd)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("reading cache file", &path(), e))?;
        Ok(Some(buf))
    }

    /// Whether `results/` has an entry `name` (of any type).
    pub(crate) fn exists(results: BorrowedFd<'_>, name: &str) -> bool {
        !matches!(
            rustix::fs::statat(results, name, AtFlags::SYMLINK_NOFOLLOW),
            Err(Errno::NOENT)
        )
    }

    /// Writes entry `name` of `results/` atomically and durably: temp file
    /// in `results.tmp/` (`0600`, `O_EXCL`), `fdatasync`, `renameat` into
    /// `results/`, `fsync` of `results/`.
    pub(crate) fn write(
        &self,
        results: BorrowedFd<'_>,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let path = self.file_path(RESULTS, name);
        let tmp_dir = self.subdir(TMP, true)?.expect("created when missing");
        self.sweep_once();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // The entry's name, cut to keep the temp name under `NAME_MAX`.
        let mut cut = name.len().min(200);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let tmp = format!(
            "{}.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &name[..cut]
        );
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let result = (|| -> Result<(), Errno> {
            let fd = rustix::fs::openat(&tmp_dir, tmp.as_str(), flags, mode(0o600))?;
            let mut file = File::from(fd);
            file.write_all(bytes)
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            rustix::fs::fdatasync(&file)?;
            drop(file);
            rustix::fs::renameat(&tmp_dir, tmp.as_str(), results, name)?;
            sync_dir(results)
        })();
        result.map_err(|e| {
            let _ = rustix::fs::unlinkat(&tmp_dir, tmp.as_str(), AtFlags::empty());
            Error::io("writing cache file", &path, io_err(e))
        })
    }

    /// Removes entry `name` of `results/` (a missing one is fine; a symlink
    /// is removed itself, never followed). The directory is not synced: if
    /// a crash brings the entry back, the next DEL or GC removes it again.
    pub(crate) fn remove(&self, results: BorrowedFd<'_>, name: &str) -> Result<(), Error> {
        match rustix::fs::unlinkat(results, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(
                "removing cache file",
                &self.file_path(RESULTS, name),
                io_err(e),
            )),
        }
    }

    /// The names in a directory, sorted by bytes, without dot-files (never
    /// cache entries: names start with a letter or digit) and names that
    /// are not UTF-8.
    pub(crate) fn list(&self, dir: BorrowedFd<'_>, sub: &str) -> Result<Vec<String>, Error> {
        let err = |e: Errno| Error::io("reading cache directory", &self.path.join(sub), io_err(e));
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            if let Ok(s) = name.to_str() {
                names.push(s.to_owned());
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Sweeps temp files once per process and cache directory.
    fn sweep_once(&self) {
        static SWEPT: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);
        let first = SWEPT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.path.clone());
        if first {
            self.sweep_temp_files();
        }
    }

    /// Removes temp files left behind by crashed writers: in `results.tmp/`
    /// (`<pid>.<n>.<entry>`), and the `.<entry>.<pid>.<n>.tmp` files that
    /// libcni-rs 0.1 wrote into `results/` itself. A file goes when its
    /// writer's pid is not running, or when it is older than 10 minutes.
    /// Returns how many were removed.
    pub(crate) fn sweep_temp_files(&self) -> usize {
        let mut removed = 0;
        if let Ok(Some(tmp)) = self.subdir(TMP, false) {
            removed += sweep_dir(tmp.as_fd(), |name| {
                name.split('.').next().and_then(|p| p.parse().ok())
            });
        }
        if let Ok(Some(results)) = self.subdir(RESULTS, false) {
            removed += sweep_dir(results.as_fd(), |name| {
                let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
                let mut parts = inner.rsplitn(3, '.');
                let _n = parts.next()?;
                parts.next()?.parse().ok()
            });
        }
        removed
    }
}

/// Removes the files of `dir` for which `writer` names a pid, when that
/// process is gone or the file is old.
fn sweep_dir(dir: BorrowedFd<'_>, writer: impl Fn(&str) -> Option<i32>) -> usize {
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name: &CStr = entry.file_name();
        let Ok(s) = name.to_str() else { continue };
        let Some(pid) = writer(s) else { continue };
        let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
        let old = now
            .duration_since(mtime)
            .is_ok_and(|age| age > TEMP_MAX_AGE);
        let gone = rustix::process::Pid::from_raw(pid)
            .is_none_or(|p| rustix::process::test_kill_process(p) == Err(Errno::SRCH));
        let ours = pid == std::process::id() as i32;
        if (old || gone) && !ours && rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok() {
            tracing::info!(
                file = s,
                "removed a temp file left behind by a crashed writer"
            );
            removed += 1;
        }
    }
    removed
}

/// An exclusive `flock` on `locks/<name>`, taken without following a
/// symlink, and re-taken if the file was unlinked while we waited.
#[derive(Debug)]
pub(crate) struct FileLock {
    locks: OwnedFd,
    file: OwnedFd,
    name: String,
}

/// What a non-blocking attempt to lock gave.
pub(crate) enum TryLock {
    Locked(FileLock),
    Busy,
}

impl OpenCache {
    /// Opens `locks/` (creating it) for lock files.
    pub(crate) fn locks_dir(&self) -> Result<OwnedFd, Error> {
        Ok(self.subdir(LOCKS, true)?.expect("created when missing"))
    }
}

/// Tries once to lock `locks/<name>`, creating the file.
pub(crate) fn try_lock(locks: &OwnedFd, name: &str) -> std::io::Result<TryLock> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    loop {
        let file = rustix::fs::openat(locks, name, flags, mode(0o600)).map_err(io_err)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(TryLock::Busy),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
        let held = rustix::fs::fstat(&file).map_err(io_err)?;
        match rustix::fs::statat(locks, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if now.st_ino == held.st_ino && now.st_dev == held.st_dev => {
                let locks = locks.try_clone()?;
                return Ok(TryLock::Locked(FileLock {
                    locks,
                    file,
                    name: name.to_owned(),
                }));
            }
            // Unlinked (or replaced) by the previous holder: lock the new one.
            _ => continue,
        }
    }
}

impl FileLock {
    /// Removes the lock file while still holding it (whoever opened it
    /// meanwhile sees it unlinked once they lock it, and opens a fresh
    /// one), then releases it.
    pub(crate) fn remove(self) {
        let _ = rustix::fs::unlinkat(&self.locks, self.name.as_str(), AtFlags::empty());
        drop(self.file);
    }
}

/// Removes the lock files in `locks/` that have no entry in `results/` and
/// that nobody holds. Returns how many were removed.
pub(crate) fn sweep_locks(
    cache: &OpenCache,
    results: Option<BorrowedFd<'_>>,
) -> Result<usize, Error> {
    let Some(locks) = cache.subdir(LOCKS, false)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for name in cache.list(locks.as_fd(), LOCKS)? {
        if results.is_some_and(|r| OpenCache::exists(r, &name)) {
            continue;
        }
        // Only an existing file: never create one here.
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let Ok(file) = rustix::fs::openat(&locks, name.as_str(), flags, Mode::empty()) else {
            continue;
        };
        if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // held: an operation is running on it
        }
        let same = match (
            rustix::fs::fstat(&file),
            rustix::fs::statat(&locks, name.as_str(), AtFlags::SYMLINK_NOFOLLOW),
        ) {
            (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
            _ => false,
        };
        // Checked again under the lock: an ADD that held it may have just
        // written the entry.
        if same
            && !results.is_some_and(|r| OpenCache::exists(r, &name))
            && rustix::fs::unlinkat(&locks, name.as_str(), AtFlags::empty()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The directory syncs of one directory (by device and inode), shared by
/// the writers of this process.
#[derive(Default)]
struct DirSyncs {
    state: Mutex<SyncState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Tickets handed out: one per rename that needs a sync.
    requested: u64,
    /// Every ticket up to this one is covered by a successful sync.
    completed: u64,
    /// A sync is running.
    syncing: bool,
}

/// The group-commit state of each directory written to, by device and inode.
type DirSyncMap = std::collections::HashMap<(u64, u64), std::sync::Arc<DirSyncs>>;
static DIR_SYNCS: LazyLock<Mutex<DirSyncMap>> = LazyLock::new(Default::default);

/// `fsync`s the directory `dir` after a rename into it, sharing the sync
/// with concurrent writers (group commit): a writer takes a ticket after
/// its rename; if a sync is already running, it waits for that one to end
/// and returns once a sync that *started* after its ticket was taken has
/// succeeded, which it runs itself if nobody else does. So every rename
/// is durable when its writer returns, as with one `fsync` each, and 8
/// concurrent writers need about 2 directory syncs instead of 8. A failed
/// sync covers nobody: its waiters try again. (A blocking call: it runs on
/// the blocking pool with the rest of the write.)
fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let st = rustix::fs::fstat(dir)?;
    let group = {
        let mut map = DIR_SYNCS.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((st.st_dev, st.st_ino)).or_default().clone()
    };
    let mut state = group.state.lock().unwrap_or_else(|e| e.into_inner());
    state.requested += 1;
    let ticket = state.requested;
    loop {
        if state.completed >= ticket {
            return Ok(());
        }
        if !state.syncing {
            // Every ticket handed out so far belongs to a rename that is
            // done: this sync covers them all.
            let target = state.requested;
            state.syncing = true;
            drop(state);
            let res = rustix::fs::fsync(dir);
            let mut state = group.state.lock().unwrap_or_else(|e| e.into_inner());
            state.syncing = false;
            if res.is_ok() {
                state.completed = state.completed.max(target);
            }
            group.done.notify_all();
            return res;
        }
        state = group.done.wait(state).unwrap_or_else(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_directory_syncs_each_return_covered() {
        let dir = std::env::temp_dir().join(format!("libcni-dirsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fd = File::open(&dir).unwrap();
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..25 {
                        sync_dir(fd.as_fd()).unwrap();
                    }
                });
            }
        });
        let st = rustix::fs::fstat(&fd).unwrap();
        let group = DIR_SYNCS.lock().unwrap()[&(st.st_dev, st.st_ino)].clone();
        let state = group.state.lock().unwrap();
        // Every ticket handed out is covered by a sync that succeeded, and
        // no sync is left marked as running.
        assert_eq!(state.requested, 400);
        assert_eq!(state.completed, 400);
        assert!(!state.syncing);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
