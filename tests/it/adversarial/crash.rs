//! Crash safety: a child process runs ADD/DEL loops against the test
//! plugin and is SIGKILLed at random points, hundreds of times. Afterwards
//! `results/` holds only complete entries, and a restarted executor (this
//! process) DELs every attachment it finds and GC leaves the cache empty.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use libcni::{Cni, NetworkConfigList, RuntimeConfig};
use serde_json::{Value, json};

use super::{Rng, assert_cache_clean, names, scale, self_command};
use crate::support::{TestEnv, block_on_mt as block_on};

const ENV_DIR: &str = "LIBCNI_ADV_CRASH_DIR";

fn list(root: &std::path::Path) -> NetworkConfigList {
    let text = json!({"cniVersion": "1.1.0", "name": "crash", "plugins": [
        {"type": "cp1", "testPlugin": {"ADD": {"sleepMs": 2}}},
        {"type": "cp2"}
    ]});
    let _ = root;
    NetworkConfigList::from_bytes(text.to_string().as_bytes()).unwrap()
}

fn cni(root: &std::path::Path) -> Cni {
    Cni::new([root.join("bin")])
        .with_cache_dir(root.join("cache"))
        .with_timeout(Duration::from_secs(30))
}

/// The child: ADD/DEL loops until it is killed.
#[test]
fn crash_child() {
    let Some(root) = std::env::var_os(ENV_DIR) else {
        return; // Only a child of `sigkill_at_random_points` does anything.
    };
    let root = std::path::PathBuf::from(root);
    let list = list(&root);
    let cni = cni(&root);
    block_on(async {
        for i in 0u64.. {
            let rt =
                RuntimeConfig::new(format!("c{}", i % 5), "/run/netns/x", "eth0").arg("K", "V");
            let _ = cni.add_network_list(&list, &rt).await;
            if i % 3 != 0 {
                let _ = cni.del_network_list(&list, &rt).await;
            }
        }
    });
}

#[test]
fn sigkill_at_random_points_leaves_only_complete_entries() {
    let env = TestEnv::new("adv-crash");
    env.plugin("cp1");
    env.plugin("cp2");
    let mut rng = Rng::new("crash");
    let rounds = 200 * scale();
    let mut killed = 0;
    for _ in 0..rounds {
        let mut child = self_command(
            "adversarial::crash::crash_child",
            &[(ENV_DIR, env.root.as_os_str())],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        child.kill().unwrap();
        let st = child.wait().unwrap();
        if st.signal() == Some(libc::SIGKILL) {
            killed += 1;
        }
        // Every file in results/ is a complete entry, at every step.
        for name in names(&env.cache.join("results")) {
            let bytes = std::fs::read(env.cache.join("results").join(&name)).unwrap();
            let v: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{name} is not complete JSON ({e}): {bytes:?}"));
            assert_eq!(v["kind"], "cniCacheV1", "{name}");
            assert!(v["result"].is_object(), "{name}: no result");
            assert!(
                name.starts_with("crash-c") && name.ends_with("-eth0"),
                "{name}"
            );
        }
    }
    eprintln!("{killed} of {rounds} children killed by SIGKILL");
    assert!(killed > rounds / 2, "most children should die of SIGKILL");
    // The restarted executor: DEL every attachment found, then GC.
    let cni = cni(&env.root);
    let list = list(&env.root);
    let atts = cni.cached_attachments(None).unwrap();
    eprintln!(
        "{} attachments, {} temp files and {} lock files left by the crashes",
        atts.len(),
        names(&env.cache.join("results.tmp")).len(),
        names(&env.cache.join("locks")).len()
    );
    block_on(async {
        for a in &atts {
            cni.del_network_list(&list, &a.runtime_config())
                .await
                .unwrap();
        }
    });
    let report = block_on(cni.gc_network_list(&list, Some(&[]))).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_cache_clean(&env.cache);
}
