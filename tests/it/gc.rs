//! GC and STATUS (spec 1.1.0, libcni 1.3 semantics) against the test plugin.

use std::os::fd::AsRawFd;
use std::time::Duration;

use libcni::{AttachmentId, ErrorCode, ErrorKind, GcFailure, NetworkConfigList, RuntimeConfig};
use serde_json::{Value, json};

use crate::support::{TestEnv, stdin_of};

use crate::support::block_on_mt as block_on;

/// A conflist of test plugins with extra top-level keys.
fn conflist(
    env: &TestEnv,
    name: &str,
    version: &str,
    extra: Value,
    plugins: &[(&str, Value)],
) -> NetworkConfigList {
    let plugins: Vec<Value> = plugins
        .iter()
        .map(|(t, actions)| {
            env.plugin(t);
            json!({"type": t, "testPlugin": actions, "capabilities": {"portMappings": true}})
        })
        .collect();
    let mut v = json!({"cniVersion": version, "name": name, "plugins": plugins});
    if let (Some(o), Value::Object(extra)) = (v.as_object_mut(), extra) {
        o.extend(extra);
    }
    env.list(&v.to_string())
}

fn rt(cid: &str) -> RuntimeConfig {
    RuntimeConfig::new(cid, format!("/var/run/netns/{cid}"), "eth0")
        .arg("K8S_POD_NAME", cid)
        .capability_arg(
            "portMappings",
            json!([{"hostPort": 8080, "containerPort": 80}]),
        )
}

fn calls_of(env: &TestEnv, plugin: &str, command: &str) -> Vec<Value> {
    env.calls(plugin)
        .into_iter()
        .filter(|c| c["command"] == command)
        .collect()
}

fn valid(pairs: &[(&str, &str)]) -> Vec<AttachmentId> {
    pairs
        .iter()
        .map(|(c, i)| AttachmentId::new(*c, *i))
        .collect()
}

#[test]
fn gc_deletes_stale_attachments_then_runs_plugin_gc_with_the_valid_set() {
    let env = TestEnv::new("gc-valid");
    let list = conflist(
        &env,
        "gcnet",
        "1.1.0",
        json!({}),
        &[("a", json!({})), ("b", json!({}))],
    );
    let other = conflist(&env, "other", "1.1.0", json!({}), &[("a", json!({}))]);
    let cni = env.cni();
    block_on(async {
        for cid in ["c3", "c1", "c2"] {
            cni.add_network_list(&list, &rt(cid)).await.unwrap();
        }
        cni.add_network_list(&other, &rt("c1")).await.unwrap();
    });
    let report = block_on(cni.gc_network_list(&list, Some(&valid(&[("c2", "eth0")])))).unwrap();
    assert_eq!(report.deleted, valid(&[("c1", "eth0"), ("c3", "eth0")]));
    assert_eq!(report.plugins, ["a", "b"]);
    assert!(report.skipped.is_empty());
    assert_eq!(env.cache_files(), ["gcnet-c2-eth0", "other-c1-eth0"]);
    // The stale DELs: in file-name order, plugins in reverse, with the netns,
    // CNI_ARGS and capability arguments cached at ADD, and the cached result.
    let dels = calls_of(&env, "a", "DEL");
    let cids: Vec<&str> = dels
        .iter()
        .map(|c| c["env"]["CNI_CONTAINERID"].as_str().unwrap())
        .collect();
    assert_eq!(cids, ["c1", "c3"]);
    for d in &dels {
        let cid = d["env"]["CNI_CONTAINERID"].as_str().unwrap();
        assert_eq!(d["env"]["CNI_NETNS"], format!("/var/run/netns/{cid}"));
        assert_eq!(d["env"]["CNI_ARGS"], format!("K8S_POD_NAME={cid}"));
        let stdin = stdin_of(d);
        assert_eq!(
            stdin["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80}]})
        );
        assert_eq!(stdin["prevResult"]["cniVersion"], "1.1.0");
    }
    // Plugin GC: forward, after the DELs, with both keys, and only the
    // command and CNI_PATH set.
    for p in ["a", "b"] {
        let gcs = calls_of(&env, p, "GC");
        assert_eq!(gcs.len(), 1, "{p}");
        let stdin = stdin_of(&gcs[0]);
        let want = json!([{"containerID": "c2", "ifname": "eth0"}]);
        assert_eq!(stdin["cni.dev/valid-attachments"], want);
        assert_eq!(stdin["cni.dev/attachments"], want);
        assert_eq!(stdin["name"], "gcnet");
        assert_eq!(stdin["cniVersion"], "1.1.0");
        assert!(stdin.get("runtimeConfig").is_none());
        assert!(stdin.get("prevResult").is_none());
        let e = &gcs[0]["env"];
        assert_eq!(e["CNI_PATH"], env.bin.to_str().unwrap());
        for k in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"] {
            assert_eq!(e[k], "", "{k}");
        }
    }
    let a = env.calls("a");
    let first_gc = a.iter().position(|c| c["command"] == "GC").unwrap();
    assert!(a[first_gc..].iter().all(|c| c["command"] == "GC"));
    // The lock files of the deleted attachments are gone too.
    let mut locks: Vec<String> = std::fs::read_dir(env.cache.join("locks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    locks.sort();
    assert_eq!(locks, ["gcnet-c2-eth0", "other-c1-eth0"]);
}

#[test]
fn gc_without_a_valid_set_collects_everything_and_sends_no_keys() {
    let env = TestEnv::new("gc-all");
    let list = conflist(&env, "gcnet", "1.1.0", json!({}), &[("a", json!({}))]);
    let cni = env.cni();
    block_on(async {
        cni.add_network_list(&list, &rt("c1")).await.unwrap();
        cni.add_network_list(&list, &rt("c2")).await.unwrap();
    });
    let report = block_on(cni.gc_network_list(&list, None)).unwrap();
    assert_eq!(report.deleted.len(), 2);
    assert!(env.cache_files().is_empty());
    let gc = &calls_of(&env, "a", "GC")[0];
    let stdin = stdin_of(gc);
    assert!(stdin.get("cni.dev/valid-attachments").is_none());
    assert!(stdin.get("cni.dev/attachments").is_none());
    // An empty valid set is a set: everything is stale, and `[]` is sent.
    block_on(cni.add_network_list(&list, &rt("c3"))).unwrap();
    let report = block_on(cni.gc_network_list(&list, Some(&[]))).unwrap();
    assert_eq!(report.deleted, valid(&[("c3", "eth0")]));
    let gc = calls_of(&env, "a", "GC").pop().unwrap();
    assert_eq!(stdin_of(&gc)["cni.dev/valid-attachments"], json!([]));
}

#[test]
fn gc_below_1_1_0_deletes_stale_attachments_but_runs_no_plugin_gc() {
    let env = TestEnv::new("gc-100");
    let list = conflist(&env, "old", "1.0.0", json!({}), &[("a", json!({}))]);
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    let report = block_on(cni.gc_network_list(&list, None)).unwrap();
    assert_eq!(report.deleted, valid(&[("c1", "eth0")]));
    assert!(report.plugins.is_empty());
    assert!(calls_of(&env, "a", "GC").is_empty());
    assert_eq!(calls_of(&env, "a", "DEL").len(), 1);
    assert!(env.cache_files().is_empty());
}

#[test]
fn disable_gc_as_bool_or_string_does_nothing() {
    for (i, flag) in [json!(true), json!("true"), json!("TRUE")]
        .into_iter()
        .enumerate()
    {
        let env = TestEnv::new(&format!("gc-disabled-{i}"));
        let list = conflist(
            &env,
            "off",
            "1.1.0",
            json!({"disableGC": flag}),
            &[("a", json!({}))],
        );
        let cni = env.cni();
        block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
        let report = block_on(cni.gc_network_list(&list, None)).unwrap();
        assert!(report.deleted.is_empty() && report.plugins.is_empty());
        assert_eq!(env.cache_files(), ["off-c1-eth0"], "{flag}");
        assert_eq!(env.calls("a").len(), 1, "{flag}: only the ADD ran");
    }
}

#[test]
fn gc_goes_on_past_failures_and_names_each_one() {
    let env = TestEnv::new("gc-fail");
    let good = conflist(
        &env,
        "gcnet",
        "1.1.0",
        json!({}),
        &[("a", json!({})), ("b", json!({})), ("c", json!({}))],
    );
    let cni = env.cni();
    block_on(async {
        cni.add_network_list(&good, &rt("c1")).await.unwrap();
        cni.add_network_list(&good, &rt("c2")).await.unwrap();
    });
    // The same network, now with a failing DEL in `c` and a failing GC in `b`.
    let failing = conflist(
        &env,
        "gcnet",
        "1.1.0",
        json!({}),
        &[
            ("a", json!({})),
            ("b", json!({"GC": {"error": {"code": 11, "msg": "busy"}}})),
            ("c", json!({"DEL": {"error": {"code": 7, "msg": "no del"}}})),
        ],
    );
    let e = block_on(cni.gc_network_list(&failing, None)).unwrap_err();
    let ErrorKind::Gc { failures, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(failures.len(), 3, "{e}");
    let stale: Vec<&str> = failures
        .iter()
        .filter_map(|f| match f {
            GcFailure::StaleAttachment {
                container_id,
                ifname,
                error,
                ..
            } => {
                assert_eq!(ifname, "eth0");
                assert_eq!(error.plugin(), Some("c"));
                Some(container_id.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(stale, ["c1", "c2"]);
    let GcFailure::Plugin { plugin, error, .. } = &failures[2] else {
        panic!("{failures:?}")
    };
    assert_eq!(plugin, "b");
    assert!(error.is_retryable(), "{error}");
    // Every plugin's GC ran, past the failure of `b`.
    for p in ["a", "b", "c"] {
        assert_eq!(calls_of(&env, p, "GC").len(), 1, "{p}");
    }
    // The failed DELs keep their cache entries for the next GC.
    assert_eq!(env.cache_files(), ["gcnet-c1-eth0", "gcnet-c2-eth0"]);
    assert_eq!(e.network(), Some("gcnet"));
    let text = e.to_string();
    assert!(
        text.contains("c1/eth0") && text.contains("plugin `b`"),
        "{text}"
    );
}

#[test]
fn gc_skips_corrupt_and_foreign_cache_files() {
    let env = TestEnv::new("gc-corrupt");
    let list = conflist(&env, "gcnet", "1.1.0", json!({}), &[("a", json!({}))]);
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    let results = env.cache.join("results");
    std::fs::write(results.join("gcnet-garbage-eth0"), "{{not json").unwrap();
    std::fs::write(results.join("gcnet-empty-eth0"), "").unwrap();
    std::fs::write(results.join("gcnet-foreign-eth0"), r#"{"kind":"other"}"#).unwrap();
    let report = block_on(cni.gc_network_list(&list, None)).unwrap();
    assert_eq!(report.deleted, valid(&[("c1", "eth0")]));
    let mut skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|e| {
            assert!(matches!(e.kind(), ErrorKind::Cache { .. }), "{e}");
            e.path()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "gcnet-empty-eth0",
            "gcnet-foreign-eth0",
            "gcnet-garbage-eth0"
        ]
    );
    // Left as they are: GC never removes what it cannot read.
    assert_eq!(
        env.cache_files(),
        [
            "gcnet-empty-eth0",
            "gcnet-foreign-eth0",
            "gcnet-garbage-eth0"
        ]
    );
}

#[test]
fn gc_sweeps_lock_files_without_an_entry_but_not_held_ones() {
    let env = TestEnv::new("gc-locks");
    let list = conflist(&env, "gcnet", "1.1.0", json!({}), &[("a", json!({}))]);
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("keep"))).unwrap();
    let locks = env.cache.join("locks");
    std::fs::write(locks.join("gcnet-orphan-eth0"), "").unwrap();
    std::fs::write(locks.join("gcnet-held-eth0"), "").unwrap();
    let held = std::fs::File::open(locks.join("gcnet-held-eth0")).unwrap();
    // SAFETY: flock on a file we own.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let report = block_on(cni.gc_network_list(&list, Some(&valid(&[("keep", "eth0")])))).unwrap();
    assert_eq!(report.swept_lock_files, 1);
    let mut names: Vec<String> = std::fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["gcnet-held-eth0", "gcnet-keep-eth0"]);
    drop(held);
}

#[test]
fn status_runs_each_plugin_and_returns_the_first_not_ready() {
    let env = TestEnv::new("status");
    let list = conflist(
        &env,
        "st",
        "1.1.0",
        json!({}),
        &[
            ("a", json!({})),
            (
                "b",
                json!({"STATUS": {"error": {"code": 50, "msg": "no IPs left"}}}),
            ),
            ("c", json!({})),
        ],
    );
    let cni = env.cni();
    let e = block_on(cni.status_network_list(&list)).unwrap_err();
    assert!(e.is_not_ready(), "{e}");
    assert_eq!(e.plugin_error().unwrap().code(), ErrorCode::NotAvailable);
    assert_eq!(e.plugin(), Some("b"));
    assert_eq!(e.network(), Some("st"));
    assert!(
        calls_of(&env, "c", "STATUS").is_empty(),
        "stops at the first error"
    );
    let call = &calls_of(&env, "a", "STATUS")[0];
    let stdin = stdin_of(call);
    assert_eq!(stdin["name"], "st");
    assert_eq!(stdin["cniVersion"], "1.1.0");
    assert!(stdin.get("runtimeConfig").is_none());
    assert_eq!(call["env"]["CNI_PATH"], env.bin.to_str().unwrap());
    assert_eq!(call["env"]["CNI_CONTAINERID"], "");
    // Code 51 is "not ready" too; another code is an ordinary failure.
    let limited = conflist(
        &env,
        "st51",
        "1.1.0",
        json!({}),
        &[(
            "d",
            json!({"STATUS": {"error": {"code": 51, "msg": "degraded"}}}),
        )],
    );
    assert!(
        block_on(cni.status_network_list(&limited))
            .unwrap_err()
            .is_not_ready()
    );
    let other = conflist(
        &env,
        "st7",
        "1.1.0",
        json!({}),
        &[("e", json!({"STATUS": {"error": {"code": 7, "msg": "bad"}}}))],
    );
    assert!(
        !block_on(cni.status_network_list(&other))
            .unwrap_err()
            .is_not_ready()
    );
}

#[test]
fn status_below_1_1_0_runs_nothing_and_is_ready() {
    let env = TestEnv::new("status-old");
    for v in ["1.0.0", "0.4.0", "bogus-but-loaded"] {
        let text = json!({"cniVersion": v, "name": "n", "plugins": [{"type": "a", "testPlugin": {"STATUS": {"error": {"code": 50, "msg": "x"}}}}]});
        env.plugin("a");
        let Ok(list) = NetworkConfigList::from_bytes(text.to_string().as_bytes()) else {
            continue; // an unparsable version is refused at load
        };
        block_on(env.cni().status_network_list(&list)).unwrap();
    }
    assert!(env.calls("a").is_empty());
}

#[test]
fn status_answers_while_an_add_on_the_network_is_running() {
    let env = TestEnv::new("status-busy");
    let started = env.path("add-started");
    let release = env.path("add-release");
    let list = conflist(
        &env,
        "busy",
        "1.1.0",
        json!({}),
        &[(
            "a",
            json!({"ADD": {"touch": started.to_str().unwrap(), "waitFor": release.to_str().unwrap()}}),
        )],
    );
    let cni = env.cni();
    let attachment = rt("c1");
    block_on(async {
        let add = cni.add_network_list(&list, &attachment);
        let status = async {
            while !started.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The ADD holds the attachment's locks and is still running: it
            // waits for `release`, written only once STATUS returned. A
            // STATUS that waited for the ADD would deadlock; the bound turns
            // that into a failure instead of a hang.
            let res = tokio::time::timeout(Duration::from_secs(60), cni.status_network_list(&list))
                .await
                .expect("STATUS waited for the running ADD");
            std::fs::write(&release, "").unwrap();
            res
        };
        let (added, status) = tokio::join!(add, status);
        added.unwrap();
        status.unwrap();
    });
    let cmds: Vec<Value> = env
        .calls("a")
        .iter()
        .map(|c| c["command"].clone())
        .collect();
    assert_eq!(cmds, [json!("ADD"), json!("STATUS")]);
}

#[test]
fn a_missing_plugin_fails_only_its_own_gc() {
    let env = TestEnv::new("gc-missing");
    env.plugin("a");
    env.plugin("c");
    let list = env.list(
        r#"{"cniVersion":"1.1.0","name":"gm","plugins":[{"type":"a"},{"type":"gone"},{"type":"c"}]}"#,
    );
    let e = block_on(env.cni().gc_network_list(&list, None)).unwrap_err();
    let ErrorKind::Gc { failures, .. } = e.kind() else {
        panic!("{e:?}")
    };
    assert_eq!(failures.len(), 1, "{e}");
    let GcFailure::Plugin { plugin, error, .. } = &failures[0] else {
        panic!("{failures:?}")
    };
    assert_eq!(plugin, "gone");
    assert!(
        matches!(error.kind(), ErrorKind::PluginNotFound { .. }),
        "{error}"
    );
    assert_eq!(calls_of(&env, "a", "GC").len(), 1);
    assert_eq!(calls_of(&env, "c", "GC").len(), 1);
}
