//! Plugins as child processes, each in its own process group.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitIdStatus};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use tokio::time::Instant;

use super::spawn::{self, Spawned};
use super::{ExecOutput, ExecRequest, ExitStatus, PluginExec};
use crate::error::{Error, ErrorKind};

/// How long to keep reading a plugin's stdout and stderr after it exits,
/// when a process it left behind still holds them open.
const LEAK_WINDOW: Duration = Duration::from_millis(100);

/// How often to retry a spawn that fails with "text file busy" (the binary
/// is being written), and the first delay (doubled each time).
const ETXTBSY_RETRIES: u32 = 8;
const ETXTBSY_FIRST_DELAY: Duration = Duration::from_millis(25);

/// Runs plugins as child processes.
///
/// Each plugin runs (through `posix_spawn`) in a new process group with
/// exactly the environment of [`ExecRequest::env`] (nothing is inherited
/// from the runtime). Its stdin
/// is written while stdout and stderr are read, so no pipe can fill up.
///
/// - **Timeout**: the group gets `SIGTERM`. As soon as the plugin has
///   exited, or when the grace period ends if it has not, the group gets
///   `SIGKILL`; then the plugin is reaped, before the call returns. So a
///   process the plugin forked into its group gets the grace period only
///   while the plugin itself is still terminating.
/// - **Cancellation**: dropping the future sends `SIGKILL` to the group at
///   once, so neither the plugin nor anything it forked (in its group) keeps
///   running; the plugin is reaped in the background (on a tokio task, or on
///   a thread outside a runtime).
/// - **Leftover processes**: once the plugin has exited, its pipes are read
///   for at most 100 ms more; a daemon it started that keeps them open does
///   not block the call (libcni waits for it forever).
/// - **Escapes**: a process the plugin moved out of its group (`setsid`)
///   cannot be signalled with it. After a timeout the pipes are read for at
///   most 100 ms more; if such a process still holds them, the
///   [`ErrorKind::Timeout`] says so (`escaped`) and it is left running.
/// - **Output cap**: stdout and stderr are each read up to
///   [`ExecRequest::max_output`] bytes; one byte more kills the group at
///   once, reaps the plugin and fails with [`ErrorKind::OutputTooLarge`].
/// - **"text file busy"**: the spawn is retried with backoff (about 6 s in
///   all), like libcni's retry loop but with a fresh process each time.
///
/// The process group id is the plugin's pid. It is signalled only while the
/// plugin is not yet reaped: an exited but unreaped plugin (a zombie) still
/// belongs to the group, so the id cannot have been reused by an unrelated
/// group. The plugin is also signalled through a pidfd, in case it left its
/// group. This needs Linux 5.4 or later (`pidfd_open` and `waitid(P_PIDFD)`).
/// A timeout or grace period too large to represent (such as
/// [`Duration::MAX`]) means no limit.
#[derive(Debug, Clone, Default)]
pub struct ProcessExec {
    _private: (),
}

impl ProcessExec {
    /// A process executor.
    pub fn new() -> ProcessExec {
        ProcessExec::default()
    }
}

/// The plugin process, leader of its own process group (its pid is the
/// group id), held through a pidfd.
///
/// Invariant: the group is signalled only while the leader is unreaped, and
/// the leader is reaped (only here) after the last signal. Dropped before
/// the leader is reaped, it kills the group (unless disarmed) and reaps the
/// leader without blocking: at once if it has exited, else on a tokio task
/// or a thread.
struct GroupGuard {
    pid: Pid,
    /// `None` only once `Drop` has handed the reaping off.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Whether `Drop` sends `SIGKILL` (cleared once the plugin exited on its
    /// own: what it left running is then its own business).
    kill_on_drop: bool,
    reaped: bool,
}

impl GroupGuard {
    /// Takes charge of the child `pid`, which nothing has waited for.
    fn new(pid: Pid) -> io::Result<GroupGuard> {
        // Not reaped yet, so `pid` is still this child.
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
        // Sound here: the `OwnedFd` stays open, and is the same descriptor,
        // for as long as the `AsyncFd` owns it. (Its replacement,
        // `register_with_interest`, needs tokio 1.53.3; Cargo.toml asks for 1.)
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(fd, Interest::READABLE)?;
        Ok(GroupGuard {
            pid,
            pidfd: Some(fd),
            kill_on_drop: true,
            reaped: false,
        })
    }

    fn pidfd(&self) -> &AsyncFd<OwnedFd> {
        self.pidfd
            .as_ref()
            .expect("the pidfd is only taken in drop")
    }

    /// Waits until the leader has exited and returns how, leaving it
    /// unreaped (a zombie that keeps the group id reserved).
    async fn exited(&self) -> io::Result<ExitStatus> {
        let fd = self.pidfd();
        loop {
            let mut ready = fd.readable().await?;
            let opts = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
            match waitid(fd.get_ref().as_fd(), opts)? {
                Some(st) => return Ok(exit_status(st)),
                None => ready.clear_ready(),
            }
        }
    }

    /// Sends `sig` to the group, and to the leader through its pidfd
    /// (`SIGKILL` always, another signal only if the leader left the group).
    fn signal(&self, sig: Signal) {
        if self.reaped {
            return;
        }
        // The leader is unreaped: the group id is still its own.
        let _ = rustix::process::kill_process_group(self.pid, sig);
        let Some(fd) = &self.pidfd else { return };
        let left = rustix::process::getpgid(Some(self.pid)).is_ok_and(|g| g != self.pid);
        if sig == Signal::KILL || left {
            let _ = rustix::process::pidfd_send_signal(fd.get_ref(), sig);
        }
    }

    /// Reaps the leader if it has exited; returns whether it is reaped. The
    /// group is never signalled afterwards.
    fn try_reap(&mut self) -> bool {
        if !self.reaped {
            self.reaped = self
                .pidfd
                .as_ref()
                .is_none_or(|fd| reap_now(fd.get_ref().as_fd()));
        }
        self.reaped
    }

    /// Waits for the leader to exit and reaps it (after the last signal).
    async fn reap(&mut self) -> io::Result<()> {
        let fd = self.pidfd();
        loop {
            let mut ready = fd.readable().await?;
            if reap_now(fd.get_ref().as_fd()) {
                break;
            }
            ready.clear_ready();
        }
        self.reaped = true;
        Ok(())
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        if self.kill_on_drop {
            self.signal(Signal::KILL);
        }
        // From here on the group is never signalled again.
        if let Some(fd) = self.pidfd.take() {
            if !reap_now(fd.get_ref().as_fd()) {
                reap_later(fd);
            }
        }
    }
}

fn waitid(pidfd: BorrowedFd<'_>, opts: WaitIdOptions) -> io::Result<Option<WaitIdStatus>> {
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), opts) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Reaps the process of `pidfd` if it has exited, without blocking. Returns
/// whether it is gone: reaped now, or not (or no longer) our child.
fn reap_now(pidfd: BorrowedFd<'_>) -> bool {
    !matches!(
        waitid(pidfd, WaitIdOptions::EXITED | WaitIdOptions::NOHANG),
        Ok(None)
    )
}

/// Reaps the process of `pidfd` once it exits, without blocking the caller:
/// on a tokio task if there is a runtime, else on a thread.
fn reap_later(pidfd: AsyncFd<OwnedFd>) {
    let late = LateReap(Some(pidfd));
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(late.run());
    }
    // Else `late` is dropped here, which hands it to a thread.
}

/// A process still to reap. Dropped before it is reaped (its task cancelled
/// by a runtime shutting down, or no runtime), it is reaped on a thread.
struct LateReap(Option<AsyncFd<OwnedFd>>);

impl LateReap {
    async fn run(mut self) {
        let Some(fd) = &self.0 else { return };
        loop {
            // An error (the runtime is going away) leaves it to `drop`.
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            if reap_now(fd.get_ref().as_fd()) {
                break;
            }
            ready.clear_ready();
        }
        self.0 = None;
    }
}

impl Drop for LateReap {
    fn drop(&mut self) {
        let Some(fd) = self.0.take() else { return };
        let fd = fd.into_inner();
        let spawned = std::thread::Builder::new()
            .name("cni-plugin-reaper".into())
            .spawn(move || {
                let _ = waitid(fd.as_fd(), WaitIdOptions::EXITED);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread to reap a killed plugin");
        }
    }
}

/// A spawned child whose pidfd could not be set up: killed with its group
/// (it is unreaped, so the group id is still its own) and reaped on a
/// thread.
fn abandon(pid: Pid) {
    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    let spawned = std::thread::Builder::new()
        .name("cni-plugin-reaper".into())
        .spawn(move || {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread to reap a killed plugin");
    }
}

async fn spawn(req: &ExecRequest<'_>) -> io::Result<Spawned> {
    let mut delay = ETXTBSY_FIRST_DELAY;
    let mut attempt = 0;
    loop {
        match spawn::spawn(req.path, req.env) {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < ETXTBSY_RETRIES => {
                attempt += 1;
                tracing::debug!(path = %req.path.display(), attempt, "text file busy; retrying spawn");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

/// The marker of an output over the cap, carried through `io::Error`.
#[derive(Debug)]
struct Overflow {
    stream: &'static str,
    limit: usize,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} bytes on {}", self.limit, self.stream)
    }
}

impl std::error::Error for Overflow {}

/// Reads `r` to its end into `buf`, failing with [`Overflow`] as soon as it
/// holds more than `cap` bytes (so `buf` never grows past `cap + 1`).
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
    stream: &'static str,
) -> io::Result<()> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit).read_to_end(buf).await?;
    if buf.len() > cap {
        return Err(io::Error::other(Overflow { stream, limit: cap }));
    }
    Ok(())
}

/// The error for a failed read of the plugin's output.
fn output_error(path: &std::path::Path, e: io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<Overflow>()) {
        Some(o) => Error::output_too_large(o.stream, o.limit),
        None => Error::io("reading plugin output", path, e),
    }
}

fn exit_status(st: WaitIdStatus) -> ExitStatus {
    match (st.exit_status(), st.terminating_signal()) {
        (Some(c), _) => ExitStatus::Exited(c),
        (None, Some(s)) => ExitStatus::Signaled(s),
        (None, None) => ExitStatus::Exited(-1),
    }
}

/// Sets `O_NONBLOCK` on our end of a pipe (an open file description of its
/// own: the child's end is another). One `F_SETFL`, without reading the
/// flags first: the pipe was made here with no status flag set (the
/// access mode, which `F_SETFL` ignores, aside).
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// The child's stdin, once written as far as the pipe takes without
/// waiting: `None` when all of `input` went in (the usual case: a plugin's
/// config is far below the pipe's 64 KiB), so the pipe is closed at once and
/// never registered with the runtime; else the pipe, registered, and the
/// rest to write.
type Stdin<'a> = Option<(pipe::Sender, &'a [u8])>;

/// The child's pipes: stdin written as far as it goes now (see [`Stdin`]),
/// stdout and stderr registered with the runtime.
///
/// Our ends are made non-blocking first (the child's stay blocking, as
/// plugins expect): the runtime reads a ready pipe until it would block,
/// and on a blocking descriptor that last read would wait for the plugin,
/// on the reactor thread, while the plugin may itself wait for us to drain
/// its other pipe.
fn pipes(child: Spawned, input: &[u8]) -> io::Result<(Stdin<'_>, pipe::Receiver, pipe::Receiver)> {
    for fd in [&child.stdin, &child.stdout, &child.stderr] {
        set_nonblocking(fd)?;
    }
    let mut rest = input;
    while !rest.is_empty() {
        match rustix::io::write(&child.stdin, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => break,
            // The plugin exited or closed its stdin without reading it all:
            // the write is over (as `write_all` failing was before).
            Err(_) => rest = &[],
        }
    }
    let stdin = if rest.is_empty() {
        None
    } else {
        Some((pipe::Sender::from_owned_fd_unchecked(child.stdin)?, rest))
    };
    Ok((
        stdin,
        pipe::Receiver::from_owned_fd_unchecked(child.stdout)?,
        pipe::Receiver::from_owned_fd_unchecked(child.stderr)?,
    ))
}

impl PluginExec for ProcessExec {
    async fn exec(&self, req: ExecRequest<'_>) -> Result<ExecOutput, Error> {
        let started = std::time::Instant::now();
        let spawn_err = |e: io::Error| Error::spawn(req.path, e);
        let child = spawn(&req).await.map_err(spawn_err)?;
        let mut plugin = match GroupGuard::new(child.pid) {
            Ok(guard) => guard,
            Err(e) => {
                abandon(child.pid);
                return Err(spawn_err(e));
            }
        };
        // On error from here, dropping `plugin` kills the group and reaps.
        let (stdin, mut stdout, mut stderr) = pipes(child, req.stdin)
            .map_err(|e| Error::io("setting up plugin pipes", req.path, e))?;
        // Room for a typical result, so stdout is read in one `read` (from
        // an empty Vec, `read_to_end` starts at 32 bytes and grows).
        let mut out = Vec::with_capacity(4096);
        let mut err = Vec::new();
        let cap = req.max_output;
        let mut io = Box::pin(async {
            let write = async move {
                if let Some((mut w, rest)) = stdin {
                    // A plugin may exit without reading its stdin: EPIPE is
                    // fine.
                    let _ = w.write_all(rest).await;
                }
                Ok::<(), io::Error>(())
            };
            // The first overflow (or pipe error) ends the reading at once.
            tokio::try_join!(
                write,
                read_capped(&mut stdout, &mut out, cap, "stdout"),
                read_capped(&mut stderr, &mut err, cap, "stderr")
            )
            .map(|_| ())
        });
        let deadline = Instant::now().checked_add(req.timeout);
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut io_done = false;
        let status = loop {
            tokio::select! {
                // An exit that is ready wins over a deadline that is too.
                biased;
                r = &mut io, if !io_done => {
                    io_done = true;
                    if let Err(e) = r {
                        // Killed and reaped before returning: nothing of the
                        // group outlives the call.
                        plugin.signal(Signal::KILL);
                        let _ = plugin.reap().await;
                        return Err(output_error(req.path, e));
                    }
                }
                st = plugin.exited() => {
                    break st.map_err(|e| Error::io("waiting for plugin", req.path, e))?;
                }
                () = &mut expired => {
                    terminate(&mut plugin, req.kill_grace).await;
                    // The group is gone; a process still holding the pipes
                    // left it (setsid, double fork) and was not killed.
                    let escaped = !io_done
                        && tokio::time::timeout(LEAK_WINDOW, &mut io).await.is_err();
                    if escaped {
                        tracing::warn!(
                            path = %req.path.display(),
                            "plugin timed out; a process it started outside its process group still holds its output open and was not killed"
                        );
                    }
                    return Err(Error::new(ErrorKind::Timeout {
                        after: req.timeout,
                        escaped,
                    }));
                }
            }
        };
        // The plugin has exited normally: whatever it left running (a daemon)
        // is its own business, so the group is no longer signalled, even if
        // the caller drops this future during the leak window; the plugin can
        // be reaped now.
        plugin.kill_on_drop = false;
        plugin.try_reap();
        if !io_done {
            match tokio::time::timeout(LEAK_WINDOW, &mut io).await {
                Err(_) => tracing::warn!(
                    path = %req.path.display(),
                    "plugin exited but a process it left behind holds its output open; not waiting for it"
                ),
                Ok(Err(e)) => return Err(output_error(req.path, e)),
                Ok(Ok(())) => {}
            }
        }
        drop(io);
        tracing::trace!(elapsed = ?started.elapsed(), %status, "plugin process finished");
        Ok(ExecOutput::new(status, out, err))
    }
}

/// On timeout: `SIGTERM` to the group; `SIGKILL` to the group once the
/// plugin has exited or `grace` has passed, whichever comes first; then reap
/// the plugin.
///
/// While the plugin is an unreaped zombie, `kill(-pgid, 0)` cannot tell
/// whether other members are left, so the group always gets `SIGKILL`:
/// harmless if only the zombie remains, and safe because that zombie keeps
/// the group id reserved.
async fn terminate(plugin: &mut GroupGuard, grace: Duration) {
    plugin.signal(Signal::TERM);
    match Instant::now().checked_add(grace) {
        Some(until) => {
            let _ = tokio::time::timeout_at(until, plugin.exited()).await;
        }
        None => {
            let _ = plugin.exited().await;
        }
    }
    plugin.signal(Signal::KILL);
    // The last signal is sent: only now may the plugin be reaped. Should
    // this fail (or the future be dropped meanwhile), `Drop` reaps it.
    let _ = plugin.reap().await;
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Environment;
    use super::*;

    static EMPTY: std::sync::LazyLock<Environment> = std::sync::LazyLock::new(Environment::new);
    use crate::error::Op;

    fn req<'a>(path: &'a str, env: &'a Environment, stdin: &'a [u8]) -> ExecRequest<'a> {
        ExecRequest::new(
            Path::new(path),
            Op::Add,
            env,
            stdin,
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
    }

    fn os(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    /// Whether the process of `pidfd` is still unreaped (running or zombie).
    fn unreaped(pidfd: BorrowedFd<'_>) -> bool {
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
        waitid(pidfd, opts).is_ok()
    }

    #[tokio::test]
    async fn unlimited_timeout_and_grace_do_not_overflow() {
        // Too large for an `Instant`, and representable but far beyond any
        // timer.
        for long in [Duration::MAX, Duration::from_secs(u64::MAX / 4)] {
            let mut r = req("/bin/true", &EMPTY, b"");
            r.timeout = long;
            r.kill_grace = long;
            let out = ProcessExec::new().exec(r).await.unwrap();
            assert!(out.status.success(), "{}", out.status);
        }
    }

    #[tokio::test]
    async fn unlimited_grace_ends_when_the_plugin_dies_of_sigterm() {
        for long in [Duration::MAX, Duration::from_secs(u64::MAX / 4)] {
            let mut r = req("/bin/sh", &EMPTY, b"exec /bin/sleep 1000\n");
            r.timeout = Duration::from_millis(50);
            r.kill_grace = long;
            let e = ProcessExec::new().exec(r).await.unwrap_err();
            assert!(e.is_timeout(), "{e}");
        }
    }

    #[tokio::test]
    async fn the_environment_is_exactly_the_requests() {
        let env = os(&[("B", "2"), ("A", "1"), ("B", "3")]);
        let out = ProcessExec::new()
            .exec(req("/usr/bin/env", &env, b""))
            .await
            .unwrap();
        assert!(out.status.success());
        let mut lines: Vec<_> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        lines.sort_unstable();
        // Nothing inherited (not even PATH), and the later duplicate wins.
        assert_eq!(lines, ["A=1", "B=3"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn our_pipe_ends_are_non_blocking_and_the_plugins_are_not() {
        let r = req("/bin/cat", &EMPTY, b"");
        let child = spawn(&r).await.unwrap();
        let guard = GroupGuard::new(child.pid).unwrap();
        let proc_fd = |fd: i32| format!("/proc/{}/fdinfo/{fd}", guard.pid.as_raw_nonzero());
        let child_flags: Vec<String> = (0..3)
            .map(|fd| std::fs::read_to_string(proc_fd(fd)).unwrap())
            .collect();
        let (stdin, stdout, stderr) = pipes(child, b"").unwrap();
        assert!(stdin.is_none());
        for fd in [stdout.as_fd(), stderr.as_fd()] {
            let flags = rustix::fs::fcntl_getfl(fd).unwrap();
            assert!(flags.contains(rustix::fs::OFlags::NONBLOCK));
        }
        // The plugin's own descriptors: `flags` in octal, O_NONBLOCK 04000.
        for info in child_flags {
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
                .unwrap();
            assert_eq!(flags & 0o4000, 0, "{info}");
        }
        drop(guard);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn big_interleaved_stdout_and_stderr_are_read_whole() {
        // Each write is more than a pipe holds, alternating streams: the
        // plugin blocks on one while we must go on reading the other.
        let script = b"h=/usr/bin/head\n$h -c 300000 /dev/zero >&2; $h -c 300000 /dev/zero; $h -c 300001 /dev/zero >&2; $h -c 300001 /dev/zero\n";
        let out = ProcessExec::new()
            .exec(req("/bin/sh", &EMPTY, script))
            .await
            .unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.len(), out.stderr.len()), (600_001, 600_001));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdin_beyond_the_pipe_buffer_is_written_by_the_runtime() {
        // Small: written at once; 1 MiB: the rest once the plugin reads.
        for len in [0, 300, 1 << 20] {
            let input = vec![b'x'; len];
            let out = ProcessExec::new()
                .exec(req("/usr/bin/wc", &EMPTY, &input))
                .await
                .unwrap();
            assert!(out.status.success());
            let n: usize = std::str::from_utf8(&out.stdout)
                .unwrap()
                .split_whitespace()
                .nth(2)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(n, len);
        }
        // A plugin that exits without reading a stdin that does not fit.
        let out = ProcessExec::new()
            .exec(req("/bin/true", &EMPTY, &vec![b'x'; 1 << 20]))
            .await
            .unwrap();
        assert!(out.status.success());
    }

    #[tokio::test]
    async fn exit_codes_and_signals_are_reported() {
        let env = os(&[("PATH", "/usr/bin:/bin")]);
        let run = |script: &'static [u8]| {
            let env = &env;
            async move {
                ProcessExec::new()
                    .exec(req("/bin/sh", env, script))
                    .await
                    .unwrap()
                    .status
            }
        };
        assert_eq!(run(b"exit 3\n").await, ExitStatus::Exited(3));
        assert_eq!(run(b"kill -9 $$\n").await, ExitStatus::Signaled(9));
    }

    /// The mechanism the group signals rely on: after the leader exits, it
    /// stays a zombie that keeps the group id in use until it is reaped.
    #[tokio::test]
    async fn the_exited_leader_keeps_its_group_until_reaped() {
        let r = req("/bin/true", &EMPTY, b"");
        let child = spawn(&r).await.unwrap();
        let mut guard = GroupGuard::new(child.pid).unwrap();
        drop(child);
        assert_eq!(guard.exited().await.unwrap(), ExitStatus::Exited(0));
        // Still reported, so not reaped; the group still exists.
        assert_eq!(guard.exited().await.unwrap(), ExitStatus::Exited(0));
        assert!(unreaped(guard.pidfd().get_ref().as_fd()));
        rustix::process::test_kill_process_group(guard.pid).unwrap();
        assert!(guard.try_reap());
        assert!(!unreaped(guard.pidfd().get_ref().as_fd()));
        assert_eq!(
            rustix::process::test_kill_process_group(guard.pid),
            Err(Errno::SRCH)
        );
        // A reaped leader's group is never signalled again.
        guard.signal(Signal::KILL);
        guard.kill_on_drop = true;
        drop(guard);
    }

    /// Spawns `cat`, which runs until killed (its stdin stays open), and
    /// returns the guard, the stdin to keep, and a second pidfd to watch it.
    async fn running_cat() -> (GroupGuard, OwnedFd, OwnedFd) {
        let r = req("/bin/cat", &EMPTY, b"");
        let child = spawn(&r).await.unwrap();
        let guard = GroupGuard::new(child.pid).unwrap();
        let stdin = child.stdin;
        let watch = rustix::process::pidfd_open(guard.pid, PidfdFlags::empty()).unwrap();
        (guard, stdin, watch)
    }

    /// Waits (without asserting on time) until the process of `pidfd` is
    /// reaped; returns whether it was.
    fn wait_reaped(pidfd: BorrowedFd<'_>) -> bool {
        for _ in 0..1000 {
            if !unreaped(pidfd) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn dropping_the_guard_kills_and_reaps_on_a_task() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (guard, _stdin, watch) = rt.block_on(running_cat());
        rt.block_on(async { drop(guard) });
        // The runtime keeps running the reaping task meanwhile.
        assert!(
            wait_reaped(watch.as_fd()),
            "the killed plugin was not reaped"
        );
    }

    #[test]
    fn dropping_the_guard_outside_a_runtime_reaps_on_a_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (guard, _stdin, watch) = rt.block_on(running_cat());
        drop(rt);
        drop(guard);
        assert!(
            wait_reaped(watch.as_fd()),
            "the killed plugin was not reaped"
        );
    }

    #[test]
    fn a_reaping_task_cancelled_by_shutdown_falls_back_to_a_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (guard, _stdin, watch) = rt.block_on(running_cat());
        // The task is spawned but never polled: the shutdown drops it.
        rt.block_on(async { drop(guard) });
        drop(rt);
        assert!(
            wait_reaped(watch.as_fd()),
            "the killed plugin was not reaped"
        );
    }
}
