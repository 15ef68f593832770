//! What each fuzz target does with its input, shared with the stable
//! corpus replay (`tests/it/adversarial/corpus.rs`, which includes this
//! file). Only libcni's public API; every function must return without
//! panicking, whatever the input, and checks the invariants noted.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use libcni::exec::{ExecOutput, ExecRequest};
use libcni::{
    Cni, CniResult, ConfigLoader, Error, NetworkConfigList, Op, PluginConfig, PluginError,
    PluginExec, RuntimeConfig,
};

/// The spec versions results convert between.
const VERSIONS: [&str; 8] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "",
];

/// Config parsing: as a list and as a single plugin config; what parses
/// keeps its bytes, and a promoted `.conf` re-parses as a list.
pub fn config(data: &[u8]) {
    if let Ok(list) = NetworkConfigList::from_bytes(data) {
        assert_eq!(list.bytes(), data);
        assert!(!list.plugins().is_empty());
        let _ = list.capabilities();
    }
    if let Ok(p) = PluginConfig::from_bytes(data) {
        let _ = p.get("ipam");
        if let Ok(list) = NetworkConfigList::from_plugin(p) {
            NetworkConfigList::from_bytes(list.bytes()).expect("a promoted .conf is a valid list");
        }
    }
}

/// A scratch directory of this process, emptied.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "libcni-fuzz-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Config loading: the input split on `\n---\n` into up to 8 files (named
/// `<i>.conflist`, `<i>.conf` or `<i>.json` by index) plus a drop-in
/// directory; every lookup agrees with `load_all`.
pub fn config_dir(data: &[u8]) {
    let dir = scratch("dir");
    let exts = ["conflist", "conf", "json"];
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 8 {
        match rest.windows(5).position(|w| w == b"\n---\n") {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + 5..];
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    for (i, part) in parts.iter().enumerate() {
        let name = format!("{i}.{}", exts[i % 3]);
        std::fs::write(dir.join(name), part).unwrap();
    }
    // The last part is also a drop-in of every network named `n`.
    std::fs::create_dir_all(dir.join("n")).unwrap();
    if let Some(last) = parts.last() {
        std::fs::write(dir.join("n/99-dropin.conf"), last).unwrap();
    }
    let loader = ConfigLoader::new(&dir).with_max_file_size(1 << 20);
    let all = loader.load_all().expect("the directory is readable");
    for net in all.networks() {
        let found = loader
            .network(net.name())
            .expect("a loaded network is found");
        assert_eq!(found.name(), net.name());
    }
    for e in all.skipped() {
        assert!(e.path().is_some(), "a skipped file is named: {e}");
    }
    let _ = loader.default_network();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Result parsing and conversion: every result converts to every version
/// or fails with an error; what converts serializes to JSON that parses.
pub fn result(data: &[u8]) {
    for v in VERSIONS {
        let _ = CniResult::from_plugin_output(data, v);
    }
    let Ok(r) = CniResult::from_json(data) else {
        return;
    };
    let _ = r.to_latest();
    for v in VERSIONS {
        if let Ok(c) = r.convert(v) {
            let json = c.to_json();
            CniResult::from_json(&json).expect("a converted result re-parses");
            let _ = c.to_json_sorted();
            let _ = c.to_json_pretty();
        }
    }
}

/// Plugin error parsing: what parses round-trips through `to_json`.
pub fn plugin_error(data: &[u8]) {
    let Some(e) = PluginError::from_output(data) else {
        return;
    };
    let _ = e.to_string();
    let again = PluginError::from_output(&e.to_json("1.0.0")).expect("round trip");
    assert_eq!(again.code(), e.code());
    assert_eq!(again.msg(), e.msg());
}

/// An executor that finds every plugin (at a path that is never run).
struct NoExec;

impl PluginExec for NoExec {
    fn find(&self, plugin_type: &str, _dirs: &[PathBuf]) -> Result<PathBuf, Error> {
        Ok(PathBuf::from("/nonexistent").join(plugin_type))
    }

    async fn exec(&self, req: ExecRequest<'_>) -> Result<ExecOutput, Error> {
        Err(Error::spawn(req.path, "not run while fuzzing"))
    }
}

const CAPS_CONF: &str = r#"{"cniVersion":"1.1.0","name":"fz","plugins":[
 {"type":"p","capabilities":{"portMappings":true,"bandwidth":true,"ipRanges":true,
  "dns":true,"mac":true,"ips":true,"cgroupPath":true,"infinibandGUID":true,
  "deviceID":true,"aliases":true,"io.kubernetes.cri.pod-annotations":true}}]}"#;

/// CNI_ARGS and CAP_ARGS: the first line is `CNI_ARGS` (`K=V;K2=V2`, split
/// as cnitool splits it), the rest `CAP_ARGS` (a JSON object). The ADD
/// plan's stdin must stay valid JSON and `CNI_ARGS` must reach the plugin.
/// The rest is also planted as a cache file and read back through the
/// cache lookups (`cniArgs`, `capabilityArgs` decoding).
pub fn args(data: &[u8]) {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let first = String::from_utf8_lossy(first);
    let pairs: Vec<(String, String)> = first
        .split(';')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect();
    let caps = match serde_json::from_slice::<serde_json::Value>(rest) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let list = NetworkConfigList::from_bytes(CAPS_CONF.as_bytes()).unwrap();
    let cache = scratch("cache");
    let cni = Cni::new(["/nonexistent"])
        .with_cache_dir(&cache)
        .with_exec(NoExec);
    let rt = RuntimeConfig::new("c1", "/run/netns/x", "eth0")
        .with_args(pairs)
        .with_capability_args(caps);
    let plan = cni.plan(Op::Add, &list, &rt).expect("an ADD plan");
    for inv in plan.invocations() {
        let stdin = inv.stdin();
        serde_json::from_slice::<serde_json::Value>(&stdin).expect("the plugin's stdin is JSON");
        assert!(
            inv.env()
                .iter()
                .any(|(k, v)| k == "CNI_ARGS" && *v == rt.cni_args_string())
        );
    }
    // The cache side: the input as an entry of this attachment.
    let results = cache.join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join("fz-c1-eth0"), rest).unwrap();
    let _ = cni.cached_result(&list, &rt);
    if let Ok(Some(c)) = cni.cached_config(&list, &rt) {
        let _ = c.runtime_config().cni_args_string();
    }
    if let Ok(atts) = cni.cached_attachments(None) {
        for a in atts {
            let _ = a.runtime_config();
        }
    }
    let _ = cni.plan(Op::Check, &list, &rt);
    let _ = cni.plan(Op::Del, &list, &rt);
    let _ = std::fs::remove_dir_all(&cache);
}
