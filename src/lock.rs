//! Serializing operations on one attachment: within the process (an async
//! mutex per cache file) and across processes (an `flock` on
//! `<cache dir>/locks/<network>-<container id>-<ifname>`).
//!
//! The cross-process lock is best effort: if the lock file cannot be
//! created (a read-only cache directory, say), the operation goes on with
//! the in-process lock only, so a DEL is never blocked by it. libcni takes
//! no lock and ignores the `locks` directory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

type LockTable = Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>;

static LOCKS: LazyLock<LockTable> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Held while an operation on an attachment runs.
pub(crate) struct AttachmentLock {
    file: Option<(File, PathBuf)>,
    _local: OwnedMutexGuard<()>,
}

impl AttachmentLock {
    /// Waits for the attachment whose cache file is `cache_file`.
    pub(crate) async fn acquire(cache_dir: &Path, cache_file: &Path) -> AttachmentLock {
        let local = local_lock(cache_file).await;
        let name = cache_file.file_name().unwrap_or_default();
        let path = cache_dir.join("locks").join(name);
        let file = match file_lock(&path).await {
            Ok(f) => Some((f, path)),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot take the cross-process attachment lock; going on with the in-process lock"
                );
                None
            }
        };
        AttachmentLock {
            file,
            _local: local,
        }
    }

    /// Removes the lock file (the attachment is gone), then releases.
    pub(crate) fn release_and_remove(mut self) {
        if let Some((file, path)) = self.file.take() {
            // Still holding the lock: whoever opened this file meanwhile
            // sees it unlinked after locking and opens a fresh one.
            let _ = fs::remove_file(&path);
            drop(file);
        }
    }
}

async fn local_lock(key: &Path) -> OwnedMutexGuard<()> {
    let lock = {
        let mut map = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            l
        } else {
            if map.len() > 1024 {
                map.retain(|_, w| w.strong_count() > 0);
            }
            let l = Arc::new(tokio::sync::Mutex::new(()));
            map.insert(key.to_owned(), Arc::downgrade(&l));
            l
        }
    };
    lock.lock_owned().await
}

/// `flock(LOCK_EX)` on `path`, polled so that the wait is cancellable, and
/// re-done if the file was unlinked while we waited for it.
async fn file_lock(path: &Path) -> std::io::Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if fs::symlink_metadata(dir)?.file_type().is_symlink() {
        return Err(std::io::Error::other("the locks directory is a symlink"));
    }
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let mut delay = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a file descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(20));
                }
                Some(libc::EINTR) => {}
                _ => return Err(err),
            }
        }
        let held = file.metadata()?;
        match fs::symlink_metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(file),
            // Unlinked (or replaced) by the previous holder: lock the new one.
            _ => continue,
        }
    }
}
