//! The pod facade under churn: 8 workers attach pods to three networks
//! (each a host-local allocation followed by a test plugin that fails at
//! random) while the config dir is rewritten, broken, deleted and restored
//! under a live `ConfigWatcher`. Every failed attach is rolled back with no
//! cache entry and no address left; the watcher never publishes a snapshot
//! without a network that had a good version and whose file still exists;
//! GC with the true set of live pods removes exactly the leftovers; and at
//! the end every pod is detached and host-local's stores are empty.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libcni::pod::{NetworkRequest, Pod, PodNetworks};
use libcni::{Cni, ConfigWatcher};
use serde_json::json;

use super::{Rng, assert_cache_clean, names, scale};
use crate::support::TestEnv;
use crate::support::netns::{REAL_PLUGIN_DIR, real_prereqs};

fn conf(env: &TestEnv, name: &str, octet: u8, fail_rate: f64) -> String {
    env.plugin(&format!("{name}-p"));
    json!({"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "host-local",
         "ipam": {"type": "host-local", "subnet": format!("10.79.{octet}.0/24"),
                  "dataDir": env.path("ipam")}},
        {"type": format!("{name}-p"), "testPlugin": {"ADD": {"failRate": fail_rate}}}
    ]})
    .to_string()
}

fn reserved(env: &TestEnv, network: &str) -> Vec<String> {
    names(&env.path("ipam").join(network))
        .into_iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

#[test]
fn pods_under_config_churn_and_random_failures_end_clean() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("adv-churn");
    let files = [
        ("a", 1u8, "10-a.conflist"),
        ("b", 2, "20-b.conflist"),
        ("c", 3, "30-c.conflist"),
    ];
    for (n, o, f) in files {
        env.write_config(f, &conf(&env, n, o, 0.1));
    }
    let watcher = Arc::new(
        ConfigWatcher::builder(&env.net_d)
            .plugin_dirs([env.bin.clone(), REAL_PLUGIN_DIR.into()])
            .debounce(Duration::from_millis(10))
            .start()
            .unwrap(),
    );
    let cni = Cni::new([env.bin.clone(), REAL_PLUGIN_DIR.into()])
        .with_cache_dir(&env.cache)
        .with_timeout(Duration::from_secs(60));
    let pods = Arc::new(PodNetworks::with_watcher(cni, watcher.clone()));
    let stop = Arc::new(AtomicBool::new(false));

    // The churner: rewrites b (valid, then broken, then valid) and c (also
    // deleted and restored); a is never touched.
    let churner = {
        let (stop, net_d) = (stop.clone(), env.net_d.clone());
        let good: Vec<(String, String)> = files[1..]
            .iter()
            .map(|(n, o, f)| (f.to_string(), conf(&env, n, *o, 0.15)))
            .collect();
        std::thread::spawn(move || {
            let mut rng = Rng::new("churn config");
            let mut changes = 0;
            while !stop.load(Ordering::Relaxed) {
                let (file, text) = &good[rng.below(2) as usize];
                let path = net_d.join(file);
                // Broken or deleted for a moment, then restored; or
                // rewritten (a new failure rate) in place.
                match rng.below(3) {
                    0 => {
                        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
                        std::thread::sleep(Duration::from_millis(rng.below(15)));
                        std::fs::write(&path, text).unwrap();
                    }
                    1 if file.starts_with("30") => {
                        let _ = std::fs::remove_file(&path);
                        std::thread::sleep(Duration::from_millis(rng.below(15)));
                        std::fs::write(&path, text).unwrap();
                    }
                    _ => std::fs::write(&path, text).unwrap(),
                }
                changes += 1;
                std::thread::sleep(Duration::from_millis(5 + rng.below(30)));
            }
            for (file, text) in &good {
                std::fs::write(net_d.join(file), text).unwrap();
            }
            changes
        })
    };

    let per_worker = 12 * scale();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (live, dead, snapshots) = rt.block_on(async {
        // The snapshot checker: a and b always there once seen.
        let mut updates = watcher.subscribe();
        let checker_stop = stop.clone();
        let checker = tokio::spawn(async move {
            let mut seen = 0;
            while !checker_stop.load(Ordering::Relaxed) {
                let Ok(Some(s)) =
                    tokio::time::timeout(Duration::from_millis(50), updates.changed()).await
                else {
                    continue;
                };
                seen += 1;
                let got: Vec<&str> = s.networks().iter().map(|n| n.name()).collect();
                assert!(
                    got.contains(&"a") && got.contains(&"b"),
                    "snapshot {} lost a network with a good version: {got:?}",
                    s.generation()
                );
            }
            seen
        });
        let mut workers = Vec::new();
        for w in 0..8 {
            let pods = pods.clone();
            workers.push(tokio::spawn(async move {
                let (mut live, mut dead) = (Vec::new(), Vec::new());
                for i in 0..per_worker {
                    let id = format!("w{w}-p{i}");
                    let pod = Pod::new(&id, format!("/run/netns/{id}"));
                    let extras = [NetworkRequest::new("b"), NetworkRequest::new("c")];
                    match pods.attach(&pod, &extras).await {
                        Ok(ifaces) => {
                            assert_eq!(ifaces.len(), 3);
                            match i % 4 {
                                0 => live.push(id),
                                1 => dead.push(id),
                                _ => pods.detach(&pod).await.unwrap(),
                            }
                        }
                        Err(e) => {
                            // Rolled back, or failed before anything ran.
                            assert!(matches!(e.rollback(), None | Some(Ok(()))), "{id}: {e}");
                            eprintln!("churn: attach {id} failed: {e}");
                            let left = pods.cni().cached_attachments(Some(&id)).unwrap();
                            assert!(left.is_empty(), "{id}: {left:?} after {e}");
                        }
                    }
                }
                (live, dead)
            }));
        }
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        for w in workers {
            let (l, d) = w.await.unwrap();
            live.extend(l);
            dead.extend(d);
        }
        stop.store(true, Ordering::Relaxed);
        let snapshots = checker.await.unwrap();
        (live, dead, snapshots)
    });
    let changes = churner.join().unwrap();
    eprintln!(
        "churn: {changes} config changes, {snapshots} snapshots checked, {} live and {} dead pods",
        live.len(),
        dead.len()
    );
    rt.block_on(async {
        // The watcher sees all three networks again.
        watcher
            .subscribe()
            .wait_for(|s| s.networks().len() == 3)
            .await
            .unwrap();
        let alive: Vec<&str> = live.iter().map(String::as_str).collect();
        let deleted = pods.gc(&alive).await.unwrap();
        let got: BTreeSet<(String, String)> = deleted
            .iter()
            .map(|a| (a.container_id().to_owned(), a.ifname().to_owned()))
            .collect();
        let want: BTreeSet<(String, String)> = dead
            .iter()
            .flat_map(|id| ["eth0", "eth1", "eth2"].map(|i| (id.clone(), i.to_owned())))
            .collect();
        assert_eq!(
            got, want,
            "GC must remove exactly the dead pods' attachments"
        );
        for (n, _, _) in files {
            assert_eq!(reserved(&env, n).len(), live.len(), "network {n}");
        }
        for id in &live {
            pods.detach(&Pod::new(id, format!("/run/netns/{id}")))
                .await
                .unwrap();
        }
    });
    for (n, _, _) in files {
        assert!(reserved(&env, n).is_empty(), "{n}: {:?}", reserved(&env, n));
    }
    assert_cache_clean(&env.cache);
}
