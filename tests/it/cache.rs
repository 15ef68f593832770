//! The result cache: libcni's layout and bytes, atomic writes, and no
//! escaping the cache directory.

use std::os::unix::fs::PermissionsExt;

use libcni::{ErrorKind, RuntimeConfig};
use serde_json::json;

use crate::support::{TestEnv, stdin_of};

use crate::support::netns::block_on;

/// The conflist and attachment used with the reference cnitool v1.3.0 to
/// produce `LIBCNI_CACHE` below (`cnitool add x /var/run/netns/foo` with
/// `CNI_ARGS='A=1;B=2'` and `CAP_ARGS='{"portMappings":[{"hostPort":80}]}'`,
/// plugins `tp` and `tp2` being the test plugin).
const CONFLIST: &str = "{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"plugins\":[{\"type\":\"tp\",\"capabilities\":{\"portMappings\":true}},{\"type\":\"tp2\",\"big\":12345678901234567890}]}\n";
const LIBCNI_CACHE: &str = r#"{"kind":"cniCacheV1","containerId":"cnitool-0e6b52a07b770f1e750c","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoieCIsInBsdWdpbnMiOlt7InR5cGUiOiJ0cCIsImNhcGFiaWxpdGllcyI6eyJwb3J0TWFwcGluZ3MiOnRydWV9fSx7InR5cGUiOiJ0cDIiLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwfV19Cg==","ifName":"eth0","networkName":"x","netns":"/var/run/netns/foo","cniArgs":[["A","1"],["B","2"]],"capabilityArgs":{"portMappings":[{"hostPort":80}]},"result":{"cniVersion":"1.0.0","interfaces":[{"name":"tp","sandbox":"/var/run/netns/foo"},{"name":"tp2","sandbox":"/var/run/netns/foo"}],"ips":[{"address":"10.99.0.2/24","interface":0}]}}"#;

fn reference_rt() -> RuntimeConfig {
    RuntimeConfig::new("cnitool-0e6b52a07b770f1e750c", "/var/run/netns/foo", "eth0")
        .arg("A", "1")
        .arg("B", "2")
        .capability_arg("portMappings", json!([{"hostPort": 80}]))
}

fn reference_env(name: &str) -> TestEnv {
    let env = TestEnv::new(name);
    env.plugin("tp");
    env.plugin("tp2");
    env
}

#[test]
fn cache_file_is_byte_identical_to_libcni() {
    let env = reference_env("bytes");
    let list = env.list(CONFLIST);
    block_on(env.cni().add_network_list(&list, &reference_rt())).unwrap();
    let path = env
        .cache
        .join("results/x-cnitool-0e6b52a07b770f1e750c-eth0");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), LIBCNI_CACHE);
}

#[test]
fn cache_layout_and_permissions_match_libcni() {
    let env = reference_env("perms");
    let cni = env.cni().with_cache_dir(env.path("deep/er/cache"));
    block_on(cni.add_network_list(&env.list(CONFLIST), &reference_rt())).unwrap();
    let results = env.path("deep/er/cache/results");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&results), 0o700);
    assert_eq!(mode(&env.path("deep/er/cache")), 0o700);
    assert_eq!(
        mode(&results.join("x-cnitool-0e6b52a07b770f1e750c-eth0")),
        0o600
    );
    // Only the cache file: no temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["x-cnitool-0e6b52a07b770f1e750c-eth0"]);
}

#[test]
fn a_cache_written_by_libcni_is_used_by_del_and_check() {
    let env = reference_env("interop");
    let list = env.list(CONFLIST);
    std::fs::create_dir_all(env.cache.join("results")).unwrap();
    std::fs::write(
        env.cache
            .join("results/x-cnitool-0e6b52a07b770f1e750c-eth0"),
        LIBCNI_CACHE,
    )
    .unwrap();
    let cni = env.cni();
    block_on(cni.check_network_list(&list, &reference_rt())).unwrap();
    block_on(cni.del_network_list(&list, &reference_rt())).unwrap();
    let want: serde_json::Value = serde_json::from_str(LIBCNI_CACHE).unwrap();
    for call in env.calls("tp") {
        assert_eq!(
            stdin_of(&call)["prevResult"],
            want["result"],
            "{}",
            call["command"]
        );
    }
    assert!(env.cache_files().is_empty());
}

#[test]
fn legacy_bare_result_cache_files_are_read() {
    let env = reference_env("legacy");
    let list = env.list(CONFLIST);
    std::fs::create_dir_all(env.cache.join("results")).unwrap();
    let legacy = r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.9/8"}]}"#;
    std::fs::write(env.cache.join("results/x-c9-eth0"), legacy).unwrap();
    let rt = RuntimeConfig::new("c9", "/ns", "eth0");
    let r = env.cni().cached_result(&list, &rt).unwrap().unwrap();
    assert_eq!(r.version().as_str(), "1.0.0");
    assert_eq!(r.to_latest().ips[0].address.to_string(), "10.0.0.9/8");
    // cached_config has no legacy fallback, as in libcni.
    let e = env.cni().cached_config(&list, &rt).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Cache { .. }), "{e}");
}

#[test]
fn overwriting_a_cache_entry_replaces_it_whole() {
    let env = reference_env("overwrite");
    let path = env.cache.join("results/x-c1-eth0");
    std::fs::create_dir_all(env.cache.join("results")).unwrap();
    // A longer stale file: a truncating in-place write could leave a tail.
    std::fs::write(&path, "x".repeat(10_000)).unwrap();
    block_on(env.cni().add_network_list(
        &env.list(CONFLIST),
        &RuntimeConfig::new("c1", "/ns", "eth0"),
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["kind"], "cniCacheV1");
}

#[test]
fn symlinked_cache_files_are_never_followed() {
    let env = reference_env("symlink");
    let list = env.list(CONFLIST);
    let cni = env.cni();
    let outside = env.path("outside.json");
    std::fs::write(&outside, "precious").unwrap();
    std::fs::create_dir_all(env.cache.join("results")).unwrap();
    let link = env.cache.join("results/x-c1-eth0");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    // CHECK refuses to read through it.
    let e = block_on(cni.check_network_list(&list, &rt)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Cache { .. }), "{e}");
    // DEL runs without prevResult and removes the link, not its target.
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    assert!(
        stdin_of(env.calls("tp").last().unwrap())
            .get("prevResult")
            .is_none()
    );
    assert!(std::fs::symlink_metadata(&link).is_err());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    // ADD replaces a link with a file, leaving the target alone.
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
}

#[test]
fn a_symlinked_results_directory_is_refused() {
    let env = reference_env("symdir");
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&env.cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.cache.join("results")).unwrap();
    let e = block_on(env.cni().add_network_list(
        &env.list(CONFLIST),
        &RuntimeConfig::new("c1", "/ns", "eth0"),
    ))
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Cache { .. }), "{e}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn cache_names_collide_as_in_libcni() {
    // No escaping: (`a-b`, `c`) and (`a`, `b-c`) share a file, as in libcni,
    // which keeps the two implementations interchangeable.
    let env = TestEnv::new("collide");
    env.plugin("p");
    let a = env.list(r#"{"cniVersion":"1.0.0","name":"a-b","plugins":[{"type":"p"}]}"#);
    let b = env.list(r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"p"}]}"#);
    let cni = env.cni();
    block_on(cni.add_network_list(&a, &RuntimeConfig::new("c", "/ns", "eth0"))).unwrap();
    assert!(
        cni.cached_result(&b, &RuntimeConfig::new("b-c", "/ns", "eth0"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn lock_files_live_beside_the_cache_and_go_with_del() {
    let env = reference_env("lockfile");
    let list = env.list(CONFLIST);
    let cni = env.cni();
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    let lock = env.cache.join("locks/x-c1-eth0");
    let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    assert!(!lock.exists(), "the lock file goes with the attachment");
}

#[test]
fn an_unusable_locks_directory_does_not_block_operations() {
    let env = reference_env("nolock");
    std::fs::create_dir_all(&env.cache).unwrap();
    std::fs::write(env.cache.join("locks"), "not a directory").unwrap();
    let list = env.list(CONFLIST);
    let cni = env.cni();
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    assert!(env.cache_files().is_empty());
}

/// Every file below `dir`, as (relative path, contents or link target).
fn tree(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                ));
            } else if t.is_dir() {
                out.push((rel, "dir".into()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_symlinked_results_directory_is_never_used_by_any_operation() {
    for version in ["1.1.0", "0.3.1"] {
        let env = reference_env(&format!("symresults-{version}"));
        let list = env.list(&format!(
            r#"{{"cniVersion":"{version}","name":"x","plugins":[{{"type":"tp"}}]}}"#
        ));
        let elsewhere = env.path("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        // What an attacker wants removed or read: named like the entry.
        std::fs::write(elsewhere.join("x-c1-eth0"), LIBCNI_CACHE).unwrap();
        std::fs::write(elsewhere.join("x-c2-eth0"), LIBCNI_CACHE).unwrap();
        std::fs::create_dir_all(&env.cache).unwrap();
        std::os::unix::fs::symlink(&elsewhere, env.cache.join("results")).unwrap();
        let before = tree(&elsewhere);
        let cni = env.cni();
        let rt = RuntimeConfig::new("c1", "/ns", "eth0");
        let is_cache = |e: &libcni::Error| matches!(e.kind(), ErrorKind::Cache { .. });

        // ADD refuses before running anything.
        let e = block_on(cni.add_network_list(&list, &rt)).unwrap_err();
        assert!(is_cache(&e), "{e}");
        assert!(env.calls("tp").is_empty(), "ADD ran a plugin");
        // CHECK refuses (0.3.1 has no CHECK at all).
        if version == "1.1.0" {
            let e = block_on(cni.check_network_list(&list, &rt)).unwrap_err();
            assert!(is_cache(&e), "{e}");
        }
        // DEL runs the plugins without prevResult, succeeds, removes nothing.
        block_on(cni.del_network_list(&list, &rt)).unwrap();
        let del = env.calls("tp").pop().unwrap();
        assert_eq!(del["command"], "DEL");
        assert!(stdin_of(&del).get("prevResult").is_none());
        // GC lists nothing through it and reports the cache as unusable.
        let e = block_on(cni.gc_network_list(&list, None)).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Gc { .. }), "{e}");
        // The lookups refuse too.
        assert!(is_cache(&cni.cached_result(&list, &rt).unwrap_err()));
        assert!(is_cache(&cni.cached_config(&list, &rt).unwrap_err()));
        assert!(is_cache(&cni.cached_attachments(None).unwrap_err()));
        assert_eq!(
            tree(&elsewhere),
            before,
            "{version}: touched through the symlink"
        );
    }
}

#[test]
fn a_symlinked_locks_directory_or_lock_file_is_never_used() {
    let env = reference_env("symlocks");
    let list = env.list(CONFLIST);
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&env.cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.cache.join("locks")).unwrap();
    let cni = env.cni();
    let rt = RuntimeConfig::new("c1", "/ns", "eth0");
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    block_on(cni.check_network_list(&list, &rt)).unwrap();
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    block_on(cni.gc_network_list(&list, None)).unwrap();
    assert!(tree(&elsewhere).is_empty(), "{:?}", tree(&elsewhere));

    // A lock file that is a symlink: the operation goes on without it.
    let env = reference_env("symlockfile");
    let target = env.path("target");
    std::fs::write(&target, "precious").unwrap();
    std::fs::create_dir_all(env.cache.join("locks")).unwrap();
    std::os::unix::fs::symlink(&target, env.cache.join("locks/x-c1-eth0")).unwrap();
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &rt)).unwrap();
    block_on(cni.del_network_list(&list, &rt)).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
}

#[test]
fn the_configured_cache_directory_may_be_a_symlink() {
    let env = reference_env("symroot");
    let real = env.path("disk/cni");
    std::fs::create_dir_all(&real).unwrap();
    let link = env.path("var-lib-cni");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let cni = env.cni().with_cache_dir(&link);
    let rt = reference_rt();
    block_on(cni.add_network_list(&env.list(CONFLIST), &rt)).unwrap();
    assert!(
        real.join("results/x-cnitool-0e6b52a07b770f1e750c-eth0")
            .is_file()
    );
    assert!(
        cni.cached_result(&env.list(CONFLIST), &rt)
            .unwrap()
            .is_some()
    );
}

#[test]
fn results_holds_only_complete_entries_and_crash_leftovers_are_swept() {
    let env = reference_env("leftovers");
    let list = env.list(CONFLIST);
    let results = env.cache.join("results");
    let tmp = env.cache.join("results.tmp");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    // Left by writers that were killed: a pid that cannot exist (above
    // pid_max) in the temp dir, and the old in-`results/` form, one of
    // them a complete copy of an entry.
    std::fs::write(tmp.join("2147483647.0.x-c9-eth0"), "{\"kind\":").unwrap();
    std::fs::write(results.join(".x-c8-eth0.2147483647.3.tmp"), LIBCNI_CACHE).unwrap();
    std::fs::write(results.join(".x-c7-eth0.2147483647.4.tmp"), "").unwrap();
    // Dot-files are never attachments.
    assert!(env.cni().cached_attachments(None).unwrap().is_empty());
    // The first write in a process sweeps them.
    let cni = env.cni();
    block_on(cni.add_network_list(&list, &reference_rt())).unwrap();
    assert_eq!(env.cache_files(), ["x-cnitool-0e6b52a07b770f1e750c-eth0"]);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    // And GC sweeps them whenever it runs.
    std::fs::write(tmp.join("2147483647.1.x-c9-eth0"), "").unwrap();
    let report = block_on(cni.gc_network_list(&list, Some(&[]))).unwrap();
    assert_eq!(report.swept_temp_files, 1);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn killing_writers_at_any_instant_leaves_only_complete_entries() {
    use std::process::Stdio;
    let env = reference_env("crash");
    env.write_config("x.conflist", CONFLIST);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40 {
        let mut child = env
            .cnitool()
            .args(["add", "x", &format!("/var/run/netns/crash{}", i % 4)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_micros(rng % 8000));
        let _ = child.kill();
        let _ = child.wait();
    }
    for name in env.cache_files() {
        assert!(!name.starts_with('.'), "leftover in results/: {name}");
        let bytes = std::fs::read(env.cache.join("results").join(&name)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("incomplete entry {name}: {e}"));
        assert_eq!(v["kind"], "cniCacheV1");
    }
    // A restarted executor can collect everything it finds.
    block_on(env.cni().gc_network_list(&env.list(CONFLIST), None)).unwrap();
    assert!(env.cache_files().is_empty());
    assert_eq!(
        std::fs::read_dir(env.cache.join("results.tmp")).map_or(0, |d| d.count()),
        0
    );
}

#[test]
fn lock_files_go_whenever_no_entry_is_left() {
    let env = reference_env("lockgone");
    let list = env.list(CONFLIST);
    let cni = env.cni();
    let locks = || -> Vec<String> {
        std::fs::read_dir(env.cache.join("locks"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    // DEL of an attachment that never existed.
    block_on(cni.del_network_list(&list, &RuntimeConfig::new("never", "/ns", "eth0"))).unwrap();
    assert!(locks().is_empty(), "{:?}", locks());
    // CHECK of nothing.
    block_on(cni.check_network_list(&list, &RuntimeConfig::new("none", "/ns", "eth0"))).unwrap();
    assert!(locks().is_empty(), "{:?}", locks());
    // A failed ADD.
    let failing = env.list(
        r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"tp","testPlugin":{"ADD":{"error":{"code":7,"msg":"no"}}}}]}"#,
    );
    block_on(cni.add_network_list(&failing, &RuntimeConfig::new("f", "/ns", "eth0"))).unwrap_err();
    assert!(locks().is_empty(), "{:?}", locks());
    // A successful ADD keeps its lock file until DEL.
    block_on(cni.add_network_list(&list, &RuntimeConfig::new("ok", "/ns", "eth0"))).unwrap();
    assert_eq!(locks(), ["x-ok-eth0"]);
}
