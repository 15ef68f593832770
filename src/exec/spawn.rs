//! Starting a plugin process with `posix_spawn` and a prepared environment.
//!
//! `std::process::Command` rebuilds the environment for every spawn: each
//! variable goes into a `BTreeMap<OsString, Option<OsString>>`, then into a
//! second `BTreeMap<OsString, OsString>`, then into one `CString` per
//! variable, all freed again. With a caller's environment of a few dozen
//! variables that was about a third of the executor's instructions per plugin
//! run. Here the `envp` block is the request's [`Environment`] itself (built
//! once per operation); a spawn adds only the array of pointers into it.
//!
//! What the plugin sees is what `Command` (with `env_clear`, `envs`, three
//! piped stdio streams and `process_group(0)`) gave it: `argv` is the path
//! alone; the environment is the request's, later duplicates winning, in
//! byte order of the names (`Command` passes its map's order); the signal
//! mask is empty and `SIGPIPE` is back to its default action; it leads a new
//! process group; fds 0, 1 and 2 are the pipes and every descriptor of ours
//! that is close-on-exec stays closed.

use std::ffi::{c_char, c_int};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::process::Pid;

use super::Environment;

/// A plugin process just started: its pid (also its process group id) and
/// our ends of its stdin, stdout and stderr (close-on-exec, blocking).
pub(super) struct Spawned {
    pub(super) pid: Pid,
    pub(super) stdin: OwnedFd,
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
}

/// Starts `path` with exactly `env` (later duplicates win), its stdio piped
/// to us, in a new process group.
///
/// # Errors
///
/// What `posix_spawn` reports (including the `execve` error, such as
/// `ETXTBSY` or `ENOENT`), a pipe that cannot be made, or `InvalidInput`
/// for a NUL byte in the path or the environment (as `Command`).
pub(super) fn spawn(path: &Path, env: &Environment) -> io::Result<Spawned> {
    let path = nul_terminated(path.as_os_str().as_bytes())?;
    let envp = Envp::new(env)?;
    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let actions = FileActions::new()?;
    actions.dup2(&stdin_r, 0)?;
    actions.dup2(&stdout_w, 1)?;
    actions.dup2(&stderr_w, 2)?;
    let attr = SpawnAttr::new()?;
    let argv: [*mut c_char; 2] = [
        path.as_ptr().cast::<c_char>().cast_mut(),
        std::ptr::null_mut(),
    ];
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: `path` and `argv` are
    // NUL-terminated and outlive it, `envp.ptrs` points into the
    // environment's block, which is immutable and outlives it, and ends with
    // a null pointer;
    // `actions` and `attr` are initialized and destroyed only on drop.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr().cast::<c_char>(),
            actions.as_ptr(),
            attr.as_ptr(),
            argv.as_ptr(),
            envp.ptrs.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("posix_spawn returned pid 0"))?;
    // The child's ends close here; it has its own copies.
    drop((stdin_r, stdout_w, stderr_w));
    Ok(Spawned {
        pid,
        stdin: stdin_w,
        stdout: stdout_r,
        stderr: stderr_r,
    })
}

fn nul_terminated(bytes: &[u8]) -> io::Result<Vec<u8>> {
    if bytes.contains(&0) {
        return Err(nul_error());
    }
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    Ok(v)
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "nul byte found in provided data",
    )
}

/// A close-on-exec pipe whose ends are not fds 0, 1 or 2 (should the
/// process have closed its own), so the child's `dup2`s cannot clobber them.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// The `envp` pointers: one per string of the environment's block,
/// null-terminated. The block itself is the environment's own.
struct Envp<'a> {
    _env: &'a Environment,
    ptrs: Vec<*mut c_char>,
}

impl<'a> Envp<'a> {
    fn new(env: &'a Environment) -> io::Result<Envp<'a>> {
        // `Command` refuses the same.
        if env.has_nul() {
            return Err(nul_error());
        }
        let base = env.block().as_ptr();
        let mut ptrs = Vec::with_capacity(env.len() + 1);
        // SAFETY: each offset is the start of a NUL-terminated string inside
        // the block, which `_env` keeps alive (and which is never changed).
        ptrs.extend(
            env.offsets()
                .map(|at| unsafe { base.add(at) }.cast::<c_char>().cast_mut()),
        );
        ptrs.push(std::ptr::null_mut());
        Ok(Envp { _env: env, ptrs })
    }
}

struct FileActions(Box<MaybeUninit<libc::posix_spawn_file_actions_t>>);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        let mut a = Box::new(MaybeUninit::uninit());
        // SAFETY: initializes the object, which is freed only in drop.
        check(unsafe { libc::posix_spawn_file_actions_init(a.as_mut_ptr()) })?;
        Ok(FileActions(a))
    }

    fn dup2(&self, fd: &OwnedFd, to: RawFd) -> io::Result<()> {
        // SAFETY: the object is initialized; `fd` is open.
        check(unsafe {
            libc::posix_spawn_file_actions_adddup2(self.as_ptr().cast_mut(), fd.as_raw_fd(), to)
        })
    }

    fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        self.0.as_ptr()
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(self.0.as_mut_ptr()) };
    }
}

/// Empty signal mask, `SIGPIPE` back to its default, a new process group.
struct SpawnAttr(Box<MaybeUninit<libc::posix_spawnattr_t>>);

impl SpawnAttr {
    fn new() -> io::Result<SpawnAttr> {
        let mut a = Box::new(MaybeUninit::uninit());
        // SAFETY: initializes the object, which is freed only in drop.
        check(unsafe { libc::posix_spawnattr_init(a.as_mut_ptr()) })?;
        let attr = SpawnAttr(a);
        let p = attr.0.as_ptr().cast_mut();
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `p` is initialized; `set` is initialized by sigemptyset
        // before any other use.
        unsafe {
            check_errno(libc::sigemptyset(set.as_mut_ptr()))?;
            check(libc::posix_spawnattr_setsigmask(p, set.as_ptr()))?;
            check_errno(libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE))?;
            check(libc::posix_spawnattr_setsigdefault(p, set.as_ptr()))?;
            check(libc::posix_spawnattr_setpgroup(p, 0))?;
            let flags = libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF
                | libc::POSIX_SPAWN_SETPGROUP;
            check(libc::posix_spawnattr_setflags(p, flags as libc::c_short))?;
        }
        Ok(attr)
    }

    fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        self.0.as_ptr()
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.0.as_mut_ptr()) };
    }
}

/// A `posix_spawn*` return value: 0 or an error number.
fn check(rc: c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// A libc return value: -1 with `errno` on error.
fn check_errno(rc: c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    fn strings(e: &Envp) -> Vec<String> {
        e.ptrs[..e.ptrs.len() - 1]
            .iter()
            // SAFETY: each points to a NUL-terminated string in the buffer.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn envp_is_sorted_by_name_and_the_later_duplicate_wins() {
        let env = os(&[("B", "2"), ("A", "1"), ("B", "3"), ("AB", ""), ("B", "4")]);
        let e = Envp::new(&env).unwrap();
        assert_eq!(strings(&e), ["A=1", "AB=", "B=4"]);
        assert!(e.ptrs.last().unwrap().is_null());
        let empty = Environment::new();
        assert_eq!(strings(&Envp::new(&empty).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn nul_bytes_are_refused() {
        for env in [os(&[("A\0", "1")]), os(&[("A", "1\0")])] {
            let e = Envp::new(&env).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        let e = spawn(Path::new("/bin/tr\0ue"), &Environment::new())
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_missing_binary_is_the_exec_error() {
        let e = spawn(Path::new("/nonexistent/plugin"), &Environment::new())
            .err()
            .unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
