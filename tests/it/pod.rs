//! The pod facade: several networks per pod, rollback, teardown from the
//! cache, pod-level GC; with the test plugin and with the real plugins.

use std::sync::Arc;

use libcni::pod::{IfNames, NetworkRequest, Pod, PodNetworks};
use libcni::{ConfigLoader, ConfigWatcher};
use serde_json::{Value, json};

use crate::support::{TestEnv, stdin_of};

use crate::support::netns::block_on;

/// `NN-<name>.conflist` with one test plugin of type `<name>-p`.
fn network(env: &TestEnv, order: u8, name: &str, actions: Value) {
    let t = format!("{name}-p");
    env.plugin(&t);
    let conf = json!({"cniVersion": "1.1.0", "name": name, "plugins": [{"type": t, "testPlugin": actions}]});
    env.write_config(&format!("{order:02}-{name}.conflist"), &conf.to_string());
}

fn cmds(env: &TestEnv, plugin: &str) -> Vec<String> {
    env.calls(plugin)
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["command"].as_str().unwrap(),
                c["env"]["CNI_IFNAME"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn attach_default_and_extras_then_detach_in_reverse() {
    let env = TestEnv::new("pod-attach");
    let log = env.path("all.jsonl");
    let shared = json!({"log": log});
    network(&env, 10, "main", shared.clone());
    network(&env, 20, "extra1", shared.clone());
    network(&env, 30, "extra2", shared);
    let pods = PodNetworks::new(env.cni(), ConfigLoader::new(&env.net_d));
    let pod =
        Pod::new("pod1", "/run/netns/pod1").with_args(vec![("K8S_POD_NAME".into(), "web".into())]);
    let ifaces = block_on(pods.attach(
        &pod,
        &[NetworkRequest::new("extra1"), NetworkRequest::new("extra2")],
    ))
    .unwrap();
    let got: Vec<(String, String)> = ifaces
        .iter()
        .map(|i| (i.network.clone(), i.ifname.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("main".into(), "eth0".into()),
            ("extra1".into(), "eth1".into()),
            ("extra2".into(), "eth2".into())
        ]
    );
    assert_eq!(
        env.cache_files(),
        ["extra1-pod1-eth1", "extra2-pod1-eth2", "main-pod1-eth0"]
    );
    assert_eq!(
        env.calls("main-p")[0]["env"]["CNI_ARGS"],
        "K8S_POD_NAME=web"
    );
    block_on(pods.check(&pod)).unwrap();
    block_on(pods.detach(&pod)).unwrap();
    assert!(env.cache_files().is_empty());
    // One log for all three plugins: DEL went eth2, eth1, eth0.
    let dels: Vec<String> = crate::support::read_jsonl(&log)
        .iter()
        .filter(|c| c["command"] == "DEL")
        .map(|c| c["env"]["CNI_IFNAME"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dels, ["eth2", "eth1", "eth0"]);
}

#[test]
fn a_failing_network_rolls_back_the_others() {
    let env = TestEnv::new("pod-rollback");
    network(&env, 10, "main", json!({}));
    network(&env, 20, "ok", json!({}));
    network(
        &env,
        30,
        "bad",
        json!({"ADD": {"error": {"code": 11, "msg": "pool exhausted"}}}),
    );
    for parallel in [true, false] {
        let pods =
            PodNetworks::new(env.cni(), ConfigLoader::new(&env.net_d)).with_parallel(parallel);
        let pod = Pod::new("p2", "/run/netns/p2");
        let e = block_on(pods.attach(
            &pod,
            &[NetworkRequest::new("ok"), NetworkRequest::new("bad")],
        ))
        .unwrap_err();
        assert_eq!(e.network(), Some("bad"), "{e}");
        assert!(e.is_retryable(), "{e}");
        assert!(matches!(e.rollback(), Some(Ok(()))), "{e}");
        assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
        // Every network that got an ADD also got a DEL after it.
        for p in ["main-p", "ok-p", "bad-p"] {
            let c = cmds(&env, p);
            assert_eq!(
                c.iter().filter(|x| x.starts_with("ADD")).count(),
                c.iter().filter(|x| x.starts_with("DEL")).count(),
                "{p}: {c:?}"
            );
        }
    }
}

#[test]
fn a_config_deleted_or_changed_after_attach_still_detaches_with_the_cached_one() {
    let env = TestEnv::new("pod-teardown");
    network(&env, 10, "main", json!({}));
    network(&env, 20, "gone", json!({"tag": "v1"}));
    let pods = PodNetworks::new(env.cni(), ConfigLoader::new(&env.net_d));
    let pod = Pod::new("p3", "/run/netns/p3");
    block_on(pods.attach(&pod, &[NetworkRequest::new("gone").ifname("sidecar0")])).unwrap();
    std::fs::remove_file(env.net_d.join("20-gone.conflist")).unwrap();
    // The main network's config changes too: the cached one is used.
    network(
        &env,
        10,
        "main",
        json!({"ADD": {"error": {"code": 7, "msg": "changed"}}, "DEL": {"error": {"code": 7, "msg": "changed config used"}}}),
    );
    block_on(pods.detach(&pod)).unwrap();
    assert!(env.cache_files().is_empty());
    let del = env.calls("gone-p").into_iter().last().unwrap();
    assert_eq!(del["command"], "DEL");
    assert_eq!(stdin_of(&del)["testPlugin"]["tag"], "v1");
    assert_eq!(del["env"]["CNI_IFNAME"], "sidecar0");
}

#[test]
fn pod_gc_keeps_the_alive_and_collects_the_rest_even_without_config() {
    let env = TestEnv::new("pod-gc");
    network(&env, 10, "main", json!({}));
    network(&env, 20, "old", json!({}));
    let pods =
        PodNetworks::new(env.cni(), ConfigLoader::new(&env.net_d)).with_ifnames(IfNames::Multus {
            default: "eth0".into(),
            prefix: "net".into(),
        });
    for id in ["alive", "dead1", "dead2"] {
        block_on(pods.attach(
            &Pod::new(id, format!("/run/netns/{id}")),
            &[NetworkRequest::new("old")],
        ))
        .unwrap();
    }
    assert!(env.cache_files().contains(&"old-dead1-net1".to_owned()));
    std::fs::remove_file(env.net_d.join("20-old.conflist")).unwrap();
    let mut deleted = block_on(pods.gc(&["alive"])).unwrap();
    deleted.sort();
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    assert_eq!(env.cache_files(), ["main-alive-eth0", "old-alive-net1"]);
    // The current network's plugin GC got the alive attachment as valid.
    let gc = env
        .calls("main-p")
        .into_iter()
        .find(|c| c["command"] == "GC")
        .unwrap();
    assert_eq!(
        stdin_of(&gc)["cni.dev/valid-attachments"],
        json!([{"containerID": "alive", "ifname": "eth0"}])
    );
}

#[test]
fn the_facade_reads_a_watchers_snapshot_and_attaches_loopback_first() {
    let env = TestEnv::new("pod-watch");
    network(&env, 10, "main", json!({}));
    env.plugin("loopback");
    let watcher = ConfigWatcher::builder(&env.net_d)
        .plugin_dirs([&env.bin])
        .start()
        .unwrap();
    let pods = PodNetworks::with_watcher(env.cni(), Arc::new(watcher)).with_loopback(true);
    let pod = Pod::new("p5", "/run/netns/p5");
    let ifaces = block_on(pods.attach(&pod, &[])).unwrap();
    let names: Vec<&str> = ifaces.iter().map(|i| i.ifname.as_str()).collect();
    assert_eq!(names, ["lo", "eth0"]);
    block_on(pods.detach(&pod)).unwrap();
    assert_eq!(cmds(&env, "loopback"), ["ADD lo", "DEL lo"]);
    assert!(env.cache_files().is_empty());
}

#[test]
fn status_of_the_default_network_is_bounded() {
    let env = TestEnv::new("pod-status");
    network(&env, 10, "main", json!({"STATUS": {"hang": true}}));
    let pods = PodNetworks::new(env.cni(), ConfigLoader::new(&env.net_d));
    let e = block_on(pods.status(std::time::Duration::from_millis(200))).unwrap_err();
    assert!(e.is_timeout() && e.network() == Some("main"), "{e}");
    network(
        &env,
        10,
        "main",
        json!({"STATUS": {"error": {"code": 50, "msg": "not yet"}}}),
    );
    assert!(
        block_on(pods.status(std::time::Duration::from_secs(60)))
            .unwrap_err()
            .is_not_ready()
    );
    network(&env, 10, "main", json!({}));
    block_on(pods.status(std::time::Duration::from_secs(60))).unwrap();
}
