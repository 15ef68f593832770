//! `cnitool watch`: the networks a runtime sees, reported again on every
//! change.
//!
//! It runs libcni's [`ConfigWatcher`] on the configuration directory
//! (`NETCONFPATH`) and the plugin directories (`CNI_PATH`), prints the
//! current snapshot, then one more report each time a new snapshot is
//! published, until SIGINT or SIGTERM (exit 0) or until stdout is closed
//! (exit 0). `--once` prints the current report and exits.
//!
//! # Human output
//!
//! ```text
//! generation 3 in /etc/cni/net.d: 2 networks, 1 skipped
//! * calico 1.0.0 calico -> portmap -> bandwidth (/etc/cni/net.d/10-calico.conflist): ready
//!   other 0.4.0 bridge (/etc/cni/net.d/20-other.conf): not ready: plugin `bridge` not found in [..]
//! skipped /etc/cni/net.d/00-broken.conflist: invalid JSON at line 3, column 3 (serving last good version of old)
//! ```
//!
//! Networks come in load order; `* ` marks the default network (the first
//! ready one), two spaces the others. A network served from the last good
//! version of a file that no longer loads ends with `(last good version)`.
//! Reports after the first are preceded by an empty line.
//!
//! # JSON output (`--json`)
//!
//! One object per report, on one line (JSON Lines), in the envelope shared
//! by cnitool's JSON output (see [`crate::schema`]):
//!
//! ```text
//! {"schema": "cnitool/v1",
//!  "kind": "networks",
//!  "generation": 3,                  // the snapshot's number, 1 for the first scan
//!  "confDir": "/etc/cni/net.d",
//!  "defaultNetwork": "calico",       // or null when no network is ready
//!  "networks": [                     // in load order
//!    {"name": "calico",
//!     "cniVersion": "1.0.0",
//!     "source": "/etc/cni/net.d/10-calico.conflist",   // or null
//!     "default": true,
//!     "ready": true,
//!     "reasons": [],                 // why not ready, one per plugin type
//!     "plugins": [{"type": "calico"}, {"type": "portmap", "name": "pm"}]}],
//!                                    // "name" only when the entry sets one
//!  "skipped": [                      // files (or directories) that could not be used
//!    {"file": "/etc/cni/net.d/00-broken.conflist",
//!     "reason": "invalid JSON at line 3, column 3",
//!     "servingLastGood": true,
//!     "network": "old"}]}            // only when servingLastGood
//! ```

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};

use anyhow::{Context, Result, anyhow};
use libcni::{ConfigProblemReport, ConfigSnapshot, ConfigWatcher, NetworkReadiness};
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc as ampsc;

use crate::explain::with_causes;
use crate::opts::Globals;
use crate::schema::json_line;

/// The options of `cnitool watch`.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Print the current report and exit.
    #[arg(long)]
    pub once: bool,
}

/// One report: a snapshot as `cnitool watch` shows it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    generation: u64,
    conf_dir: String,
    default_network: Option<String>,
    networks: Vec<Network>,
    skipped: Vec<Skipped>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Network {
    name: String,
    cni_version: String,
    source: Option<String>,
    default: bool,
    ready: bool,
    reasons: Vec<String>,
    plugins: Vec<Plugin>,
    #[serde(skip)]
    last_good: bool,
}

#[derive(Serialize, Debug)]
struct Plugin {
    #[serde(rename = "type")]
    plugin_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Skipped {
    file: String,
    reason: String,
    serving_last_good: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<String>,
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Why a file was skipped, without repeating the file's own path.
fn problem_reason(p: &ConfigProblemReport) -> String {
    let e = p.error();
    let msg = if e.path() == Some(p.path()) {
        e.kind().to_string()
    } else {
        // Names another file (a drop-in plugin config, say).
        e.to_string()
    };
    with_causes(msg, e)
}

fn readiness_reasons(r: &NetworkReadiness) -> Vec<String> {
    r.reasons()
        .iter()
        .map(|e| with_causes(e.kind().to_string(), e))
        .collect()
}

impl Report {
    pub fn new(snap: &ConfigSnapshot) -> Report {
        let default = snap.default_network();
        let networks = snap
            .networks()
            .iter()
            .zip(snap.readiness())
            .map(|(net, r)| Network {
                name: net.name().to_owned(),
                cni_version: net.cni_version().to_owned(),
                source: net.source().map(path_string),
                default: default.is_some_and(|d| std::ptr::eq(d, net)),
                ready: r.is_ready(),
                reasons: readiness_reasons(r),
                plugins: net
                    .plugins()
                    .iter()
                    .map(|p| Plugin {
                        plugin_type: p.plugin_type().to_owned(),
                        name: Some(p.name()).filter(|n| !n.is_empty()).map(str::to_owned),
                    })
                    .collect(),
                last_good: r.serving_last_good(),
            })
            .collect();
        let skipped = snap
            .problems()
            .iter()
            .map(|p| Skipped {
                file: path_string(p.path()),
                reason: problem_reason(p),
                serving_last_good: p.serving_last_good(),
                network: p.last_good_network().map(str::to_owned),
            })
            .collect();
        Report {
            generation: snap.generation(),
            conf_dir: path_string(snap.conf_dir()),
            default_network: default.map(|d| d.name().to_owned()),
            networks,
            skipped,
        }
    }

    /// One JSON line, with its newline.
    pub fn json(&self) -> String {
        json_line("networks", self)
    }

    /// The human-readable report, one line each, newline-terminated.
    pub fn human(&self) -> String {
        fn count(n: usize, what: &str) -> String {
            format!("{n} {what}{}", if n == 1 { "" } else { "s" })
        }
        let mut out = format!(
            "generation {} in {}: {}, {} skipped\n",
            self.generation,
            self.conf_dir,
            count(self.networks.len(), "network"),
            self.skipped.len()
        );
        for n in &self.networks {
            let chain: Vec<&str> = n.plugins.iter().map(|p| p.plugin_type.as_str()).collect();
            out.push_str(if n.default { "* " } else { "  " });
            out.push_str(&format!(
                "{} {} {}",
                n.name,
                n.cni_version,
                chain.join(" -> ")
            ));
            if let Some(s) = &n.source {
                out.push_str(&format!(" ({s})"));
            }
            if n.ready {
                out.push_str(": ready");
            } else {
                out.push_str(&format!(": not ready: {}", n.reasons.join("; ")));
            }
            if n.last_good {
                out.push_str(" (last good version)");
            }
            out.push('\n');
        }
        for s in &self.skipped {
            out.push_str(&format!("skipped {}: {}", s.file, s.reason));
            if let Some(net) = &s.network {
                out.push_str(&format!(" (serving last good version of {net})"));
            }
            out.push('\n');
        }
        out
    }
}

/// Why the output side stopped.
enum Ended {
    /// The reader went away (EPIPE, or the pipe's read end was closed).
    Closed,
    /// Writing failed otherwise.
    Failed(std::io::Error),
}

/// The thread that writes reports to stdout: a reader that does not read
/// must not keep cnitool from handling a signal.
fn spawn_writer(ended: ampsc::UnboundedSender<Ended>) -> Result<mpsc::Sender<String>> {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("cnitool-stdout".to_owned())
        .spawn(move || {
            let mut stdout = std::io::stdout();
            for report in rx {
                let res = stdout
                    .write_all(report.as_bytes())
                    .and_then(|()| stdout.flush());
                if let Err(e) = res {
                    let _ = ended.send(if e.kind() == std::io::ErrorKind::BrokenPipe {
                        Ended::Closed
                    } else {
                        Ended::Failed(e)
                    });
                    return;
                }
            }
        })
        .context("starting the output thread")?;
    Ok(tx)
}

/// A thread that notices when stdout's reader goes away between reports:
/// `poll` reports POLLERR on a pipe without readers and POLLHUP on a hung
/// up terminal or socket, whatever events are asked for. (A regular file
/// never reports either; the thread then waits until cnitool exits.)
fn spawn_hangup_watch(ended: ampsc::UnboundedSender<Ended>) {
    let _ = std::thread::Builder::new()
        .name("cnitool-hangup".to_owned())
        .spawn(move || {
            loop {
                let mut fds = [libc::pollfd {
                    fd: libc::STDOUT_FILENO,
                    events: 0,
                    revents: 0,
                }];
                // SAFETY: one valid pollfd, its count, no timeout.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, -1) };
                if n < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                if fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    let _ = ended.send(Ended::Closed);
                }
                // Also POLLNVAL (stdout is not open): nothing to watch.
                return;
            }
        });
}

/// Runs `cnitool watch`.
pub async fn run(args: &WatchArgs, g: &Globals) -> Result<ExitCode> {
    let conf_dir = g.conf_dir().display().to_string();
    let plugin_dirs = g.plugin_dirs();
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let start = ConfigWatcher::builder(&conf_dir)
        .plugin_dirs(plugin_dirs)
        .start_async();
    let watcher = tokio::select! {
        w = start => w.with_context(|| format!("watching {conf_dir}"))?,
        _ = sigint.recv() => return Ok(ExitCode::SUCCESS),
        _ = sigterm.recv() => return Ok(ExitCode::SUCCESS),
    };
    let mut updates = watcher.subscribe();
    let mut snap: Arc<ConfigSnapshot> = updates.snapshot();
    let render = |snap: &ConfigSnapshot| {
        let report = Report::new(snap);
        if g.json {
            report.json()
        } else {
            report.human()
        }
    };

    if args.once {
        let mut stdout = std::io::stdout().lock();
        return match stdout
            .write_all(render(&snap).as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(anyhow!(e).context("writing the report")),
        };
    }

    let (ended_tx, mut ended) = ampsc::unbounded_channel();
    let out = spawn_writer(ended_tx.clone())?;
    spawn_hangup_watch(ended_tx);
    let mut printed = 0;
    loop {
        // A snapshot seen twice (published between subscribing and reading
        // the current one) is printed once.
        if snap.generation() > printed {
            let mut text = render(&snap);
            if printed > 0 && !g.json {
                text.insert(0, '\n');
            }
            printed = snap.generation();
            if out.send(text).is_err() {
                // The writer has ended; `ended` says why.
                break;
            }
        }
        tokio::select! {
            next = updates.changed() => match next {
                Some(s) => snap = s,
                None => return Err(anyhow!("the config watcher of {conf_dir} stopped")),
            },
            _ = sigint.recv() => return Ok(ExitCode::SUCCESS),
            _ = sigterm.recv() => return Ok(ExitCode::SUCCESS),
            why = ended.recv() => return finish(why),
        }
    }
    finish(ended.recv().await)
}

fn finish(why: Option<Ended>) -> Result<ExitCode> {
    match why {
        Some(Ended::Failed(e)) => Err(anyhow!(e).context("writing the report")),
        Some(Ended::Closed) | None => Ok(ExitCode::SUCCESS),
    }
}
