//! The test plugin answers VERSION with every spec version it supports, and
//! logs the call beside itself.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[test]
fn version_lists_every_supported_version_and_logs_the_call() {
    let dir = std::env::temp_dir().join(format!("cni-test-plugin-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Under another name, as the tests install it; it logs to `<argv0>.calls.jsonl`.
    let plugin = dir.join("p");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cni-test-plugin"), &plugin).unwrap();
    let mut child = Command::new(&plugin)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"cniVersion":"0.4.0"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        reply,
        json!({
            "cniVersion": "0.4.0",
            "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        })
    );
    let log = std::fs::read_to_string(dir.join("p.calls.jsonl")).unwrap();
    let call: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(call["command"], "VERSION");
    assert_eq!(call["stdin"], r#"{"cniVersion":"0.4.0"}"#);
    std::fs::remove_dir_all(&dir).unwrap();
}
