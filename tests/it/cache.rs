//! The result cache: libcni's layout and bytes, atomic writes, and no
//! escaping the cache directory.

use std::os::unix::fs::PermissionsExt;

use libcni::{ErrorKind, RuntimeConfig};
use serde_json::json;

use crate::support::{TestEnv, stdin_of};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

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
    let cni = env.cni().cache_dir(env.path("deep/er/cache"));
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
