//! Plugins as child processes, each in its own process group.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

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
/// Each plugin runs in a new process group with the runtime's environment
/// less any `CNI_*` variable, plus the invocation's CNI variables. Its stdin
/// is written while stdout and stderr are read, so no pipe can fill up.
///
/// - **Timeout**: the group gets `SIGTERM`; members still running after the
///   grace period get `SIGKILL`; the plugin is reaped before the call returns.
/// - **Cancellation**: dropping the future sends `SIGKILL` to the group at
///   once, so neither the plugin nor anything it forked (in its group) keeps
///   running.
/// - **Leftover processes**: once the plugin has exited, its pipes are read
///   for at most 100 ms more; a daemon it started that keeps them open does
///   not block the call (libcni waits for it forever).
/// - **"text file busy"**: the spawn is retried with backoff (about 6 s in
///   all), like libcni's retry loop but with a fresh process each time.
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

/// Kills the process group when dropped, unless disarmed.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid signals a process group; no
            // memory is involved.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Whether any process of group `pgid` is still running (not a zombie).
fn group_running(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may contain spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let _ppid = fields.next();
        let pgrp: i32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if pgrp == pgid && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

async fn spawn(req: &ExecRequest<'_>) -> std::io::Result<Child> {
    let mut delay = ETXTBSY_FIRST_DELAY;
    let mut attempt = 0;
    loop {
        let mut cmd = std::process::Command::new(req.path);
        cmd.env_clear()
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        match tokio::process::Command::from(cmd).spawn() {
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

fn exit_status(st: std::process::ExitStatus) -> ExitStatus {
    match (st.code(), st.signal()) {
        (Some(c), _) => ExitStatus::Exited(c),
        (None, Some(s)) => ExitStatus::Signaled(s),
        (None, None) => ExitStatus::Exited(-1),
    }
}

impl PluginExec for ProcessExec {
    async fn exec(&self, req: ExecRequest<'_>) -> Result<ExecOutput, Error> {
        let started = Instant::now();
        let spawn_err = |e: std::io::Error| {
            Error::with_source(
                ErrorKind::Spawn {
                    path: req.path.to_owned(),
                },
                e,
            )
        };
        let mut child = spawn(&req).await.map_err(spawn_err)?;
        let mut guard = GroupGuard {
            pgid: child.id().map(|p| p as i32),
        };
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let mut out = Vec::new();
        let mut err = Vec::new();
        let input = req.stdin;
        let mut io = Box::pin(async {
            let write = async {
                if let Some(mut w) = stdin.take() {
                    // A plugin may exit without reading its stdin: EPIPE is fine.
                    let _ = w.write_all(input).await;
                    drop(w);
                }
            };
            let (_, o, e) = tokio::join!(
                write,
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err)
            );
            o.and(e)
        });
        let deadline = tokio::time::Instant::now() + req.timeout;
        let mut io_done = false;
        let status = loop {
            tokio::select! {
                // An exit that is ready wins over a deadline that is too.
                biased;
                r = &mut io, if !io_done => {
                    io_done = true;
                    r.map_err(|e| Error::io("reading plugin output", req.path, e))?;
                }
                st = child.wait() => {
                    let st = st.map_err(|e| Error::io("waiting for plugin", req.path, e))?;
                    break exit_status(st);
                }
                () = tokio::time::sleep_until(deadline) => {
                    terminate(&guard, &mut child, req.kill_grace).await;
                    guard.pgid = None;
                    return Err(Error::new(ErrorKind::Timeout { after: req.timeout }));
                }
            }
        };
        // The plugin has exited normally: whatever it left running (a daemon)
        // is its own business, so the group is no longer killed, even if the
        // caller drops this future during the leak window.
        guard.pgid = None;
        if !io_done && tokio::time::timeout(LEAK_WINDOW, &mut io).await.is_err() {
            tracing::warn!(
                path = %req.path.display(),
                "plugin exited but a process it left behind holds its output open; not waiting for it"
            );
        }
        drop(io);
        tracing::trace!(elapsed = ?started.elapsed(), %status, "plugin process finished");
        Ok(ExecOutput::new(status, out, err))
    }
}

/// SIGTERM to the group, SIGKILL to whatever still runs after `grace`, and
/// reap the plugin.
async fn terminate(guard: &GroupGuard, child: &mut Child, grace: Duration) {
    guard.signal(libc::SIGTERM);
    let pgid = guard.pgid.unwrap_or(0);
    let until = Instant::now() + grace;
    let mut reaped = false;
    loop {
        if !reaped {
            reaped = matches!(child.try_wait(), Ok(Some(_)));
        }
        if reaped && !group_running(pgid) {
            break;
        }
        if Instant::now() >= until {
            guard.signal(libc::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.wait().await;
}
