//! Running plugins: finding their binaries and executing them.
//!
//! [`PluginExec`] is the seam between the library and the operating system:
//! [`ProcessExec`] runs real processes; tests (and runtimes with special
//! needs) can supply their own.

mod outcome;
mod process;
mod spawn;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::process::ProcessExec;
pub use crate::environment::Environment;
use crate::error::{Error, ErrorKind, Op};
pub use crate::exit::ExitStatus;

/// The default plugin directory.
pub const DEFAULT_PLUGIN_DIR: &str = "/opt/cni/bin";

/// One plugin execution to perform.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ExecRequest<'a> {
    /// The binary.
    pub path: &'a Path,
    /// The operation (also in `env` as `CNI_COMMAND`).
    pub op: Op,
    /// The plugin's complete environment: the caller's, shaped by the
    /// [`PluginEnv`](crate::PluginEnv) in force, with the six CNI variables
    /// set over it. An executor sets exactly these, nothing inherited
    /// besides.
    pub env: &'a Environment,
    /// The bytes to write to the plugin's stdin.
    pub stdin: &'a [u8],
    /// How long the plugin may run before its process group is terminated
    /// (a duration too large to represent, such as [`Duration::MAX`], means
    /// no limit).
    pub timeout: Duration,
    /// After `SIGTERM` on timeout, how long the plugin has to exit before its
    /// process group gets `SIGKILL` (likewise unlimited if too large).
    pub kill_grace: Duration,
    /// The most bytes the plugin may write to stdout, and separately to
    /// stderr. A plugin that writes more has its process group killed and
    /// the run fails with [`ErrorKind::OutputTooLarge`]. [`new`](Self::new)
    /// sets [`DEFAULT_MAX_OUTPUT`].
    pub max_output: usize,
}

/// The default cap on a plugin's stdout, and separately on its stderr:
/// 16 MiB, thousands of times a real result.
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;

impl<'a> ExecRequest<'a> {
    /// Builds a request (for [`PluginExec`] implementations that delegate).
    pub fn new(
        path: &'a Path,
        op: Op,
        env: &'a Environment,
        stdin: &'a [u8],
        timeout: Duration,
        kill_grace: Duration,
    ) -> ExecRequest<'a> {
        ExecRequest {
            path,
            op,
            env,
            stdin,
            timeout,
            kill_grace,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Sets [`max_output`](Self::max_output).
    pub fn with_max_output(mut self, max: usize) -> ExecRequest<'a> {
        self.max_output = max;
        self
    }
}

/// What a plugin run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecOutput {
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Builds an output (for [`PluginExec`] implementations).
    pub fn new(status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> ExecOutput {
        ExecOutput {
            status,
            stdout,
            stderr,
        }
    }
}

/// Finds and executes plugins.
///
/// The default methods find binaries like libcni; [`ProcessExec`] executes
/// them as child processes.
pub trait PluginExec: Send + Sync {
    /// Finds the binary of `plugin_type` in `dirs` (see [`find_plugin`]).
    ///
    /// # Errors
    ///
    /// As [`find_plugin`].
    fn find(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
        find_plugin(plugin_type, dirs)
    }

    /// Runs one plugin to completion (or until `req.timeout`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Spawn`] when it cannot start, [`ErrorKind::Timeout`] when
    /// it runs too long, [`ErrorKind::OutputTooLarge`] when it writes more
    /// than `req.max_output`, [`ErrorKind::Io`] when its pipes fail. A plugin that
    /// fails is an `Ok` output with a non-zero status.
    fn exec(&self, req: ExecRequest<'_>) -> impl Future<Output = Result<ExecOutput, Error>> + Send;
}

/// Finds a plugin binary as libcni's `FindInPath` does: `<dir>/<type>` in
/// each directory in order; the first regular file wins (symlinks are
/// followed).
///
/// # Errors
///
/// [`ErrorKind::InvalidPluginName`] for an empty type or one that is a path,
/// [`ErrorKind::NoPluginDirs`] for no directories,
/// [`ErrorKind::PluginNotFound`] when no directory has it, and, unlike
/// libcni, [`ErrorKind::PluginNotExecutable`] when the file found has no
/// execute bit (libcni fails later, at exec).
pub fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    if !crate::name::valid_plugin_type(plugin_type) {
        return Err(Error::new(ErrorKind::InvalidPluginName {
            name: plugin_type.to_owned(),
        }));
    }
    if dirs.is_empty() {
        return Err(Error::new(ErrorKind::NoPluginDirs));
    }
    for dir in dirs {
        let path = dir.join(plugin_type);
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.is_file() {
                if meta.permissions().mode() & 0o111 == 0 {
                    return Err(Error::new(ErrorKind::PluginNotExecutable { path }));
                }
                return Ok(path);
            }
        }
    }
    Err(Error::new(ErrorKind::PluginNotFound {
        plugin: plugin_type.to_owned(),
        dirs: dirs.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_rejects_paths_and_needs_dirs() {
        for bad in ["", "a/b", "..", "."] {
            assert!(matches!(
                find_plugin(bad, &[PathBuf::from("/")]).unwrap_err().kind(),
                ErrorKind::InvalidPluginName { .. }
            ));
        }
        assert!(matches!(
            find_plugin("x", &[]).unwrap_err().kind(),
            ErrorKind::NoPluginDirs
        ));
    }

    #[test]
    fn find_takes_the_first_regular_file() {
        let root = std::env::temp_dir().join(format!("libcni-find-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(a.join("plug")).unwrap(); // a directory: skipped
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("plug"), "").unwrap();
        std::fs::set_permissions(b.join("plug"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_plugin("plug", &[a.clone(), b.clone()]).unwrap(),
            b.join("plug")
        );
        std::fs::write(a.join("noexec"), "").unwrap();
        std::fs::write(b.join("noexec"), "").unwrap();
        std::fs::set_permissions(b.join("noexec"), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The first file found decides, even if a later one is executable.
        assert!(matches!(
            find_plugin("noexec", &[a.clone(), b.clone()])
                .unwrap_err()
                .kind(),
            ErrorKind::PluginNotExecutable { .. }
        ));
        let e = find_plugin("missing", &[a.clone(), b.clone()]).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::PluginNotFound { dirs, .. } if dirs.len() == 2));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
