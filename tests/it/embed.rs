//! What an embedder builds on: custom executors, synchronous use, per-call
//! deadlines and cache directories.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libcni::exec::{ExecOutput, ExecRequest, ExitStatus};
use libcni::{BlockingCni, ErrorKind, Op, PluginExec, ProcessExec, RuntimeConfig};
use serde_json::json;

use crate::support::{TestEnv, assert_all_gone, stdin_of};

use crate::support::netns::block_on;

/// Records every request, runs most plugins as processes, and fails to
/// start the ones named in `broken` (as a wrapper such as `nsenter` would
/// when it cannot enter the namespace).
#[derive(Default, Clone)]
struct Recording {
    calls: Arc<Mutex<Vec<(PathBuf, Op, String)>>>,
    broken: Vec<&'static str>,
}

impl PluginExec for Recording {
    async fn exec(&self, req: ExecRequest<'_>) -> Result<ExecOutput, libcni::Error> {
        self.calls.lock().unwrap().push((
            req.path.to_owned(),
            req.op,
            String::from_utf8_lossy(req.stdin).into_owned(),
        ));
        let name = req.path.file_name().unwrap().to_str().unwrap();
        if self.broken.contains(&name) {
            return Err(libcni::Error::spawn(
                Path::new("/usr/bin/nsenter"),
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "cannot enter netns"),
            ));
        }
        if name == "fake" {
            // Answered without any process at all.
            let out = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24"}]});
            return Ok(ExecOutput::new(
                ExitStatus::Exited(0),
                out.to_string().into_bytes(),
                Vec::new(),
            ));
        }
        if name == "slow" {
            return Err(libcni::Error::timeout(Duration::from_millis(5)));
        }
        ProcessExec::new().exec(req).await
    }
}

#[test]
fn a_custom_executor_records_delegates_and_reports_typed_errors() {
    let env = TestEnv::new("custom-exec");
    for p in ["a", "b", "fake", "broken", "slow"] {
        env.plugin(p);
    }
    let exec = Recording {
        broken: vec!["broken"],
        ..Recording::default()
    };
    let cni = env.cni().with_exec(exec.clone());
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{"type":"fake"},{"type":"b"}]}"#);
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    let result = block_on(cni.add_network_list(&list, &rt)).unwrap();
    assert_eq!(result.to_latest().interfaces[0].name, "b");
    let calls = exec.calls.lock().unwrap().clone();
    let names: Vec<String> = calls
        .iter()
        .map(|(p, op, _)| format!("{op} {}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    assert_eq!(names, ["ADD a", "ADD fake", "ADD b"]);
    // `b` got the fake plugin's result as prevResult.
    let b_stdin: serde_json::Value = serde_json::from_str(&calls[2].2).unwrap();
    assert_eq!(b_stdin["prevResult"]["ips"][0]["address"], "10.1.2.3/24");
    assert_eq!(
        stdin_of(&env.calls("b")[0])["prevResult"]["ips"][0]["address"],
        "10.1.2.3/24"
    );

    // Errors built with the public constructors get the call's context.
    let list = env
        .list(r#"{"cniVersion":"1.0.0","name":"n2","plugins":[{"type":"a"},{"type":"broken"}]}"#);
    let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Spawn { path, .. } if path == Path::new("/usr/bin/nsenter")),
        "{e}"
    );
    assert_eq!(
        (e.plugin(), e.network(), e.op()),
        (Some("broken"), Some("n2"), Some(Op::Add))
    );
    assert!(
        std::error::Error::source(&e)
            .unwrap()
            .to_string()
            .contains("cannot enter netns")
    );
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"n3","plugins":[{"type":"slow"}]}"#);
    let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
    assert!(e.is_timeout() && e.plugin() == Some("slow"), "{e}");
}

#[test]
fn blocking_cni_works_without_a_runtime_and_from_several_threads() {
    let env = TestEnv::new("blocking");
    env.plugin("a");
    let list = env.list(r#"{"cniVersion":"1.1.0","name":"sync","plugins":[{"type":"a"}]}"#);
    let cni = BlockingCni::new(env.cni()).unwrap();
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    let r = cni.add_network_list(&list, &rt).unwrap();
    assert_eq!(r.version().as_str(), "1.1.0");
    cni.check_network_list(&list, &rt).unwrap();
    cni.status_network_list(&list).unwrap();
    assert_eq!(cni.cached_attachments(None).unwrap().len(), 1);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (cni, list) = (&cni, &list);
            s.spawn(move || {
                let rt = RuntimeConfig::new(format!("t{i}"), "/ns", "eth0");
                cni.add_network_list(list, &rt).unwrap();
                cni.del_network_list(list, &rt).unwrap();
            });
        }
    });
    let report = cni.gc_network_list(&list, None).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert!(env.cache_files().is_empty());
    assert!(cni.version_info("a").unwrap().supports("1.1.0"));
}

#[test]
fn a_deadline_bounds_the_whole_call_and_kills_the_plugin() {
    let env = TestEnv::new("deadline");
    let pid_file = env.path("pids");
    env.plugin("hang");
    let list = env.list(
        &json!({"cniVersion":"1.0.0","name":"d","plugins":[{"type":"hang","testPlugin":{"ADD":{"pidFile": pid_file, "hang": true}}}]})
            .to_string(),
    );
    // The per-plugin timeout is far away; the call's deadline is not.
    let cni = env.cni().with_timeout(Duration::from_secs(600));
    let rt = RuntimeConfig::new("c1", "/ns", "eth0").with_timeout(Duration::from_millis(300));
    let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DeadlineExceeded), "{e}");
    assert!(e.is_timeout());
    assert_eq!((e.network(), e.op()), (Some("d"), Some(Op::Add)));
    assert_all_gone(&[&pid_file], 1, "the hung plugin");
    assert!(env.cache_files().is_empty());
}

#[test]
fn a_deadline_covers_waiting_for_the_attachment_lock() {
    let env = TestEnv::new("deadline-lock");
    let started = env.path("started");
    let release = env.path("release");
    env.plugin("a");
    let list = env.list(
        &json!({"cniVersion":"1.0.0","name":"l","plugins":[{"type":"a","testPlugin":{"ADD":{"touch": started, "waitFor": release}}}]})
            .to_string(),
    );
    let cni = env.cni();
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    block_on(async {
        let holder = cni.add_network_list(&list, &rt);
        let waiter = async {
            while !started.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The same attachment: waits for the lock the ADD holds.
            let late = rt.clone().with_timeout(Duration::from_millis(200));
            let res = cni.del_network_list(&list, &late).await;
            std::fs::write(&release, "").unwrap();
            res
        };
        let (added, waited) = tokio::join!(holder, waiter);
        added.unwrap();
        let e = waited.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::DeadlineExceeded), "{e}");
    });
    // The DEL never ran a plugin; the ADD's entry is intact.
    let cmds: Vec<_> = env
        .calls("a")
        .iter()
        .map(|c| c["command"].clone())
        .collect();
    assert_eq!(cmds, [json!("ADD")]);
    assert_eq!(env.cache_files(), ["l-c1-eth0"]);
}

#[test]
fn a_call_can_use_its_own_cache_directory() {
    let env = TestEnv::new("call-cache");
    env.plugin("a");
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"cc","plugins":[{"type":"a"}]}"#);
    let cni = env.cni();
    let own = env.path("own-cache");
    let rt = RuntimeConfig::new("c1", "/ns", "eth0").with_cache_dir(&own);
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    assert!(own.join("results/cc-c1-eth0").is_file());
    assert!(env.cache_files().is_empty(), "the Cni's cache is untouched");
    assert!(cni.cached_result(&list, &rt).unwrap().is_some());
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    // DEL got the cached result from the call's directory.
    assert!(stdin_of(&env.calls("a")[1]).get("prevResult").is_some());
    assert!(!own.join("results/cc-c1-eth0").exists());
}

#[test]
fn names_read_both_ways() {
    let cni = libcni::Cni::new(["/opt/cni/bin"])
        .with_cache_dir("/tmp/x")
        .with_timeout(Duration::from_secs(7))
        .with_kill_grace(Duration::from_secs(2));
    assert_eq!(cni.cache_dir(), Path::new("/tmp/x"));
    assert_eq!(cni.timeout(), Duration::from_secs(7));
    assert_eq!(cni.kill_grace(), Duration::from_secs(2));
    assert_eq!(cni.plugin_dirs(), [PathBuf::from("/opt/cni/bin")]);
    let rt = RuntimeConfig::new("c", "/ns", "eth0")
        .with_args(vec![("A".into(), "1".into())])
        .arg("B", "2")
        .capability_arg("mac", json!("aa:bb:cc:dd:ee:ff"))
        .with_cache_dir("/tmp/y");
    assert_eq!(rt.args().len(), 2);
    assert_eq!(rt.capability_args()["mac"], "aa:bb:cc:dd:ee:ff");
    assert_eq!(rt.cache_dir(), Some(Path::new("/tmp/y")));
    assert_eq!(rt.deadline(), None);
}

#[test]
fn rollback_deletes_what_a_failed_add_set_up() {
    let env = TestEnv::new("rollback");
    env.plugin("a");
    env.plugin("b");
    let list = env.list(
        r#"{"cniVersion":"1.0.0","name":"rb","plugins":[{"type":"a"},{"type":"b","testPlugin":{"ADD":{"error":{"code":11,"msg":"no IPs"}}}}]}"#,
    );
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    // Off by default, as in libcni: nothing is undone.
    let e = block_on(env.cni().add_network_list(&list, &rt)).unwrap_err();
    assert!(e.rollback().is_none());
    assert!(env.calls("a").iter().all(|c| c["command"] == "ADD"));
    // On: DEL of the whole list, in reverse, and the outcome on the error.
    let cni = env.cni().with_rollback(true);
    let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
    assert!(matches!(e.rollback(), Some(Ok(()))), "{e}");
    assert!(
        e.is_retryable() && e.to_string().ends_with("(rolled back)"),
        "{e}"
    );
    let cmds = |p: &str| -> Vec<String> {
        env.calls(p)
            .iter()
            .map(|c| c["command"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(cmds("a"), ["ADD", "ADD", "DEL"]);
    assert_eq!(cmds("b"), ["ADD", "ADD", "DEL"]);
    assert!(env.cache_files().is_empty());
    // A failing rollback is reported with the original error.
    let list = env.list(
        r#"{"cniVersion":"1.0.0","name":"rb2","plugins":[{"type":"a","testPlugin":{"ADD":{"error":{"code":7,"msg":"bad"}},"DEL":{"error":{"code":5,"msg":"io"}}}}]}"#,
    );
    let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
    let re = e.rollback().unwrap().unwrap_err();
    assert_eq!(re.op(), Some(Op::Del));
    assert!(e.to_string().contains("rollback failed"), "{e}");
    // Nothing ran (a missing plugin): nothing to roll back.
    let list = env.list(r#"{"cniVersion":"1.0.0","name":"rb3","plugins":[{"type":"missing"}]}"#);
    let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
    assert!(e.rollback().is_none(), "{e}");
}

#[test]
fn max_concurrent_plugins_bounds_parallel_runs() {
    let env = TestEnv::new("limit");
    let marks = env.path("marks");
    env.plugin("a");
    let list = env.list(
        &json!({"cniVersion":"1.0.0","name":"lim","plugins":[{"type":"a","testPlugin":{"ADD":{"mark": marks, "sleepMs": 30}}}]})
            .to_string(),
    );
    let cni = env.cni().with_max_concurrent_plugins(1);
    assert_eq!(cni.max_concurrent_plugins(), Some(1));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut tasks = Vec::new();
            for i in 0..4 {
                let (cni, list) = (cni.clone(), list.clone());
                tasks.push(tokio::spawn(async move {
                    let rt = RuntimeConfig::new(format!("c{i}"), "/ns", "eth0");
                    cni.add_network_list(&list, &rt).await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
    // With one permit, runs never overlap: start/end strictly alternate.
    crate::support::assert_turns(&marks, 4);
}

/// Runs an example to its end; asserts that it succeeded and returns its
/// stdout.
fn example_output(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A network `emb` of the test plugin, for the examples.
fn example_env(label: &str) -> TestEnv {
    let env = TestEnv::new(label);
    env.plugin("p");
    env.write_config(
        "10-emb.conflist",
        &json!({"cniVersion":"1.0.0","name":"emb","plugins":[{"type":"p"}]}).to_string(),
    );
    env
}

/// Runs the async_shim example with `requests` on its stdin; returns its
/// exit status, stdout and stderr.
fn shim(env: &TestEnv, requests: &[String]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::support::workspace_bin("examples/async_shim"))
        .args([&env.net_d, &env.bin, &env.cache])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for r in requests {
            writeln!(stdin, "{r}").unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_async_shim_example_serves_concurrent_requests() {
    let env = example_env("ex-shim");
    let requests = |cmd: &str| -> Vec<String> {
        (0..4)
            .map(|i| format!("{cmd} c{i} /var/run/netns/c{i}"))
            .collect()
    };
    let mut adds = requests("add");
    adds.push("bogus line".to_owned());
    let out = shim(&env, &adds);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].starts_with("err \"bogus line\": expected"),
        "{stdout}"
    );
    for i in 0..4 {
        assert_eq!(
            lines[i + 1],
            format!("ok add c{i} 10.99.0.2/24"),
            "{stdout}"
        );
    }
    assert_eq!(env.cache_files().len(), 4, "{:?}", env.cache_files());

    // Then check and delete them.
    for cmd in ["check", "del"] {
        let out = shim(&env, &requests(cmd));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ok = format!("ok {cmd}");
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with(&ok)).count(),
            4,
            "{stdout}"
        );
    }
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[test]
fn the_sync_runtime_example_attaches_from_threads_without_tokio() {
    let env = example_env("ex-sync");
    let stdout = example_output(
        std::process::Command::new(crate::support::workspace_bin("examples/sync_runtime"))
            .args([&env.net_d, &env.bin, &env.cache])
            .args(["emb", "6"]),
    );
    for i in 0..6 {
        assert!(
            stdout.contains(&format!("sync-{i}: 10.99.0.2/24")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("cached for sync-0:") && stdout.contains("detached 6 container(s)"),
        "{stdout}"
    );
    let adds = env
        .calls("p")
        .iter()
        .filter(|c| c["command"] == "ADD")
        .count();
    assert_eq!(adds, 6);
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[test]
fn the_metrics_example_counts_operations_and_plugin_runs() {
    let env = example_env("ex-metrics");
    let stdout = example_output(
        std::process::Command::new(crate::support::workspace_bin("examples/metrics"))
            .args([&env.net_d, &env.bin])
            .args(["/var/run/netns/metrics", "2"])
            .env("CNI_CACHE_DIR", &env.cache),
    );
    for op in ["ADD", "CHECK", "DEL"] {
        let line =
            format!("cni_operations_total{{network=\"emb\",operation=\"{op}\",outcome=\"ok\"}} 2");
        assert!(stdout.contains(&line), "no {line} in:\n{stdout}");
    }
    assert!(
        stdout.contains("# TYPE cni_operation_duration_seconds histogram"),
        "{stdout}"
    );
    assert!(stdout.contains("cni_plugin"), "{stdout}");
    // Its cache was the test's, and is empty again.
    assert!(env.cache.join("results").is_dir());
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}
