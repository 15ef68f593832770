//! Output abuse: a plugin writing 100 MB, or forever, to stdout or stderr
//! is killed with its whole process group at the output cap, with a typed
//! error, and the runtime's memory holds at most the cap.

use libcni::{DEFAULT_MAX_OUTPUT, ErrorKind, NetworkConfigList, RuntimeConfig};

use super::script;
use crate::support::{TestEnv, block_on_mt as block_on, pids, wait_gone};

fn list(name: &str) -> NetworkConfigList {
    NetworkConfigList::from_bytes(
        format!(r#"{{"cniVersion":"1.0.0","name":"flood","plugins":[{{"type":"{name}"}}]}}"#)
            .as_bytes(),
    )
    .unwrap()
}

/// A plugin that starts a helper in its group (recording both pids), then
/// runs `flood`.
fn flooder(env: &TestEnv, name: &str, flood: &str) -> std::path::PathBuf {
    let pid_file = env.path(&format!("{name}.pids"));
    script(
        &env.bin,
        name,
        &format!(
            "echo $$ >> {p}\nsleep 1000 &\necho $! >> {p}\n{flood}",
            p = pid_file.display()
        ),
    );
    pid_file
}

#[test]
fn a_flood_on_stdout_or_stderr_hits_the_cap_and_kills_the_group() {
    let env = TestEnv::new("adv-flood");
    let cases = [
        // 100 MB on stdout, with the default cap.
        (
            "out100m",
            "head -c 104857600 /dev/zero",
            "stdout",
            DEFAULT_MAX_OUTPUT,
        ),
        // 100 MB on stderr, with the default cap.
        (
            "err100m",
            "head -c 104857600 /dev/zero >&2",
            "stderr",
            DEFAULT_MAX_OUTPUT,
        ),
        // Forever, with a small cap.
        ("outforever", "exec cat /dev/zero", "stdout", 1 << 20),
        ("errforever", "exec cat /dev/zero >&2", "stderr", 1 << 20),
    ];
    for (name, flood, stream, cap) in cases {
        let pid_file = flooder(&env, name, flood);
        let cni = env.cni().with_max_output(cap);
        let rt = RuntimeConfig::new("c1", "/run/netns/none", "eth0");
        let e = block_on(cni.add_network_list(&list(name), &rt)).unwrap_err();
        match e.kind() {
            ErrorKind::OutputTooLarge {
                stream: s, limit, ..
            } => {
                assert_eq!((*s, *limit), (stream, cap), "{name}: {e}");
            }
            other => panic!("{name}: expected OutputTooLarge, got {other:?}: {e}"),
        }
        assert_eq!(e.plugin(), Some(name), "{e}");
        // The plugin and the helper in its group are gone.
        let started = pids(&pid_file);
        assert_eq!(started.len(), 2, "{name}: {started:?}");
        let left = wait_gone(&started);
        crate::support::kill(&left);
        assert!(left.is_empty(), "{name}: survivors {left:?}");
        assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    }
}

/// Output just under the cap is still read whole; one byte more is not.
#[test]
fn the_cap_is_exact() {
    let env = TestEnv::new("adv-cap-exact");
    let result = r#"{"cniVersion":"1.0.0"}"#;
    script(
        &env.bin,
        "exact",
        &format!("cat >/dev/null\nprintf '%s' '{result}'"),
    );
    let rt = RuntimeConfig::new("c1", "/run/netns/none", "eth0");
    let ok = env.cni().with_max_output(result.len());
    block_on(ok.add_network_list(&list("exact"), &rt)).unwrap();
    block_on(ok.del_network_list(&list("exact"), &rt)).unwrap();
    let tight = env.cni().with_max_output(result.len() - 1);
    let e = block_on(tight.add_network_list(&list("exact"), &rt)).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::OutputTooLarge {
                stream: "stdout",
                ..
            }
        ),
        "{e}"
    );
}

/// The memory bound, measured: a child process (this test binary, alone)
/// runs a 100 MB flood with a 1 MiB cap and reports its peak RSS growth.
#[test]
fn memory_stays_bounded_under_a_flood() {
    if std::env::var_os("LIBCNI_ADV_FLOOD_CHILD").is_some() {
        flood_child();
        return;
    }
    let out = super::self_command(
        "adversarial::output::memory_stays_bounded_under_a_flood",
        &[("LIBCNI_ADV_FLOOD_CHILD", "1".as_ref())],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grew: u64 = text
        .lines()
        .find_map(|l| l.split("peak-rss-growth-kib=").nth(1))
        .unwrap_or_else(|| panic!("no measurement in {text}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("peak RSS growth during a 100 MB flood with a 1 MiB cap: {grew} KiB");
    // Far below the 100 MB written (the cap is 1 MiB per stream).
    assert!(grew < 32 * 1024, "peak RSS grew by {grew} KiB");
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn flood_child() {
    let env = TestEnv::new("adv-flood-mem");
    flooder(
        &env,
        "both",
        "head -c 104857600 /dev/zero & head -c 104857600 /dev/zero >&2; wait",
    );
    let cni = env.cni().with_max_output(1 << 20);
    let rt = RuntimeConfig::new("c1", "/run/netns/none", "eth0");
    block_on(async {
        let before = vm_hwm_kib();
        let e = cni.add_network_list(&list("both"), &rt).await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::OutputTooLarge { .. }), "{e}");
        println!(
            "peak-rss-growth-kib={}",
            vm_hwm_kib().saturating_sub(before)
        );
    });
}
