//! cnitool, run as a process, against the test plugin.

// The helpers libcni's integration tests use, shared rather than copied.
#[path = "../../tests/it/support/mod.rs"]
mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestEnv, assert_all_gone, assert_turns, pids, stdin_of};

fn net(env: &TestEnv, name: &str, actions: Value) {
    env.plugin("p");
    let text = json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"p","capabilities":{"portMappings":true},"testPlugin":actions}]});
    env.write_config(&format!("10-{name}.conflist"), &text.to_string());
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

#[test]
fn usage_errors_exit_1() {
    let env = TestEnv::new("cli-usage");
    for args in [&[][..], &["add"], &["add", "net"], &["bogus", "net", "/ns"]] {
        let out = run(env.cnitool().args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = run(env.cnitool().arg("--help"));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("NETCONFPATH"));
}

#[test]
fn add_prints_the_result_like_the_reference_and_del_cleans_up() {
    let env = TestEnv::new("cli-add");
    net(&env, "clinet", json!({}));
    let out = run(env.cnitool().args(["add", "clinet", "/var/run/netns/foo"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // Indented by four spaces, no trailing newline.
    assert!(
        stdout.starts_with("{\n    \"cniVersion\": \"1.0.0\",\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with('}'), "{stdout:?}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["interfaces"][0]["sandbox"], "/var/run/netns/foo");
    // The container ID is derived from the netns path as the reference does.
    let call = &env.calls("p")[0];
    assert_eq!(
        call["env"]["CNI_CONTAINERID"],
        "cnitool-0e6b52a07b770f1e750c"
    );
    assert_eq!(call["env"]["CNI_IFNAME"], "eth0");
    assert_eq!(
        env.cache_files(),
        ["clinet-cnitool-0e6b52a07b770f1e750c-eth0"]
    );
    let out = run(env
        .cnitool()
        .args(["check", "clinet", "/var/run/netns/foo"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(env.cnitool().args(["del", "clinet", "/var/run/netns/foo"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(env.cache_files().is_empty());
}

#[test]
fn environment_variables_reach_the_plugin() {
    let env = TestEnv::new("cli-env");
    net(&env, "envnet", json!({}));
    let out = run(env
        .cnitool()
        .args(["add", "envnet", "relative/../ns"])
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web")
        .env("CNI_IFNAME", "net1")
        .env(
            "CAP_ARGS",
            r#"{"portMappings":[{"hostPort":8080,"containerPort":80}],"other":1}"#,
        )
        .env("CNI_CONTAINERID", "explicit-id")
        .env("CNI_NETNS_OVERRIDE", "1")
        .env("CNI_SOMETHING_ELSE", "passed")
        .env("PLUGIN_LOG_LEVEL", "debug"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let call = &env.calls("p")[0];
    let e = &call["env"];
    assert_eq!(e["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=web");
    assert_eq!(e["CNI_IFNAME"], "net1");
    assert_eq!(e["CNI_CONTAINERID"], "explicit-id");
    // filepath.Abs: joined with the working directory and cleaned.
    assert_eq!(e["CNI_NETNS"], env.root.join("ns").to_str().unwrap());
    // The runtime's environment passes through, `CNI_*` included, as in
    // libcni (the skel library reads CNI_NETNS_OVERRIDE).
    assert_eq!(e["CNI_NETNS_OVERRIDE"], "1");
    assert_eq!(e["CNI_SOMETHING_ELSE"], "passed");
    assert_eq!(e["PLUGIN_LOG_LEVEL"], "debug");
    assert_eq!(e["CNI_CACHE_DIR"], env.cache.to_str().unwrap());
    assert_eq!(
        stdin_of(call)["runtimeConfig"],
        json!({"portMappings":[{"hostPort":8080,"containerPort":80}]})
    );
}

#[test]
fn bad_environment_values_are_errors() {
    let env = TestEnv::new("cli-badenv");
    net(&env, "b", json!({}));
    for (var, val, msg) in [
        ("CNI_ARGS", "A=1;", "invalid CNI_ARGS pair \"\""),
        ("CNI_ARGS", "A=b=c", "invalid CNI_ARGS pair \"A=b=c\""),
        ("CAP_ARGS", "[1]", "CAP_ARGS"),
    ] {
        let out = run(env.cnitool().args(["add", "b", "/ns"]).env(var, val));
        assert_eq!(out.status.code(), Some(1), "{var}={val}");
        assert!(text(&out.stderr).contains(msg), "{}", text(&out.stderr));
    }
    // An empty CNI_IFNAME is used as is (the default applies only when unset).
    let out = run(env
        .cnitool()
        .args(["add", "b", "/ns"])
        .env("CNI_IFNAME", ""));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("interface name"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.calls("p").is_empty());
}

#[test]
fn errors_go_to_stderr_with_exit_1() {
    let env = TestEnv::new("cli-err");
    net(
        &env,
        "e",
        json!({"ADD": {"error": {"code": 7, "msg": "bad config", "details": "field x"}}}),
    );
    let out = run(env.cnitool().args(["add", "e", "/ns"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad config; field x")
            && err.contains("plugin `p`")
            && err.contains("network `e`"),
        "{err}"
    );
    let out = run(env.cnitool().args(["add", "missing", "/ns"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no network configuration named \"missing\""));
    let out = run(env
        .cnitool()
        .args(["add", "e", "/ns"])
        .env_remove("CNI_PATH"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no plugin directories"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dry_run_prints_the_plan_and_runs_nothing() {
    let env = TestEnv::new("cli-dry");
    net(&env, "dry", json!({}));
    let out = run(env.cnitool().args(["--dry-run", "add", "dry", "/ns"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("CNI_COMMAND=ADD") && plan.contains(r#""name":"dry""#),
        "{plan}"
    );
    assert!(env.calls("p").is_empty());
}

#[test]
fn timeout_flag_bounds_each_plugin_run() {
    let env = TestEnv::new("cli-timeout");
    let pidfile = env.path("pids");
    net(
        &env,
        "t",
        json!({"ADD": {"pidFile": pidfile, "hang": true}}),
    );
    let out = run(env
        .cnitool()
        .args(["--timeout", "300ms", "add", "t", "/ns"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("timed out after 300ms"),
        "{}",
        text(&out.stderr)
    );
    let out = run(env
        .cnitool()
        .args(["add", "t", "/ns"])
        .env("CNITOOL_TIMEOUT", "0.2"));
    assert!(
        text(&out.stderr).contains("timed out after 200ms"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn huge_or_zero_timeouts_are_usage_errors_or_no_limit_never_a_panic() {
    let env = TestEnv::new("cli-hugetimeout");
    net(&env, "h", json!({}));
    for (flag, why) in [
        ("99999999999999999999s", "too large"),
        ("99999999999999999999", "too large"),
        ("0", "must be positive"),
        ("5x", "invalid duration"),
    ] {
        let out = run(env.cnitool().args(["--timeout", flag, "add", "h", "/ns"]));
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(why) && !stderr.contains("panicked"),
            "{flag}: {stderr}"
        );
    }
    assert!(env.calls("p").is_empty());
    // The largest value is accepted and means no limit.
    let out = run(env
        .cnitool()
        .args(["--timeout", "18446744073709551615", "add", "h", "/ns"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn sigterm_kills_the_plugin_group_before_cnitool_exits() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let env = TestEnv::new("cli-signal");
        let pidfile = env.path("pids");
        let child_pids = env.path("child-pids");
        net(
            &env,
            "s",
            json!({"ADD": {"pidFile": pidfile, "ignoreTerm": true, "spawnChild": {"pidFile": child_pids, "ignoreTerm": true}, "hang": true}}),
        );
        let mut child = env
            .cnitool()
            .args(["add", "s", "/ns"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while pids(&child_pids).is_empty() {
            assert!(child.try_wait().unwrap().is_none(), "cnitool exited early");
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: signalling the child we spawned.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("cancelled"),
            "{}",
            text(&out.stderr)
        );
        // The plugin and its child are gone by the time cnitool has exited
        // (SIGKILL was delivered before it returned; allow the kernel to finish).
        assert_all_gone(&[&pidfile, &child_pids], 2, "after the signal");
    }
}

#[test]
fn two_cnitool_processes_on_one_attachment_take_turns() {
    let env = TestEnv::new("cli-xlock");
    let marks = env.path("marks");
    net(&env, "x", json!({"*": {"mark": marks, "sleepMs": 300}}));
    let spawn = |cmd: &str| {
        env.cnitool()
            .args([cmd, "x", "/ns"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let procs = [spawn("add"), spawn("add"), spawn("del"), spawn("add")];
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    assert_turns(&marks, 4);
}

fn net11(env: &TestEnv, name: &str, actions: Value) {
    env.plugin("p");
    let text =
        json!({"cniVersion":"1.1.0","name":name,"plugins":[{"type":"p","testPlugin":actions}]});
    env.write_config(&format!("10-{name}.conflist"), &text.to_string());
}

#[test]
fn gc_collects_everything_by_default_and_keeps_what_valid_names() {
    let env = TestEnv::new("cli-gc");
    net11(&env, "g", json!({}));
    for ns in ["/run/netns/a", "/run/netns/b", "/run/netns/c"] {
        let out = run(env.cnitool().args(["add", "g", ns]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let files = env.cache_files();
    assert_eq!(files.len(), 3);
    let cid = |f: &str| {
        f.strip_prefix("g-")
            .unwrap()
            .strip_suffix("-eth0")
            .unwrap()
            .to_owned()
    };
    let valid_file = env.path("valid.json");
    std::fs::write(
        &valid_file,
        json!([{"containerID": cid(&files[1]), "ifname": "eth0"}]).to_string(),
    )
    .unwrap();
    let out = run(env.cnitool().args([
        "gc",
        "g",
        "/run/netns/a",
        "--valid",
        &format!("{}/eth0", cid(&files[0])),
        "--valid-file",
        valid_file.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(env.cache_files(), files[..2]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("deleted stale attachment {}/eth0", cid(&files[2]))),
        "{stderr}"
    );
    let gc = env
        .calls("p")
        .into_iter()
        .find(|c| c["command"] == "GC")
        .unwrap();
    assert_eq!(
        stdin_of(&gc)["cni.dev/valid-attachments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The reference's form: everything of the network is collected.
    let out = run(env.cnitool().args(["gc", "g", "/run/netns/a"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(env.cache_files().is_empty());
    // A bad --valid is a usage error.
    let out = run(env.cnitool().args(["gc", "g", "/ns", "--valid", "nope"]));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn gc_failures_exit_1_naming_each() {
    let env = TestEnv::new("cli-gcfail");
    net11(
        &env,
        "g",
        json!({"GC": {"error": {"code": 11, "msg": "busy"}}}),
    );
    let out = run(env.cnitool().args(["gc", "g", "/ns"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("GC plugin `p` in network `g`") && stderr.contains("busy"),
        "{stderr}"
    );
}

#[test]
fn status_exits_0_when_ready_and_1_with_the_plugins_answer() {
    let env = TestEnv::new("cli-status");
    net11(&env, "ready", json!({}));
    let out = run(env.cnitool().args(["status", "ready", "/ns"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    net11(
        &env,
        "down",
        json!({"STATUS": {"error": {"code": 50, "msg": "no IPAM", "details": "pool empty"}}}),
    );
    let out = run(env.cnitool().args(["status", "down", "/ns"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("STATUS plugin `p` in network `down`")
            && stderr.contains("no IPAM; pool empty"),
        "{stderr}"
    );
}

#[test]
fn skipped_config_files_are_reported_also_on_success() {
    let env = TestEnv::new("cli-skipped");
    net(&env, "good", json!({}));
    env.write_config("00-broken.conflist", "{\n  \"name\": \"x\",\n  oops\n}");
    env.write_config("01-noname.conflist", r#"{"plugins":[{"type":"p"}]}"#);
    let out = run(env.cnitool().args(["add", "good", "/ns"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("00-broken.conflist") && lines[0].contains("line 3, column 3"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("01-noname.conflist") && lines[1].contains("missing `name`"),
        "{stderr}"
    );
    // Not found: every skipped file is named, since the network may be in one.
    let out = run(env.cnitool().args(["add", "missing", "/ns"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("00-broken.conflist") && stderr.contains("01-noname.conflist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no network configuration named \"missing\""),
        "{stderr}"
    );
}

#[test]
fn del_with_an_unusable_cache_warns_and_succeeds() {
    let env = TestEnv::new("cli-delwarn");
    net(&env, "w", json!({}));
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&env.cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.cache.join("results")).unwrap();
    let out = run(env.cnitool().args(["del", "w", "/ns"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("symlink"),
        "{stderr}"
    );
}
