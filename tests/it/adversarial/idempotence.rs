//! Idempotence: DEL twice, DEL of a never-added attachment, DEL over a
//! 0-byte or garbage cache file, CHECK without a cache, GC twice. Each
//! gives the answer the README documents and leaves nothing behind.
//! (DEL after the netns is gone, with the real plugins, is in `soak.rs`.)

use libcni::{ErrorKind, NetworkConfigList, RuntimeConfig};
use serde_json::{Value, json};

use super::assert_cache_clean;
use crate::support::{TestEnv, block_on_mt as block_on, stdin_of};

fn list(env: &TestEnv, version: &str) -> NetworkConfigList {
    env.plugin("idem");
    env.list(
        &json!({"cniVersion": version, "name": "idem", "plugins": [{"type": "idem"}]}).to_string(),
    )
}

fn dels(env: &TestEnv) -> Vec<Value> {
    env.calls("idem")
        .into_iter()
        .filter(|c| c["command"] == "DEL")
        .collect()
}

#[test]
fn del_twice_succeeds_and_the_second_runs_without_prev_result() {
    let env = TestEnv::new("adv-del2");
    let l = list(&env, "1.1.0");
    let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0");
    let cni = env.cni();
    block_on(cni.add_network_list(&l, &rt)).unwrap();
    block_on(cni.del_network_list(&l, &rt)).unwrap();
    block_on(cni.del_network_list(&l, &rt)).unwrap();
    let d = dels(&env);
    assert_eq!(d.len(), 2);
    assert!(stdin_of(&d[0]).get("prevResult").is_some());
    assert!(stdin_of(&d[1]).get("prevResult").is_none());
    assert_cache_clean(&env.cache);
}

#[test]
fn del_of_something_never_added_runs_the_plugins_and_leaves_nothing() {
    let env = TestEnv::new("adv-del-never");
    let l = list(&env, "1.1.0");
    let cni = env.cni();
    block_on(cni.del_network_list(&l, &RuntimeConfig::new("ghost", "", "eth0"))).unwrap();
    assert_eq!(dels(&env).len(), 1);
    assert_cache_clean(&env.cache);
}

#[test]
fn del_over_an_empty_or_garbage_cache_file_deletes_without_prev_result() {
    for (i, bytes) in [
        &b""[..],
        b"garbage",
        b"{\"kind\":\"cniCacheV1\",\"result\":",
        b"\xff\xfe\x00",
        b"{\"kind\":\"cniCacheV1\",\"result\":{\"cniVersion\":\"9.9.9\"}}",
    ]
    .into_iter()
    .enumerate()
    {
        let env = TestEnv::new("adv-del-garbage");
        let l = list(&env, "1.1.0");
        let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0");
        std::fs::create_dir_all(env.cache.join("results")).unwrap();
        std::fs::write(env.cache.join("results/idem-c1-eth0"), bytes).unwrap();
        let cni = env.cni();
        // CHECK refuses the unusable cache with a typed error naming it.
        let e = block_on(cni.check_network_list(&l, &rt)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Cache { .. }),
            "case {i}: {e:?}"
        );
        assert!(
            e.path().is_some_and(|p| p.ends_with("idem-c1-eth0")),
            "{e:?}"
        );
        // DEL goes on without prevResult and removes the bad file.
        block_on(cni.del_network_list(&l, &rt)).unwrap();
        let d = dels(&env);
        assert_eq!(d.len(), 1, "case {i}");
        assert!(stdin_of(&d[0]).get("prevResult").is_none(), "case {i}");
        assert_cache_clean(&env.cache);
    }
}

#[test]
fn check_without_a_cache_runs_without_prev_result_as_libcni() {
    let env = TestEnv::new("adv-check-nocache");
    let l = list(&env, "1.1.0");
    let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0");
    block_on(env.cni().check_network_list(&l, &rt)).unwrap();
    let checks: Vec<Value> = env
        .calls("idem")
        .into_iter()
        .filter(|c| c["command"] == "CHECK")
        .collect();
    assert_eq!(checks.len(), 1);
    assert!(stdin_of(&checks[0]).get("prevResult").is_none());
    assert_cache_clean(&env.cache);
}

#[test]
fn gc_twice_collects_once_then_nothing() {
    let env = TestEnv::new("adv-gc2");
    let l = list(&env, "1.1.0");
    let cni = env.cni();
    block_on(async {
        for c in ["a", "b"] {
            cni.add_network_list(&l, &RuntimeConfig::new(c, "/run/netns/x", "eth0"))
                .await
                .unwrap();
        }
    });
    let first = block_on(cni.gc_network_list(&l, Some(&[]))).unwrap();
    assert_eq!(first.deleted.len(), 2);
    let second = block_on(cni.gc_network_list(&l, Some(&[]))).unwrap();
    assert!(second.deleted.is_empty(), "{second:?}");
    assert_eq!(second.plugins, ["idem"]);
    assert_cache_clean(&env.cache);
}

/// A DEL that fails keeps the entry (so it can be retried), and the retry
/// cleans up.
#[test]
fn a_failed_del_keeps_the_entry_for_the_retry() {
    let env = TestEnv::new("adv-del-retry");
    env.plugin("flaky");
    let mk = |fail: bool| {
        let del = if fail {
            json!({"error": {"code": 11, "msg": "busy"}})
        } else {
            json!({})
        };
        env.list(
            &json!({"cniVersion": "1.1.0", "name": "retry",
                    "plugins": [{"type": "flaky", "testPlugin": {"DEL": del}}]})
            .to_string(),
        )
    };
    let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0");
    let cni = env.cni();
    block_on(cni.add_network_list(&mk(false), &rt)).unwrap();
    let e = block_on(cni.del_network_list(&mk(true), &rt)).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(env.cache_files(), ["retry-c1-eth0"]);
    block_on(cni.del_network_list(&mk(false), &rt)).unwrap();
    assert_cache_clean(&env.cache);
}
