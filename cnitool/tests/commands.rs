//! cnitool's commands as a person and a script use them: `list`, `plan`,
//! `validate`, `version`, the flags, `--json` on every command, every
//! error message a user can hit (snapshots of the human output, with
//! insta), completions and the man page.

// The helpers libcni's integration tests use, shared rather than copied.
#[path = "../../tests/it/support/mod.rs"]
mod support;

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::support::TestEnv;

fn cmd(env: &TestEnv) -> Command {
    Command::from_std(env.cnitool())
}

/// The output with the test's temp root replaced by `[ROOT]`.
fn norm(env: &TestEnv, b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace(env.root.to_str().unwrap(), "[ROOT]")
}

/// A two-plugin network `two` (1.0.0) and a one-plugin network `one`
/// (1.1.0, with an IPAM plugin), both on the test plugin.
fn two_networks(env: &TestEnv) {
    env.plugin("p");
    env.plugin("q");
    env.plugin("ipam");
    env.write_config(
        "10-two.conflist",
        &json!({"cniVersion":"1.0.0","name":"two","plugins":[
            {"type":"p","capabilities":{"portMappings":true}},
            {"type":"q","mtu":1400}]})
        .to_string(),
    );
    env.write_config(
        "20-one.conf",
        &json!({"cniVersion":"1.1.0","name":"one","type":"q","ipam":{"type":"ipam"}}).to_string(),
    );
}

/// Parses one JSON line and checks the envelope.
fn envelope(out: &[u8], kind: &str) -> Value {
    let text = String::from_utf8_lossy(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {text}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["schema"], "cnitool/v1", "{v}");
    assert_eq!(v["kind"], kind, "{v}");
    v
}

#[test]
fn list_shows_load_order_default_chains_plugins_and_skipped_files() {
    let env = TestEnv::new("cmd-list");
    two_networks(&env);
    env.write_config(
        "30-missing.conflist",
        &json!({"cniVersion":"0.4.0","name":"missing","plugins":[{"type":"nosuch"}]}).to_string(),
    );
    env.write_config("05-broken.conflist", "{\n  \"name\": \"x\",\n  oops\n}");
    env.write_config("06-noname.conflist", r#"{"plugins":[{"type":"p"}]}"#);
    let out = cmd(&env).arg("list").assert().success();
    insta::assert_snapshot!("list", norm(&env, &out.get_output().stdout));

    let out = cmd(&env).args(["list", "--json"]).assert().success();
    let v = envelope(&out.get_output().stdout, "list");
    assert_eq!(v["defaultNetwork"], "two");
    let names: Vec<&str> = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["two", "one", "missing"]);
    assert_eq!(v["networks"][1]["plugins"][0]["ipam"]["type"], "ipam");
    assert_eq!(v["networks"][2]["ready"], false);
    assert_eq!(v["skipped"][0]["line"], 3);
    assert_eq!(v["skipped"][0]["column"], 3);
    assert!(
        v["skipped"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("missing `name`")
    );
    // Nothing ran.
    assert!(env.calls("p").is_empty());
}

#[test]
fn plan_shows_each_run_and_where_prev_result_comes_from_and_runs_nothing() {
    let env = TestEnv::new("cmd-plan");
    two_networks(&env);
    let out = cmd(&env)
        .args(["plan", "add", "two", "/var/run/netns/foo"])
        .assert()
        .success();
    insta::assert_snapshot!("plan_add", norm(&env, &out.get_output().stdout));
    assert!(env.calls("p").is_empty() && env.calls("q").is_empty());

    // After an ADD, DEL and CHECK take prevResult from the cache.
    cmd(&env)
        .args(["add", "two", "/var/run/netns/foo"])
        .assert()
        .success();
    let out = cmd(&env)
        .args(["plan", "del", "two", "/var/run/netns/foo"])
        .assert()
        .success();
    insta::assert_snapshot!("plan_del", norm(&env, &out.get_output().stdout));
    let calls = env.calls("p").len();

    let out = cmd(&env)
        .args(["--json", "plan", "check", "two", "/var/run/netns/foo"])
        .assert()
        .success();
    let v = envelope(&out.get_output().stdout, "plan");
    assert_eq!(v["command"], "CHECK");
    assert_eq!(v["invocations"][0]["prevResult"], json!({"from": "cache"}));
    assert_eq!(v["invocations"][0]["env"]["CNI_COMMAND"], "CHECK");
    assert_eq!(
        v["invocations"][0]["stdin"]["prevResult"]["cniVersion"],
        "1.0.0"
    );
    let out = cmd(&env)
        .args(["--json", "plan", "add", "two", "/var/run/netns/foo"])
        .assert()
        .success();
    let v = envelope(&out.get_output().stdout, "plan");
    assert_eq!(v["invocations"][0]["prevResult"], Value::Null);
    assert_eq!(
        v["invocations"][1]["prevResult"],
        json!({"from": "plugin", "step": 1})
    );
    // GC and STATUS need no netns.
    let out = cmd(&env).args(["plan", "status", "one"]).assert().success();
    let text = norm(&env, &out.get_output().stdout);
    assert!(
        text.contains("STATUS network \"one\"") && text.contains("CNI_COMMAND=STATUS"),
        "{text}"
    );
    cmd(&env).args(["plan", "gc", "two"]).assert().success();
    // The older spelling still works.
    cmd(&env)
        .args(["--dry-run", "del", "two", "/var/run/netns/foo"])
        .assert()
        .success();
    assert_eq!(env.calls("p").len(), calls, "plan ran a plugin");
}

#[test]
fn validate_checks_every_plugin_and_ipam_plugin_against_the_version() {
    let env = TestEnv::new("cmd-validate");
    two_networks(&env);
    cmd(&env).args(["validate", "two"]).assert().success();
    // The IPAM plugin only supports 0.4.0: `one` (1.1.0) is not valid.
    std::fs::write(
        env.bin.join("ipam.version.json"),
        r#"{"cniVersion":"0.4.0","supportedVersions":["0.3.1","0.4.0"]}"#,
    )
    .unwrap();
    env.write_config(
        "30-missing.conflist",
        &json!({"cniVersion":"0.4.0","name":"missing","plugins":[{"type":"brdige"}]}).to_string(),
    );
    let out = cmd(&env).arg("validate").assert().code(1);
    insta::assert_snapshot!("validate", norm(&env, &out.get_output().stdout));
    let out = cmd(&env).args(["validate", "--json"]).assert().code(1);
    let v = envelope(&out.get_output().stdout, "validate");
    assert_eq!(v["networks"][0]["valid"], true);
    assert_eq!(v["networks"][1]["valid"], false);
    assert_eq!(v["networks"][1]["plugins"][1]["role"], "ipam");
    assert_eq!(
        v["networks"][1]["plugins"][1]["supportedVersions"],
        json!(["0.3.1", "0.4.0"])
    );
}

#[test]
fn version_asks_the_plugin() {
    let env = TestEnv::new("cmd-version");
    env.plugin("p");
    let out = cmd(&env).args(["version", "p"]).assert().success();
    assert_eq!(
        norm(&env, &out.get_output().stdout),
        "p ([ROOT]/bin/p): supports CNI 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
    );
    let out = cmd(&env)
        .args(["version", "p", "--json"])
        .assert()
        .success();
    let v = envelope(&out.get_output().stdout, "version");
    assert_eq!(v["plugin"], "p");
    assert_eq!(v["supportedVersions"][6], "1.1.0");
    assert_eq!(env.calls("p")[0]["command"], "VERSION");
}

#[test]
fn flags_override_the_environment_and_reach_the_plugin() {
    let env = TestEnv::new("cmd-flags");
    let other = env.path("other-net.d");
    std::fs::create_dir_all(&other).unwrap();
    env.plugin("p");
    std::fs::write(
        other.join("10-f.conflist"),
        json!({"cniVersion":"1.0.0","name":"f","plugins":[{"type":"p","capabilities":{"portMappings":true}}]})
            .to_string(),
    )
    .unwrap();
    let cache = env.path("other-cache");
    let out = cmd(&env)
        .env("NETCONFPATH", env.path("nowhere"))
        .env("CNI_PATH", env.path("nowhere"))
        .env("CNI_IFNAME", "ignored0")
        .args(["--conf-dir", other.to_str().unwrap()])
        .args(["--plugin-dir", env.bin.to_str().unwrap()])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args([
            "--ifname",
            "net1",
            "--args",
            "K8S_POD_NAME=web;IgnoreUnknown=1",
        ])
        .args([
            "--cap-args",
            r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#,
        ])
        .args(["--container-id", "c-42", "add", "f", "/var/run/netns/x"])
        .assert()
        .success();
    assert!(!out.get_output().stdout.is_empty());
    let call = &env.calls("p")[0];
    assert_eq!(call["env"]["CNI_IFNAME"], "net1");
    assert_eq!(call["env"]["CNI_CONTAINERID"], "c-42");
    assert_eq!(call["env"]["CNI_ARGS"], "K8S_POD_NAME=web;IgnoreUnknown=1");
    assert_eq!(call["env"]["CNI_PATH"], env.bin.to_str().unwrap());
    let stdin: Value = serde_json::from_str(call["stdin"].as_str().unwrap()).unwrap();
    assert_eq!(stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert!(cache.join("results/f-c-42-net1").is_file());
    // --plugin-dir repeats and splits on `:`.
    let out = cmd(&env)
        .args([
            "--plugin-dir",
            "/nonexistent-a:/nonexistent-b",
            "--plugin-dir",
        ])
        .arg(&env.bin)
        .args(["--json", "plan", "add", "f", "/ns"])
        .env("NETCONFPATH", &other)
        .assert()
        .success();
    let v = envelope(&out.get_output().stdout, "plan");
    assert_eq!(
        v["invocations"][0]["env"]["CNI_PATH"],
        format!("/nonexistent-a:/nonexistent-b:{}", env.bin.display())
    );
}

#[test]
fn every_command_speaks_json() {
    let env = TestEnv::new("cmd-json");
    two_networks(&env);
    env.write_config("05-broken.conflist", "{");
    let ns = "/var/run/netns/j";
    let out = cmd(&env)
        .args(["--json", "add", "two", ns])
        .assert()
        .success();
    let v = envelope(&out.get_output().stdout, "done");
    assert_eq!(v["command"], "ADD");
    assert_eq!(v["network"], "two");
    assert_eq!(v["result"]["cniVersion"], "1.0.0");
    assert_eq!(v["result"]["interfaces"][0]["sandbox"], ns);
    assert_eq!(v["skipped"][0]["line"], 1);
    // No skipped-file line on stderr: it is in the JSON.
    assert!(
        out.get_output().stderr.is_empty(),
        "{}",
        norm(&env, &out.get_output().stderr)
    );
    for (args, command) in [
        (vec!["check", "two", ns], "CHECK"),
        (vec!["del", "two", ns], "DEL"),
        (vec!["status", "one", ns], "STATUS"),
    ] {
        let out = cmd(&env).arg("--json").args(&args).assert().success();
        let v = envelope(&out.get_output().stdout, "done");
        assert_eq!(v["command"], command, "{args:?}");
    }
    cmd(&env)
        .args(["--json", "add", "one", ns])
        .assert()
        .success();
    let out = cmd(&env)
        .args(["--json", "gc", "one", ns])
        .assert()
        .success();
    let v = envelope(&out.get_output().stdout, "done");
    assert_eq!(v["gc"]["deleted"][0]["ifname"], "eth0");
    assert_eq!(v["gc"]["plugins"], json!(["q"]));
    let out = cmd(&env)
        .args(["--json", "watch", "--once"])
        .assert()
        .success();
    envelope(&out.get_output().stdout, "networks");
    // Errors are JSON on stdout too, with the exit status 1.
    let out = cmd(&env)
        .args(["--json", "add", "nope", ns])
        .assert()
        .code(1);
    let v = envelope(&out.get_output().stdout, "error");
    assert_eq!(v["error"]["kind"], "networkNotFound");
    assert!(!v["error"]["hints"].as_array().unwrap().is_empty());
    let out = cmd(&env)
        .args(["--json", "add", "two", ns])
        .env("CNI_ARGS", "oops")
        .assert()
        .code(1);
    let v = envelope(&out.get_output().stdout, "error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid CNI_ARGS pair")
    );
}

/// Runs cnitool and returns `$ args` followed by its stderr, for the
/// error snapshot.
fn error_case(env: &TestEnv, c: &mut Command, shown: &str) -> String {
    let out = c.assert().code(1);
    let o = out.get_output();
    assert!(o.stdout.is_empty(), "{shown}: {}", norm(env, &o.stdout));
    format!("$ cnitool {shown}\n{}\n", norm(env, &o.stderr))
}

#[test]
fn every_error_a_user_can_hit_says_what_where_and_what_to_do() {
    let env = TestEnv::new("cmd-errors");
    env.plugin("p");
    let net = |name: &str, version: &str, plugin: &str, actions: Value| {
        env.write_config(
            &format!("10-{name}.conflist"),
            &json!({"cniVersion":version,"name":name,"plugins":[{"type":plugin,"testPlugin":actions}]})
                .to_string(),
        );
    };
    net("ok", "1.0.0", "p", json!({}));
    net("typo", "1.0.0", "pp", json!({}));
    net("vendor", "1.0.0", "calico", json!({}));
    net(
        "fails",
        "1.0.0",
        "p",
        json!({"ADD": {"error": {"code": 7, "msg": "bad config", "details": "field x"}}}),
    );
    net(
        "busy",
        "1.0.0",
        "p",
        json!({"ADD": {"error": {"code": 11, "msg": "busy"}}}),
    );
    net(
        "crash",
        "1.0.0",
        "p",
        json!({"ADD": {"stderr": "panic: oops\n", "exit": 2, "stdout": ""}}),
    );
    net(
        "garbage",
        "1.0.0",
        "p",
        json!({"ADD": {"stdout": "not json"}}),
    );
    net("slow", "1.0.0", "p", json!({"ADD": {"hang": true}}));
    net("old", "0.3.1", "p", json!({}));
    net(
        "down",
        "1.1.0",
        "p",
        json!({"STATUS": {"error": {"code": 50, "msg": "no IPAM", "details": "pool empty"}}}),
    );
    std::fs::write(env.bin.join("noexec"), "#!/bin/sh\n").unwrap();
    net("noexec", "1.0.0", "noexec", json!({}));
    let empty = env.path("empty.d");
    std::fs::create_dir_all(&empty).unwrap();
    let valid_file = env.path("valid.json");
    std::fs::write(&valid_file, r#"{"not": "an array"}"#).unwrap();

    let ns = "/var/run/netns/e";
    let mut snap = String::new();
    for (args, shown) in [
        (vec!["add", "nope", ns], "add nope NS"),
        (vec!["add", "typo", ns], "add typo NS"),
        (vec!["add", "vendor", ns], "add vendor NS"),
        (vec!["add", "noexec", ns], "add noexec NS"),
        (vec!["add", "fails", ns], "add fails NS"),
        (vec!["add", "busy", ns], "add busy NS"),
        (vec!["add", "crash", ns], "add crash NS"),
        (vec!["add", "garbage", ns], "add garbage NS"),
        (
            vec!["--timeout", "200ms", "add", "slow", ns],
            "--timeout 200ms add slow NS",
        ),
        (
            vec!["check", "old", ns],
            "check old NS  (0.3.1 has no CHECK)",
        ),
        (vec!["status", "down", ns], "status down NS"),
        (
            vec!["--ifname", "", "add", "ok", ns],
            "--ifname '' add ok NS",
        ),
        (
            vec!["--container-id", "a/b", "add", "ok", ns],
            "--container-id a/b add ok NS",
        ),
        (
            vec!["--args", "A=1;B", "add", "ok", ns],
            "--args 'A=1;B' add ok NS",
        ),
        (
            vec!["--cap-args", "[1]", "add", "ok", ns],
            "--cap-args '[1]' add ok NS",
        ),
        (
            vec!["gc", "ok", ns, "--valid-file", valid_file.to_str().unwrap()],
            "gc ok NS --valid-file [ROOT]/valid.json",
        ),
        (vec!["version", "pp"], "version pp"),
        (vec!["plan", "add", "ok"], "plan add ok"),
    ] {
        snap.push_str(&error_case(&env, cmd(&env).args(&args), shown));
    }
    snap.push_str(&error_case(
        &env,
        cmd(&env).args(["add", "ok", ns]).env_remove("CNI_PATH"),
        "add ok NS  (CNI_PATH unset)",
    ));
    snap.push_str(&error_case(
        &env,
        cmd(&env).args(["add", "ok", ns]).env("NETCONFPATH", &empty),
        "add ok NS  (NETCONFPATH empty)",
    ));
    // The plugin directory listing names the log files the test plugin
    // writes; they come and go, so they are left out.
    let snap: String = snap
        .lines()
        .map(|l| {
            if l.contains("holds") {
                l.split(" holds ").next().unwrap().to_owned() + " holds [...]"
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("errors", snap);
}

#[test]
fn usage_errors_name_the_problem() {
    let env = TestEnv::new("cmd-usage");
    let out = cmd(&env).args(["plan", "frobnicate", "x"]).assert().code(1);
    let err = norm(&env, &out.get_output().stderr);
    assert!(
        err.contains("invalid value 'frobnicate'") && err.contains("add, check, del, gc, status"),
        "{err}"
    );
    let out = cmd(&env).args(["--timeout", "0", "list"]).assert().code(1);
    assert!(norm(&env, &out.get_output().stderr).contains("must be positive"));
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let env = TestEnv::new("cmd-gen");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = cmd(&env).args(["completions", shell]).assert().success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        for word in ["validate", "plugin-dir", "cap-args"] {
            assert!(text.contains(word), "{shell}: no {word}");
        }
    }
    let out = cmd(&env).arg("man").assert().success();
    let man = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        man.starts_with(".ie") || man.contains(".TH cnitool"),
        "{man}"
    );
    for word in ["NETCONFPATH", "demo", "\\-\\-conf\\-dir"] {
        assert!(man.contains(word), "man page lacks {word}");
    }
    let out = cmd(&env).args(["completions", "tcsh"]).assert().code(1);
    assert!(!out.get_output().stderr.is_empty());
}

#[test]
fn list_says_why_there_is_nothing_to_list() {
    let env = TestEnv::new("cmd-list-empty");
    let out = cmd(&env).arg("list").assert().success();
    let text = norm(&env, &out.get_output().stdout);
    assert!(
        text.contains("no .conf, .conflist or .json file in [ROOT]/net.d"),
        "{text}"
    );
    let out = cmd(&env)
        .args(["--conf-dir", "/nonexistent-cnitool-test", "list"])
        .assert()
        .success();
    let text = norm(&env, &out.get_output().stdout);
    assert!(
        text.contains("/nonexistent-cnitool-test is not a directory"),
        "{text}"
    );
}
