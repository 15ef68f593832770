//! `cnitool -v` and `--trace-json`, run as a user runs them.

// The helpers libcni's integration tests use, shared rather than copied.
#[path = "../../tests/it/support/mod.rs"]
mod support;

use std::process::Output;

use serde_json::{Value, json};

use crate::support::{TestEnv, read_jsonl};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A network of three test plugins; `b` fails DEL with CNI error 11.
fn net(env: &TestEnv) {
    for p in ["a", "b", "c"] {
        env.plugin(p);
    }
    let text = json!({"cniVersion":"1.1.0","name":"obsnet","plugins":[
        {"type":"a"},
        {"type":"b","testPlugin":{"DEL":{"error":{"code":11,"msg":"busy"}}}},
        {"type":"c"}]});
    env.write_config("10-obsnet.conflist", &text.to_string());
}

fn ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn verbose_prints_each_plugin_run_and_the_operation() {
    let env = TestEnv::new("cli-verbose");
    net(&env);
    let out = env
        .cnitool()
        .args(["-v", "add", "obsnet", "/var/run/netns/x"])
        .output()
        .unwrap();
    ok(&out);
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("cnitool: "))
        .collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    for (line, p) in lines.iter().zip(["a", "b", "c"]) {
        let prefix = format!("cnitool: ADD obsnet: plugin {p}: ");
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let (ms, rest) = rest.split_once(" ms, ").unwrap();
        assert!(ms.parse::<f64>().unwrap() >= 0.0, "{line}");
        assert!(rest.starts_with("exit status 0, "), "{line}");
        assert!(rest.ends_with(" out"), "{line}");
    }
    assert!(
        lines[3].starts_with("cnitool: ADD obsnet: "),
        "{}",
        lines[3]
    );
    assert!(lines[3].ends_with(" ms, ok"), "{}", lines[3]);
    // The result is still on stdout, alone.
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["cniVersion"], "1.1.0");

    // A failure says which plugin and how.
    let out = env
        .cnitool()
        .args(["del", "obsnet", "/var/run/netns/x", "--verbose"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // The timings, then the error itself.
    assert!(
        stderr.contains("cnitool: DEL plugin `b` in network `obsnet`: busy (code 11)"),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("cnitool: DEL obsnet:"))
        .collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("cnitool: DEL obsnet: plugin c: "),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("cnitool: DEL obsnet: plugin b: "),
        "{stderr}"
    );
    assert!(
        lines[1].contains(", exit status 1, CNI error 11, "),
        "{stderr}"
    );
    assert!(lines[2].ends_with(" ms, failed (plugin)"), "{stderr}");
}

#[test]
fn quiet_by_default_and_rust_log_turns_timings_on() {
    let env = TestEnv::new("cli-quiet");
    net(&env);
    let out = env
        .cnitool()
        .args(["add", "obsnet", "/var/run/netns/x"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(text(&out.stderr), "");
    let out = env
        .cnitool()
        .env("RUST_LOG", "libcni=info")
        .args(["check", "obsnet", "/var/run/netns/x"])
        .output()
        .unwrap();
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cnitool: CHECK obsnet: plugin a: "),
        "{stderr}"
    );
    let out = env
        .cnitool()
        .env("RUST_LOG", "libcni=[")
        .args(["check", "obsnet", "/var/run/netns/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("RUST_LOG"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn trace_json_writes_the_span_tree() {
    let env = TestEnv::new("cli-trace");
    net(&env);
    let file = env.path("trace.jsonl");
    let out = env
        .cnitool()
        .arg("--trace-json")
        .arg(&file)
        .args(["add", "obsnet", "/var/run/netns/x"])
        .output()
        .unwrap();
    ok(&out);
    // Not verbose: nothing on stderr.
    assert_eq!(text(&out.stderr), "");
    let spans = read_jsonl(&file);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let op = &spans[3];
    assert_eq!(op["name"], "cni");
    assert!(op.get("parent").is_none(), "{op}");
    assert_eq!(op["fields"]["cni.operation"], "ADD");
    assert_eq!(op["fields"]["cni.network.name"], "obsnet");
    assert_eq!(op["fields"]["network.interface.name"], "eth0");
    assert!(op["fields"]["container.id"].is_string());
    for (s, p) in spans[..3].iter().zip(["a", "b", "c"]) {
        assert_eq!(s["name"], "plugin");
        assert_eq!(s["parent"], op["id"]);
        assert_eq!(s["fields"]["cni.plugin.type"], p);
        assert_eq!(s["fields"]["cni.command"], "ADD");
        assert_eq!(s["fields"]["process.exit.code"], 0);
        assert_eq!(
            s["fields"]["process.executable.path"],
            env.bin.join(p).display().to_string()
        );
        assert!(s["fields"]["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(s["fields"]["cni.plugin.stdout.bytes"].as_u64().unwrap() > 0);
        assert!(s["duration_ns"].as_u64().is_some());
        assert!(s["start_unix_ns"].as_u64().unwrap() >= op["start_unix_ns"].as_u64().unwrap());
    }
    let ids: std::collections::BTreeSet<u64> =
        spans.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 4);

    // A file that cannot be created is an error before anything runs.
    let out = env
        .cnitool()
        .arg("--trace-json")
        .arg(env.path("no/such/dir/t.jsonl"))
        .args(["del", "obsnet", "/var/run/netns/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("trace file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.calls("a").len(), 1, "DEL did not run");
}
