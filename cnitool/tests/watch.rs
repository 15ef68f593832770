//! `cnitool watch`, run as a process: what an operator sees of the config
//! watcher, and how it is tested from the outside.

// The helpers libcni's integration tests use, shared rather than copied.
#[path = "../../tests/it/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestEnv;

/// Only a guard against a hang: every wait below ends much sooner.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Replaces `net.d/<file>` at once (a rename), so the watcher never sees
/// it half-written: one change, one report.
fn put(env: &TestEnv, file: &str, text: &str) -> PathBuf {
    let tmp = env.path(&format!("{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    let dest = env.net_d.join(file);
    std::fs::rename(&tmp, &dest).unwrap();
    dest
}

fn conflist(name: &str, types: &[&str]) -> String {
    let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
    json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins}).to_string()
}

/// A running `cnitool watch` whose stdout lines arrive on a channel.
struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    fn start(env: &TestEnv, args: &[&str]) -> Watch {
        Watch::start_reading(env, args, usize::MAX)
    }

    /// Closes cnitool's stdout after reading `limit` lines.
    fn start_reading(env: &TestEnv, args: &[&str], limit: usize) -> Watch {
        let mut child = env
            .cnitool()
            .arg("watch")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = read_lines(child.stdout.take().unwrap(), limit);
        Watch { child, lines }
    }

    fn line(&mut self) -> String {
        match self.lines.recv_timeout(HANG_GUARD) {
            Ok(l) => l,
            Err(e) => {
                let _ = self.child.kill();
                panic!("no line from cnitool watch: {e}");
            }
        }
    }

    /// The next `--json` report, checked against the schema.
    fn report(&mut self) -> Value {
        let line = self.line();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        check_schema(&v);
        v
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling the child we spawned (and have not reaped).
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the exit (hang guard: kill after HANG_GUARD) and returns
    /// its status and stderr.
    fn wait(self) -> (ExitStatus, String) {
        let pid = self.child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(self.child.wait_with_output());
        });
        match rx.recv_timeout(HANG_GUARD) {
            Ok(out) => {
                let out = out.unwrap();
                (out.status, text(&out.stderr))
            }
            Err(_) => {
                // SAFETY: the child is not reaped yet (wait has not returned).
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                panic!("cnitool watch did not exit");
            }
        }
    }
}

fn read_lines(stdout: ChildStdout, limit: usize) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(limit) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Every field of the `cnitool/v1` `networks` report, with its type.
fn check_schema(v: &Value) {
    assert_eq!(v["schema"], "cnitool/v1", "{v}");
    assert_eq!(v["kind"], "networks", "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = [
        "schema",
        "kind",
        "generation",
        "confDir",
        "defaultNetwork",
        "networks",
        "skipped",
    ];
    let mut keys = keys;
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want, "{v}");
    assert!(v["generation"].is_u64(), "{v}");
    assert!(v["confDir"].is_string(), "{v}");
    assert!(
        v["defaultNetwork"].is_string() || v["defaultNetwork"].is_null(),
        "{v}"
    );
    for n in v["networks"].as_array().unwrap() {
        assert!(n["name"].is_string() && n["cniVersion"].is_string(), "{n}");
        assert!(n["source"].is_string() || n["source"].is_null(), "{n}");
        assert!(n["default"].is_boolean() && n["ready"].is_boolean(), "{n}");
        assert!(
            n["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_string)
        );
        assert_eq!(n["ready"], n["reasons"].as_array().unwrap().is_empty());
        for p in n["plugins"].as_array().unwrap() {
            assert!(p["type"].is_string(), "{p}");
            assert!(p.get("name").is_none_or(Value::is_string), "{p}");
        }
    }
    let defaults: Vec<&Value> = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["default"] == true)
        .map(|n| &n["name"])
        .collect();
    match &v["defaultNetwork"] {
        Value::Null => assert!(defaults.is_empty(), "{v}"),
        name => assert_eq!(defaults, [name], "{v}"),
    }
    for s in v["skipped"].as_array().unwrap() {
        assert!(s["file"].is_string() && s["reason"].is_string(), "{s}");
        assert_eq!(
            s["servingLastGood"].as_bool().unwrap(),
            s.get("network").is_some(),
            "{s}"
        );
    }
}

fn names(v: &Value) -> Vec<&str> {
    v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect()
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_reports_follow_every_change_until_sigterm() {
    let env = TestEnv::new("watch-json");
    env.plugin("p");
    let base = put(&env, "20-base.conflist", &conflist("base", &["p"]));
    let mut w = Watch::start(&env, &["--json"]);

    let first = w.report();
    assert_eq!(first["confDir"], path_str(&env.net_d));
    assert_eq!(first["defaultNetwork"], "base");
    assert_eq!(
        first["networks"],
        json!([{"name": "base", "cniVersion": "1.0.0", "source": path_str(&base),
                "default": true, "ready": true, "reasons": [], "plugins": [{"type": "p"}]}])
    );
    assert_eq!(first["skipped"], json!([]));
    let mut generation = first["generation"].as_u64().unwrap();

    let mut next = |w: &mut Watch| {
        let r = w.report();
        let g = r["generation"].as_u64().unwrap();
        assert!(g > generation, "generation {g} after {generation}: {r}");
        generation = g;
        r
    };

    // A new network, first in load order: listed first, ready, the default.
    let live = put(
        &env,
        "10-live.conflist",
        &json!({"cniVersion": "1.1.0", "name": "live",
                "plugins": [{"type": "p"}, {"type": "p", "name": "second"}]})
        .to_string(),
    );
    let r = next(&mut w);
    assert_eq!(names(&r), ["live", "base"], "{r}");
    assert_eq!(r["defaultNetwork"], "live");
    assert_eq!(
        r["networks"][0],
        json!({"name": "live", "cniVersion": "1.1.0", "source": path_str(&live),
               "default": true, "ready": true, "reasons": [],
               "plugins": [{"type": "p"}, {"type": "p", "name": "second"}]})
    );
    assert_eq!(r["networks"][1]["default"], false);

    // Broken: the last good version is still served, and the file skipped.
    put(
        &env,
        "10-live.conflist",
        "{\n  \"name\": \"live\",\n  oops\n}",
    );
    let r = next(&mut w);
    assert_eq!(names(&r), ["live", "base"], "{r}");
    assert_eq!(r["networks"][0]["ready"], true);
    assert_eq!(r["defaultNetwork"], "live");
    let skipped = r["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{r}");
    assert_eq!(skipped[0]["file"], path_str(&live));
    assert_eq!(skipped[0]["servingLastGood"], true);
    assert_eq!(skipped[0]["network"], "live");
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(reason.contains("line 3, column 3"), "{reason}");

    // A plugin the network needs is missing: not ready, with the reason,
    // and no longer the default.
    put(
        &env,
        "20-base.conflist",
        &conflist("base", &["p", "absent"]),
    );
    let r = next(&mut w);
    assert_eq!(r["networks"][1]["ready"], false, "{r}");
    let reasons = r["networks"][1]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{r}");
    assert!(reasons[0].as_str().unwrap().contains("absent"), "{r}");

    // Deleted: gone, and so is its problem.
    std::fs::remove_file(&live).unwrap();
    let r = next(&mut w);
    assert_eq!(names(&r), ["base"], "{r}");
    assert_eq!(r["defaultNetwork"], Value::Null);
    assert_eq!(r["skipped"], json!([]));

    w.signal(libc::SIGTERM);
    let (status, stderr) = w.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn sigint_also_exits_0() {
    let env = TestEnv::new("watch-sigint");
    let mut w = Watch::start(&env, &[]);
    let header = w.line();
    assert!(header.starts_with("generation 1 in "), "{header}");
    w.signal(libc::SIGINT);
    let (status, stderr) = w.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn closing_stdout_ends_it_without_waiting_for_a_change() {
    let env = TestEnv::new("watch-epipe");
    env.plugin("p");
    put(&env, "10-a.conflist", &conflist("a", &["p"]));
    // The reader closes the pipe after the first report; nothing changes
    // after that, and cnitool still notices and exits 0.
    let mut w = Watch::start_reading(&env, &["--json"], 1);
    w.report();
    let (status, stderr) = w.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn once_prints_the_human_report_and_exits() {
    let env = TestEnv::new("watch-once");
    env.plugin("p");
    env.plugin("tuning");
    let multus = put(
        &env,
        "00-multus.conf",
        r#"{"cniVersion":"0.4.0","name":"multus","type":"multus"}"#,
    );
    let broken = put(
        &env,
        "05-broken.conflist",
        "{\n  \"name\": \"x\",\n  oops\n}",
    );
    let good = put(
        &env,
        "10-good.conflist",
        &conflist("good", &["p", "tuning"]),
    );
    let other = put(&env, "20-other.conflist", &conflist("other", &["p"]));
    let out = env.cnitool().args(["watch", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            "generation 1 in {}: 3 networks, 1 skipped",
            env.net_d.display()
        )
    );
    let missing = format!("  multus 0.4.0 multus ({}): not ready: ", multus.display());
    assert!(
        lines[1].starts_with(&missing) && lines[1].contains("multus"),
        "{stdout}"
    );
    assert_eq!(
        lines[2],
        format!("* good 1.0.0 p -> tuning ({}): ready", good.display())
    );
    assert_eq!(
        lines[3],
        format!("  other 1.0.0 p ({}): ready", other.display())
    );
    assert!(
        lines[4].starts_with(&format!("skipped {}: ", broken.display()))
            && lines[4].contains("line 3, column 3"),
        "{stdout}"
    );

    // The same as one JSON line.
    let out = env
        .cnitool()
        .args(["watch", "--once", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    check_schema(&v);
    assert_eq!(names(&v), ["multus", "good", "other"]);
    assert_eq!(v["defaultNetwork"], "good");
    assert_eq!(
        v["networks"][0]["plugins"],
        json!([{"type":"multus","name":"multus"}])
    );
    assert_eq!(v["skipped"][0]["servingLastGood"], false);
}

#[test]
fn watch_takes_no_network_arguments() {
    let env = TestEnv::new("watch-usage");
    let out = env
        .cnitool()
        .args(["watch", "net", "/ns"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.is_empty());
}
