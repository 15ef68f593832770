//! `cnitool demo` as a new user runs it: with the real plugins, in network
//! namespaces of its own; interrupted; without root; without plugins.

#[path = "../../tests/it/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::netns::{REAL_PLUGIN_DIR, real_prereqs};
use crate::support::{TestEnv, cnitool_bin, is_root, require};

/// cnitool with a clean environment and `TMPDIR` inside the test's root.
fn demo(env: &TestEnv) -> Command {
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = Command::new(cnitool_bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", &tmp)
        .arg("demo");
    c
}

/// The demo's leftovers: its namespaces and anything in its `TMPDIR`.
fn assert_cleaned_up(env: &TestEnv, pid: u32) {
    for name in [
        format!("cnitool-demo-{pid}"),
        format!("cnitool-demo-{pid}-host"),
    ] {
        assert!(
            !Path::new("/run/netns").join(&name).exists(),
            "netns {name} left behind"
        );
    }
    let left: Vec<_> = std::fs::read_dir(env.path("tmp")).unwrap().collect();
    assert!(left.is_empty(), "work directory left behind: {left:?}");
}

#[test]
fn demo_attaches_checks_detaches_and_cleans_up() {
    if !real_prereqs() {
        return;
    }
    let env = TestEnv::new("demo-run");
    let child = demo(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "== ADD",
        "\"address\": \"10.22.0.2/16\"",
        "eth0   10.22.0.2/16",
        "== CHECK",
        "ok: detached",
        "results: empty",
        "no address reserved",
        "== cleaned up",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert_cleaned_up(&env, pid);

    // The same, for a script.
    let child = demo(&env)
        .arg("--json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "cnitool/v1");
    assert_eq!(v["kind"], "demo");
    assert_eq!(v["result"]["ips"][0]["address"], "10.22.0.2/16");
    assert!(
        v["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["interface"] == "eth0" && a["address"] == "10.22.0.2/16"),
        "{v}"
    );
    assert_eq!(v["checked"], true);
    assert_eq!(v["cacheAfterDel"], serde_json::json!([]));
    assert_eq!(v["hostLocalAddressesAfterDel"], serde_json::json!([]));
    assert_eq!(v["pluginDirs"][0], REAL_PLUGIN_DIR);
    assert_cleaned_up(&env, pid);
}

#[test]
fn an_interrupted_demo_detaches_and_removes_everything() {
    if !require(is_root(), "the demo needs root") {
        return;
    }
    let env = TestEnv::new("demo-int");
    // Stand-ins for bridge and host-local: ADD hangs after leaving a mark.
    let script = "#!/bin/sh\necho \"$CNI_COMMAND\" >> \"$DEMO_LOG\"\nif [ \"$CNI_COMMAND\" = ADD ]; then touch \"$DEMO_MARK\"; exec sleep 600; fi\nexit 0\n";
    for name in ["bridge", "host-local"] {
        let p = env.bin.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (mark, log) = (env.path("mark"), env.path("log"));
    let child = demo(&env)
        .arg("--plugin-dir")
        .arg(&env.bin)
        .env("DEMO_MARK", &mark)
        .env("DEMO_LOG", &log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    while !mark.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the demo's ADD never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    // The hanging ADD was killed, then DEL ran.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().collect::<Vec<_>>(), ["ADD", "DEL"]);
    assert_cleaned_up(&env, pid);
}

#[test]
fn the_demo_says_what_it_needs() {
    let env = TestEnv::new("demo-needs");
    if is_root() {
        // Without plugins: how to install them.
        let out = demo(&env)
            .arg("--plugin-dir")
            .arg(env.path("empty"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bridge and host-local")
                && err.contains("apt-get install containernetworking-plugins"),
            "{err}"
        );
    }
    // Without root: says so.
    let mut c = demo(&env);
    if is_root() {
        std::fs::set_permissions(env.path("tmp"), std::fs::Permissions::from_mode(0o777)).unwrap();
        c.uid(65534).gid(65534);
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
}
