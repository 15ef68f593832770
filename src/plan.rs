//! What runs: for a network, an operation and a runtime config, each plugin's
//! binary, environment and exact stdin bytes.
//!
//! A [`Plan`] is a value: it can be inspected or printed (a dry run) before
//! [`Cni`](crate::Cni) executes it. For ADD, every plugin but the first gets
//! the previous plugin's result as `prevResult`, known only once that plugin
//! has run; [`Invocation::stdin`] then shows the config without it and
//! [`Invocation::prev_result`] says where it will come from.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{NetworkConfigList, PluginConfig};
use crate::error::Op;
use crate::json::{RawObject, to_go_json};

/// The runtime's side of one attachment: the container, its network
/// namespace, the interface name, `CNI_ARGS` and capability arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    container_id: String,
    netns: String,
    ifname: String,
    args: Vec<(String, String)>,
    capability_args: Map<String, Value>,
}

impl RuntimeConfig {
    /// An attachment of `container_id` whose namespace is `netns` (a path),
    /// with interface `ifname`.
    pub fn new(
        container_id: impl Into<String>,
        netns: impl Into<String>,
        ifname: impl Into<String>,
    ) -> RuntimeConfig {
        RuntimeConfig {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            ..RuntimeConfig::default()
        }
    }

    /// Adds a `CNI_ARGS` pair. Pairs are joined as `K=V;K2=V2` without
    /// escaping, as libcni does.
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<String>) -> RuntimeConfig {
        self.args.push((key.into(), value.into()));
        self
    }

    /// Replaces the `CNI_ARGS` pairs.
    pub fn args(mut self, args: Vec<(String, String)>) -> RuntimeConfig {
        self.args = args;
        self
    }

    /// Adds a capability argument (e.g. `portMappings`). It reaches a plugin
    /// in `runtimeConfig` only if the plugin's `capabilities` has the key set
    /// to `true`.
    pub fn capability_arg(mut self, key: impl Into<String>, value: Value) -> RuntimeConfig {
        self.capability_args.insert(key.into(), value);
        self
    }

    /// Replaces the capability arguments.
    pub fn capability_args(mut self, args: Map<String, Value>) -> RuntimeConfig {
        self.capability_args = args;
        self
    }

    /// The container ID (`CNI_CONTAINERID`).
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The network namespace path (`CNI_NETNS`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The interface name (`CNI_IFNAME`).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The `CNI_ARGS` pairs.
    pub fn cni_args(&self) -> &[(String, String)] {
        &self.args
    }

    /// The capability arguments.
    pub fn capability_arguments(&self) -> &Map<String, Value> {
        &self.capability_args
    }

    /// `CNI_ARGS` as the plugin sees it: `K=V` pairs joined with `;`.
    pub fn cni_args_string(&self) -> String {
        let pairs: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(";")
    }
}

/// Where an invocation's `prevResult` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrevResult {
    /// No `prevResult` is sent.
    None,
    /// The cached result of the attachment (DEL, CHECK), already in the
    /// stdin bytes.
    Cached,
    /// The result of the previous plugin in the chain (ADD), known only when
    /// it has run.
    PreviousPlugin,
}

/// One plugin run.
#[derive(Debug, Clone)]
pub struct Invocation {
    index: usize,
    plugin_type: String,
    plugin_name: String,
    path: PathBuf,
    op: Op,
    env: Vec<(String, String)>,
    config: std::sync::Arc<str>,
    inject: Vec<(&'static str, Vec<u8>)>,
    prev: PrevResult,
    prev_bytes: Option<Vec<u8>>,
}

impl Invocation {
    /// The plugin's index in the network's list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The plugin type.
    pub fn plugin_type(&self) -> &str {
        &self.plugin_type
    }

    /// The plugin entry's own `name`, if it has one.
    pub fn plugin_name(&self) -> &str {
        &self.plugin_name
    }

    /// The binary that runs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operation.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The CNI variables set for the plugin, in this order: `CNI_COMMAND`,
    /// `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`.
    /// The rest of the runtime's environment is inherited, less any other
    /// `CNI_*` variable.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Where `prevResult` comes from.
    pub fn prev_result(&self) -> &PrevResult {
        &self.prev
    }

    /// The exact stdin bytes (for [`PrevResult::PreviousPlugin`], without the
    /// `prevResult` that the previous plugin's result will supply).
    pub fn stdin(&self) -> Vec<u8> {
        self.stdin_with(self.prev_bytes.as_deref())
    }

    /// The stdin bytes with `prev_result` (a result's JSON) as `prevResult`.
    pub(crate) fn stdin_with(&self, prev_result: Option<&[u8]>) -> Vec<u8> {
        let mut inject: Vec<(&str, &[u8])> = self
            .inject
            .iter()
            .map(|(k, v)| (*k, v.as_slice()))
            .collect();
        if let Some(p) = prev_result {
            inject.push(("prevResult", p));
        }
        let mut out = Vec::with_capacity(self.config.len() + 128);
        match RawObject::parse(&self.config) {
            Ok(obj) => obj.write_with(&inject, &mut out),
            // Configs are validated objects when loaded; this cannot happen.
            Err(_) => out.extend_from_slice(self.config.as_bytes()),
        }
        out
    }
}

/// The plugin runs of one operation on one network.
#[derive(Debug, Clone)]
pub struct Plan {
    op: Op,
    network: String,
    cni_version: String,
    invocations: Vec<Invocation>,
}

impl Plan {
    /// The operation.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The network name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The spec version the plugins are asked to speak.
    pub fn cni_version(&self) -> &str {
        &self.cni_version
    }

    /// The runs, in execution order (reversed for DEL). Empty for CHECK of a
    /// network with `disableCheck`.
    pub fn invocations(&self) -> &[Invocation] {
        &self.invocations
    }

    pub(crate) fn clear(&mut self) {
        self.invocations.clear();
    }
}

/// A dry run: each plugin, its environment and its stdin.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} network {:?} (cniVersion {:?}): {} plugin run(s)",
            self.op,
            self.network,
            self.cni_version,
            self.invocations.len()
        )?;
        for (n, inv) in self.invocations.iter().enumerate() {
            writeln!(
                f,
                "{}. plugin {} `{}`: {}",
                n + 1,
                inv.index,
                inv.plugin_type,
                inv.path.display()
            )?;
            for (k, v) in &inv.env {
                writeln!(f, "   {k}={v}")?;
            }
            writeln!(f, "   stdin: {}", String::from_utf8_lossy(&inv.stdin()))?;
            if inv.prev == PrevResult::PreviousPlugin {
                writeln!(f, "   prevResult: the result of the previous plugin")?;
            }
        }
        Ok(())
    }
}

/// The environment for a plugin run (libcni's `Args.AsEnv`).
pub(crate) fn cni_env(
    op: Op,
    rt: &RuntimeConfig,
    plugin_dirs: &[PathBuf],
) -> Vec<(String, String)> {
    let path = plugin_dirs
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    vec![
        ("CNI_COMMAND".into(), op.as_str().into()),
        ("CNI_CONTAINERID".into(), rt.container_id.clone()),
        ("CNI_NETNS".into(), rt.netns.clone()),
        ("CNI_IFNAME".into(), rt.ifname.clone()),
        ("CNI_ARGS".into(), rt.cni_args_string()),
        ("CNI_PATH".into(), path),
    ]
}

/// libcni's `injectRuntimeConfig`: the capability arguments whose key the
/// plugin declares as a `true` capability; `None` when there are none (then
/// nothing is injected and any `runtimeConfig` in the config passes through).
pub(crate) fn runtime_config(
    plugin: &PluginConfig,
    rt: &RuntimeConfig,
) -> Option<Map<String, Value>> {
    let rc: Map<String, Value> = rt
        .capability_args
        .iter()
        .filter(|(k, _)| plugin.has_capability(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!rc.is_empty()).then_some(rc)
}

/// Builds the plan for ADD, CHECK or DEL. `resolve` finds each plugin's
/// binary; `cached` is the cached result's JSON (CHECK, DEL) in the list's
/// version.
pub(crate) fn build(
    list: &NetworkConfigList,
    op: Op,
    rt: &RuntimeConfig,
    plugin_dirs: &[PathBuf],
    cached: Option<Vec<u8>>,
    mut resolve: impl FnMut(&PluginConfig) -> Result<PathBuf, crate::Error>,
) -> Result<Plan, crate::Error> {
    let env = cni_env(op, rt, plugin_dirs);
    let name = to_go_json(list.name());
    let version = to_go_json(list.cni_version());
    let mut invocations = Vec::with_capacity(list.plugins().len());
    for (index, plugin) in list.plugins().iter().enumerate() {
        let path = resolve(plugin).map_err(|e| {
            e.for_plugin(plugin.plugin_type())
                .in_network(list.name())
                .during(op)
        })?;
        let mut inject = vec![("cniVersion", version.clone()), ("name", name.clone())];
        if let Some(rc) = runtime_config(plugin, rt) {
            inject.push(("runtimeConfig", to_go_json(&rc)));
        }
        let (prev, prev_bytes) = match (op, &cached) {
            (Op::Add, _) if index > 0 => (PrevResult::PreviousPlugin, None),
            (Op::Check | Op::Del, Some(c)) => (PrevResult::Cached, Some(c.clone())),
            _ => (PrevResult::None, None),
        };
        invocations.push(Invocation {
            index,
            plugin_type: plugin.plugin_type().to_owned(),
            plugin_name: plugin.name().to_owned(),
            path,
            op,
            env: env.clone(),
            config: plugin.raw_arc(),
            inject,
            prev,
            prev_bytes,
        });
    }
    if op == Op::Del {
        invocations.reverse();
    }
    Ok(Plan {
        op,
        network: list.name().to_owned(),
        cni_version: list.cni_version().to_owned(),
        invocations,
    })
}

/// The plan of a `VERSION` probe (libcni's `GetVersionInfo`): dummy
/// `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` for old plugins' sake, and stdin
/// `{"cniVersion":"1.1.0"}`.
pub(crate) fn version_invocation(plugin_type: &str, path: PathBuf) -> Invocation {
    let env = vec![
        ("CNI_COMMAND".into(), "VERSION".into()),
        ("CNI_CONTAINERID".into(), String::new()),
        ("CNI_NETNS".into(), "dummy".into()),
        ("CNI_IFNAME".into(), "dummy".into()),
        ("CNI_ARGS".into(), String::new()),
        ("CNI_PATH".into(), "dummy".into()),
    ];
    Invocation {
        index: 0,
        plugin_type: plugin_type.to_owned(),
        plugin_name: String::new(),
        path,
        op: Op::Version,
        env,
        config: std::sync::Arc::from("{}"),
        inject: vec![(
            "cniVersion",
            to_go_json(crate::version::SpecVersion::LATEST.as_str()),
        )],
        prev: PrevResult::None,
        prev_bytes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> NetworkConfigList {
        NetworkConfigList::from_bytes(text.as_bytes()).unwrap()
    }

    fn plan(l: &NetworkConfigList, op: Op, rt: &RuntimeConfig, cached: Option<&str>) -> Plan {
        build(
            l,
            op,
            rt,
            &[PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cached.map(|c| c.as_bytes().to_vec()),
            |p| Ok(PathBuf::from("/opt/cni/bin").join(p.plugin_type())),
        )
        .unwrap()
    }

    fn stdin(inv: &Invocation) -> String {
        String::from_utf8(inv.stdin()).unwrap()
    }

    #[test]
    fn stdin_overwrites_name_and_version_and_keeps_the_rest_as_written() {
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge","name":"own","cniVersion":"0.1.0","big":12345678901234567890, "x" : [1.0, "\u00e9"],"capabilities":{"a":true}}]}"#,
        );
        let p = plan(&l, Op::Add, &RuntimeConfig::new("c", "/ns", "eth0"), None);
        assert_eq!(
            stdin(&p.invocations()[0]),
            r#"{"type":"bridge","big":12345678901234567890,"x":[1.0,"\u00e9"],"capabilities":{"a":true},"cniVersion":"1.0.0","name":"net"}"#
        );
    }

    #[test]
    fn cni_version_is_always_injected_even_empty() {
        let l = list(r#"{"name":"net","plugins":[{"type":"x"}]}"#);
        let p = plan(&l, Op::Add, &RuntimeConfig::new("c", "/ns", "eth0"), None);
        assert_eq!(
            stdin(&p.invocations()[0]),
            r#"{"type":"x","cniVersion":"","name":"net"}"#
        );
    }

    #[test]
    fn runtime_config_is_the_intersection_of_capabilities_and_args() {
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[
                {"type":"a","capabilities":{"portMappings":true,"bandwidth":false},"runtimeConfig":{"old":1}},
                {"type":"b","runtimeConfig":{"kept":true}},
                {"type":"c","capabilities":{"ips":true}}]}"#,
        );
        let rt = RuntimeConfig::new("c", "/ns", "eth0")
            .capability_arg("portMappings", serde_json::json!([{"hostPort":8080}]))
            .capability_arg("bandwidth", serde_json::json!({"rate":1}))
            .capability_arg("ips", Value::Null);
        let p = plan(&l, Op::Add, &rt, None);
        // Replaced wholesale when a capability matches.
        assert!(
            stdin(&p.invocations()[0])
                .ends_with(r#""runtimeConfig":{"portMappings":[{"hostPort":8080}]}}"#)
        );
        // Passed through when nothing matches.
        assert!(stdin(&p.invocations()[1]).contains(r#""runtimeConfig":{"kept":true}"#));
        // Values go as they are, even null.
        assert!(stdin(&p.invocations()[2]).ends_with(r#""runtimeConfig":{"ips":null}}"#));
    }

    #[test]
    fn env_has_all_six_variables_even_empty() {
        let l = list(r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"x"}]}"#);
        let rt = RuntimeConfig::new("", "", "eth0")
            .arg("K1", "v;1")
            .arg("K2", "a=b");
        let p = plan(&l, Op::Del, &rt, None);
        let env = p.invocations()[0].env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_COMMAND"), Some("DEL"));
        assert_eq!(get("CNI_CONTAINERID"), Some(""));
        assert_eq!(get("CNI_NETNS"), Some(""));
        assert_eq!(get("CNI_IFNAME"), Some("eth0"));
        assert_eq!(get("CNI_ARGS"), Some("K1=v;1;K2=a=b"));
        assert_eq!(get("CNI_PATH"), Some("/opt/cni/bin:/usr/lib/cni"));
    }

    #[test]
    fn del_plan_is_reversed_and_carries_the_cached_result() {
        let l =
            list(r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"a"},{"type":"b"}]}"#);
        let rt = RuntimeConfig::new("c", "/ns", "eth0");
        let p = plan(&l, Op::Del, &rt, Some(r#"{"cniVersion":"1.0.0"}"#));
        let types: Vec<_> = p.invocations().iter().map(|i| i.plugin_type()).collect();
        assert_eq!(types, ["b", "a"]);
        for inv in p.invocations() {
            assert_eq!(inv.prev_result(), &PrevResult::Cached);
            assert!(stdin(inv).ends_with(r#""prevResult":{"cniVersion":"1.0.0"}}"#));
        }
        let add = plan(&l, Op::Add, &rt, None);
        assert_eq!(add.invocations()[0].prev_result(), &PrevResult::None);
        assert_eq!(
            add.invocations()[1].prev_result(),
            &PrevResult::PreviousPlugin
        );
        assert!(
            add.to_string()
                .contains("prevResult: the result of the previous plugin")
        );
    }

    #[test]
    fn version_probe_uses_dummy_values() {
        let inv = version_invocation("x", PathBuf::from("/bin/x"));
        assert_eq!(stdin(&inv), r#"{"cniVersion":"1.1.0"}"#);
        let env: Vec<String> = inv.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "CNI_COMMAND=VERSION",
                "CNI_CONTAINERID=",
                "CNI_NETNS=dummy",
                "CNI_IFNAME=dummy",
                "CNI_ARGS=",
                "CNI_PATH=dummy"
            ]
        );
    }
}
