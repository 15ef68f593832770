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

/// A 1.1.0 conflist of test plugins: `plugins` are (type, testPlugin actions).
fn conflist(env: &TestEnv, name: &str, plugins: &[(&str, Value)]) -> NetworkConfigList {
    crate::support::conflist(env, name, "1.1.0", plugins)
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

/// The environment plugin `name` saw in its `n`th call.
fn env_of(env: &TestEnv, name: &str, n: usize) -> serde_json::Map<String, Value> {
    env.calls(name)[n]["env"].as_object().unwrap().clone()
}

#[test]
fn without_a_trace_context_the_environment_passes_unchanged() {
    capture::install();
    let env = TestEnv::new("notrace");
    let list = conflist(&env, "notrace", &[("a", json!({}))]);
    let cni = env
        .cni()
        .with_plugin_env(libcni::PluginEnv::inherit().set("TRACESTATE", "caller=1"));
    block_on(cni.add_network_list(&list, &rt("c1"))).unwrap();
    let seen = env_of(&env, "a", 0);
    assert_eq!(seen["TRACESTATE"], "caller=1");
    let inherited = std::env::var("TRACEPARENT").ok();
    assert_eq!(
        seen.get("TRACEPARENT").and_then(Value::as_str),
        inherited.as_deref()
    );
    assert_eq!(
        seen.get("BAGGAGE").and_then(Value::as_str),
        std::env::var("BAGGAGE").ok().as_deref()
    );
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use std::str::FromStr;

    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
    };
    use opentelemetry::{Context, KeyValue};
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::prelude::*;

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    /// Runs `f` with a subscriber that makes OpenTelemetry spans (this
    /// thread only), on a current-thread runtime.
    fn traced<T>(f: impl std::future::Future<Output = T>) -> T {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("libcni-test")));
        tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
    }

    /// A W3C `traceparent` (version 00): its trace id and parent id.
    fn parse_traceparent(v: &str) -> (String, String) {
        let parts: Vec<&str> = v.split('-').collect();
        assert_eq!(parts.len(), 4, "{v}");
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        assert_eq!(parts[0], "00", "{v}");
        assert!(hex(parts[1], 32) && parts[1] != "0".repeat(32), "{v}");
        assert!(hex(parts[2], 16) && parts[2] != "0".repeat(16), "{v}");
        assert!(parts[3] == "01" || parts[3] == "00", "{v}");
        (parts[1].to_owned(), parts[2].to_owned())
    }

    #[test]
    fn plugins_continue_the_callers_trace() {
        let env = TestEnv::new("otel");
        let list = conflist(&env, "otel", &[("a", json!({})), ("b", json!({}))]);
        // Stale inherited values are replaced, not duplicated.
        let cni = env.cni().with_plugin_env(
            libcni::PluginEnv::inherit()
                .set("TRACEPARENT", "00-stale")
                .set("TRACESTATE", "stale=1")
                .set("BAGGAGE", "stale=1"),
        );
        let parent = Context::new()
            .with_remote_span_context(SpanContext::new(
                TraceId::from_hex(TRACE).unwrap(),
                SpanId::from_hex(PARENT).unwrap(),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_str("vendor=x").unwrap(),
            ))
            .with_baggage([KeyValue::new("pod", "p 1")]);
        let trace_id = traced(async {
            let caller = tracing::info_span!("caller");
            caller.set_parent(parent).unwrap();
            let id = caller.context().span().span_context().trace_id();
            cni.add_network_list(&list, &rt("c1"))
                .instrument(caller)
                .await
                .unwrap();
            id
        });
        assert_eq!(trace_id.to_string(), TRACE);
        let mut span_ids = Vec::new();
        for p in ["a", "b"] {
            let seen = env_of(&env, p, 0);
            let (trace, span) = parse_traceparent(seen["TRACEPARENT"].as_str().unwrap());
            assert_eq!(trace, TRACE);
            assert_ne!(span, PARENT, "the plugin's parent is its run's span");
            assert!(seen["TRACEPARENT"].as_str().unwrap().ends_with("-01"));
            assert_eq!(seen["TRACESTATE"], "vendor=x");
            assert_eq!(seen["BAGGAGE"], "pod=p%201");
            span_ids.push(span);
        }
        assert_ne!(span_ids[0], span_ids[1], "one span per plugin run");
    }

    #[test]
    fn with_libcni_spans_filtered_out_plugins_get_the_callers_context() {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        let env = TestEnv::new("otel3");
        let list = conflist(&env, "otel3", &[("a", json!({}))]);
        let cni = env.cni();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("libcni", LevelFilter::OFF);
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("libcni-test"))
                .with_filter(filter),
        );
        let caller_span = tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let caller = tracing::info_span!("caller");
                    let sc = caller.context().span().span_context().clone();
                    cni.add_network_list(&list, &rt("c1"))
                        .instrument(caller)
                        .await
                        .unwrap();
                    sc
                })
        });
        assert!(caller_span.is_valid());
        let seen = env_of(&env, "a", 0);
        let (trace, span) = parse_traceparent(seen["TRACEPARENT"].as_str().unwrap());
        assert_eq!(trace, caller_span.trace_id().to_string());
        assert_eq!(span, caller_span.span_id().to_string());
    }

    #[test]
    fn an_attached_opentelemetry_context_reaches_the_plugins_without_a_layer() {
        let env = TestEnv::new("otel4");
        let list = conflist(&env, "otel4", &[("a", json!({}))]);
        let cni = env.cni();
        let cx = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(PARENT).unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ));
        let _attached = cx.attach();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(cni.add_network_list(&list, &rt("c1")))
            .unwrap();
        let seen = env_of(&env, "a", 0);
        assert_eq!(seen["TRACEPARENT"], format!("00-{TRACE}-{PARENT}-01"));
        assert!(!seen.contains_key("TRACESTATE"), "{seen:?}");
    }

    #[test]
    fn a_context_without_tracestate_or_baggage_clears_the_inherited_ones() {
        let env = TestEnv::new("otel2");
        let list = conflist(&env, "otel2", &[("a", json!({}))]);
        let cni = env.cni().with_plugin_env(
            libcni::PluginEnv::inherit()
                .set("TRACESTATE", "stale=1")
                .set("BAGGAGE", "stale=1"),
        );
        traced(async {
            cni.add_network_list(&list, &rt("c1"))
                .instrument(tracing::info_span!("caller"))
                .await
                .unwrap();
        });
        let seen = env_of(&env, "a", 0);
        parse_traceparent(seen["TRACEPARENT"].as_str().unwrap());
        assert!(!seen.contains_key("TRACESTATE"), "{seen:?}");
        assert!(!seen.contains_key("BAGGAGE"), "{seen:?}");
    }
}
