//! Soak with the real plugins: 8 workers ADD and DEL a pool of overlapping
//! attachments (bridge + host-local, each container in its own network
//! namespace, all inside a private host namespace). Afterwards the cache is
//! empty, host-local's store holds no address, no veth is left on either
//! side, the namespaces go, and no plugin process is left.
//!
//! Also here: DEL after the container's namespace was deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libcni::{Cni, ConfigLoader, NetworkConfigList, RuntimeConfig};
use serde_json::json;

use super::{Rng, assert_cache_clean, names, plugins_running_for, scale};
use crate::support::TestEnv;
use crate::support::netns::{NetNs, REAL_PLUGIN_DIR, block_on, real_prereqs, run_in};

fn network(env: &TestEnv, name: &str, bridge: &str, subnet: &str) -> NetworkConfigList {
    let conf = json!({"cniVersion": "1.0.0", "name": name, "plugins": [{
        "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
        "ipam": {"type": "host-local", "subnet": subnet,
                 "dataDir": env.path("ipam")}
    }]});
    env.write_config(&format!("10-{name}.conflist"), &conf.to_string());
    ConfigLoader::new(&env.net_d).network(name).unwrap()
}

fn real_cni(env: &TestEnv) -> Cni {
    Cni::new([REAL_PLUGIN_DIR])
        .with_cache_dir(&env.cache)
        .with_timeout(Duration::from_secs(60))
        .with_rollback(true)
}

/// The addresses host-local still holds for `network`.
fn reserved(env: &TestEnv, network: &str) -> Vec<String> {
    names(&env.path("ipam").join(network))
        .into_iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

fn veths(ns: &NetNs) -> Vec<String> {
    ns.links()
        .into_iter()
        .filter(|l| l != "lo" && !l.starts_with("lcsoak"))
        .collect()
}

#[test]
fn eight_workers_on_overlapping_attachments_leave_nothing() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("adv-soak");
    let list = network(&env, "soak", "lcsoak0", "10.77.0.0/24");
    let host = NetNs::host("soakhost");
    let pool: Vec<NetNs> = (0..6).map(|i| NetNs::new(&format!("soak{i}"))).collect();
    let prefix = format!("lcadv-soak-{}-", std::process::id());
    let per_worker = 10 * scale();
    let cni = real_cni(&env);
    let (adds_ok, adds_failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    run_in(&host, || {
        block_on(async {
            let mut tasks = Vec::new();
            for w in 0..8 {
                let (cni, list) = (cni.clone(), list.clone());
                let targets: Vec<(String, String)> = pool
                    .iter()
                    .enumerate()
                    .map(|(i, ns)| (format!("{prefix}{i}"), ns.path_str().to_owned()))
                    .collect();
                let (ok, failed) = (adds_ok.clone(), adds_failed.clone());
                let mut rng = Rng::new(&format!("soak worker {w}"));
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per_worker {
                        let (cid, netns) = &targets[rng.below(targets.len() as u64) as usize];
                        let rt = RuntimeConfig::new(cid, netns, "eth0");
                        // Another worker may hold the same attachment: the
                        // ADD may fail (and roll back); the DEL never may.
                        match cni.add_network_list(&list, &rt).await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        cni.del_network_list(&list, &rt)
                            .await
                            .unwrap_or_else(|e| panic!("DEL {cid}: {e}"));
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    eprintln!(
        "soak: {} ADDs succeeded, {} failed on a held attachment (8 workers x {per_worker})",
        adds_ok.load(Ordering::Relaxed),
        adds_failed.load(Ordering::Relaxed)
    );
    assert!(adds_ok.load(Ordering::Relaxed) > 0);
    assert_cache_clean(&env.cache);
    assert!(
        reserved(&env, "soak").is_empty(),
        "{:?}",
        reserved(&env, "soak")
    );
    assert!(
        veths(&host).is_empty(),
        "host veths left: {:?}",
        veths(&host)
    );
    for ns in &pool {
        assert_eq!(ns.links(), ["lo"], "{}", ns.name());
    }
    assert!(plugins_running_for(&prefix).is_empty());
    let paths: Vec<_> = pool.iter().map(|n| n.path().to_owned()).collect();
    drop(pool);
    for p in paths {
        assert!(!p.exists(), "{} left", p.display());
    }
}

#[test]
fn del_after_the_netns_was_deleted_releases_the_address() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("adv-gone-ns");
    let list = network(&env, "gonens", "lcsoak1", "10.78.0.0/24");
    let host = NetNs::host("gonehost");
    let ctr = NetNs::new("gonectr");
    let cid = format!("lcadv-gone-{}", std::process::id());
    let rt = RuntimeConfig::new(&cid, ctr.path_str(), "eth0");
    let cni = real_cni(&env);
    run_in(&host, || block_on(cni.add_network_list(&list, &rt))).unwrap();
    assert_eq!(reserved(&env, "gonens").len(), 1);
    drop(ctr);
    // libcni's answer: DEL succeeds (the plugins treat a missing netns as
    // nothing to clean in it) and releases the address.
    run_in(&host, || block_on(cni.del_network_list(&list, &rt))).unwrap();
    assert!(reserved(&env, "gonens").is_empty());
    assert!(veths(&host).is_empty(), "{:?}", veths(&host));
    assert_cache_clean(&env.cache);
    // And again: still fine.
    run_in(&host, || block_on(cni.del_network_list(&list, &rt))).unwrap();
}
