//! `cnitool`: add, check, delete, garbage-collect or ask the status of a
//! container's network attachment by hand.
//!
//! A drop-in for the reference `cnitool`: same commands and environment
//! variables (`NETCONFPATH`, `CNI_PATH`, `CNI_IFNAME`, `CNI_ARGS`,
//! `CAP_ARGS`), plus `CNI_CONTAINERID`, `CNI_CACHE_DIR`, `--timeout`,
//! `--dry-run` and, for `gc`, `--valid`/`--valid-file`. Ctrl-C or SIGTERM
//! stops the running plugin's whole process group before cnitool exits.
//! Config files skipped while looking for the network, and the library's
//! warnings, are printed on stderr, also when the command succeeds.
//!
//! `cnitool watch` prints the networks of the configuration directory and
//! a new report each time they change (see [`watch`]).

mod observe;
mod schema;
mod watch;

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use libcni::{AttachmentId, Cni, ConfigLoader, ErrorKind, NetworkConfigList, Op, RuntimeConfig};
use sha2::{Digest, Sha512};

const DEFAULT_NET_DIR: &str = "/etc/cni/net.d";

/// Add, check or remove network interfaces from a network namespace.
///
/// Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH (plugin
/// directories, `:`-separated), CNI_IFNAME (default eth0), CNI_ARGS
/// (`K=V;K2=V2`), CAP_ARGS (JSON object of capability arguments),
/// CNI_CONTAINERID (default: derived from the netns path, as the reference
/// cnitool does), CNI_CACHE_DIR (default /var/lib/cni).
#[derive(Parser, Debug)]
#[command(name = "cnitool", version)]
struct Cli {
    /// Longest time one plugin may run, e.g. `30s`, `500ms`, `2m`, `1h 30m`
    /// (plain numbers are seconds). Its process group is then killed.
    #[arg(long, global = true, env = "CNITOOL_TIMEOUT", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Print what would run (binaries, environment, stdin) and run nothing.
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
    /// Check the attachment.
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
    /// Print the networks of NETCONFPATH as a runtime sees them (load
    /// order, the default network, plugin chains, readiness against
    /// CNI_PATH, skipped files and why), then a new report each time they
    /// change, until SIGINT/SIGTERM or stdout is closed (exit 0). Runs no
    /// plugin.
    Watch(watch::WatchArgs),
}

impl Command {
    /// The operation and its target; `None` for `watch`.
    fn target(&self) -> Option<(Op, &Target)> {
        Some(match self {
            Command::Add(t) => (Op::Add, t),
            Command::Check(t) => (Op::Check, t),
            Command::Del(t) => (Op::Del, t),
            Command::Gc { target, .. } => (Op::Gc, target),
            Command::Status(t) => (Op::Status, t),
            Command::Watch(_) => return None,
        })
    }
}

fn parse_attachment(s: &str) -> Result<AttachmentId, String> {
    match s.rsplit_once('/') {
        Some((cid, ifname)) if !cid.is_empty() && !ifname.is_empty() => {
            Ok(AttachmentId::new(cid, ifname))
        }
        _ => Err(format!("expected <container id>/<ifname>, got {s:?}")),
    }
}

/// The attachments in a `--valid-file`.
fn read_valid_file(path: &Path) -> Result<Vec<AttachmentId>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("reading --valid-file {}", path.display()))?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "--valid-file {}: expected a JSON array of {{\"containerID\": .., \"ifname\": ..}}",
            path.display()
        )
    })?;
    Ok(entries
        .into_iter()
        .map(|e| AttachmentId::new(e.container_id, e.ifname))
        .collect())
}

#[derive(clap::Args, Debug)]
struct Target {
    /// The network name.
    net: String,
    /// The network namespace path, e.g. /var/run/netns/foo.
    netns: String,
}

/// A `--timeout`: a plain number of seconds (`30`, `0.5`) or a `humantime`
/// duration (`30s`, `500ms`, `2m`, `1h 30m`). Zero is refused, and so is a
/// value beyond `Duration`'s range, with an error rather than a panic (up to
/// 18446744073709551615 s is accepted; the library takes a timeout it cannot
/// add to the clock as no limit).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1;
    let d = if plain {
        match s.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                let secs: f64 = s.parse().map_err(|_| format!("invalid duration {s:?}"))?;
                Duration::try_from_secs_f64(secs)
                    .map_err(|_| format!("duration {s:?} is too large (at most {} s)", u64::MAX))?
            }
        }
    } else {
        humantime::parse_duration(s).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => {
                format!("duration {s:?} is too large (at most {} s)", u64::MAX)
            }
            e => format!("invalid duration {s:?}: {e} (e.g. 30s, 500ms, 2m, or seconds)"),
        })?
    };
    if d.is_zero() {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(d)
}

/// The reference cnitool's `CNI_ARGS` parsing: `;`-separated pairs of
/// exactly two non-empty `=`-separated parts.
fn parse_cni_args(args: &str) -> Result<Vec<(String, String)>> {
    args.split(';')
        .map(|pair| {
            let kv: Vec<&str> = pair.split('=').collect();
            match kv.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok(((*k).to_owned(), (*v).to_owned())),
                _ => Err(anyhow!("invalid CNI_ARGS pair {pair:?}")),
            }
        })
        .collect()
}

/// Go's `filepath.Abs`: join with the working directory, then clean
/// lexically (`.` and `..` removed, no symlinks resolved).
fn absolute(p: &str) -> Result<PathBuf> {
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()
            .context("cannot determine the working directory")?
            .join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// `cnitool-` + hex of the first 10 bytes of SHA-512 of the netns path.
fn container_id(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

struct Job {
    cni: Cni,
    list: NetworkConfigList,
    rt: RuntimeConfig,
    op: Op,
    valid: Option<Vec<AttachmentId>>,
}

/// Prints one line per config file skipped: the file and why (with line
/// and column where there is one).
fn print_skipped(skipped: &[libcni::Error]) {
    for e in skipped {
        eprintln!("cnitool: skipped config file {e}");
    }
}

/// `CNI_PATH`'s directories; empty elements are ignored.
fn plugin_dirs() -> Vec<PathBuf> {
    std::env::var("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// `NETCONFPATH`, or the default when unset or empty.
fn net_dir() -> String {
    env_nonempty("NETCONFPATH").unwrap_or_else(|| DEFAULT_NET_DIR.to_owned())
}

fn prepare(cli: &Cli, op: Op, target: &Target) -> Result<Job> {
    let valid = match &cli.command {
        Command::Gc {
            valid, valid_file, ..
        } => {
            let mut set = valid.clone();
            if let Some(f) = valid_file {
                set.extend(read_valid_file(f)?);
            }
            (!set.is_empty() || valid_file.is_some()).then_some(set)
        }
        _ => None,
    };
    let list = match ConfigLoader::new(net_dir()).find_network(&target.net) {
        Ok(found) => {
            let (list, skipped) = found.into_parts();
            print_skipped(&skipped);
            list
        }
        Err(e) => {
            if let ErrorKind::NetworkNotFound { skipped, .. }
            | ErrorKind::NoValidConfig { skipped, .. } = e.kind()
            {
                print_skipped(skipped);
            }
            return Err(e.into());
        }
    };

    let mut rt_caps = serde_json::Map::new();
    if let Some(caps) = env_nonempty("CAP_ARGS") {
        rt_caps = serde_json::from_str(&caps).context("CAP_ARGS must be a JSON object")?;
    }
    let args = match env_nonempty("CNI_ARGS") {
        Some(a) => parse_cni_args(&a)?,
        None => Vec::new(),
    };
    let ifname = std::env::var("CNI_IFNAME").unwrap_or_else(|_| "eth0".to_owned());
    let netns = absolute(&target.netns)?;
    let netns = netns
        .to_str()
        .ok_or_else(|| anyhow!("netns path {} is not UTF-8", netns.display()))?
        .to_owned();
    let cid = env_nonempty("CNI_CONTAINERID").unwrap_or_else(|| container_id(&netns));
    let mut cni = Cni::new(plugin_dirs());
    if let Some(dir) = env_nonempty("CNI_CACHE_DIR") {
        cni = cni.with_cache_dir(dir);
    }
    if let Some(t) = cli.timeout {
        cni = cni.with_timeout(t);
    }
    let rt = RuntimeConfig::new(cid, netns, ifname)
        .with_args(args)
        .with_capability_args(rt_caps);
    Ok(Job {
        cni,
        list,
        rt,
        op,
        valid,
    })
}

async fn execute(job: &Job) -> Result<Option<Vec<u8>>> {
    Ok(match job.op {
        Op::Add => Some(
            job.cni
                .add_network_list(&job.list, &job.rt)
                .await?
                .to_json_pretty(),
        ),
        Op::Check => {
            job.cni.check_network_list(&job.list, &job.rt).await?;
            None
        }
        Op::Gc => {
            let report = job
                .cni
                .gc_network_list(&job.list, job.valid.as_deref())
                .await?;
            for id in &report.deleted {
                eprintln!("cnitool: deleted stale attachment {id}");
            }
            for e in &report.skipped {
                eprintln!("cnitool: skipped cache file {e}");
            }
            None
        }
        Op::Status => {
            job.cni.status_network_list(&job.list).await?;
            None
        }
        _ => {
            job.cni.del_network_list(&job.list, &job.rt).await?;
            None
        }
    })
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Watch(args) = &cli.command {
        return watch::run(args, net_dir(), plugin_dirs()).await;
    }
    let (op, target) = cli
        .command
        .target()
        .expect("every other command has a target");
    let job = prepare(&cli, op, target)?;
    if cli.dry_run {
        print!("{}", job.cni.plan(job.op, &job.list, &job.rt)?);
        return Ok(ExitCode::SUCCESS);
    }
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let (name, code) = tokio::select! {
        res = execute(&job) => {
            if let Some(out) = res? {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                // As the reference: indented by four spaces, no trailing newline.
                stdout.write_all(&out).context("writing the result")?;
                stdout.flush().context("writing the result")?;
            }
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
        job.list.name()
    );
    Ok(ExitCode::from(code))
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
    let _observe = match observe::init(&cli.observe) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_the_reference() {
        assert_eq!(
            container_id("/var/run/netns/foo"),
            "cnitool-0e6b52a07b770f1e750c"
        );
    }

    #[test]
    fn cni_args_need_two_non_empty_parts() {
        assert_eq!(
            parse_cni_args("A=1;B=2").unwrap(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ]
        );
        for bad in ["A=1;", "A=b=c", "=1", "A=", "A"] {
            let e = parse_cni_args(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid CNI_ARGS pair"), "{bad}: {e}");
        }
    }

    #[test]
    fn absolute_cleans_like_go() {
        assert_eq!(
            absolute("/var/run/../run/netns/./x/").unwrap(),
            PathBuf::from("/var/run/netns/x")
        );
        assert_eq!(absolute("/..").unwrap(), PathBuf::from("/"));
    }

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        // Plain numbers are seconds.
        assert_eq!(ok("30"), Duration::from_secs(30));
        assert_eq!(ok(" 30 "), Duration::from_secs(30));
        assert_eq!(ok("0.2"), Duration::from_millis(200));
        // Anything else goes through humantime.
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h 30m"), Duration::from_secs(5400));
        assert_eq!(ok("3days"), Duration::from_secs(3 * 86400));
        // The largest value is accepted (the library then sets no limit).
        assert_eq!(ok("18446744073709551615"), Duration::from_secs(u64::MAX));
        assert_eq!(ok("18446744073709551615s"), Duration::from_secs(u64::MAX));
        for (bad, why) in [
            ("0", "must be positive"),
            ("0s", "must be positive"),
            ("0.0", "must be positive"),
            ("0ms 0s", "must be positive"),
            ("", "invalid duration"),
            (".", "invalid duration"),
            ("1.2.3", "invalid duration"),
            ("5x", "invalid duration"),
            ("-1", "invalid duration"),
            ("ms", "invalid duration"),
            ("1e3", "invalid duration"),
            ("inf", "invalid duration"),
            ("NaN", "invalid duration"),
            // Beyond Duration's range: an error, not a panic.
            ("18446744073709551616", "too large"),
            ("99999999999999999999", "too large"),
            ("99999999999999999999.5", "too large"),
            ("99999999999999999999s", "too large"),
            ("18446744073709551615s 1s", "too large"),
            ("999999999999999999y", "too large"),
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
