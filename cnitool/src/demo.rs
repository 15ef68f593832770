//! `cnitool demo`: the whole job, end to end, on a machine of your own,
//! without touching its network.
//!
//! It creates two network namespaces, a private "host"
//! (`cnitool-demo-PID-host`) in which the plugins run, so that the bridge
//! and veths never appear in the machine's own namespace, and a container
//! (`cnitool-demo-PID`); a work directory under `$TMPDIR` holds the result
//! cache and host-local's data, so a real `mynet` on the node is never
//! touched. Then it attaches the container to the classic `mynet` network
//! (bridge + host-local, embedded below) with the real plugins, shows the
//! result and the container's addresses, runs CHECK, detaches, shows that
//! the cache and host-local's store hold nothing, and removes everything:
//! also on an error, and on SIGINT/SIGTERM (after a best-effort DEL).
//!
//! The plugins come from `--plugin-dir`/`CNI_PATH` when given, else from
//! the first of `/opt/cni/bin` and `/usr/lib/cni` that has them.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use libcni::{Cni, NetworkConfigList, RuntimeConfig};
use serde::Serialize;

use crate::explain::{INSTALL_HINT, Usage, WELL_KNOWN_PLUGIN_DIRS};
use crate::opts::Globals;
use crate::schema::json_line;

/// The classic `mynet` of the CNI README, as a 1.0.0 list; `@DATA_DIR@` is
/// replaced by host-local's data directory in the demo's work directory.
pub const MYNET: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "mynet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipam": {
        "type": "host-local",
        "subnet": "10.22.0.0/16",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "@DATA_DIR@"
      }
    }
  ]
}"#;

const NETNS_DIR: &str = "/run/netns";

/// The options of `cnitool demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

/// A named network namespace, bind-mounted at `/run/netns/NAME` (where
/// `ip netns` finds it), removed on drop.
struct NetNs {
    path: PathBuf,
}

impl NetNs {
    fn create(name: &str) -> io::Result<NetNs> {
        std::fs::create_dir_all(NETNS_DIR)?;
        let path = Path::new(NETNS_DIR).join(name);
        File::options().write(true).create_new(true).open(&path)?;
        let ns = NetNs { path };
        let target = CString::new(ns.path.as_os_str().as_encoded_bytes()).expect("no NUL");
        // A thread of its own enters a new namespace and pins it with a
        // bind mount; the process's other threads stay where they are.
        std::thread::spawn(move || -> io::Result<()> {
            // SAFETY: plain syscalls on valid, NUL-terminated strings.
            unsafe {
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let src = c"/proc/thread-self/ns/net";
                if libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))??;
        Ok(ns)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: a valid namespace fd.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.path.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A directory removed (with what is in it) on drop.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An address of an interface in the container.
#[derive(Serialize, Debug, Clone)]
struct Addr {
    interface: String,
    address: String,
}

/// The container's addresses, read with `getifaddrs` from a new thread
/// inside its namespace (a thread that entered it stays there, so it must
/// be one of its own).
fn addresses(path: &Path) -> Result<Vec<Addr>> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<Addr>> {
            enter(path).context("entering the container's namespace")?;
            let mut out = Vec::new();
            let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
            // SAFETY: getifaddrs fills a list freed with freeifaddrs below.
            if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
                return Err(io::Error::last_os_error()).context("getifaddrs");
            }
            let mut cur = ifap;
            while !cur.is_null() {
                // SAFETY: a node of the list getifaddrs returned.
                let ifa = unsafe { &*cur };
                cur = ifa.ifa_next;
                if ifa.ifa_addr.is_null() {
                    continue;
                }
                // SAFETY: a NUL-terminated name.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                    .to_string_lossy()
                    .into_owned();
                // SAFETY: sockaddrs of the family they say.
                let (ip, mask): (std::net::IpAddr, std::net::IpAddr) = unsafe {
                    match i32::from((*ifa.ifa_addr).sa_family) {
                        libc::AF_INET => {
                            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                            (
                                std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)).into(),
                                std::net::Ipv4Addr::from(u32::from_be(m.sin_addr.s_addr)).into(),
                            )
                        }
                        libc::AF_INET6 => {
                            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                            (
                                std::net::Ipv6Addr::from(a.sin6_addr.s6_addr).into(),
                                std::net::Ipv6Addr::from(m.sin6_addr.s6_addr).into(),
                            )
                        }
                        _ => continue,
                    }
                };
                let prefix = match mask {
                    std::net::IpAddr::V4(m) => u32::from(m).count_ones(),
                    std::net::IpAddr::V6(m) => u128::from(m).count_ones(),
                };
                out.push(Addr {
                    interface: name,
                    address: format!("{ip}/{prefix}"),
                });
            }
            // SAFETY: the list getifaddrs returned.
            unsafe { libc::freeifaddrs(ifap) };
            Ok(out)
        })
        .join()
        .map_err(|_| anyhow!("the address thread panicked"))?
    })
}

/// The file names in a directory (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The plugin directories: the user's, or the first well-known one with
/// both plugins.
fn plugin_dirs(g: &Globals) -> Result<Vec<PathBuf>> {
    let given = g.plugin_dirs();
    let has = |dirs: &[PathBuf], p: &str| dirs.iter().any(|d| d.join(p).is_file());
    if !given.is_empty() {
        let missing: Vec<&str> = ["bridge", "host-local"]
            .into_iter()
            .filter(|p| !has(&given, p))
            .collect();
        if !missing.is_empty() {
            bail!(Usage(format!(
                "the demo needs the plugins {} in {} ({}); {INSTALL_HINT}, or leave CNI_PATH and --plugin-dir unset to use /opt/cni/bin or /usr/lib/cni",
                missing.join(" and "),
                given
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
                g.plugin_dirs_source(),
            )));
        }
        return Ok(given);
    }
    for d in WELL_KNOWN_PLUGIN_DIRS {
        let d = vec![PathBuf::from(d)];
        if has(&d, "bridge") && has(&d, "host-local") {
            return Ok(d);
        }
    }
    bail!(Usage(format!(
        "the demo needs the reference plugins bridge and host-local, found in neither /opt/cni/bin nor /usr/lib/cni: {INSTALL_HINT}"
    )))
}

/// What the demo did, for `--json`.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Report {
    network: serde_json::Value,
    plugin_dirs: Vec<String>,
    host_netns: String,
    container_netns: String,
    work_dir: String,
    container_id: String,
    result: serde_json::Value,
    addresses: Vec<Addr>,
    checked: bool,
    deleted: bool,
    cache_after_del: Vec<String>,
    host_local_addresses_after_del: Vec<String>,
}

/// Says something to a person (nothing under `--json`).
struct Say(bool);

impl Say {
    fn line(&self, s: impl AsRef<str>) {
        if !self.0 {
            println!("{}", s.as_ref());
        }
    }
}

/// Runs the demo.
pub fn run(g: &Globals, _args: &DemoArgs) -> Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(Usage(
            "cnitool demo needs root: it creates network namespaces and runs the bridge plugin; run it with sudo (or as root)".into()
        ));
    }
    let dirs = plugin_dirs(g)?;
    let say = Say(g.json);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let work = WorkDir(std::env::temp_dir().join(format!("cnitool-demo-{pid}-{nanos:x}")));
    std::fs::create_dir(&work.0)
        .with_context(|| format!("creating the work directory {}", work.0.display()))?;
    let host = NetNs::create(&format!("cnitool-demo-{pid}-host"))
        .context("creating the private host network namespace")?;
    let container = NetNs::create(&format!("cnitool-demo-{pid}"))
        .context("creating the container's network namespace")?;
    let data_dir = work.0.join("host-local");
    let cache_dir = work.0.join("cache");
    let text = MYNET.replace(
        "@DATA_DIR@",
        data_dir
            .to_str()
            .context("the work directory is not UTF-8")?,
    );
    let list = NetworkConfigList::from_bytes(text.as_bytes())?;
    let mut report = Report {
        network: serde_json::from_str(&text)?,
        plugin_dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
        host_netns: host.path().display().to_string(),
        container_netns: container.path().display().to_string(),
        work_dir: work.0.display().to_string(),
        ..Report::default()
    };

    say.line("cnitool demo: attach a container to the classic `mynet` network (bridge + host-local) with the real plugins, check it, and detach it");
    say.line(format!("  plugins:   {}", report.plugin_dirs.join(":")));
    say.line(format!(
        "  netns:     {} (private host: the bridge and veths live here), {} (the container)",
        report.host_netns, report.container_netns
    ));
    say.line(format!(
        "  work dir:  {} (result cache, host-local data; removed at the end)",
        report.work_dir
    ));
    say.line("");
    say.line("== the network (embedded in cnitool):");
    say.line(&text);

    let mut cni = Cni::new(dirs).with_cache_dir(&cache_dir);
    cni = cni.with_timeout(g.timeout.unwrap_or(Duration::from_secs(60)));
    let rt = RuntimeConfig::new(
        format!("cnitool-demo-{pid}"),
        container.path().to_str().expect("UTF-8"),
        "eth0",
    );
    report.container_id = rt.container_id().to_owned();

    // The plugins run from a thread inside the private host namespace, on
    // a runtime of its own: the threads it starts (and so the plugins they
    // spawn) inherit that namespace.
    let outcome = std::thread::scope(|s| {
        s.spawn(|| -> Result<Outcome> {
            enter(host.path()).context("entering the private host namespace")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(steps(&cni, &list, &rt, &container, &say, &mut report))
        })
        .join()
        .map_err(|_| anyhow!("the demo thread panicked"))?
    })?;

    let mut code = ExitCode::SUCCESS;
    match outcome {
        Outcome::Done => {
            report.cache_after_del = files(&cache_dir.join("results"));
            report.host_local_addresses_after_del = files(&data_dir.join("mynet"))
                .into_iter()
                .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
                .collect();
            say.line("");
            say.line("== after DEL:");
            say.line(format!(
                "  result cache {}: {}",
                cache_dir.join("results").display(),
                if report.cache_after_del.is_empty() {
                    "empty".to_owned()
                } else {
                    report.cache_after_del.join(", ")
                }
            ));
            say.line(format!(
                "  host-local store {}: {}",
                data_dir.join("mynet").display(),
                if report.host_local_addresses_after_del.is_empty() {
                    "no address reserved".to_owned()
                } else {
                    format!(
                        "still reserved: {}",
                        report.host_local_addresses_after_del.join(", ")
                    )
                }
            ));
            if !report.cache_after_del.is_empty()
                || !report.host_local_addresses_after_del.is_empty()
            {
                code = ExitCode::from(1);
            }
        }
        Outcome::Interrupted(name, c) => {
            eprintln!("cnitool demo: {name} received: detached and cleaned up");
            code = ExitCode::from(c);
        }
    }
    drop(container);
    drop(host);
    drop(work);
    say.line("");
    say.line(format!(
        "== cleaned up: network namespaces {} and {} and the work directory {} are removed",
        report.host_netns, report.container_netns, report.work_dir
    ));
    if g.json {
        print!("{}", json_line("demo", &report));
    }
    Ok(code)
}

enum Outcome {
    Done,
    Interrupted(&'static str, u8),
}

async fn steps(
    cni: &Cni,
    list: &NetworkConfigList,
    rt: &RuntimeConfig,
    container: &NetNs,
    say: &Say,
    report: &mut Report,
) -> Result<Outcome> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let work = async {
        say.line("");
        say.line(format!(
            "== ADD (cnitool add mynet {}):",
            container.path().display()
        ));
        let result = match cni.add_network_list(list, rt).await {
            Ok(r) => r,
            Err(e) => {
                // libcni rolled nothing back (rollback is off by default):
                // detach what the plugins may have done.
                let _ = cni.del_network_list(list, rt).await;
                return Err(anyhow::Error::from(e));
            }
        };
        let json = result.to_json_pretty();
        say.line(String::from_utf8_lossy(&json));
        report.result = serde_json::from_slice(&json).unwrap_or_default();
        say.line("");
        say.line("== the container's addresses (read inside its namespace):");
        let path = container.path().to_owned();
        let addrs = tokio::task::spawn_blocking(move || addresses(&path))
            .await
            .map_err(|_| anyhow!("the address lookup panicked"))??;
        for a in &addrs {
            say.line(format!("  {:6} {}", a.interface, a.address));
        }
        report.addresses = addrs;
        say.line("");
        say.line("== CHECK:");
        if let Err(e) = cni.check_network_list(list, rt).await {
            let _ = cni.del_network_list(list, rt).await;
            return Err(e.into());
        }
        report.checked = true;
        say.line("  ok: the plugins confirm the attachment matches the cached result");
        say.line("");
        say.line("== DEL:");
        cni.del_network_list(list, rt).await?;
        report.deleted = true;
        say.line("  ok: detached");
        Ok::<_, anyhow::Error>(())
    };
    let (name, code) = tokio::select! {
        r = work => { r?; return Ok(Outcome::Done); }
        _ = sigint.recv() => ("SIGINT", 130),
        _ = sigterm.recv() => ("SIGTERM", 143),
    };
    // The operation in flight was dropped, which killed its plugin; undo
    // whatever it did.
    if let Err(e) = cni.del_network_list(list, rt).await {
        eprintln!("cnitool demo: DEL after {name} failed: {e}");
    }
    Ok(Outcome::Interrupted(name, code))
}
