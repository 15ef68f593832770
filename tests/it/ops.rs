//! Operations against the test plugin: chaining, ordering, injection,
//! errors, timeouts, cancellation and concurrency.

use std::path::Path;
use std::time::Duration;

use libcni::{CniResult, ErrorCode, ErrorKind, NetworkConfigList, Op, PluginConfig, RuntimeConfig};
use serde_json::{Value, json};

use crate::support::{
    TestEnv, assert_all_gone, assert_turns, kill, pids, process_running, stdin_of, wait_gone,
};

fn rt(cid: &str) -> RuntimeConfig {
    RuntimeConfig::new(cid, "/var/run/netns/test", "eth0")
}

use crate::support::block_on_mt as block_on;

use crate::support::conflist;

#[test]
fn add_chains_each_result_as_next_prev_result_unconverted() {
    let env = TestEnv::new("chain");
    let r040 = json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24"}],"extra":"dropped"});
    let list = conflist(
        &env,
        "chain",
        "1.0.0",
        &[
            ("first", json!({"ADD": {"result": r040}})),
            ("second", json!({})),
            ("third", json!({})),
        ],
    );
    let result = block_on(env.cni().add_network_list(&list, &rt("c1"))).unwrap();
    // The second plugin gets the first's result in its own version (0.4.0),
    // after the typed round trip (unknown keys dropped), in libcni's bytes.
    let second = &env.calls("second")[0];
    let prev = &stdin_of(second)["prevResult"];
    assert_eq!(
        prev,
        &json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24"}],"dns":{}})
    );
    assert!(second["stdin"].as_str().unwrap().ends_with(
        r#""prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24"}],"dns":{}}}"#
    ));
    // The third gets the second's (1.0.0 from the config).
    let third_prev = &stdin_of(&env.calls("third")[0])["prevResult"];
    assert_eq!(third_prev["cniVersion"], "1.0.0");
    assert_eq!(third_prev["interfaces"][0]["name"], "second");
    // The first plugin gets no prevResult.
    assert!(stdin_of(&env.calls("first")[0]).get("prevResult").is_none());
    // The last plugin's result is returned and cached in its own version.
    assert_eq!(result.version().as_str(), "1.0.0");
    let names: Vec<_> = result
        .to_latest()
        .interfaces
        .iter()
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(names, ["second", "third"]);
    assert_eq!(env.cache_files(), ["chain-c1-eth0"]);
}

#[test]
fn add_returns_the_last_plugins_version_as_it_came() {
    let env = TestEnv::new("lastver");
    let r = json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/24"}]});
    let list = conflist(
        &env,
        "lastver",
        "1.0.0",
        &[("a", json!({"ADD": {"result": r}}))],
    );
    let cni = env.cni();
    let result = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    assert_eq!(result.version().as_str(), "0.3.1");
    let cached: Value =
        serde_json::from_slice(&std::fs::read(env.cache.join("results/lastver-c1-eth0")).unwrap())
            .unwrap();
    assert_eq!(cached["result"]["cniVersion"], "0.3.1");
    // The cached-result lookup converts to the network's version.
    let got = cni.cached_result(&list, &rt("c1")).unwrap().unwrap();
    assert_eq!(got.version().as_str(), "1.0.0");
}

#[test]
fn del_runs_plugins_in_reverse_with_the_cached_result() {
    let env = TestEnv::new("reverse");
    let log = env.path("order.jsonl");
    let log = log.to_str().unwrap();
    let r = json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24"}]});
    let list = conflist(
        &env,
        "rev",
        "1.0.0",
        &[
            ("a", json!({"log": log, "ADD": {"result": r}})),
            ("b", json!({"log": log})),
            ("c", json!({"log": log})),
        ],
    );
    let cni = env.cni();
    let added = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.del_network_list(&list, &rt("c1"))).unwrap();
    let calls = crate::support::read_jsonl(Path::new(log));
    let order: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["command"].as_str().unwrap(),
                stdin_of(c)["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        ["ADD a", "ADD b", "ADD c", "DEL c", "DEL b", "DEL a"]
    );
    // Every DEL gets the cached final result, converted to the list version.
    let want = added.convert("1.0.0").unwrap();
    for c in &calls[3..] {
        let prev = serde_json::to_vec(&stdin_of(c)["prevResult"]).unwrap();
        assert_eq!(CniResult::from_json(&prev).unwrap(), want);
    }
    assert!(env.cache_files().is_empty(), "cache removed after DEL");
}

#[test]
fn del_below_0_4_0_sends_no_prev_result() {
    let env = TestEnv::new("del020");
    let list = conflist(&env, "old", "0.3.1", &[("a", json!({}))]);
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.del_network_list(&list, &rt("c1"))).unwrap();
    let del = &env.calls("a")[1];
    assert_eq!(del["command"], "DEL");
    assert!(stdin_of(del).get("prevResult").is_none());
}

#[test]
fn check_runs_forward_with_the_cached_result() {
    let env = TestEnv::new("check");
    let list = conflist(&env, "chk", "0.4.0", &[("a", json!({})), ("b", json!({}))]);
    let cni = env.cni();
    let added = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.check_network_list(&list, &rt("c1"))).unwrap();
    for p in ["a", "b"] {
        let calls = env.calls(p);
        assert_eq!(calls[1]["command"], "CHECK");
        let prev = serde_json::to_vec(&stdin_of(&calls[1])["prevResult"]).unwrap();
        assert_eq!(CniResult::from_json(&prev).unwrap(), added);
    }
    // Without a cache entry CHECK still runs, without prevResult (as libcni).
    block_on(cni.check_network_list(&list, &rt("other"))).unwrap();
    assert!(stdin_of(&env.calls("a")[2]).get("prevResult").is_none());
}

#[test]
fn check_needs_0_4_0_and_honours_disable_check() {
    let env = TestEnv::new("checkver");
    let cni = env.cni();
    for v in ["0.3.1", ""] {
        let list = conflist(&env, "old", v, &[("a", json!({}))]);
        let e = block_on(cni.check_network_list(&list, &rt("c1"))).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::OpNotSupported { op: Op::Check, .. }),
            "{v}: {e}"
        );
    }
    env.plugin("a");
    let list = env
        .list(r#"{"cniVersion":"1.0.0","name":"n","disableCheck":true,"plugins":[{"type":"a"}]}"#);
    block_on(cni.check_network_list(&list, &rt("c1"))).unwrap();
    assert!(env.calls("a").is_empty(), "disableCheck runs nothing");
}

#[test]
fn runtime_config_and_cni_args_reach_the_plugin() {
    let env = TestEnv::new("rtconf");
    env.plugin("pm");
    env.plugin("plain");
    let list = env.list(
        r#"{"cniVersion":"1.0.0","name":"rc","plugins":[
            {"type":"pm","capabilities":{"portMappings":true,"bandwidth":false}},
            {"type":"plain","runtimeConfig":{"mine":1}}]}"#,
    );
    let rt = rt("c1")
        .arg("IgnoreUnknown", "1")
        .arg("K8S_POD_NAME", "a=b")
        .capability_arg(
            "portMappings",
            json!([{"hostPort": 8080, "containerPort": 80}]),
        )
        .capability_arg("bandwidth", json!({"ingressRate": 1}));
    block_on(env.cni().add_network_list(&list, &rt)).unwrap();
    let pm = &env.calls("pm")[0];
    assert_eq!(
        stdin_of(pm)["runtimeConfig"],
        json!({"portMappings":[{"hostPort":8080,"containerPort":80}]})
    );
    assert_eq!(pm["env"]["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=a=b");
    let plain = &env.calls("plain")[0];
    assert_eq!(stdin_of(plain)["runtimeConfig"], json!({"mine":1}));
}

#[test]
fn plugins_get_all_six_cni_variables_and_the_runtime_environment() {
    let env = TestEnv::new("env");
    let list = conflist(&env, "envnet", "1.0.0", &[("a", json!({}))]);
    block_on(
        env.cni()
            .add_network_list(&list, &RuntimeConfig::new("c1", "", "eth0")),
    )
    .unwrap();
    let call = &env.calls("a")[0];
    let e = call["env"].as_object().unwrap();
    for (k, v) in [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", ""),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", ""),
        ("CNI_PATH", env.bin.to_str().unwrap()),
    ] {
        assert_eq!(e.get(k).and_then(Value::as_str), Some(v), "{k}");
    }
    assert_eq!(
        e.get("PATH").and_then(Value::as_str),
        std::env::var("PATH").ok().as_deref()
    );
    // The plugin is the leader of its own process group, with no arguments.
    assert_eq!(call["pid"], call["pgid"]);
    assert_eq!(call["argv"].as_array().unwrap().len(), 1);
}

#[test]
fn version_probe_uses_dummy_values_and_decodes_replies() {
    let env = TestEnv::new("version");
    let p = env.plugin("v");
    let cni = env.cni();
    let vi = block_on(cni.version_info("v")).unwrap();
    assert!(vi.supports("1.1.0"));
    let call = &env.calls("v")[0];
    assert_eq!(call["stdin"], r#"{"cniVersion":"1.1.0"}"#);
    for (k, v) in [
        ("CNI_COMMAND", "VERSION"),
        ("CNI_NETNS", "dummy"),
        ("CNI_IFNAME", "dummy"),
        ("CNI_PATH", "dummy"),
    ] {
        assert_eq!(call["env"][k], v, "{k}");
    }
    // A plugin predating VERSION.
    std::fs::write(
        p.with_extension("version.json"),
        r#"{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}"#,
    )
    .unwrap();
    std::fs::write(p.with_extension("version.exit"), "1").unwrap();
    let vi = block_on(cni.version_info("v")).unwrap();
    assert_eq!(vi.supported_versions(), ["0.1.0"]);
    // A 0.2.0 reply without supportedVersions.
    std::fs::write(
        p.with_extension("version.json"),
        r#"{"cniVersion":"0.2.0"}"#,
    )
    .unwrap();
    std::fs::write(p.with_extension("version.exit"), "0").unwrap();
    assert_eq!(
        block_on(cni.version_info("v"))
            .unwrap()
            .supported_versions(),
        ["0.1.0", "0.2.0"]
    );
    std::fs::write(p.with_extension("version.json"), "garbage").unwrap();
    let e = block_on(cni.version_info("v")).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidVersionInfo { .. }),
        "{e}"
    );
}

#[test]
fn validate_checks_every_plugin_and_returns_capabilities() {
    let env = TestEnv::new("validate");
    let old = env.plugin("old");
    std::fs::write(
        old.with_extension("version.json"),
        r#"{"cniVersion":"0.4.0","supportedVersions":["0.3.1","0.4.0"]}"#,
    )
    .unwrap();
    env.plugin("new");
    let cni = env.cni();
    let list = env.list(
        r#"{"cniVersion":"1.0.0","name":"v","plugins":[{"type":"new","capabilities":{"b":true,"a":true,"x":false}},{"type":"new","capabilities":{"a":true}}]}"#,
    );
    assert_eq!(
        block_on(cni.validate_network_list(&list)).unwrap(),
        ["a", "b"]
    );
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"v","plugins":[{"type":"old"},{"type":"missing"},{"type":"new"}]}"#);
    let e = block_on(cni.validate_network_list(&list)).unwrap_err();
    let ErrorKind::Multiple { errors, .. } = e.kind() else {
        panic!("{e}")
    };
    assert!(
        matches!(errors[0].kind(), ErrorKind::IncompatibleVersion { .. }),
        "{}",
        errors[0]
    );
    assert_eq!(errors[0].plugin(), Some("old"));
    assert!(
        matches!(errors[1].kind(), ErrorKind::PluginNotFound { .. }),
        "{}",
        errors[1]
    );
    // Matching is by exact string: "1.0" is not "1.0.0".
    let list = env.list(r#"{"cniVersion":"1.0","name":"v","plugins":[{"type":"new"}]}"#);
    let e = block_on(cni.validate_network_list(&list)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::IncompatibleVersion { .. }),
        "{e}"
    );
}

#[test]
fn plugin_error_object_is_typed_with_context() {
    let env = TestEnv::new("plugerr");
    let list = conflist(
        &env,
        "errnet",
        "1.0.0",
        &[
            ("ok", json!({})),
            (
                "bad",
                json!({"ADD": {"error": {"code": 11, "msg": "busy", "details": "retry soon"}, "stderr": "oops"}}),
            ),
            ("never", json!({})),
        ],
    );
    let e = block_on(env.cni().add_network_list(&list, &rt("c1"))).unwrap_err();
    let pe = e.plugin_error().expect("a CNI error");
    assert_eq!(pe.code(), ErrorCode::TryAgainLater);
    assert_eq!(
        (pe.msg(), pe.details(), pe.stderr()),
        ("busy", "retry soon", "oops")
    );
    assert!(e.is_retryable());
    assert_eq!(
        (e.network(), e.plugin(), e.op()),
        (Some("errnet"), Some("bad"), Some(Op::Add))
    );
    assert!(e.to_string().contains("busy; retry soon"), "{e}");
    // The chain stopped and nothing was cached.
    assert!(env.calls("never").is_empty());
    assert!(env.cache_files().is_empty());
}

#[test]
fn failures_without_an_error_object_are_distinct() {
    let env = TestEnv::new("failkinds");
    let cni = env.cni();
    let run = |actions: Value| {
        let list = conflist(&env, "f", "1.0.0", &[("p", json!({ "ADD": actions }))]);
        block_on(cni.add_network_list(&list, &rt("c1"))).unwrap_err()
    };
    let e = run(json!({"exit": 2, "stdout": ""}));
    assert!(
        matches!(e.kind(), ErrorKind::PluginExit { status, stdout, stderr, .. } if *status == libcni::exec::ExitStatus::Exited(2) && stdout.is_empty() && stderr.is_empty()),
        "{e:?}"
    );
    let e = run(json!({"exit": 3, "stdout": "garbage", "stderr": "trace"}));
    assert!(
        matches!(e.kind(), ErrorKind::PluginExit { stdout, stderr, .. } if stdout == "garbage" && stderr == "trace"),
        "{e:?}"
    );
    let e = run(json!({"stdout": "not json"}));
    assert!(matches!(e.kind(), ErrorKind::InvalidResult { .. }), "{e:?}");
    let e = run(json!({"stdout": ""}));
    assert!(matches!(e.kind(), ErrorKind::EmptyResult), "{e:?}");
    let e = run(json!({"result": {"cniVersion": "9.9.9"}}));
    assert!(
        matches!(e.kind(), ErrorKind::UnsupportedResultVersion { .. }),
        "{e:?}"
    );
    for e in [
        run(json!({"exit": 2, "stdout": ""})),
        run(json!({"stdout": ""})),
    ] {
        assert_eq!(
            (e.network(), e.plugin(), e.op()),
            (Some("f"), Some("p"), Some(Op::Add))
        );
    }
}

#[test]
fn del_and_check_ignore_stdout_on_success() {
    let env = TestEnv::new("ignoreout");
    let list = conflist(
        &env,
        "io",
        "1.0.0",
        &[(
            "p",
            json!({"DEL": {"stdout": "{\"code\":7,\"msg\":\"x\"}"}, "CHECK": {"stdout": "garbage"}}),
        )],
    );
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.check_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.del_network_list(&list, &rt("c1"))).unwrap();
}

#[test]
fn missing_and_unexecutable_plugins_fail_before_anything_runs() {
    let env = TestEnv::new("missing");
    let list = conflist(&env, "m", "1.0.0", &[("present", json!({}))]);
    let text =
        r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"present"},{"type":"absent"}]}"#;
    let cni = env.cni();
    let e = block_on(cni.add_network_list(&env.list(text), &rt("c1"))).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::PluginNotFound { plugin, .. } if plugin == "absent"),
        "{e}"
    );
    assert!(env.calls("present").is_empty(), "no plugin ran");
    drop(list);
    std::fs::write(env.bin.join("noexec"), "#!/bin/sh\n").unwrap();
    let e = block_on(cni.add_network_list(
        &env.list(r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"noexec"}]}"#),
        &rt("c1"),
    ))
    .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::PluginNotExecutable { .. }),
        "{e}"
    );
}

#[test]
fn a_plugin_that_cannot_start_is_a_spawn_error() {
    let env = TestEnv::new("spawn");
    let p = env.bin.join("badinterp");
    std::fs::write(&p, "#!/nonexistent/interpreter\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&p).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"s","plugins":[{"type":"badinterp"}]}"#);
    let e = block_on(env.cni().add_network_list(&list, &rt("c1"))).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Spawn { .. }), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn invalid_attachments_are_rejected_before_running() {
    let env = TestEnv::new("badatt");
    let list = conflist(&env, "ba", "1.0.0", &[("p", json!({}))]);
    let cni = env.cni();
    for rt in [
        RuntimeConfig::new("", "/ns", "eth0"),
        RuntimeConfig::new("-bad", "/ns", "eth0"),
        RuntimeConfig::new("c1", "/ns", ""),
        RuntimeConfig::new("c1", "/ns", "0123456789abcdef"),
        RuntimeConfig::new("c1", "/ns", "eth 0"),
        RuntimeConfig::new("c1", "/ns", "eth:0"),
        RuntimeConfig::new("c1", "/ns", ".."),
    ] {
        let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
            "{rt:?}: {e}"
        );
    }
    // Names that would escape the cache directory are refused on every operation.
    let esc = RuntimeConfig::new("../../etc", "/ns", "eth0");
    let e = block_on(cni.del_network_list(&list, &esc)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
        "{e}"
    );
    let e = block_on(cni.check_network_list(&list, &RuntimeConfig::new("c", "/ns", "a/b")))
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidAttachment { .. }),
        "{e}"
    );
    assert!(cni.cached_result(&list, &esc).is_err());
    assert!(env.calls("p").is_empty());
    // DEL does not apply ADD's name rules (an attachment made by an older
    // runtime can still be removed).
    block_on(cni.del_network_list(&list, &RuntimeConfig::new("_old id", "/ns", "eth0"))).unwrap();
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let env = TestEnv::new("timeout");
    let pidfile = env.path("pids");
    let child_pids = env.path("child-pids");
    let list = conflist(
        &env,
        "slow",
        "1.0.0",
        &[(
            "hang",
            json!({"ADD": {
                "pidFile": pidfile,
                "ignoreTerm": true,
                "spawnChild": {"pidFile": child_pids, "ignoreTerm": true},
                "hang": true
            }}),
        )],
    );
    let cni = env
        .cni()
        .with_timeout(Duration::from_millis(800))
        .with_kill_grace(Duration::from_millis(200));
    let e = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert_eq!((e.plugin(), e.op()), (Some("hang"), Some(Op::Add)));
    assert_all_gone(&[&pidfile, &child_pids], 2, "after the timeout");
}

#[test]
fn timeout_gives_a_terminating_plugin_its_grace() {
    let env = TestEnv::new("grace");
    let pidfile = env.path("pids");
    let list = conflist(
        &env,
        "slow",
        "1.0.0",
        &[("hang", json!({"ADD": {"pidFile": pidfile, "hang": true}}))],
    );
    let cni = env
        .cni()
        .with_timeout(Duration::from_millis(300))
        .with_kill_grace(Duration::from_secs(30));
    // The plugin dies of SIGTERM at once; the call does not wait for the grace.
    let started = std::time::Instant::now();
    let e = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap_err();
    assert!(e.is_timeout());
    assert!(wait_gone(&pids(&pidfile)).is_empty());
    // Not a speed assertion: with a 30 s grace, returning before it proves
    // SIGKILL was not needed.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_daemon_holding_stdout_does_not_block_add_and_is_left_running() {
    let env = TestEnv::new("daemon");
    let child_pids = env.path("child-pids");
    let list = conflist(
        &env,
        "d",
        "1.0.0",
        &[(
            "forker",
            json!({"ADD": {"spawnChild": {"pidFile": child_pids, "holdStdout": true, "sleepMs": 600000}}}),
        )],
    );
    let cni = env.cni().with_timeout(Duration::from_secs(300));
    let result = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    assert_eq!(result.to_latest().interfaces[0].name, "forker");
    let child = pids(&child_pids);
    assert_eq!(child.len(), 1);
    // A plugin that exited normally keeps what it started.
    assert!(process_running(child[0]), "the daemon must not be killed");
    kill(&child);
}

#[test]
fn dropping_the_future_kills_the_plugin_group() {
    let env = TestEnv::new("cancel");
    let pidfile = env.path("pids");
    let child_pids = env.path("child-pids");
    let list = conflist(
        &env,
        "c",
        "1.0.0",
        &[(
            "hang",
            json!({"ADD": {"pidFile": pidfile, "spawnChild": {"pidFile": child_pids, "ignoreTerm": true}, "hang": true}}),
        )],
    );
    let cni = env.cni();
    let rt1 = rt("c1");
    block_on(async {
        let add = cni.add_network_list(&list, &rt1);
        tokio::pin!(add);
        // Wait for both processes, then drop the operation.
        loop {
            tokio::select! {
                r = &mut add => panic!("the plugin hangs, got {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if !pids(&child_pids).is_empty() {
                break;
            }
        }
    });
    assert_all_gone(&[&pidfile, &child_pids], 2, "after cancellation");
    assert!(env.cache_files().is_empty());
}

#[test]
fn corrupt_or_empty_cache_does_not_block_del() {
    let env = TestEnv::new("corrupt");
    let list = conflist(&env, "cc", "1.0.0", &[("p", json!({}))]);
    let cni = env.cni();
    for (i, bytes) in [
        &b""[..],
        b"garbage",
        br#"{"kind":"cniCacheV1","result":{"cniVersion":"9.9.9"}}"#,
    ]
    .iter()
    .enumerate()
    {
        std::fs::create_dir_all(env.cache.join("results")).unwrap();
        std::fs::write(env.cache.join("results/cc-c1-eth0"), bytes).unwrap();
        block_on(cni.del_network_list(&list, &rt("c1"))).unwrap();
        let del = &env.calls("p")[i];
        assert_eq!(del["command"], "DEL");
        assert!(stdin_of(del).get("prevResult").is_none());
        assert!(
            env.cache_files().is_empty(),
            "cache removed after a successful DEL"
        );
    }
    // CHECK, which needs a valid prevResult, reports the corrupt cache.
    std::fs::write(env.cache.join("results/cc-c1-eth0"), b"").unwrap();
    let e = block_on(cni.check_network_list(&list, &rt("c1"))).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Cache { .. }), "{e}");
    assert!(e.path().is_some());
}

#[test]
fn a_failed_del_keeps_the_cache_for_a_retry() {
    let env = TestEnv::new("delfail");
    let list = conflist(&env, "df", "1.0.0", &[("p", json!({"DEL": {"exit": 1}}))]);
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    assert!(block_on(cni.del_network_list(&list, &rt("c1"))).is_err());
    assert_eq!(env.cache_files(), ["df-c1-eth0"]);
    assert!(stdin_of(&env.calls("p")[1]).get("prevResult").is_some());
}

#[test]
fn text_file_busy_is_retried() {
    let env = TestEnv::new("etxtbsy");
    let path = env.bin.join("busy");
    std::fs::copy(crate::support::test_plugin_bin(), &path).unwrap();
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"busy"}]}"#);
    // An open write handle makes exec fail with ETXTBSY until it is closed.
    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let cni = env.cni();
    let rt1 = rt("c1");
    let result = block_on(async {
        let add = cni.add_network_list(&list, &rt1);
        let release = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            drop(writer);
        };
        let (r, ()) = tokio::join!(add, release);
        r
    });
    result.unwrap();
    assert_eq!(env.calls("busy").len(), 1);
}

#[test]
fn operations_on_distinct_attachments_run_concurrently() {
    let env = TestEnv::new("parallel");
    let (a, b) = (env.path("a"), env.path("b"));
    // Each waits for the other: this only completes if both run at once.
    let n1 = conflist(
        &env,
        "n1",
        "1.0.0",
        &[("p1", json!({"ADD": {"touch": a, "waitFor": b}}))],
    );
    let n2 = conflist(
        &env,
        "n2",
        "1.0.0",
        &[("p2", json!({"ADD": {"touch": b, "waitFor": a}}))],
    );
    let cni = env.cni().with_timeout(Duration::from_secs(20));
    let (rt1, rt2) = (rt("c1"), rt("c2"));
    let (r1, r2) = block_on(async {
        tokio::join!(
            cni.add_network_list(&n1, &rt1),
            cni.add_network_list(&n2, &rt2)
        )
    });
    r1.unwrap();
    r2.unwrap();
}

#[test]
fn operations_on_the_same_attachment_are_serialized() {
    let env = TestEnv::new("serial");
    let marks = env.path("marks");
    let list = conflist(
        &env,
        "s",
        "1.0.0",
        &[("p", json!({"*": {"mark": marks, "sleepMs": 200}}))],
    );
    let cni = env.cni();
    let tasks = block_on(async {
        let cni = &cni;
        let list = &list;
        let ops = (0..4).map(|i| async move {
            if i % 2 == 0 {
                cni.add_network_list(list, &rt("c1")).await.map(|_| ())
            } else {
                cni.del_network_list(list, &rt("c1")).await
            }
        });
        futures_join_all(ops).await
    });
    for t in tasks {
        t.unwrap();
    }
    assert_turns(&marks, 4);
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (h, o) in handles.iter_mut().zip(outs.iter_mut()) {
            if let Some(f) = h {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *o = Some(v);
                        *h = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(Option::unwrap).collect()
}

#[test]
fn single_plugin_config_operations() {
    let env = TestEnv::new("single");
    env.plugin("solo");
    let conf = PluginConfig::from_bytes(
        br#"{"cniVersion":"0.4.0","name":"solo-net","type":"solo","mtu":1500}"#,
    )
    .unwrap();
    let cni = env.cni();
    let r = block_on(cni.add_network(&conf, &rt("c1"))).unwrap();
    assert_eq!(r.version().as_str(), "0.4.0");
    block_on(cni.check_network(&conf, &rt("c1"))).unwrap();
    let cached = cni
        .cached_config(
            &NetworkConfigList::from_plugin(conf.clone()).unwrap(),
            &rt("c1"),
        )
        .unwrap()
        .unwrap();
    assert_eq!(cached.config(), conf.raw().as_bytes());
    let single = cni
        .cached_network_config(&conf, &rt("c1"))
        .unwrap()
        .unwrap();
    assert_eq!(single, cached);
    let result = cni
        .cached_network_result(&conf, &rt("c1"))
        .unwrap()
        .unwrap();
    assert_eq!(result.version().as_str(), "0.4.0");
    block_on(cni.del_network(&conf, &rt("c1"))).unwrap();
    assert!(
        cni.cached_network_result(&conf, &rt("c1"))
            .unwrap()
            .is_none()
    );
    let cmds: Vec<_> = env
        .calls("solo")
        .iter()
        .map(|c| c["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cmds, ["ADD", "CHECK", "DEL"]);
    assert_eq!(stdin_of(&env.calls("solo")[0])["name"], "solo-net");
}

#[test]
fn cached_config_and_attachments_report_what_add_recorded() {
    let env = TestEnv::new("cachedcfg");
    let list = conflist(&env, "cfg", "1.0.0", &[("p", json!({}))]);
    let cni = env.cni();
    let rt1 = RuntimeConfig::new("c1", "/var/run/netns/one", "eth0")
        .arg("A", "1")
        .capability_arg("portMappings", json!([]));
    block_on(cni.add_network_list(&list, &rt1)).unwrap();
    block_on(cni.add_network_list(&list, &RuntimeConfig::new("c2", "/ns2", "net1"))).unwrap();
    let got = cni.cached_config(&list, &rt("c1")).unwrap().unwrap();
    assert_eq!(got.config(), list.bytes());
    assert_eq!(
        got.runtime_config().args(),
        [("A".to_owned(), "1".to_owned())]
    );
    assert_eq!(
        got.runtime_config().capability_args()["portMappings"],
        json!([])
    );
    assert!(cni.cached_config(&list, &rt("nope")).unwrap().is_none());
    let all = cni.cached_attachments(None).unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    assert_eq!(ids, [("c1", "eth0"), ("c2", "net1")]);
    assert_eq!(all[0].netns, "/var/run/netns/one");
    let c2 = cni.cached_attachments(Some("c2")).unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].network, "cfg");
}

#[test]
fn dry_run_plan_matches_what_plugins_receive() {
    let env = TestEnv::new("plan");
    let list = conflist(&env, "pl", "1.0.0", &[("a", json!({})), ("b", json!({}))]);
    let cni = env.cni();
    let rt = rt("c1").capability_arg("x", json!(1));
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    let plan = cni.plan(Op::Del, &list, &rt).unwrap();
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    for inv in plan.invocations() {
        let call = env.calls(inv.plugin_type()).pop().unwrap();
        assert_eq!(call["command"], "DEL");
        assert_eq!(
            call["stdin"].as_str().unwrap().as_bytes(),
            inv.stdin().as_slice()
        );
        for (k, v) in inv.env() {
            assert_eq!(call["env"][k], v.as_str(), "{k}");
        }
        assert_eq!(Path::new(call["argv"][0].as_str().unwrap()), inv.path());
    }
}

#[test]
fn cni_and_its_futures_are_send_and_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<libcni::Cni>();
    assert_send_sync::<libcni::Error>();
    assert_send_sync::<libcni::Plan>();
    let env = TestEnv::new("send");
    let list = conflist(&env, "snd", "1.0.0", &[("p", json!({}))]);
    let cni = env.cni();
    let r = rt("c1");
    assert_send(&cni.add_network_list(&list, &r));
    assert_send(&cni.check_network_list(&list, &r));
    assert_send(&cni.del_network_list(&list, &r));
    assert_send(&cni.version_info("p"));
    assert_send(&cni.validate_network_list(&list));
}

#[test]
fn big_outputs_are_read_whole() {
    let env = TestEnv::new("big");
    let nameservers: Vec<String> = (0..40_000)
        .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let result = json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}],"dns":{"nameservers":nameservers}});
    let noise = "x".repeat(300_000);
    let list = conflist(
        &env,
        "big",
        "1.0.0",
        &[("p", json!({"ADD": {"result": result, "stderr": noise}}))],
    );
    let r = block_on(env.cni().add_network_list(&list, &rt("c1"))).unwrap();
    assert_eq!(r.to_latest().dns.nameservers.len(), 40_000);
    assert!(r.to_json().len() > 500_000);
}

#[test]
fn check_plan_follows_the_check_rules() {
    let env = TestEnv::new("checkplan");
    env.plugin("a");
    let cni = env.cni();
    let old = env.list(r#"{"cniVersion":"0.3.1","name":"n","plugins":[{"type":"a"}]}"#);
    let e = cni.plan(Op::Check, &old, &rt("c1")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::OpNotSupported { .. }), "{e}");
    let off = env
        .list(r#"{"cniVersion":"1.0.0","name":"n","disableCheck":true,"plugins":[{"type":"a"}]}"#);
    assert!(
        cni.plan(Op::Check, &off, &rt("c1"))
            .unwrap()
            .invocations()
            .is_empty()
    );
}

#[test]
fn plugin_env_is_the_callers_and_can_be_shaped_per_cni_and_per_call() {
    use libcni::PluginEnv;
    // The process environment is not changed here (other tests run
    // concurrently); the cli tests show `CNI_*` variables passing through.
    let env = TestEnv::new("plugin-env");
    let list = conflist(&env, "envnet", "1.0.0", &[("a", json!({}))]);
    let get = |i: usize, k: &str| env.calls("a")[i]["env"].get(k).cloned();
    let path = std::env::var("PATH").unwrap();
    // Per Cni: set a variable and a secret; the CNI variables still win.
    let cni = env.cni().with_plugin_env(
        PluginEnv::inherit()
            .set("SECRET", "s3cret")
            .set("LOG_LEVEL", "debug")
            .set("CNI_IFNAME", "hijack"),
    );
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    assert_eq!(get(0, "PATH"), Some(json!(path)));
    assert_eq!(get(0, "SECRET"), Some(json!("s3cret")));
    assert_eq!(get(0, "LOG_LEVEL"), Some(json!("debug")));
    assert_eq!(get(0, "CNI_IFNAME"), Some(json!("eth0")));
    // Per call, on top: remove the secret.
    let call = rt("c1").with_plugin_env(PluginEnv::inherit().remove("SECRET"));
    block_on(cni.del_network_list(&list, &call)).unwrap();
    assert_eq!(get(1, "SECRET"), None);
    assert_eq!(get(1, "PATH"), Some(json!(path)));
    // Per call: start empty (the Cni's variables go too).
    let call = rt("c2").with_plugin_env(PluginEnv::empty().set("ONLY", "this"));
    block_on(cni.add_network_list(&list, &call)).unwrap();
    let e = env.calls("a")[2]["env"].as_object().unwrap().clone();
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CNI_ARGS",
            "CNI_COMMAND",
            "CNI_CONTAINERID",
            "CNI_IFNAME",
            "CNI_NETNS",
            "CNI_PATH",
            "ONLY"
        ]
    );
}

/// Whether `pid` is not left behind as a zombie child of this process (the
/// plugin was reaped).
fn not_our_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // pid (comm) state ppid ...; comm may contain spaces and parens.
    let mut fields = stat[stat.rfind(')').unwrap() + 1..].split_whitespace();
    let (state, ppid) = (fields.next(), fields.next());
    !(state == Some("Z") && ppid == Some(&std::process::id().to_string()))
}

#[test]
fn timeout_kills_the_group_once_the_plugin_has_exited_even_with_no_grace_limit() {
    // The plugin dies of SIGTERM; the child in its group ignores it. With no
    // limit on the grace period, only the plugin's exit can bring on the
    // group's SIGKILL, so the child being gone shows that the group was
    // signalled after the plugin exited (while its unreaped zombie still
    // held the group id), and the plugin is reaped before the call returns.
    let env = TestEnv::new("zombie-leader");
    let pidfile = env.path("pids");
    let child_pids = env.path("child-pids");
    let list = conflist(
        &env,
        "z",
        "1.0.0",
        &[(
            "hang",
            json!({"ADD": {
                "pidFile": pidfile,
                "spawnChild": {"pidFile": child_pids, "ignoreTerm": true},
                "hang": true
            }}),
        )],
    );
    let cni = env
        .cni()
        .with_timeout(Duration::from_millis(1500))
        .with_kill_grace(Duration::MAX);
    let e = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let leader = pids(&pidfile);
    assert_eq!(leader.len(), 1);
    assert!(not_our_zombie(leader[0]), "the plugin was not reaped");
    assert_all_gone(&[&pidfile, &child_pids], 2, "after the timeout");
}

#[test]
fn unlimited_timeout_and_grace_run_a_plugin_normally() {
    let env = TestEnv::new("maxtime");
    let list = conflist(&env, "m", "1.0.0", &[("p", json!({}))]);
    let cni = env
        .cni()
        .with_timeout(Duration::MAX)
        .with_kill_grace(Duration::MAX);
    let result = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    assert_eq!(result.to_latest().interfaces[0].name, "p");
}

#[test]
fn a_cancelled_plugin_is_killed_and_then_reaped() {
    let env = TestEnv::new("cancel-reap");
    let pidfile = env.path("pids");
    let list = conflist(
        &env,
        "c",
        "1.0.0",
        &[("hang", json!({"ADD": {"pidFile": pidfile, "hang": true}}))],
    );
    let cni = env.cni();
    let rt1 = rt("c1");
    block_on(async {
        let add = cni.add_network_list(&list, &rt1);
        tokio::pin!(add);
        while pids(&pidfile).is_empty() {
            tokio::select! {
                r = &mut add => panic!("the plugin hangs, got {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });
    let leader = pids(&pidfile);
    assert_all_gone(&[&pidfile], 1, "after cancellation");
    // Reaped in the background (waited out, not timed).
    let mut reaped = false;
    for _ in 0..500 {
        reaped = not_our_zombie(leader[0]);
        if reaped {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(reaped, "the killed plugin was left a zombie");
}
