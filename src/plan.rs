//! What runs: for a network, an operation and a runtime config, each plugin's
//! binary, environment and exact stdin bytes.
//!
//! A [`Plan`] is a value: it can be inspected or printed (a dry run) before
//! [`Cni`](crate::Cni) executes it. For ADD, every plugin but the first gets
//! the previous plugin's result as `prevResult`, known only once that plugin
//! has run; [`Invocation::stdin`] then shows the config without it and
//! [`Invocation::prev_result`] says where it will come from.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::compact::CompactObject;
use crate::config::{NetworkConfigList, PluginConfig};
pub use crate::environment::Environment;
use crate::error::Op;
use crate::json::to_go_json;

/// The runtime's side of one attachment: the container, its network
/// namespace, the interface name, `CNI_ARGS` and capability arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    container_id: String,
    netns: String,
    ifname: String,
    args: Vec<(String, String)>,
    capability_args: Map<String, Value>,
    plugin_env: Option<PluginEnv>,
    cache_dir: Option<PathBuf>,
    deadline: Option<Instant>,
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
    pub fn with_args(mut self, args: Vec<(String, String)>) -> RuntimeConfig {
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
    pub fn with_capability_args(mut self, args: Map<String, Value>) -> RuntimeConfig {
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
    pub fn args(&self) -> &[(String, String)] {
        &self.args
    }

    /// The capability arguments.
    pub fn capability_args(&self) -> &Map<String, Value> {
        &self.capability_args
    }

    /// Uses another cache directory for this call than the
    /// [`Cni`](crate::Cni)'s (libcni's deprecated `RuntimeConf.CacheDir`).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> RuntimeConfig {
        self.cache_dir = Some(dir.into());
        self
    }

    /// This call's own cache directory, if it has one.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Sets a deadline for the whole call: waiting for the attachment's
    /// lock, every plugin run and the cache write. At the deadline the
    /// running plugin's process group is killed (`SIGKILL`) and the call
    /// fails with [`ErrorKind::DeadlineExceeded`](crate::ErrorKind); what
    /// already ran stays as it is (no cache entry is written). Each plugin
    /// run is also bounded by the [`Cni`](crate::Cni)'s timeout. Default: no
    /// deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> RuntimeConfig {
        self.deadline = Some(deadline);
        self
    }

    /// [`with_deadline`](Self::with_deadline) `timeout` from now; a timeout
    /// too large to represent means no deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> RuntimeConfig {
        self.deadline = Instant::now().checked_add(timeout);
        self
    }

    /// The same call without a deadline.
    pub fn without_deadline(mut self) -> RuntimeConfig {
        self.deadline = None;
        self
    }

    /// This call's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Shapes the plugins' environment for this call, on top of the
    /// [`Cni`](crate::Cni)'s own [`PluginEnv`]. Default: no change.
    pub fn with_plugin_env(mut self, env: PluginEnv) -> RuntimeConfig {
        self.plugin_env = Some(env);
        self
    }

    /// This call's environment changes, if any.
    pub fn plugin_env(&self) -> Option<&PluginEnv> {
        self.plugin_env.as_ref()
    }

    /// `CNI_ARGS` as the plugin sees it: `K=V` pairs joined with `;`.
    pub fn cni_args_string(&self) -> String {
        let pairs: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(";")
    }
}

/// The environment plugins run with, besides the six CNI variables.
///
/// By default (as libcni) a plugin gets the caller's whole environment
/// with `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
/// `CNI_ARGS` and `CNI_PATH` set over it: plugins read variables such as
/// `CNI_NETNS_OVERRIDE`, log levels and proxies from there. A `PluginEnv`
/// can start from an empty environment instead, set variables, and remove
/// some (secrets). It applies per [`Cni`](crate::Cni)
/// ([`Cni::with_plugin_env`](crate::Cni::with_plugin_env)) and per call
/// ([`RuntimeConfig::with_plugin_env`]), the call's changes after the `Cni`'s;
/// the six CNI variables are always set last.
///
/// ```
/// use libcni::PluginEnv;
/// let env = PluginEnv::inherit().remove("AWS_SECRET_ACCESS_KEY").set("LOG_LEVEL", "debug");
/// let clean = PluginEnv::empty().set("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
/// # let _ = (env, clean);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnv {
    inherit: bool,
    changes: Vec<(OsString, Option<OsString>)>,
}

impl Default for PluginEnv {
    fn default() -> PluginEnv {
        PluginEnv::inherit()
    }
}

impl PluginEnv {
    /// The caller's environment (the default).
    pub fn inherit() -> PluginEnv {
        PluginEnv {
            inherit: true,
            changes: Vec::new(),
        }
    }

    /// An empty environment: plugins get only what is [`set`](Self::set)
    /// and the six CNI variables.
    pub fn empty() -> PluginEnv {
        PluginEnv {
            inherit: false,
            changes: Vec::new(),
        }
    }

    /// Sets a variable (a later change of the same name wins).
    pub fn set(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> PluginEnv {
        self.changes.push((key.into(), Some(value.into())));
        self
    }

    /// Removes a variable.
    pub fn remove(mut self, key: impl Into<OsString>) -> PluginEnv {
        self.changes.push((key.into(), None));
        self
    }

    /// Whether the caller's environment is the starting point.
    pub fn inherits(&self) -> bool {
        self.inherit
    }

    fn apply<'a>(&'a self, env: &mut Vec<(&'a [u8], &'a [u8])>) {
        if !self.inherit {
            env.clear();
        }
        for (k, v) in &self.changes {
            env.retain(|(ek, _)| *ek != k.as_bytes());
            if let Some(v) = v {
                env.push((k.as_bytes(), v.as_bytes()));
            }
        }
    }
}

/// The six variables libcni always sets.
const CNI_VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// The complete environment of a plugin run: the caller's (shaped by
/// `policies`, in order) with the CNI variables `cni` set over it, sorted
/// by name with one entry per name (the later one wins): the order and
/// content plugins have always been given, so that the executor passes it
/// on as it is. `cni` holds all six variables, so an inherited or
/// policy-set one never survives.
pub(crate) fn full_env(policies: &[Option<&PluginEnv>], cni: &[(String, String)]) -> Environment {
    debug_assert!(
        CNI_VARS.iter().all(|v| cni.iter().any(|(k, _)| k == v)),
        "all six CNI variables are set"
    );
    let inherit = policies.iter().flatten().all(|p| p.inherit);
    let mut env = if inherit {
        crate::environment::process()
    } else {
        Environment::new()
    };
    // Without changes (the common case), the sorted copy of the process
    // environment, shared between operations while it does not change, is
    // used as it is.
    if policies.iter().flatten().any(|p| !p.changes.is_empty()) {
        let mut pairs: Vec<(&[u8], &[u8])> = env
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        for p in policies.iter().flatten() {
            p.apply(&mut pairs);
        }
        env = Environment::from_pairs(pairs);
    }
    env.set_over(
        cni.iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect(),
    )
}

/// An attachment to keep at GC (libcni's `GCAttachment`), matched on
/// container ID and interface name; sent to plugins in
/// `cni.dev/valid-attachments` as `{"containerID":..,"ifname":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AttachmentId {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

impl AttachmentId {
    /// The attachment of `container_id` on interface `ifname`.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> AttachmentId {
        AttachmentId {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// The container ID.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
}

impl fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
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
    env: Arc<[(String, String)]>,
    exec_env: Environment,
    config: Arc<CompactObject>,
    inject: Vec<(&'static str, Vec<u8>)>,
    prev: PrevResult,
    prev_bytes: Option<Arc<[u8]>>,
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
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The plugin's complete environment: the caller's, shaped by the
    /// [`PluginEnv`] in force, with the CNI variables set over it; sorted
    /// by name, one entry per name, as the plugin gets it.
    pub fn exec_env(&self) -> &Environment {
        &self.exec_env
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
        let extra: usize = inject.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(self.config.len() + extra + 2);
        self.config.write_with(&inject, &mut out);
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
            for (k, v) in inv.env.iter() {
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

/// The CNI variables of a plugin run (libcni's `Args.AsEnv`). GC and STATUS
/// get only the command and the real `CNI_PATH`, the other four empty.
pub(crate) fn cni_env(
    op: Op,
    rt: Option<&RuntimeConfig>,
    plugin_dirs: &[PathBuf],
) -> Vec<(String, String)> {
    let path = plugin_dirs
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let (cid, netns, ifname, args) = match rt {
        Some(rt) => (
            rt.container_id.clone(),
            rt.netns.clone(),
            rt.ifname.clone(),
            rt.cni_args_string(),
        ),
        None => Default::default(),
    };
    vec![
        ("CNI_COMMAND".into(), op.as_str().into()),
        ("CNI_CONTAINERID".into(), cid),
        ("CNI_NETNS".into(), netns),
        ("CNI_IFNAME".into(), ifname),
        ("CNI_ARGS".into(), args),
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

/// What a plan is built from, besides the network.
pub(crate) struct PlanInput<'a> {
    /// The operation.
    pub(crate) op: Op,
    /// The attachment (ADD, CHECK, DEL); `None` for GC and STATUS.
    pub(crate) rt: Option<&'a RuntimeConfig>,
    /// The plugin directories (`CNI_PATH`).
    pub(crate) plugin_dirs: &'a [PathBuf],
    /// The cached result's JSON in the list's version (CHECK, DEL).
    pub(crate) cached: Option<Vec<u8>>,
    /// GC: the attachments to keep, sent as `cni.dev/valid-attachments`
    /// (and `cni.dev/attachments`); `None` sends neither key.
    pub(crate) valid: Option<&'a [AttachmentId]>,
    /// The runtime's environment policy.
    pub(crate) env: &'a PluginEnv,
}

/// Builds the plan of an operation. `resolve` finds each plugin's binary.
pub(crate) fn build(
    list: &NetworkConfigList,
    input: PlanInput<'_>,
    mut resolve: impl FnMut(&PluginConfig) -> Result<PathBuf, crate::Error>,
) -> Result<Plan, crate::Error> {
    let PlanInput {
        op,
        rt,
        plugin_dirs,
        cached,
        valid,
        env: policy,
    } = input;
    let env: Arc<[(String, String)]> = cni_env(op, rt, plugin_dirs).into();
    let exec_env = full_env(
        &[Some(policy), rt.and_then(|r| r.plugin_env.as_ref())],
        &env,
    );
    let name = to_go_json(list.name());
    let version = to_go_json(list.cni_version());
    let valid = valid.map(to_go_json);
    let cached: Option<Arc<[u8]>> = cached.map(Into::into);
    let mut invocations = Vec::with_capacity(list.plugins().len());
    for (index, plugin) in list.plugins().iter().enumerate() {
        let path = resolve(plugin).map_err(|e| {
            e.for_plugin(plugin.plugin_type())
                .in_network(list.name())
                .during(op)
        })?;
        let mut inject = vec![("cniVersion", version.clone()), ("name", name.clone())];
        if let Some(rc) = rt.and_then(|rt| runtime_config(plugin, rt)) {
            inject.push(("runtimeConfig", to_go_json(&rc)));
        }
        if let Some(v) = &valid {
            inject.push(("cni.dev/valid-attachments", v.clone()));
            inject.push(("cni.dev/attachments", v.clone()));
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
            exec_env: exec_env.clone(),
            config: plugin.compact(),
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
pub(crate) fn version_invocation(
    plugin_type: &str,
    path: PathBuf,
    policy: &PluginEnv,
) -> Invocation {
    let env: Arc<[(String, String)]> = vec![
        ("CNI_COMMAND".into(), "VERSION".into()),
        ("CNI_CONTAINERID".into(), String::new()),
        ("CNI_NETNS".into(), "dummy".into()),
        ("CNI_IFNAME".into(), "dummy".into()),
        ("CNI_ARGS".into(), String::new()),
        ("CNI_PATH".into(), "dummy".into()),
    ]
    .into();
    Invocation {
        index: 0,
        plugin_type: plugin_type.to_owned(),
        plugin_name: String::new(),
        path,
        op: Op::Version,
        exec_env: full_env(&[Some(policy)], &env),
        env,
        config: Arc::new(CompactObject::new("{}")),
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
            PlanInput {
                op,
                rt: Some(rt),
                plugin_dirs: &[PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
                cached: cached.map(|c| c.as_bytes().to_vec()),
                valid: None,
                env: &PluginEnv::inherit(),
            },
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
    fn full_env_is_sorted_with_one_entry_per_name_the_latest() {
        let policy = PluginEnv::empty()
            .set("Z", "1")
            .set("CNI_IFNAME", "ignored")
            .set("A", "1")
            .set("Z", "2");
        let rt = RuntimeConfig::new("c", "/ns", "eth0");
        let cni = cni_env(Op::Add, Some(&rt), &[PathBuf::from("/p")]);
        let env = full_env(&[Some(&policy), None], &cni);
        let got: Vec<(&str, &str)> = env
            .iter()
            .map(|(k, v)| (k.to_str().unwrap(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("CNI_ARGS", ""),
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/ns"),
                ("CNI_PATH", "/p"),
                ("Z", "2")
            ]
        );
    }

    #[test]
    fn the_inherited_environment_is_what_std_reads() {
        let cni = cni_env(Op::Add, None, &[]);
        let std: Environment = std::env::vars_os()
            .filter(|(k, _)| !CNI_VARS.iter().any(|c| k == c))
            .collect();
        assert!(!std.is_empty());
        let want = std.with_vars(cni.iter().map(|(k, v)| (k, v)));
        assert_eq!(full_env(&[Some(&PluginEnv::inherit())], &cni), want);
        let removed = PluginEnv::inherit().remove("PATH").set("X_LIBCNI", "1");
        let got = full_env(&[Some(&removed)], &cni);
        assert!(got.get("PATH").is_none());
        assert_eq!(got.get("X_LIBCNI").unwrap(), "1");
        assert_eq!(
            got.len(),
            want.len() - usize::from(want.get("PATH").is_some()) + 1
        );
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
        let inv = version_invocation("x", PathBuf::from("/bin/x"), &PluginEnv::inherit());
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
