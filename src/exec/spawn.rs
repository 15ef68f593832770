//! Starting a plugin process with `posix_spawn` and a prepared environment.
//!
//! `std::process::Command` rebuilds the environment for every spawn: each
//! variable goes into a `BTreeMap<OsString, Option<OsString>>`, then into a
//! second `BTreeMap<OsString, OsString>`, then into one `CString` per
//! variable, all freed again. With a caller's environment of a few dozen
//! variables that was about a third of the executor's instructions per plugin
//! run. Here the `envp` block is one buffer and one pointer array, built
//! straight from the request.
//!
//! What the plugin sees is what `Command` (with `env_clear`, `envs`, three
//! piped stdio streams and `process_group(0)`) gave it: `argv` is the path
//! alone; the environment is the request's, later duplicates winning, in
//! byte order of the names (`Command` passes its map's order); the signal
//! mask is empty and `SIGPIPE` is back to its default action; it leads a new
//! process group; fds 0, 1 and 2 are the pipes and every descriptor of ours
//! that is close-on-exec stays closed.

use std::ffi::{OsString, c_char, c_int};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::process::Pid;

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
pub(super) fn spawn(path: &Path, env: &[(OsString, OsString)]) -> io::Result<Spawned> {
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
    // NUL-terminated and outlive it, `envp.ptrs` points into `envp.buf`,
    // which is not touched while they live, and ends with a null pointer;
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

/// The `envp` block: `NAME=value\0` strings in one buffer, and the pointers
/// to them, null-terminated.
struct Envp {
    /// Never changed after `ptrs` is built (the pointers point into it).
    _buf: Vec<u8>,
    ptrs: Vec<*mut c_char>,
}

impl Envp {
    fn new(env: &[(OsString, OsString)]) -> io::Result<Envp> {
        // `Command`'s order and rule: by name, the later duplicate wins. The
        // library's own requests come sorted and unique (`plan::full_env`),
        // which one pass checks.
        let mut order: Vec<usize> = (0..env.len()).collect();
        if !env
            .windows(2)
            .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
        {
            order.sort_by(|&a, &b| env[a].0.as_bytes().cmp(env[b].0.as_bytes()));
            // A stable sort keeps duplicates in request order: keep the last.
            order.dedup_by(|later, earlier| {
                let same = env[*later].0 == env[*earlier].0;
                if same {
                    *earlier = *later;
                }
                same
            });
        }
        let len: usize = order
            .iter()
            .map(|&i| env[i].0.len() + env[i].1.len() + 2)
            .sum();
        let mut buf = Vec::with_capacity(len);
        for &i in &order {
            let (k, v) = (env[i].0.as_bytes(), env[i].1.as_bytes());
            if k.contains(&0) || v.contains(&0) {
                return Err(nul_error());
            }
            buf.extend_from_slice(k);
            buf.push(b'=');
            buf.extend_from_slice(v);
            buf.push(0);
        }
        let mut ptrs = Vec::with_capacity(order.len() + 1);
        let base = buf.as_mut_ptr();
        let mut at = 0;
        for &i in &order {
            // SAFETY: `at` is the start of a string written above, inside
            // `buf`.
            ptrs.push(unsafe { base.add(at) }.cast::<c_char>());
            at += env[i].0.len() + env[i].1.len() + 2;
        }
        ptrs.push(std::ptr::null_mut());
        Ok(Envp { _buf: buf, ptrs })
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

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
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
        let e = Envp::new(&os(&[
            ("B", "2"),
            ("A", "1"),
            ("B", "3"),
            ("AB", ""),
            ("B", "4"),
        ]))
        .unwrap();
        assert_eq!(strings(&e), ["A=1", "AB=", "B=4"]);
        assert!(e.ptrs.last().unwrap().is_null());
        assert_eq!(strings(&Envp::new(&[]).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn nul_bytes_are_refused() {
        for env in [os(&[("A\0", "1")]), os(&[("A", "1\0")])] {
            let e = Envp::new(&env).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        let e = spawn(Path::new("/bin/tr\0ue"), &[]).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_missing_binary_is_the_exec_error() {
        let e = spawn(Path::new("/nonexistent/plugin"), &[]).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
