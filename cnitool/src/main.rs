//! `cnitool`: try a CNI network by hand, and see what a runtime sees.
//!
//! A drop-in for the reference `cnitool`: `add`, `check`, `del`, `gc` and
//! `status` take the same arguments and environment variables
//! (`NETCONFPATH`, `CNI_PATH`, `CNI_IFNAME`, `CNI_ARGS`, `CAP_ARGS`, plus
//! `CNI_CONTAINERID` and `CNI_CACHE_DIR`), print the same output and exit
//! with the same codes. Beyond the reference: flags for each of those
//! variables (see [`opts`]), `list`, `plan`, `validate`, `version`,
//! `watch`, `demo`, `--json` on every command (see [`schema`]), errors
//! that say what to do (see [`explain`]), shell completions and a man
//! page. Ctrl-C or SIGTERM stops the running plugin's whole process group
//! before cnitool exits. Config files skipped on the way, and the
//! library's warnings, are printed on stderr, also when the command
//! succeeds.

mod demo;
mod explain;
mod list;
mod observe;
mod ops;
mod opts;
mod planview;
mod schema;
mod validate;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use libcni::{AttachmentId, Op};

use crate::explain::Explained;
use crate::opts::Globals;

const ENV_HELP: &str = "\
Environment (each flag wins over its variable):
  NETCONFPATH      config directory (--conf-dir), default /etc/cni/net.d
  CNI_PATH         plugin directories, `:`-separated (--plugin-dir)
  CNI_CACHE_DIR    result cache directory (--cache-dir), default /var/lib/cni
  CNI_IFNAME       interface name (--ifname), default eth0
  CNI_ARGS         plugin arguments K=V;K2=V2 (--args)
  CAP_ARGS         capability arguments, a JSON object (--cap-args)
  CNI_CONTAINERID  container id (--container-id), default derived from the netns path
  CNITOOL_TIMEOUT  longest plugin run (--timeout)
  RUST_LOG         the log filter (default: warnings; -v adds plugin timings)

Exit status: 0 on success, 1 on any error (usage errors included), 130 or
143 when interrupted by SIGINT or SIGTERM.";

/// Add, check or remove network interfaces from a network namespace; and
/// see the networks, plans and plugins a runtime would use.
#[derive(Parser, Debug)]
#[command(name = "cnitool", version, after_help = ENV_HELP)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    /// Print what would run (binaries, environment, stdin) and run
    /// nothing; the same as `cnitool plan OP ...`.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(flatten)]
    observe: observe::ObserveArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the namespace to the network and print the result.
    Add(Target),
    /// Check the attachment against its cached result.
    Check(Target),
    /// Detach the namespace from the network.
    Del(Target),
    /// Garbage-collect the network: delete every cached attachment that is
    /// not valid, then run the plugins' GC (spec 1.1.0 and later). Without
    /// --valid or --valid-file no attachment is valid, as in the reference.
    Gc {
        #[command(flatten)]
        target: Target,
        /// An attachment to keep, as CONTAINERID/IFNAME (repeatable).
        #[arg(long = "valid", value_name = "CONTAINERID/IFNAME", value_parser = parse_attachment)]
        valid: Vec<AttachmentId>,
        /// A JSON file with the attachments to keep:
        /// [{"containerID": "...", "ifname": "..."}, ...].
        #[arg(long, value_name = "FILE")]
        valid_file: Option<PathBuf>,
    },
    /// Ask the network's plugins whether they are ready (spec 1.1.0 and
    /// later; earlier versions are always ready).
    Status(Target),
    /// List every network of the config directory in load order, the
    /// default marked, with each plugin chain, its cniVersion, where each
    /// plugin binary is, and every skipped file with the reason. Runs no
    /// plugin.
    List,
    /// Show what an operation would run: each plugin's binary, CNI
    /// variables, exact stdin, and where its prevResult comes from. Runs
    /// nothing.
    Plan {
        /// The operation.
        op: PlanOp,
        /// The network name.
        net: String,
        /// The network namespace path (not needed for gc and status).
        netns: Option<String>,
    },
    /// Check that every plugin (and IPAM plugin) of the network, or of
    /// every network, is found and supports its cniVersion (VERSION).
    Validate {
        /// The network name; all networks when omitted.
        net: Option<String>,
    },
    /// Ask a plugin which spec versions it supports (VERSION).
    Version {
        /// The plugin type, e.g. bridge.
        plugin: String,
    },
    /// Print the networks of the config directory as a runtime sees them,
    /// then a new report each time they change, until SIGINT/SIGTERM or
    /// stdout is closed (exit 0). Runs no plugin.
    Watch(watch::WatchArgs),
    /// Attach a throwaway container to the classic `mynet` network (bridge
    /// and host-local) with the real plugins, in network namespaces and a
    /// work directory of its own, show the result and the container's
    /// addresses, check, detach, and clean everything up. Needs root.
    Demo(demo::DemoArgs),
    /// Print a shell completion script, e.g.
    /// `cnitool completions bash > /etc/bash_completion.d/cnitool`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `cnitool man | man -l -`.
    Man,
}

/// The operations `cnitool plan` knows.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum PlanOp {
    Add,
    Check,
    Del,
    Gc,
    Status,
}

impl From<PlanOp> for Op {
    fn from(p: PlanOp) -> Op {
        match p {
            PlanOp::Add => Op::Add,
            PlanOp::Check => Op::Check,
            PlanOp::Del => Op::Del,
            PlanOp::Gc => Op::Gc,
            PlanOp::Status => Op::Status,
        }
    }
}

#[derive(clap::Args, Debug)]
struct Target {
    /// The network name.
    net: String,
    /// The network namespace path, e.g. /var/run/netns/foo.
    netns: String,
}

fn parse_attachment(s: &str) -> Result<AttachmentId, String> {
    match s.rsplit_once('/') {
        Some((cid, ifname)) if !cid.is_empty() && !ifname.is_empty() => {
            Ok(AttachmentId::new(cid, ifname))
        }
        _ => Err(format!("expected <container id>/<ifname>, got {s:?}")),
    }
}

/// Writes to stdout; a closed stdout (EPIPE) is not an error.
fn emit(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::from(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// Emits text or JSON.
fn show(g: &Globals, human: impl FnOnce() -> String, json: impl FnOnce() -> String) -> Result<()> {
    emit(if g.json { json() } else { human() }.as_bytes())
}

/// An operation with a target: look up, then plan or run.
async fn operate(
    cli: &Cli,
    op: Op,
    net: &str,
    netns: Option<&str>,
    plan: bool,
) -> Result<ExitCode> {
    let g = &cli.globals;
    let found = ops::find(g, net)?;
    let rt = g.runtime_config(netns.unwrap_or(""))?;
    let cni = g.cni();
    if plan {
        let p = cni.plan(op, &found.list, &rt)?;
        show(
            g,
            || planview::human(&p, &rt),
            || planview::json(&p, &rt, &found.skipped),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let valid = match &cli.command {
        Command::Gc {
            valid, valid_file, ..
        } => ops::valid_set(valid, valid_file.as_deref())?,
        _ => None,
    };
    let job = ops::Job {
        cni,
        found,
        rt,
        op,
        valid,
    };
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let (name, code) = tokio::select! {
        res = ops::execute(&job, g.json) => {
            emit(&res?)?;
            return Ok(ExitCode::SUCCESS);
        }
        _ = sigint.recv() => ("SIGINT", 130),
        _ = sigterm.recv() => ("SIGTERM", 143),
    };
    // Leaving the select dropped the operation, which killed the running
    // plugin's process group.
    eprintln!(
        "{name} received: {} of network {:?} cancelled, running plugin killed",
        job.op,
        job.found.list.name()
    );
    Ok(ExitCode::from(code))
}

async fn run(cli: &Cli) -> Result<ExitCode> {
    let g = &cli.globals;
    let dry = cli.dry_run;
    match &cli.command {
        Command::Add(t) => operate(cli, Op::Add, &t.net, Some(&t.netns), dry).await,
        Command::Check(t) => operate(cli, Op::Check, &t.net, Some(&t.netns), dry).await,
        Command::Del(t) => operate(cli, Op::Del, &t.net, Some(&t.netns), dry).await,
        Command::Gc { target: t, .. } => operate(cli, Op::Gc, &t.net, Some(&t.netns), dry).await,
        Command::Status(t) => operate(cli, Op::Status, &t.net, Some(&t.netns), dry).await,
        Command::Plan { op, net, netns } => {
            let op = Op::from(*op);
            if netns.is_none() && matches!(op, Op::Add | Op::Check | Op::Del) {
                return Err(explain::Usage(format!(
                    "the network namespace path is missing: cnitool plan {} {net} NETNS",
                    op.as_str().to_lowercase()
                ))
                .into());
            }
            operate(cli, op, net, netns.as_deref(), true).await
        }
        Command::List => {
            let l = list::Listing::new(g)?;
            show(g, || l.human(), || l.json())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { net } => {
            let v = validate::Validation::run(g, net.as_deref()).await?;
            show(g, || v.human(), || v.json())?;
            Ok(if v.valid() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Version { plugin } => {
            let v = validate::PluginVersion::run(g, plugin).await?;
            show(g, || v.human(), || v.json())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch(args) => watch::run(args, g).await,
        Command::Demo(_) | Command::Completions { .. } | Command::Man => {
            unreachable!("run without the runtime")
        }
    }
}

/// Prints an error: text with hints on stderr, or a JSON object (kind
/// `error`) on stdout under `--json`.
fn report_error(e: &anyhow::Error, cli: &Cli) -> ExitCode {
    let x = Explained::new(e, &cli.globals);
    if cli.globals.json {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a Explained,
        }
        let _ = emit(schema::json_line("error", &Body { error: &x }).as_bytes());
    } else {
        eprint!("{}", x.human());
    }
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Flushes the trace file (`--trace-json`) when main returns.
    let _observe = match observe::init(&cli.observe) {
        Ok(guard) => guard,
        Err(e) => return report_error(&e, &cli),
    };
    let result = match &cli.command {
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "cnitool", &mut buf);
            emit(&buf).map(|()| ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .context("rendering the man page")
                .and_then(|()| emit(&buf))
                .map(|()| ExitCode::SUCCESS)
        }
        // The demo runs the plugins on a runtime of its own, in a thread
        // inside its private host namespace.
        Command::Demo(args) => demo::run(&cli.globals, args),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(run(&cli))),
    };
    match result {
        Ok(code) => code,
        Err(e) => report_error(&e, &cli),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
