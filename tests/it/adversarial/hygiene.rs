//! Hygiene: 10,000 operations, successful and failing every way a plugin
//! run can fail (not found, spawn error, plugin error, output over the
//! cap, timeout, invalid attachment), in a process of their own so that
//! `/proc/self/fd` counts only them: no file descriptor leaks and no
//! zombie is left.

use std::time::Duration;

use libcni::{NetworkConfigList, RuntimeConfig};
use serde_json::json;

use super::{scale, script, self_command};
use crate::support::TestEnv;

const ENV_CHILD: &str = "LIBCNI_ADV_HYGIENE_CHILD";

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process that are zombies.
fn zombies() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next());
        if state == Some("Z") && ppid == Some(me.as_str()) {
            out.push(pid);
        }
    }
    out
}

fn list(t: &str, actions: serde_json::Value) -> NetworkConfigList {
    NetworkConfigList::from_bytes(
        json!({"cniVersion": "1.1.0", "name": "hyg", "plugins": [{"type": t, "testPlugin": actions}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

fn child(ops: usize) {
    let env = TestEnv::new("adv-hygiene");
    env.plugin("ok");
    env.plugin("bad");
    script(&env.bin, "noexec-interp", "exit 0");
    std::fs::write(
        env.bin.join("noexec-interp"),
        "#!/nonexistent/interpreter\n",
    )
    .unwrap();
    script(&env.bin, "chatty", "cat >/dev/null; head -c 4096 /dev/zero");
    let good = list("ok", json!({}));
    let failing = list("bad", json!({"ADD": {"error": {"code": 11, "msg": "no"}}}));
    let missing = list("missing", json!({}));
    let spawn_err = list("noexec-interp", json!({}));
    let chatty = list("chatty", json!({}));
    let hang = list("ok", json!({"ADD": {"hang": true}}));
    let cni = env.cni().with_max_output(1024);
    let quick = env
        .cni()
        .with_timeout(Duration::from_millis(20))
        .with_kill_grace(Duration::from_millis(20));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = |i: usize| {
        rt.block_on(async {
            let r = RuntimeConfig::new(format!("c{}", i % 7), "/run/netns/x", "eth0");
            let ok = match i % 10 {
                0..=4 => {
                    cni.add_network_list(&good, &r).await.unwrap();
                    cni.del_network_list(&good, &r).await.unwrap();
                    return 2;
                }
                5 => cni.add_network_list(&failing, &r).await.is_err(),
                6 => cni.add_network_list(&missing, &r).await.is_err(),
                7 => cni.add_network_list(&spawn_err, &r).await.is_err(),
                8 => cni.add_network_list(&chatty, &r).await.is_err(),
                _ if i % 500 == 9 => quick.add_network_list(&hang, &r).await.is_err(),
                _ => {
                    let bad = RuntimeConfig::new("../x", "", "eth0");
                    cni.add_network_list(&good, &bad).await.is_err()
                }
            };
            assert!(ok, "operation {i} should have failed");
            1
        })
    };
    // Warm up: the runtime's and the allocator's own descriptors.
    let mut done = 0;
    let mut i = 0;
    while done < 100 {
        done += run(i);
        i += 1;
    }
    let before = fd_count();
    let mut done = 0;
    while done < ops {
        done += run(i);
        i += 1;
    }
    // Reaping is prompt but may trail the call by a moment (a background
    // reaper for killed plugins): wait for it, without asserting on time.
    let mut z = zombies();
    for _ in 0..500 {
        if z.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        z = zombies();
    }
    println!(
        "hygiene: ops={done} fds_before={before} fds_after={} zombies={z:?}",
        fd_count()
    );
    assert_eq!(fd_count(), before, "file descriptors leaked");
    assert!(z.is_empty(), "zombies: {z:?}");
}

#[test]
fn ten_thousand_operations_leak_no_fd_and_leave_no_zombie() {
    if std::env::var_os(ENV_CHILD).is_some() {
        child(10_000 * scale());
        return;
    }
    let out = self_command(
        "adversarial::hygiene::ten_thousand_operations_leak_no_fd_and_leave_no_zombie",
        &[(ENV_CHILD, "1".as_ref())],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("hygiene:").map(|i| &l[i..]));
    eprintln!("{}", line.unwrap_or("(no report)"));
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(line.is_some(), "{stdout}");
}
