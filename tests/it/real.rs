//! The real plugins from `containernetworking-plugins` (in `/usr/lib/cni`)
//! in real network namespaces.
//!
//! Every test makes a private "host" namespace (the plugins run there, so
//! bridges, host-side veths and iptables rules never touch the machine's
//! root namespace) and a container namespace, both deleted on drop. IPAM
//! state (`host-local`'s `dataDir`) and the result cache live in the test's
//! [`TestEnv`]. No traffic is sent anywhere.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libcni::result::{Interface, Result100};
use libcni::{Cni, CniResult, ConfigLoader, ErrorKind, NetworkConfigList, RuntimeConfig};
use serde_json::{Value, json};

use crate::support::netns::{NetNs, REAL_PLUGIN_DIR, block_on, real_prereqs, run_in};
use crate::support::{TestEnv, cnitool_bin};

/// A runtime on the real plugins, caching in the test's environment.
fn real_cni(env: &TestEnv) -> Cni {
    Cni::new([REAL_PLUGIN_DIR])
        .with_cache_dir(&env.cache)
        .with_timeout(Duration::from_secs(60))
}

/// A unique, valid container ID.
fn container_id(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lcni-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `host-local`'s data directory for a test: inside its `TestEnv`, never
/// `/var/lib/cni`.
fn ipam_dir(env: &TestEnv) -> PathBuf {
    env.path("ipam")
}

/// The addresses `host-local` has reserved for `network` (its store's file
/// names, less the bookkeeping files).
fn reserved_ips(env: &TestEnv, network: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ipam_dir(env).join(network))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The owner `host-local` recorded for a reserved address.
fn reservation(env: &TestEnv, network: &str, ip: IpAddr) -> String {
    let p = ipam_dir(env).join(network).join(ip.to_string());
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The cache file name of an attachment.
fn cache_name(network: &str, cid: &str, ifname: &str) -> String {
    format!("{network}-{cid}-{ifname}")
}

/// A cache file, parsed.
fn cache_json(env: &TestEnv, name: &str) -> Value {
    let p = env.cache.join("results").join(name);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts a cache entry records the attachment.
fn assert_cache_entry(env: &TestEnv, network: &str, cid: &str, ifname: &str, netns: &NetNs) {
    let name = cache_name(network, cid, ifname);
    assert_eq!(env.cache_files(), vec![name.clone()]);
    let c = cache_json(env, &name);
    assert_eq!(c["kind"], "cniCacheV1", "{c}");
    assert_eq!(c["containerId"], cid, "{c}");
    assert_eq!(c["ifName"], ifname, "{c}");
    assert_eq!(c["networkName"], network, "{c}");
    assert_eq!(c["netns"], netns.path_str(), "{c}");
    assert!(c["result"].is_object(), "{c}");
}

/// The `inet`/`inet6` addresses on `dev` in `ns`, as `addr/prefix`, less
/// the link-local ones the kernel adds by itself.
fn addrs(ns: &NetNs, dev: &str) -> Vec<String> {
    ns.ip(&["-o", "addr", "show", "dev", dev])
        .lines()
        .filter(|l| !l.contains(" scope link "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// The flags of link `dev` in `ns` (`LOOPBACK`, `UP`, ...).
fn link_flags(ns: &NetNs, dev: &str) -> Vec<String> {
    let out = ns.ip(&["-o", "link", "show", "dev", dev]);
    let start = out.find('<').expect("link flags") + 1;
    let end = out[start..].find('>').expect("link flags") + start;
    out[start..end].split(',').map(str::to_owned).collect()
}

/// One `ip -o link show` field of `dev` in `ns` (e.g. `mtu`, `link/ether`).
fn link_field(ns: &NetNs, dev: &str, field: &str) -> String {
    let out = ns.ip(&["-o", "link", "show", "dev", dev]);
    let mut words = out.split_whitespace();
    words
        .find(|w| *w == field)
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .to_owned()
}

/// `net.core.somaxconn` in `ns` (read from `/proc`: `sysctl` may not be
/// installed).
fn somaxconn(ns: &NetNs) -> String {
    ns.exec("cat", &["/proc/sys/net/core/somaxconn"])
        .trim()
        .to_owned()
}

/// The host namespace's `nat` table (`iptables -t nat -S`).
fn nat_rules(host: &NetNs) -> String {
    host.exec("iptables", &["-w", "-t", "nat", "-S"])
}

/// The interface of a result with this name, checked to be unique.
fn iface<'a>(r: &'a Result100, name: &str) -> (usize, &'a Interface) {
    let found: Vec<(usize, &Interface)> = r
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| i.name == name)
        .collect();
    assert_eq!(found.len(), 1, "interface {name} in {:?}", r.interfaces);
    found[0]
}

fn in_v4_subnet(ip: IpAddr, net: [u8; 4], prefix: u32) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(v4) & mask == u32::from(std::net::Ipv4Addr::from(net)) & mask
        }
        IpAddr::V6(_) => false,
    }
}

#[test]
fn mynet_conf_add_check_del_with_bridge_and_host_local() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-mynet");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mynet.conf");
    let mut conf: Value = serde_json::from_slice(&std::fs::read(&src).unwrap()).unwrap();
    conf["ipam"]["dataDir"] = json!(ipam_dir(&env));
    env.write_config(
        "10-mynet.conf",
        &serde_json::to_string_pretty(&conf).unwrap(),
    );
    let list = ConfigLoader::new(&env.net_d).network("mynet").unwrap();
    assert_eq!(list.cni_version(), "0.2.0");
    assert_eq!(list.plugins().len(), 1);

    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    let cid = container_id("mynet");
    let rt = RuntimeConfig::new(&cid, ctr.path_str(), "eth0");
    let cni = real_cni(&env);

    // ADD
    let result = run_in(&host, || block_on(cni.add_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("ADD: {e:?}"));
    assert_eq!(result.version().as_str(), "0.2.0", "{result:?}");
    let CniResult::V020(r020) = &result else {
        panic!("a 0.2.0 network must give a 0.2.0 result: {result:?}");
    };
    let ip4 = r020.ip4.as_ref().expect("an ip4 in the result");
    let ip = ip4.ip.addr();
    assert!(
        in_v4_subnet(ip, [10, 22, 0, 0], 16),
        "{ip} not in 10.22.0.0/16"
    );
    assert_eq!(ip4.ip.prefix(), 16);
    let gw: IpAddr = "10.22.0.1".parse().unwrap();
    assert_eq!(ip4.gateway, Some(gw));
    assert_ne!(ip, gw);

    // The container has the address and the default route.
    assert_eq!(addrs(&ctr, "eth0"), vec![ip4.ip.to_string()]);
    let routes = ctr.ip(&["route", "show"]);
    assert!(
        routes.contains("default via 10.22.0.1 dev eth0"),
        "{routes}"
    );
    // The host has the gateway bridge, with the container's veth on it.
    assert!(host.has_link("cni0"), "{:?}", host.links());
    assert!(addrs(&host, "cni0").contains(&"10.22.0.1/16".to_owned()));
    let ports = host.ip(&["-o", "link", "show", "master", "cni0"]);
    assert_eq!(ports.lines().count(), 1, "{ports}");
    // ipMasq: a masquerading rule for the container, tagged with its ID.
    let nat = nat_rules(&host);
    assert!(
        nat.lines()
            .any(|l| l.starts_with(&format!("-A POSTROUTING -s {ip}/32")) && l.contains(&cid)),
        "{nat}"
    );

    // The cache, written as libcni does.
    assert_cache_entry(&env, "mynet", &cid, "eth0", &ctr);
    let cached = cache_json(&env, &cache_name("mynet", &cid, "eth0"));
    assert_eq!(cached["result"]["cniVersion"], "0.2.0");
    assert_eq!(cached["result"]["ip4"]["ip"], ip4.ip.to_string());
    assert_eq!(
        cni.cached_result(&list, &rt).unwrap().as_ref(),
        Some(&result)
    );
    // host-local's store holds the address, for this container.
    assert_eq!(reserved_ips(&env, "mynet"), vec![ip.to_string()]);
    assert!(reservation(&env, "mynet", ip).starts_with(&cid));

    // CHECK: 0.2.0 has none.
    let err = run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .expect_err("CHECK of a 0.2.0 network must fail");
    assert!(
        matches!(err.kind(), ErrorKind::OpNotSupported { .. }),
        "{err:?}"
    );

    // DEL
    run_in(&host, || block_on(cni.del_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("DEL: {e:?}"));
    assert!(!ctr.has_link("eth0"), "{:?}", ctr.links());
    assert_eq!(host.ip(&["-o", "link", "show", "master", "cni0"]), "");
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    assert!(
        reserved_ips(&env, "mynet").is_empty(),
        "leaked: {:?}",
        reserved_ips(&env, "mynet")
    );
    let nat = nat_rules(&host);
    assert!(!nat.contains(&cid), "{nat}");
}

/// A plugin directory whose `portmap` runs the real one with `ip6tables`
/// out of reach (first on its `PATH` is an `ip6tables` that fails), so it
/// works with IPv4 iptables only.
///
/// portmap 1.1.x's CHECK looks for the container's IPv4 DNAT rules in
/// ip6tables too whenever ip6tables works, and so always fails there
/// (containernetworking/plugins#819, fixed in later releases): `could not
/// check ipv6 dnat: rule [...] in chain CNI-DN-... not found in table nat`.
/// On a host without ip6tables it checks IPv4 only, as it should.
fn ipv4_only_portmap(env: &TestEnv) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write_exe = |path: &Path, text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        f.write_all(text.as_bytes()).unwrap();
    };
    let dir = env.path("portmap-v4");
    let hide = dir.join("no-ip6tables");
    std::fs::create_dir_all(&hide).unwrap();
    write_exe(
        &hide.join("ip6tables"),
        "#!/bin/sh\necho 'ip6tables hidden by the test' >&2\nexit 1\n",
    );
    write_exe(
        &dir.join("portmap"),
        &format!(
            "#!/bin/sh\nPATH='{}':\"$PATH\" exec '{REAL_PLUGIN_DIR}/portmap' \"$@\"\n",
            hide.display()
        ),
    );
    dir
}

#[test]
fn conflist_1_0_0_bridge_portmap_tuning() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-portmap");
    let net = "lcni-pm";
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "lcnibr0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.77.3.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir(&env)
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "tuning", "mtu": 1400, "sysctl": {"net.core.somaxconn": "1234"}}
        ]
    });
    let list = env.list(&conf.to_string());
    assert_eq!(list.capabilities(), vec!["portMappings"]);

    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    let cid = container_id("pm");
    let rt = RuntimeConfig::new(&cid, ctr.path_str(), "eth0").capability_arg(
        "portMappings",
        json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]),
    );
    // bridge and tuning from /usr/lib/cni; portmap through the IPv4-only
    // wrapper found first.
    let cni = Cni::new([ipv4_only_portmap(&env), PathBuf::from(REAL_PLUGIN_DIR)])
        .with_cache_dir(&env.cache)
        .with_timeout(Duration::from_secs(60));
    // What the plugins change starts out different.
    assert_ne!(somaxconn(&ctr), "1234");
    assert!(!nat_rules(&host).contains("18080"));

    // ADD
    let result = run_in(&host, || block_on(cni.add_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("ADD: {e:?}"));
    assert_eq!(result.version().as_str(), "1.0.0", "{result:?}");
    let r = result.to_latest();
    let (_, br) = iface(&r, "lcnibr0");
    assert_eq!(br.sandbox, "");
    assert_eq!(br.mac, link_field(&host, "lcnibr0", "link/ether"));
    let (eth0_idx, eth0) = iface(&r, "eth0");
    assert_eq!(eth0.sandbox, ctr.path_str());
    assert_eq!(eth0.mac, link_field(&ctr, "eth0", "link/ether"));
    assert_eq!(
        r.interfaces.len(),
        3,
        "bridge, host veth, eth0: {:?}",
        r.interfaces
    );
    assert_eq!(r.ips.len(), 1, "{:?}", r.ips);
    let ipc = &r.ips[0];
    let ip = ipc.address.addr();
    assert!(in_v4_subnet(ip, [10, 77, 3, 0], 24), "{ip}");
    assert_eq!(ipc.interface, Some(eth0_idx as i64));
    assert_eq!(ipc.gateway, Some("10.77.3.1".parse().unwrap()));
    assert_eq!(addrs(&ctr, "eth0"), vec![ipc.address.to_string()]);
    assert!(addrs(&host, "lcnibr0").contains(&"10.77.3.1/24".to_owned()));

    // tuning: the sysctl and the MTU, in the container.
    assert_eq!(somaxconn(&ctr), "1234");
    assert_eq!(link_field(&ctr, "eth0", "mtu"), "1400");

    // portmap: a DNAT of host port 18080 to the container's port 80, in the
    // host namespace.
    let nat = nat_rules(&host);
    let dnat = format!("--to-destination {ip}:80");
    assert!(
        nat.lines()
            .any(|l| l.contains("--dport 18080") && l.contains(&dnat)),
        "{nat}"
    );

    assert_cache_entry(&env, net, &cid, "eth0", &ctr);
    let cached = cache_json(&env, &cache_name(net, &cid, "eth0"));
    assert_eq!(
        cached["capabilityArgs"]["portMappings"][0]["hostPort"], 18080,
        "{cached}"
    );
    assert_eq!(
        cni.cached_result(&list, &rt).unwrap().as_ref(),
        Some(&result)
    );
    assert_eq!(reserved_ips(&env, net), vec![ip.to_string()]);

    // CHECK: every plugin agrees with what is there.
    run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("CHECK: {e:?}"));
    // portmap's CHECK does look: without its DNAT rules it fails.
    let saved = host.exec("iptables-save", &["-t", "nat"]);
    let dn_chain = nat
        .lines()
        .find(|l| l.contains("--dport 18080") && l.contains(&dnat))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_owned();
    host.exec("iptables", &["-w", "-t", "nat", "-F", &dn_chain]);
    let err = run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .expect_err("CHECK without the DNAT rules must fail");
    assert!(matches!(err.kind(), ErrorKind::Plugin { .. }), "{err:?}");
    assert_eq!(err.plugin(), Some("portmap"), "{err:?}");
    restore_nat(&host, &saved);
    assert_eq!(nat_rules(&host), nat);

    // DEL
    run_in(&host, || block_on(cni.del_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("DEL: {e:?}"));
    assert!(!ctr.has_link("eth0"), "{:?}", ctr.links());
    assert_eq!(host.ip(&["-o", "link", "show", "master", "lcnibr0"]), "");
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    assert!(
        reserved_ips(&env, net).is_empty(),
        "leaked: {:?}",
        reserved_ips(&env, net)
    );
    let nat = nat_rules(&host);
    assert!(!nat.contains("18080"), "{nat}");
    assert!(!nat.contains(&dnat), "{nat}");
    assert!(!nat.contains(&cid), "{nat}");
}

/// Puts back a `nat` table saved with `iptables-save -t nat`.
fn restore_nat(host: &NetNs, saved: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            host.name(),
            "iptables-restore",
            "-w",
            "-T",
            "nat",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("running iptables-restore");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(saved.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "iptables-restore failed");
}

#[test]
fn loopback_plugin_brings_lo_up() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-lo");
    let list =
        env.list(r#"{"cniVersion":"1.0.0","name":"lcni-lo","plugins":[{"type":"loopback"}]}"#);
    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    let cid = container_id("lo");
    let rt = RuntimeConfig::new(&cid, ctr.path_str(), "lo");
    let cni = real_cni(&env);
    assert!(
        !link_flags(&ctr, "lo").contains(&"UP".to_owned()),
        "a fresh netns has lo down"
    );

    // ADD
    let result = run_in(&host, || block_on(cni.add_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("ADD: {e:?}"));
    assert_eq!(result.version().as_str(), "1.0.0", "{result:?}");
    assert!(
        link_flags(&ctr, "lo").contains(&"UP".to_owned()),
        "{:?}",
        link_flags(&ctr, "lo")
    );
    assert!(
        addrs(&ctr, "lo").contains(&"127.0.0.1/8".to_owned()),
        "{:?}",
        addrs(&ctr, "lo")
    );
    let r = result.to_latest();
    let (lo_idx, lo) = iface(&r, "lo");
    assert_eq!(lo.sandbox, ctr.path_str());
    assert!(
        r.ips
            .iter()
            .any(|i| i.address.to_string() == "127.0.0.1/8" && i.interface == Some(lo_idx as i64)),
        "{:?}",
        r.ips
    );
    assert_cache_entry(&env, "lcni-lo", &cid, "lo", &ctr);

    // CHECK passes while lo is up, and fails once it is down.
    run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("CHECK: {e:?}"));
    ctr.ip(&["link", "set", "lo", "down"]);
    let err = run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .expect_err("CHECK with lo down must fail");
    assert!(matches!(err.kind(), ErrorKind::Plugin { .. }), "{err:?}");
    assert_eq!(err.plugin(), Some("loopback"));
    ctr.ip(&["link", "set", "lo", "up"]);

    // DEL takes lo down again.
    run_in(&host, || block_on(cni.del_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("DEL: {e:?}"));
    assert!(
        !link_flags(&ctr, "lo").contains(&"UP".to_owned()),
        "{:?}",
        link_flags(&ctr, "lo")
    );
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[test]
fn ptp_plugin_add_check_del() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-ptp");
    let net = "lcni-ptp";
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [{
            "type": "ptp",
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "subnet": "10.66.5.0/24",
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": ipam_dir(&env)
            }
        }]
    });
    let list = env.list(&conf.to_string());
    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    let cid = container_id("ptp");
    let rt = RuntimeConfig::new(&cid, ctr.path_str(), "eth0");
    let cni = real_cni(&env);
    let host_links_before = host.links();

    // ADD
    let result = run_in(&host, || block_on(cni.add_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("ADD: {e:?}"));
    assert_eq!(result.version().as_str(), "1.0.0", "{result:?}");
    let r = result.to_latest();
    let (eth0_idx, eth0) = iface(&r, "eth0");
    assert_eq!(eth0.sandbox, ctr.path_str());
    assert_eq!(eth0.mac, link_field(&ctr, "eth0", "link/ether"));
    assert_eq!(r.ips.len(), 1, "{:?}", r.ips);
    let ip = r.ips[0].address.addr();
    assert!(in_v4_subnet(ip, [10, 66, 5, 0], 24), "{ip}");
    assert_eq!(r.ips[0].interface, Some(eth0_idx as i64));
    assert_eq!(addrs(&ctr, "eth0"), vec![r.ips[0].address.to_string()]);
    let details = ctr.ip(&["-d", "-o", "link", "show", "dev", "eth0"]);
    assert!(details.contains(" veth "), "{details}");
    // The host side: a new veth, with a /32 route to the container.
    let host_veths: Vec<String> = host
        .links()
        .into_iter()
        .filter(|l| !host_links_before.contains(l))
        .collect();
    assert_eq!(host_veths.len(), 1, "{host_veths:?}");
    let (_, host_veth) = iface(&r, &host_veths[0]);
    assert_eq!(host_veth.sandbox, "");
    let host_routes = host.ip(&["route", "show"]);
    assert!(
        host_routes.contains(&format!("{ip} dev {}", host_veths[0])),
        "{host_routes}"
    );
    assert_cache_entry(&env, net, &cid, "eth0", &ctr);
    assert_eq!(reserved_ips(&env, net), vec![ip.to_string()]);
    assert!(reservation(&env, net, ip).starts_with(&cid));

    // CHECK passes; without the container's address it fails.
    run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("CHECK: {e:?}"));
    let addr = r.ips[0].address.to_string();
    ctr.ip(&["addr", "del", &addr, "dev", "eth0"]);
    let err = run_in(&host, || block_on(cni.check_network_list(&list, &rt)))
        .expect_err("CHECK without the address must fail");
    assert!(matches!(err.kind(), ErrorKind::Plugin { .. }), "{err:?}");
    assert_eq!(err.plugin(), Some("ptp"));
    ctr.ip(&["addr", "add", &addr, "dev", "eth0"]);

    // DEL
    run_in(&host, || block_on(cni.del_network_list(&list, &rt)))
        .unwrap_or_else(|e| panic!("DEL: {e:?}"));
    assert!(!ctr.has_link("eth0"), "{:?}", ctr.links());
    assert_eq!(host.links(), host_links_before);
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    assert!(
        reserved_ips(&env, net).is_empty(),
        "leaked: {:?}",
        reserved_ips(&env, net)
    );
}

/// Runs cnitool in the host namespace.
fn cnitool(env: &TestEnv, host: &NetNs, args: &[&str], cid: &str) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", host.name()])
        .arg(cnitool_bin())
        .args(args)
        .env("NETCONFPATH", &env.net_d)
        .env("CNI_PATH", REAL_PLUGIN_DIR)
        .env("CNI_CACHE_DIR", &env.cache)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_IFNAME", "eth0")
        .env_remove("CNI_ARGS")
        .env_remove("CAP_ARGS")
        .output()
        .expect("running cnitool")
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "cnitool {what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn cnitool_matches_library_on_real_plugins() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-cnitool");
    let net = "lcni-tool";
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [{
            "type": "bridge",
            "bridge": "lcnibr1",
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.55.9.0/24"}]],
                "dataDir": ipam_dir(&env)
            }
        }]
    });
    env.write_config("20-tool.conflist", &conf.to_string());
    let list: NetworkConfigList = ConfigLoader::new(&env.net_d).network(net).unwrap();
    let host = NetNs::host("host");
    let ctr_a = NetNs::new("ctra");
    let ctr_b = NetNs::new("ctrb");
    let cid_a = container_id("tool");
    let cid_b = container_id("lib");
    let rt_a = RuntimeConfig::new(&cid_a, ctr_a.path_str(), "eth0");
    let rt_b = RuntimeConfig::new(&cid_b, ctr_b.path_str(), "eth0");
    let cni = real_cni(&env);

    // cnitool adds container A, the library container B, on one bridge.
    let printed = ok(
        &cnitool(&env, &host, &["add", net, ctr_a.path_str()], &cid_a),
        "add",
    );
    let tool_result = CniResult::from_json(printed.as_bytes()).unwrap();
    let lib_result = run_in(&host, || block_on(cni.add_network_list(&list, &rt_b)))
        .unwrap_or_else(|e| panic!("ADD: {e:?}"));
    assert_eq!(tool_result.version().as_str(), "1.0.0");
    assert_eq!(lib_result.version().as_str(), "1.0.0");
    let (ta, lb) = (tool_result.to_latest(), lib_result.to_latest());
    let ip_a = ta.ips[0].address.addr();
    let ip_b = lb.ips[0].address.addr();
    assert!(in_v4_subnet(ip_a, [10, 55, 9, 0], 24), "{ip_a}");
    assert!(in_v4_subnet(ip_b, [10, 55, 9, 0], 24), "{ip_b}");
    assert_ne!(ip_a, ip_b);
    assert_eq!(addrs(&ctr_a, "eth0"), vec![ta.ips[0].address.to_string()]);
    assert_eq!(addrs(&ctr_b, "eth0"), vec![lb.ips[0].address.to_string()]);
    // Same shape: bridge, host veth, eth0 in the container; same gateway.
    assert_eq!(iface(&ta, "lcnibr1").1.mac, iface(&lb, "lcnibr1").1.mac);
    assert_eq!(iface(&ta, "eth0").1.sandbox, ctr_a.path_str());
    assert_eq!(iface(&lb, "eth0").1.sandbox, ctr_b.path_str());
    assert_eq!(ta.interfaces.len(), lb.interfaces.len());
    assert_eq!(ta.ips[0].gateway, lb.ips[0].gateway);
    assert_eq!(ta.routes, lb.routes);
    let ports = host.ip(&["-o", "link", "show", "master", "lcnibr1"]);
    assert_eq!(ports.lines().count(), 2, "{ports}");

    // What cnitool printed is what it cached, in the library's format.
    let mut expected = vec![
        cache_name(net, &cid_a, "eth0"),
        cache_name(net, &cid_b, "eth0"),
    ];
    expected.sort();
    assert_eq!(env.cache_files(), expected);
    assert_eq!(
        cni.cached_result(&list, &rt_a).unwrap().as_ref(),
        Some(&tool_result)
    );
    let cached_a = cache_json(&env, &cache_name(net, &cid_a, "eth0"));
    assert_eq!(cached_a["kind"], "cniCacheV1");
    assert_eq!(cached_a["containerId"], cid_a.as_str());
    assert_eq!(cached_a["netns"], ctr_a.path_str());

    // Each checks the other's attachment.
    ok(
        &cnitool(&env, &host, &["check", net, ctr_b.path_str()], &cid_b),
        "check",
    );
    run_in(&host, || block_on(cni.check_network_list(&list, &rt_a)))
        .unwrap_or_else(|e| panic!("CHECK: {e:?}"));

    // And deletes it.
    ok(
        &cnitool(&env, &host, &["del", net, ctr_b.path_str()], &cid_b),
        "del",
    );
    run_in(&host, || block_on(cni.del_network_list(&list, &rt_a)))
        .unwrap_or_else(|e| panic!("DEL: {e:?}"));
    assert!(!ctr_a.has_link("eth0"), "{:?}", ctr_a.links());
    assert!(!ctr_b.has_link("eth0"), "{:?}", ctr_b.links());
    assert_eq!(host.ip(&["-o", "link", "show", "master", "lcnibr1"]), "");
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    assert!(
        reserved_ips(&env, net).is_empty(),
        "leaked: {:?}",
        reserved_ips(&env, net)
    );
}

/// The three networks of the pod tests, written to `net.d`: a dual-stack
/// bridge, a ptp, and a macvlan on `parent` (a veth end in the host). With
/// `fail`, the macvlan's IPAM (`static`, with an address that is not one)
/// fails its ADD, after the link was made, while its DEL succeeds.
fn pod_networks(env: &TestEnv, tag: &str, parent: &str, fail: bool) -> [String; 3] {
    let names = [
        format!("lcni-br-{tag}"),
        format!("lcni-ptp-{tag}"),
        format!("lcni-mv-{tag}"),
    ];
    let ipam =
        |ranges: Value| json!({"type": "host-local", "ranges": ranges, "dataDir": ipam_dir(env)});
    let confs = [
        json!({"cniVersion": "1.0.0", "name": names[0], "plugins": [{
            "type": "bridge", "bridge": format!("lcbr{tag}"), "isGateway": true, "ipMasq": false,
            "ipam": ipam(json!([[{"subnet": "10.77.1.0/24"}], [{"subnet": "fd77:1::/64"}]]))}]}),
        json!({"cniVersion": "1.0.0", "name": names[1], "plugins": [{
            "type": "ptp", "ipMasq": false, "ipam": ipam(json!([[{"subnet": "10.77.2.0/24"}]]))}]}),
        json!({"cniVersion": "1.0.0", "name": names[2], "plugins": [{
        "type": "macvlan", "master": parent, "mode": "bridge",
        "ipam": if fail {
            json!({"type": "static", "addresses": [{"address": "not-an-address"}]})
        } else {
            ipam(json!([[{"subnet": "10.77.3.0/24"}]]))
        }}]}),
    ];
    for (i, c) in confs.iter().enumerate() {
        env.write_config(&format!("{}0-{}.conflist", i + 1, names[i]), &c.to_string());
    }
    names
}

#[test]
fn a_pod_with_three_networks_attaches_in_parallel_and_detaches() {
    use libcni::pod::{NetworkRequest, Pod, PodNetworks};
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-pod");
    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    // The macvlan's parent: a veth end (no dummy module needed).
    host.ip(&[
        "link", "add", "lcpar0", "type", "veth", "peer", "name", "lcpar1",
    ]);
    host.ip(&["link", "set", "lcpar0", "up"]);
    let names = pod_networks(&env, "p", "lcpar0", false);
    let pods = PodNetworks::new(real_cni(&env), ConfigLoader::new(&env.net_d));
    let pod = Pod::new(container_id("pod"), ctr.path_str());
    let extras = [
        NetworkRequest::new(&*names[1]),
        NetworkRequest::new(&*names[2]),
    ];
    let ifaces = run_in(&host, || block_on(pods.attach(&pod, &extras)))
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let got: Vec<&str> = ifaces.iter().map(|i| i.ifname.as_str()).collect();
    assert_eq!(got, ["eth0", "eth1", "eth2"]);
    // Dual stack on the bridge network; one address on each other one.
    let eth0 = addrs(&ctr, "eth0");
    assert!(eth0.iter().any(|a| a.starts_with("10.77.1.")), "{eth0:?}");
    assert!(eth0.iter().any(|a| a.starts_with("fd77:1::")), "{eth0:?}");
    assert!(addrs(&ctr, "eth1")[0].starts_with("10.77.2."));
    assert!(addrs(&ctr, "eth2")[0].starts_with("10.77.3."));
    let details = ctr.ip(&["-d", "-o", "link", "show", "dev", "eth2"]);
    assert!(details.contains("macvlan"), "{details}");
    assert_eq!(reserved_ips(&env, &names[0]).len(), 2);
    run_in(&host, || block_on(pods.check(&pod))).unwrap_or_else(|e| panic!("check: {e}"));

    // The ptp network's config goes away before detach: the cached one is
    // used.
    std::fs::remove_file(env.net_d.join(format!("20-{}.conflist", names[1]))).unwrap();
    run_in(&host, || block_on(pods.detach(&pod))).unwrap_or_else(|e| panic!("detach: {e}"));
    for dev in ["eth0", "eth1", "eth2"] {
        assert!(!ctr.has_link(dev), "{:?}", ctr.links());
    }
    for n in &names {
        assert!(
            reserved_ips(&env, n).is_empty(),
            "leaked in {n}: {:?}",
            reserved_ips(&env, n)
        );
    }
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[test]
fn a_failing_third_network_rolls_back_the_first_two() {
    use libcni::pod::{NetworkRequest, Pod, PodNetworks};
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-pod-rb");
    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    host.ip(&[
        "link", "add", "lcpar0", "type", "veth", "peer", "name", "lcpar1",
    ]);
    host.ip(&["link", "set", "lcpar0", "up"]);
    let names = pod_networks(&env, "r", "lcpar0", true);
    for parallel in [false, true] {
        let pods =
            PodNetworks::new(real_cni(&env), ConfigLoader::new(&env.net_d)).with_parallel(parallel);
        let pod = Pod::new(container_id("podrb"), ctr.path_str());
        let extras = [
            NetworkRequest::new(&*names[1]),
            NetworkRequest::new(&*names[2]),
        ];
        let e = run_in(&host, || block_on(pods.attach(&pod, &extras))).unwrap_err();
        assert_eq!(e.network(), Some(names[2].as_str()), "{e}");
        assert!(matches!(e.rollback(), Some(Ok(()))), "{e}");
        for n in &names {
            assert!(
                reserved_ips(&env, n).is_empty(),
                "leaked in {n}: {:?}",
                reserved_ips(&env, n)
            );
        }
        for dev in ["eth0", "eth1", "eth2"] {
            assert!(!ctr.has_link(dev), "{:?}", ctr.links());
        }
        assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    }
}

#[test]
fn the_pod_network_example_attaches_and_detaches() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("real-example");
    let host = NetNs::host("host");
    let ctr = NetNs::new("ctr");
    let ipam = ipam_dir(&env);
    for (i, (name, subnet)) in [("lcni-ex1", "10.77.8.0/24"), ("lcni-ex2", "10.77.9.0/24")]
        .iter()
        .enumerate()
    {
        let conf = json!({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "ptp", "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": ipam}}]});
        env.write_config(&format!("{i}0-{name}.conflist"), &conf.to_string());
    }
    // Built by `cargo test` (examples are), beside the test executable.
    let example = crate::support::workspace_bin("examples/pod_network");
    let out = Command::new("ip")
        .args(["netns", "exec", host.name()])
        .arg(&example)
        .args([
            env.net_d.to_str().unwrap(),
            REAL_PLUGIN_DIR,
            ctr.path_str(),
            "lcni-ex2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("eth0 (lcni-ex1): 10.77.8."), "{stdout}");
    assert!(stdout.contains("eth1 (lcni-ex2): 10.77.9."), "{stdout}");
    assert!(stdout.contains("detached 2 network(s)"), "{stdout}");
    for n in ["lcni-ex1", "lcni-ex2"] {
        assert!(reserved_ips(&env, n).is_empty(), "leaked in {n}");
    }
    assert!(
        !ctr.has_link("eth0") && !ctr.has_link("eth1"),
        "{:?}",
        ctr.links()
    );
}
