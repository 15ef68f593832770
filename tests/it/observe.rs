//! Observability: the spans of operations and plugin runs, the observer
//! hook, and (feature `opentelemetry`) the trace context given to plugins.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libcni::exec::ExitStatus;
use libcni::observe::{Killed, OperationEvent, PluginRunEvent};
use libcni::{NetworkConfigList, Observer, RuntimeConfig};
use serde_json::{Value, json};

use crate::support::block_on_mt as block_on;
use crate::support::{TestEnv, capture};

fn rt(cid: &str) -> RuntimeConfig {
    RuntimeConfig::new(cid, "/var/run/netns/test", "eth0")
}

/// A conflist of test plugins: `plugins` are (type, testPlugin actions).
fn conflist(env: &TestEnv, name: &str, plugins: &[(&str, Value)]) -> NetworkConfigList {
    let plugins: Vec<Value> = plugins
        .iter()
        .map(|(t, actions)| {
            env.plugin(t);
            json!({"type": t, "testPlugin": actions})
        })
        .collect();
    env.list(&json!({"cniVersion": "1.1.0", "name": name, "plugins": plugins}).to_string())
}

#[test]
fn add_over_three_plugins_makes_one_span_per_run_under_the_operation() {
    capture::install();
    let env = TestEnv::new("spantree");
    let list = conflist(
        &env,
        "spantree",
        &[
            ("a", json!({})),
            ("b", json!({"ADD": {"stderr": "hello"}})),
            ("c", json!({})),
        ],
    );
    block_on(env.cni().add_network_list(&list, &rt("c1"))).unwrap();
    let spans = capture::spans_of("spantree");
    let ops: Vec<_> = spans.iter().filter(|s| s.name == "cni").collect();
    assert_eq!(ops.len(), 1, "{spans:#?}");
    let op = ops[0];
    assert_eq!(op.get("cni.operation"), "ADD");
    assert_eq!(op.get("container.id"), "c1");
    assert_eq!(op.get("network.interface.name"), "eth0");
    assert!(!op.fields.contains_key("error.type"), "{op:?}");
    let runs: Vec<_> = spans.iter().filter(|s| s.name == "plugin").collect();
    let types: Vec<&str> = runs.iter().map(|s| s.get("cni.plugin.type")).collect();
    assert_eq!(types, ["a", "b", "c"]);
    for (s, t) in runs.iter().zip(["a", "b", "c"]) {
        assert_eq!(s.parent, Some(op.id), "{s:?} is not under {op:?}");
        assert_eq!(s.get("cni.command"), "ADD");
        assert_eq!(
            s.get("process.executable.path"),
            env.bin.join(t).display().to_string()
        );
        assert_eq!(s.get("process.exit.code"), "0");
        assert_eq!(s.get("status"), "exit status 0");
        assert!(s.get("duration_ms").parse::<f64>().unwrap() >= 0.0, "{s:?}");
        assert!(s.get("cni.plugin.stdin.bytes").parse::<u64>().unwrap() > 0);
        assert!(s.get("cni.plugin.stdout.bytes").parse::<u64>().unwrap() > 0);
        for absent in ["cni.plugin.killed", "error.type", "cni.error.code"] {
            assert!(!s.fields.contains_key(absent), "{s:?}");
        }
    }
    assert_eq!(runs[0].get("cni.plugin.stderr.bytes"), "0");
    assert_eq!(runs[1].get("cni.plugin.stderr.bytes"), "5");
    // The stdin of each run after the first carries the previous result.
    let stdin = |i: usize| {
        runs[i]
            .get("cni.plugin.stdin.bytes")
            .parse::<u64>()
            .unwrap()
    };
    assert!(stdin(1) > stdin(0), "{runs:?}");
}

#[test]
fn failed_runs_carry_the_error_and_the_cni_code() {
    capture::install();
    let env = TestEnv::new("spanfail");
    let list = conflist(
        &env,
        "spanfail",
        &[
            ("a", json!({})),
            (
                "b",
                json!({"DEL": {"error": {"code": 11, "msg": "try again"}}}),
            ),
            ("c", json!({"DEL": {"exit": 3, "stdout": ""}})),
        ],
    );
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.del_network_list(&list, &rt("c1"))).unwrap_err();
    let spans = capture::spans_of("spanfail");
    let del = spans
        .iter()
        .find(|s| s.name == "cni" && s.get("cni.operation") == "DEL")
        .unwrap();
    assert_eq!(del.get("error.type"), "plugin_exit");
    assert_eq!(del.get("otel.status_code"), "ERROR");
    let runs: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "plugin" && s.parent == Some(del.id))
        .collect();
    // DEL runs in reverse and stops at the first failure.
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].get("cni.plugin.type"), "c");
    assert_eq!(runs[0].get("process.exit.code"), "3");
    assert_eq!(runs[0].get("error.type"), "plugin_exit");
    assert!(!runs[0].fields.contains_key("cni.error.code"));

    let list = conflist(
        &env,
        "spanfail2",
        &[(
            "b",
            json!({"ADD": {"error": {"code": 11, "msg": "try again"}}}),
        )],
    );
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap_err();
    let spans = capture::spans_of("spanfail2");
    let run = spans.iter().find(|s| s.name == "plugin").unwrap();
    assert_eq!(run.get("cni.error.code"), "11");
    assert_eq!(run.get("error.type"), "plugin");
    assert_eq!(run.get("otel.status_code"), "ERROR");
    assert_eq!(run.get("process.exit.code"), "1");
}

#[test]
fn killed_runs_say_why() {
    capture::install();
    let env = TestEnv::new("spankill");
    let list = conflist(&env, "spankill", &[("h", json!({"ADD": {"hang": true}}))]);
    let cni = env
        .cni()
        .with_timeout(Duration::from_millis(200))
        .with_kill_grace(Duration::from_millis(100));
    let e = block_on(cni.add_network_list(&list, &rt("c1"))).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let list2 = conflist(&env, "spankill2", &[("h", json!({"ADD": {"hang": true}}))]);
    let e = block_on(
        env.cni()
            .add_network_list(&list2, &rt("c1").with_timeout(Duration::from_millis(200))),
    )
    .unwrap_err();
    assert!(
        matches!(e.kind(), libcni::ErrorKind::DeadlineExceeded),
        "{e}"
    );
    let timed_out = capture::spans_of("spankill");
    let run = timed_out.iter().find(|s| s.name == "plugin").unwrap();
    assert_eq!(run.get("cni.plugin.killed"), "timeout");
    assert_eq!(run.get("error.type"), "timeout");
    assert!(!run.fields.contains_key("process.exit.code"), "{run:?}");
    let cancelled = capture::spans_of("spankill2");
    let run = cancelled.iter().find(|s| s.name == "plugin").unwrap();
    assert_eq!(run.get("cni.plugin.killed"), "cancelled");
    assert_eq!(run.get("error.type"), "cancelled");
    let op = cancelled.iter().find(|s| s.name == "cni").unwrap();
    assert_eq!(op.get("error.type"), "deadline_exceeded");
}

/// What an observer saw, as readable lines.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Observer for Recorder {
    fn operation(&self, ev: &OperationEvent<'_>) {
        self.0.lock().unwrap().push(format!(
            "op {} {} {:?} {:?} {}",
            ev.op, ev.network, ev.container_id, ev.ifname, ev.outcome
        ));
    }
    fn plugin_run(&self, ev: &PluginRunEvent<'_>) {
        assert!(ev.stdin_bytes > 0);
        self.0.lock().unwrap().push(format!(
            "run {} {} {} {:?} {:?} {}",
            ev.op, ev.network, ev.plugin_type, ev.status, ev.killed, ev.outcome
        ));
    }
}

#[test]
fn the_observer_sees_every_operation_and_plugin_run() {
    let env = TestEnv::new("observer");
    let rec = Arc::new(Recorder::default());
    let cni = env
        .cni()
        .with_observer(rec.clone())
        .with_timeout(Duration::from_millis(200))
        .with_kill_grace(Duration::from_millis(100));
    let list = conflist(
        &env,
        "obs",
        &[
            ("a", json!({})),
            ("b", json!({"CHECK": {"error": {"code": 11, "msg": "no"}}})),
            ("c", json!({"DEL": {"hang": true}})),
        ],
    );
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    block_on(cni.check_network_list(&list, &rt("c1"))).unwrap_err();
    block_on(cni.del_network_list(&list, &rt("c1"))).unwrap_err();
    block_on(cni.status_network_list(&list)).unwrap();
    let seen = rec.0.lock().unwrap().clone();
    let ok = Some(ExitStatus::Exited(0));
    assert_eq!(
        seen,
        [
            format!("run ADD obs a {ok:?} None ok"),
            format!("run ADD obs b {ok:?} None ok"),
            format!("run ADD obs c {ok:?} None ok"),
            r#"op ADD obs Some("c1") Some("eth0") ok"#.to_owned(),
            format!("run CHECK obs a {ok:?} None ok"),
            format!(
                "run CHECK obs b {:?} None plugin",
                Some(ExitStatus::Exited(1))
            ),
            r#"op CHECK obs Some("c1") Some("eth0") plugin"#.to_owned(),
            format!("run DEL obs c None {:?} timeout", Some(Killed::Timeout)),
            r#"op DEL obs Some("c1") Some("eth0") timeout"#.to_owned(),
            format!("run STATUS obs a {ok:?} None ok"),
            format!("run STATUS obs b {ok:?} None ok"),
            format!("run STATUS obs c {ok:?} None ok"),
            "op STATUS obs None None ok".to_owned(),
        ]
    );
}
