//! Operations on networks: ADD, CHECK, DEL, VERSION, validation, and cache
//! lookups.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::cache::{self, Attachment, CacheDir, CachedConfig, Finish, RESULTS, Slot, blocking};
use crate::config::{NetworkConfigList, PluginConfig, valid_name};
use crate::error::{AttachmentField, Error, ErrorKind, GcFailure, Op};
use crate::exec::{ExecOutput, ExecRequest, PluginExec, ProcessExec};
use crate::plan::{self, AttachmentId, Invocation, Plan, PlanInput, PluginEnv, RuntimeConfig};
use crate::result::{CniResult, PluginError};
use crate::version::{Version, VersionInfo};

/// The default time a plugin may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The default time between `SIGTERM` and `SIGKILL` when a plugin times out.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// How much of a failed plugin's stdout and stderr an error keeps.
const OUTPUT_LIMIT: usize = 4096;

/// The CNI runtime: where plugins are, where results are cached, how long a
/// plugin may run, and the operations.
///
/// Operations on different attachments run concurrently; two operations on
/// the same attachment (network, container ID, interface name) wait for
/// each other, in this process and across processes (an `flock` on
/// `<cache dir>/locks/<network>-<container id>-<ifname>`).
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), libcni::Error> {
/// use std::time::Duration;
/// use libcni::{Cni, ConfigLoader, RuntimeConfig};
///
/// let cni = Cni::new(["/opt/cni/bin"])
///     .cache_dir("/var/lib/cni")
///     .timeout(Duration::from_secs(30));
/// let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?;
/// let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0");
/// let result = cni.add_network_list(&net, &rt).await?;
/// println!("{}", String::from_utf8_lossy(&result.to_json()));
/// cni.del_network_list(&net, &rt).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cni<E = ProcessExec> {
    plugin_dirs: Vec<PathBuf>,
    cache: CacheDir,
    timeout: Duration,
    kill_grace: Duration,
    env: PluginEnv,
    exec: E,
}

impl Cni<ProcessExec> {
    /// A runtime looking for plugins in `plugin_dirs`, in order (libcni's
    /// default is `/opt/cni/bin`), running them as processes.
    pub fn new<I, P>(plugin_dirs: I) -> Cni<ProcessExec>
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Cni {
            plugin_dirs: plugin_dirs.into_iter().map(Into::into).collect(),
            cache: CacheDir::new(PathBuf::from(cache::DEFAULT_CACHE_DIR)),
            timeout: DEFAULT_TIMEOUT,
            kill_grace: DEFAULT_KILL_GRACE,
            env: PluginEnv::inherit(),
            exec: ProcessExec::new(),
        }
    }
}

impl<E> Cni<E> {
    /// Sets the cache directory. Default: `/var/lib/cni`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Cni<E> {
        self.cache = CacheDir::new(dir.into());
        self
    }

    /// Sets the environment plugins run with, besides the six CNI
    /// variables. Default: [`PluginEnv::inherit`], the caller's whole
    /// environment, as libcni.
    pub fn plugin_env(mut self, env: PluginEnv) -> Cni<E> {
        self.env = env;
        self
    }

    /// Sets how long one plugin run may take before its process group is
    /// terminated. Default: 120 s. A zero duration is raised to 1 ms.
    pub fn timeout(mut self, timeout: Duration) -> Cni<E> {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a timed-out plugin has after `SIGTERM` before its
    /// process group gets `SIGKILL` (sooner, as soon as the plugin itself
    /// has exited). Default: 3 s. [`Duration::MAX`] means no limit.
    pub fn kill_grace(mut self, grace: Duration) -> Cni<E> {
        self.kill_grace = grace;
        self
    }

    /// Uses another plugin executor (for tests, or special spawning needs).
    pub fn with_exec<E2: PluginExec>(self, exec: E2) -> Cni<E2> {
        Cni {
            plugin_dirs: self.plugin_dirs,
            cache: self.cache,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            env: self.env,
            exec,
        }
    }

    /// The plugin directories.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The cache directory.
    pub fn cache_path(&self) -> &Path {
        self.cache.path()
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.exec
    }
}

fn invalid(field: AttachmentField, value: &str, reason: &'static str) -> Error {
    Error::new(ErrorKind::InvalidAttachment {
        field,
        value: value.to_owned(),
        reason,
    })
}

/// libcni's ADD-time checks (`ValidateContainerID`, `ValidateNetworkName`,
/// `ValidateInterfaceName`).
fn validate_add(network: &str, rt: &RuntimeConfig) -> Result<(), Error> {
    let cid = rt.container_id();
    if cid.is_empty() {
        return Err(invalid(
            AttachmentField::ContainerId,
            cid,
            "missing container ID",
        ));
    }
    if !valid_name(cid) {
        return Err(invalid(
            AttachmentField::ContainerId,
            cid,
            "must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`",
        ));
    }
    if network.is_empty() {
        return Err(invalid(
            AttachmentField::NetworkName,
            network,
            "missing network name",
        ));
    }
    if !valid_name(network) {
        return Err(invalid(
            AttachmentField::NetworkName,
            network,
            "must start with a letter or digit, followed by letters, digits, `_`, `.` or `-`",
        ));
    }
    let ifname = rt.ifname();
    let reason = if ifname.is_empty() {
        "interface name is empty"
    } else if ifname.len() > 15 {
        "interface name is too long; interface name should be less than 16 characters"
    } else if ifname == "." || ifname == ".." {
        "interface name is . or .."
    } else if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        "interface name contains / or : or whitespace characters"
    } else {
        return Ok(());
    };
    Err(invalid(AttachmentField::IfName, ifname, reason))
}

fn truncate(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= OUTPUT_LIMIT {
        return s.into_owned();
    }
    let mut end = OUTPUT_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], bytes.len())
}

/// The error for a plugin that exited unsuccessfully.
fn plugin_failure(out: &ExecOutput) -> Error {
    let stderr = truncate(&out.stderr);
    match PluginError::from_output(&out.stdout) {
        Some(pe) => Error::new(ErrorKind::Plugin {
            error: pe.with_stderr(stderr),
        }),
        None => Error::new(ErrorKind::PluginExit {
            status: out.status.to_string(),
            stdout: truncate(&out.stdout),
            stderr,
        }),
    }
}

/// Whether a list's version is at least `min` (0.4.0 for CHECK and a cached
/// prevResult on DEL).
fn version_at_least(list: &NetworkConfigList, min: Version) -> Result<bool, Error> {
    let v = Version::parse(list.cni_version()).map_err(|e| e.in_network(list.name()))?;
    Ok(v >= min)
}

const V0_4_0: Version = Version::new(0, 4, 0);

/// CHECK exists from spec 0.4.0 on.
fn check_supported(list: &NetworkConfigList) -> Result<(), Error> {
    let ctx = |e: Error| e.in_network(list.name()).during(Op::Check);
    if version_at_least(list, V0_4_0).map_err(ctx)? {
        Ok(())
    } else {
        Err(ctx(Error::new(ErrorKind::OpNotSupported {
            version: list.cni_version().to_owned(),
            op: Op::Check,
        })))
    }
}

impl<E: PluginExec> Cni<E> {
    fn find(&self, plugin: &PluginConfig) -> Result<PathBuf, Error> {
        self.exec.find(plugin.plugin_type(), &self.plugin_dirs)
    }

    /// Runs one invocation; a non-zero exit becomes an error.
    async fn run(
        &self,
        inv: &Invocation,
        stdin: &[u8],
        network: &str,
    ) -> Result<ExecOutput, Error> {
        let ctx = |e: Error| {
            e.for_plugin(inv.plugin_type())
                .in_network(network)
                .during(inv.op())
        };
        let span = tracing::info_span!(
            "plugin",
            plugin = inv.plugin_type(),
            command = inv.op().as_str(),
            network,
            path = %inv.path().display(),
            duration_ms = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let started = Instant::now();
        let req = ExecRequest {
            path: inv.path(),
            op: inv.op(),
            env: inv.exec_env(),
            stdin,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
        };
        let res = self.exec.exec(req).instrument(span.clone()).await;
        let _entered = span.enter();
        span.record("duration_ms", started.elapsed().as_secs_f64() * 1e3);
        match &res {
            Ok(out) => {
                span.record("status", tracing::field::display(out.status));
                tracing::debug!("plugin finished");
            }
            Err(e) => {
                span.record("status", "not run to completion");
                tracing::warn!(error = %e, "plugin run failed");
            }
        }
        let out = res.map_err(ctx)?;
        if !out.stderr.is_empty() {
            tracing::info!(
                stderr = %String::from_utf8_lossy(&out.stderr),
                "plugin wrote to stderr"
            );
        }
        if !out.status.success() {
            return Err(ctx(plugin_failure(&out)));
        }
        Ok(out)
    }

    /// The cached result in `bytes`, converted to the list's version.
    fn parse_cached(
        list: &NetworkConfigList,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<CniResult>, Error> {
        let Some(bytes) = bytes else { return Ok(None) };
        let result = cache::cached_result(&bytes)
            .and_then(|r| r.convert(list.cni_version()))
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Cache {
                        reason: format!("cannot use the cached result: {e}"),
                    },
                    e,
                )
            })?;
        Ok(Some(result))
    }

    /// Reads a cache entry without taking its lock (lookups, dry runs).
    /// Blocking.
    fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(cache) = self.cache.open(false)? else {
            return Ok(None);
        };
        let Some(results) = cache.subdir(RESULTS, false)? else {
            return Ok(None);
        };
        cache
            .read(results.as_fd(), name)
            .map_err(|e| e.at_path(cache.file_path(RESULTS, name)))
    }

    /// The cached result of an attachment, converted to the list's version,
    /// read without its lock. Blocking.
    fn read_cached(
        &self,
        list: &NetworkConfigList,
        name: &str,
    ) -> Result<Option<CniResult>, Error> {
        let path = self.cache.path().join(RESULTS).join(name);
        let bytes = self.read_entry(name)?;
        Self::parse_cached(list, bytes).map_err(|e| e.at_path(path))
    }

    /// The invocation plan of `op` for an attachment, without running
    /// anything: a dry run. For CHECK and DEL the cached result is read as
    /// the operation would. For GC, the plan is the plugins' GC with no
    /// valid-attachments set (the stale DELs that precede it depend on the
    /// cache); for STATUS, the plugins' STATUS (`rt` is not used by either).
    /// Blocking: it reads the cache and looks up the plugin binaries.
    ///
    /// # Errors
    ///
    /// As the operation would fail before running a plugin: a plugin not
    /// found, an invalid attachment, an unusable cache (CHECK).
    pub fn plan(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Plan, Error> {
        let ctx = |e: Error| e.in_network(list.name()).during(op);
        match op {
            Op::Add => {
                validate_add(list.name(), rt).map_err(ctx)?;
                cache::entry_name(list.name(), rt).map_err(ctx)?;
                self.build(op, list, Some(rt), None, None)
            }
            Op::Check => {
                check_supported(list)?;
                let name = cache::entry_name(list.name(), rt).map_err(ctx)?;
                let cached = self.read_cached(list, &name).map_err(ctx)?;
                let mut plan = self.build(op, list, Some(rt), cached, None)?;
                if list.disable_check() {
                    plan.clear();
                }
                Ok(plan)
            }
            Op::Del => {
                let name = cache::entry_name(list.name(), rt).map_err(ctx)?;
                let cached = if version_at_least(list, V0_4_0).map_err(ctx)? {
                    self.read_cached(list, &name).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cached result unusable; deleting without prevResult");
                        None
                    })
                } else {
                    None
                };
                self.build(op, list, Some(rt), cached, None)
            }
            Op::Gc | Op::Status => {
                let mut plan = self.build(op, list, None, None, None)?;
                if !at_least_1_1(list) || (op == Op::Gc && list.disable_gc()) {
                    plan.clear();
                }
                Ok(plan)
            }
            other => Err(ctx(Error::new(ErrorKind::OpNotSupported {
                version: list.cni_version().to_owned(),
                op: other,
            }))),
        }
    }

    fn build(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: Option<&RuntimeConfig>,
        cached: Option<CniResult>,
        valid: Option<&[AttachmentId]>,
    ) -> Result<Plan, Error> {
        plan::build(
            list,
            PlanInput {
                op,
                rt,
                plugin_dirs: &self.plugin_dirs,
                cached: cached.map(|r| r.to_json()),
                valid,
                env: &self.env,
            },
            |p| self.find(p),
        )
    }

    /// Adds an attachment: runs the plugins in order, each getting the
    /// previous one's result as `prevResult`, caches the last result and
    /// returns it in the last plugin's version (convert it with
    /// [`CniResult::convert`]).
    ///
    /// Every plugin binary is found, and the cache checked, before the first
    /// runs. There is no rollback when a plugin fails (as in libcni): call
    /// [`del_network_list`](Self::del_network_list) to clean up.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`] (libcni's container ID, network and
    /// interface name rules), the plugin lookup errors, the plugin run errors
    /// ([`ErrorKind::Plugin`], [`ErrorKind::PluginExit`],
    /// [`ErrorKind::Timeout`], [`ErrorKind::Spawn`], [`ErrorKind::EmptyResult`],
    /// [`ErrorKind::InvalidResult`], [`ErrorKind::UnsupportedResultVersion`]),
    /// [`ErrorKind::Cache`] if `results/` in the cache directory is a symlink
    /// or not a directory (nothing runs), and [`ErrorKind::Io`] if the cache
    /// cannot be written.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group
    /// (`SIGKILL`); plugins that already ran stay configured and nothing is
    /// cached.
    pub async fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        let span = tracing::info_span!(
            "cni",
            op = "ADD",
            network = list.name(),
            container_id = rt.container_id(),
            ifname = rt.ifname()
        );
        self.add_inner(list, rt).instrument(span).await
    }

    async fn add_inner(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        let started = Instant::now();
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Add);
        validate_add(net, rt).map_err(ctx)?;
        let name = cache::entry_name(net, rt).map_err(ctx)?;
        let plan = self.build(Op::Add, list, Some(rt), None, None)?;
        let mut slot = Slot::open(&self.cache, name, false).await;
        if let Some(problem) = slot.take_problem() {
            let _ = slot.finish(Finish::Keep).await;
            return Err(ctx(problem));
        }
        let mut prev: Option<CniResult> = None;
        for inv in plan.invocations() {
            let prev_json = prev.as_ref().map(CniResult::to_json);
            let stdin = inv.stdin_with(prev_json.as_deref());
            let step = match self.run(inv, &stdin, net).await {
                Ok(out) => CniResult::from_plugin_output(&out.stdout, list.cni_version())
                    .map_err(|e| ctx(e.for_plugin(inv.plugin_type()))),
                Err(e) => Err(e),
            };
            match step {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    let _ = slot.finish(Finish::Keep).await;
                    return Err(e);
                }
            }
        }
        let result = prev.expect("a network has at least one plugin");
        let bytes = cache::encode(net, rt, list.bytes(), &result);
        slot.finish(Finish::Write(bytes)).await.map_err(ctx)?;
        tracing::info!(
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "ADD done"
        );
        Ok(result)
    }

    /// Checks an attachment: runs the plugins in order with the cached result
    /// as `prevResult` (none if nothing is cached, as in libcni).
    ///
    /// Networks older than 0.4.0 do not support CHECK; with `disableCheck`
    /// nothing runs and the check succeeds.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OpNotSupported`] below 0.4.0, [`ErrorKind::InvalidVersion`]
    /// for an unparsable version, [`ErrorKind::Cache`] for a cache file that
    /// cannot be used, and the plugin lookup and run errors.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group.
    pub async fn check_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let span = tracing::info_span!(
            "cni",
            op = "CHECK",
            network = list.name(),
            container_id = rt.container_id(),
            ifname = rt.ifname()
        );
        self.check_inner(list, rt).instrument(span).await
    }

    async fn check_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Check);
        check_supported(list)?;
        if list.disable_check() {
            tracing::debug!("disableCheck is set; not running plugins");
            return Ok(());
        }
        let name = cache::entry_name(net, rt).map_err(ctx)?;
        let path = self.cache.path().join(RESULTS).join(&name);
        let mut slot = Slot::open(&self.cache, name, true).await;
        let res = async {
            let bytes = slot.take_read().map_err(|e| ctx(e.at_path(&path)))?;
            let cached = Self::parse_cached(list, bytes).map_err(|e| ctx(e.at_path(&path)))?;
            let plan = self.build(Op::Check, list, Some(rt), cached, None)?;
            for inv in plan.invocations() {
                self.run(inv, &inv.stdin(), net).await?;
            }
            Ok(())
        }
        .await;
        let _ = slot.finish(Finish::Keep).await;
        res
    }

    /// Deletes an attachment: runs the plugins in reverse order with the
    /// cached result as `prevResult`, then removes the cache entry.
    ///
    /// A missing, corrupt or unusable cache does not stop DEL (libcni 1.1
    /// fails on a 0-byte cache file forever; 1.3 deletes the file before
    /// running anything): the plugins run without `prevResult` and the
    /// problem is logged. The cache entry is removed only once every plugin
    /// succeeded, so a failed DEL can be retried with the same prevResult.
    /// When `results/` is a symlink (or not a directory), nothing in the
    /// cache is touched.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidVersion`], [`ErrorKind::InvalidAttachment`] for
    /// names that would escape the cache directory, and the plugin lookup and
    /// run errors (the first failing plugin stops the run).
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group; the
    /// cache entry is kept.
    pub async fn del_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        let span = tracing::info_span!(
            "cni",
            op = "DEL",
            network = list.name(),
            container_id = rt.container_id(),
            ifname = rt.ifname()
        );
        self.del_inner(list, rt).instrument(span).await
    }

    async fn del_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Del);
        let name = cache::entry_name(net, rt).map_err(ctx)?;
        let path = self.cache.path().join(RESULTS).join(&name);
        let with_prev = version_at_least(list, V0_4_0).map_err(ctx)?;
        let mut slot = Slot::open(&self.cache, name, with_prev).await;
        if let Some(problem) = slot.take_problem() {
            tracing::warn!(error = %ctx(problem), "the cache cannot be used; deleting without prevResult and leaving the cache as it is");
        }
        let cached = if with_prev {
            match slot
                .take_read()
                .and_then(|bytes| Self::parse_cached(list, bytes))
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %ctx(e.at_path(&path)), "cached result unusable; deleting without prevResult");
                    None
                }
            }
        } else {
            None
        };
        let res = async {
            let plan = self.build(Op::Del, list, Some(rt), cached, None)?;
            for inv in plan.invocations() {
                self.run(inv, &inv.stdin(), net).await?;
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => {
                if let Err(e) = slot.finish(Finish::Remove).await {
                    tracing::warn!(error = %ctx(e), "could not remove the cache entry");
                }
                Ok(())
            }
            Err(e) => {
                let _ = slot.finish(Finish::Keep).await;
                Err(e)
            }
        }
    }

    /// Garbage-collects a network (libcni 1.3's `GCNetworkList`): every
    /// cached attachment of the network that is not in `valid` is deleted
    /// (DEL with the current config and the netns, `CNI_ARGS` and capability
    /// arguments cached at ADD, in file-name order); then, from spec 1.1.0
    /// on, every plugin gets `GC` in order, with `cni.dev/valid-attachments`
    /// (and the misspelt `cni.dev/attachments` libcni also sends) when
    /// `valid` is given. `None` means no attachment is valid: every one of
    /// the network is deleted, and plugins get no valid-attachments key.
    /// Failures do not stop the collection.
    ///
    /// With `disableGC` nothing happens. Cache files that are not valid
    /// entries are skipped (and listed in the report). Afterwards lock files
    /// without an entry, and temp files of crashed writers, are swept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Gc`] listing every failure: each stale attachment whose
    /// DEL failed, each plugin whose GC failed, an unusable cache.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group; what
    /// was deleted stays deleted.
    pub async fn gc_network_list(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[AttachmentId]>,
    ) -> Result<GcReport, Error> {
        let span = tracing::info_span!("cni", op = "GC", network = list.name());
        self.gc_inner(list, valid).instrument(span).await
    }

    async fn gc_inner(
        &self,
        list: &NetworkConfigList,
        valid: Option<&[AttachmentId]>,
    ) -> Result<GcReport, Error> {
        let net = list.name();
        let mut report = GcReport::default();
        if list.disable_gc() {
            tracing::debug!("disableGC is set; not collecting");
            return Ok(report);
        }
        let mut failures = Vec::new();
        let dir = self.cache.clone();
        match blocking(move || cache::attachments(&dir, None)).await {
            Ok((atts, skipped)) => {
                for e in &skipped {
                    tracing::warn!(error = %e, "skipping a cache file that is not a valid entry");
                }
                report.skipped = skipped;
                for att in atts.into_iter().filter(|a| a.network == net) {
                    let id = AttachmentId::new(att.container_id.clone(), att.ifname.clone());
                    if valid.is_some_and(|v| v.contains(&id)) {
                        continue;
                    }
                    let rt = RuntimeConfig::new(att.container_id, att.netns, att.ifname)
                        .args(att.cni_args)
                        .capability_args(att.capability_args);
                    match self.del_inner(list, &rt).await {
                        Ok(()) => report.deleted.push(id),
                        Err(error) => failures.push(GcFailure::StaleAttachment {
                            container_id: id.container_id().to_owned(),
                            ifname: id.ifname().to_owned(),
                            error,
                        }),
                    }
                }
            }
            Err(error) => failures.push(GcFailure::Cache {
                error: error.in_network(net).during(Op::Gc),
            }),
        }
        if at_least_1_1(list) {
            let mut lookup = Vec::new();
            let plan = plan::build(
                list,
                PlanInput {
                    op: Op::Gc,
                    rt: None,
                    plugin_dirs: &self.plugin_dirs,
                    cached: None,
                    valid,
                    env: &self.env,
                },
                |p| match self.find(p) {
                    Ok(path) => Ok(path),
                    Err(e) => {
                        lookup.push((p.plugin_type().to_owned(), e));
                        Ok(PathBuf::new())
                    }
                },
            )?;
            for inv in plan.invocations() {
                let missing = lookup.iter().position(|(t, _)| t == inv.plugin_type());
                let res = match missing {
                    Some(i) if inv.path().as_os_str().is_empty() => {
                        let (_, e) = lookup.remove(i);
                        Err(e
                            .for_plugin(inv.plugin_type())
                            .in_network(net)
                            .during(Op::Gc))
                    }
                    _ => self.run(inv, &inv.stdin(), net).await.map(|_| ()),
                };
                match res {
                    Ok(()) => report.plugins.push(inv.plugin_type().to_owned()),
                    Err(error) => failures.push(GcFailure::Plugin {
                        plugin: inv.plugin_type().to_owned(),
                        error,
                    }),
                }
            }
        }
        let dir = self.cache.clone();
        let (locks, temps) = blocking(move || -> Result<(usize, usize), Error> {
            let Some(cache) = dir.open(false)? else {
                return Ok((0, 0));
            };
            let results = cache.subdir(RESULTS, false).ok().flatten();
            let locks = cache::sweep_locks(&cache, results.as_ref().map(|r| r.as_fd()))?;
            Ok((locks, cache.sweep_temp_files()))
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not sweep the cache's lock and temp files");
            (0, 0)
        });
        report.swept_lock_files = locks;
        report.swept_temp_files = temps;
        if failures.is_empty() {
            Ok(report)
        } else {
            Err(Error::new(ErrorKind::Gc { failures })
                .in_network(net)
                .during(Op::Gc))
        }
    }

    /// Asks a network's plugins whether they are ready (libcni 1.3's
    /// `GetStatusNetworkList`): below spec 1.1.0 (or with an unparsable
    /// version) nothing runs and the answer is yes; otherwise each plugin
    /// gets `STATUS` in order and the first error is returned. A plugin
    /// reporting code 50 or 51 ([`ErrorCode::NotAvailable`],
    /// [`ErrorCode::LimitedConnectivity`](crate::ErrorCode)) means the
    /// network is not ready (see [`Error::is_not_ready`]).
    ///
    /// STATUS takes no attachment lock: it answers while other operations
    /// on the network run.
    ///
    /// # Errors
    ///
    /// The plugin lookup and run errors; [`ErrorKind::Plugin`] for a plugin
    /// that answers "not ready".
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the running plugin's process group.
    ///
    /// [`ErrorCode::NotAvailable`]: crate::ErrorCode
    pub async fn status_network_list(&self, list: &NetworkConfigList) -> Result<(), Error> {
        let span = tracing::info_span!("cni", op = "STATUS", network = list.name());
        async {
            if !at_least_1_1(list) {
                return Ok(());
            }
            let plan = self.build(Op::Status, list, None, None, None)?;
            for inv in plan.invocations() {
                self.run(inv, &inv.stdin(), list.name()).await?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// ADD of a single plugin configuration (a `.conf`), named and versioned
    /// by its own `name` and `cniVersion`; the plugin's JSON is cached as the
    /// config (libcni's `AddNetwork`).
    ///
    /// # Errors
    ///
    /// As [`add_network_list`](Self::add_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`add_network_list`](Self::add_network_list).
    pub async fn add_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        self.add_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// CHECK of a single plugin configuration (libcni's `CheckNetwork`; no
    /// `disableCheck`).
    ///
    /// # Errors
    ///
    /// As [`check_network_list`](Self::check_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`check_network_list`](Self::check_network_list).
    pub async fn check_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.check_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// DEL of a single plugin configuration (libcni's `DelNetwork`).
    ///
    /// # Errors
    ///
    /// As [`del_network_list`](Self::del_network_list).
    ///
    /// # Cancellation
    ///
    /// As [`del_network_list`](Self::del_network_list).
    pub async fn del_network(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<(), Error> {
        self.del_network_list(&NetworkConfigList::single(plugin), rt)
            .await
    }

    /// Asks a plugin which spec versions it supports (`VERSION`). A plugin
    /// that answers with the error `unknown CNI_COMMAND: VERSION` predates
    /// the command and supports 0.1.0 only.
    ///
    /// # Errors
    ///
    /// The plugin lookup and run errors, [`ErrorKind::InvalidVersionInfo`]
    /// for a malformed reply.
    ///
    /// # Cancellation
    ///
    /// Dropping the future kills the plugin's process group.
    pub async fn version_info(&self, plugin_type: &str) -> Result<VersionInfo, Error> {
        let ctx = |e: Error| e.for_plugin(plugin_type).during(Op::Version);
        let path = self
            .exec
            .find(plugin_type, &self.plugin_dirs)
            .map_err(ctx)?;
        let inv = plan::version_invocation(plugin_type, path, &self.env);
        let req = ExecRequest {
            path: inv.path(),
            op: Op::Version,
            env: inv.exec_env(),
            stdin: &inv.stdin(),
            timeout: self.timeout,
            kill_grace: self.kill_grace,
        };
        let out = self.exec.exec(req).await.map_err(ctx)?;
        if !out.status.success() {
            if let Some(pe) = PluginError::from_output(&out.stdout) {
                if pe.msg() == "unknown CNI_COMMAND: VERSION" && pe.details().is_empty() {
                    return Ok(VersionInfo::legacy());
                }
            }
            return Err(ctx(plugin_failure(&out)));
        }
        VersionInfo::from_json(&out.stdout).map_err(ctx)
    }

    /// Validates a network: every plugin is found and supports the network's
    /// version (by exact string; `""` means 0.1.0). Returns the capabilities
    /// the network's plugins declare, sorted and de-duplicated.
    ///
    /// # Errors
    ///
    /// The one error, or [`ErrorKind::Multiple`] with all of them: plugin
    /// lookup and `VERSION` errors, [`ErrorKind::IncompatibleVersion`].
    pub async fn validate_network_list(
        &self,
        list: &NetworkConfigList,
    ) -> Result<Vec<String>, Error> {
        let mut errors = Vec::new();
        let version = if list.cni_version().is_empty() {
            "0.1.0"
        } else {
            list.cni_version()
        };
        for plugin in list.plugins() {
            match self.version_info(plugin.plugin_type()).await {
                Ok(vi) if vi.supports(version) => {}
                Ok(vi) => errors.push(
                    Error::new(ErrorKind::IncompatibleVersion {
                        version: version.to_owned(),
                        supported: vi.supported_versions().to_vec(),
                    })
                    .for_plugin(plugin.plugin_type()),
                ),
                Err(e) => errors.push(e),
            }
        }
        let mut errors: Vec<Error> = errors
            .into_iter()
            .map(|e| e.in_network(list.name()))
            .collect();
        match errors.len() {
            0 => Ok(list.capabilities().into_iter().map(str::to_owned).collect()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::new(ErrorKind::Multiple { errors }).in_network(list.name())),
        }
    }

    /// Validates a single plugin configuration (see
    /// [`validate_network_list`](Self::validate_network_list)).
    ///
    /// # Errors
    ///
    /// As [`validate_network_list`](Self::validate_network_list).
    pub async fn validate_network(&self, plugin: &PluginConfig) -> Result<Vec<String>, Error> {
        self.validate_network_list(&NetworkConfigList::single(plugin))
            .await
    }

    /// The cached result of the last ADD of an attachment, converted to the
    /// network's version; `None` if nothing is cached. Blocking (it reads a
    /// file).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`] for names that would escape the cache,
    /// [`ErrorKind::Cache`] for a cache file that cannot be used (also a
    /// symlinked `results/` or cache file).
    pub fn cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CniResult>, Error> {
        let name = cache::entry_name(list.name(), rt).map_err(|e| e.in_network(list.name()))?;
        self.read_cached(list, &name)
            .map_err(|e| e.in_network(list.name()))
    }

    /// What the last ADD of an attachment cached: the config bytes and the
    /// runtime config with the cached arguments; `None` if nothing is cached.
    /// Blocking (it reads a file).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAttachment`], and [`ErrorKind::Cache`] for a file
    /// that is not a `cniCacheV1` entry (no legacy fallback, as in libcni),
    /// or a symlinked `results/` or cache file.
    pub fn cached_config(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<Option<CachedConfig>, Error> {
        let name = cache::entry_name(list.name(), rt).map_err(|e| e.in_network(list.name()))?;
        let path = self.cache.path().join(RESULTS).join(&name);
        let ctx = |e: Error| e.at_path(&path).in_network(list.name());
        let Some(bytes) = self.read_entry(&name).map_err(ctx)? else {
            return Ok(None);
        };
        cache::cached_config(&bytes, rt).map(Some).map_err(ctx)
    }

    /// The cached result of a single plugin configuration's attachment
    /// (libcni's `GetNetworkCachedResult`; see
    /// [`cached_result`](Self::cached_result)).
    ///
    /// # Errors
    ///
    /// As [`cached_result`](Self::cached_result).
    pub fn cached_network_result(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<Option<CniResult>, Error> {
        self.cached_result(&NetworkConfigList::single(plugin), rt)
    }

    /// What the last ADD of a single plugin configuration cached (libcni's
    /// `GetNetworkCachedConfig`; see [`cached_config`](Self::cached_config)).
    ///
    /// # Errors
    ///
    /// As [`cached_config`](Self::cached_config).
    pub fn cached_network_config(
        &self,
        plugin: &PluginConfig,
        rt: &RuntimeConfig,
    ) -> Result<Option<CachedConfig>, Error> {
        self.cached_config(&NetworkConfigList::single(plugin), rt)
    }

    /// The attachments recorded in the cache, of `container_id` or (with
    /// `None`) of every container, in file-name order (libcni 1.3's
    /// `GetCachedAttachments`). Files that are not valid entries are
    /// skipped. Blocking (it reads the cache directory).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the cache directory cannot be read,
    /// [`ErrorKind::Cache`] if its `results` directory is a symlink.
    pub fn cached_attachments(&self, container_id: Option<&str>) -> Result<Vec<Attachment>, Error> {
        cache::attachments(&self.cache, container_id).map(|(atts, skipped)| {
            for e in &skipped {
                tracing::debug!(error = %e, "skipping a cache file that is not a valid entry");
            }
            atts
        })
    }
}

/// What a GC did ([`Cni::gc_network_list`]).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// The stale attachments deleted, in the order they were.
    pub deleted: Vec<AttachmentId>,
    /// The plugins whose GC ran and succeeded, in order (none below spec
    /// 1.1.0).
    pub plugins: Vec<String>,
    /// The cache files skipped because they are not valid entries (a
    /// [`ErrorKind::Cache`] error each, naming the file).
    pub skipped: Vec<Error>,
    /// How many lock files without a cache entry were removed.
    pub swept_lock_files: usize,
    /// How many temp files of crashed writers were removed.
    pub swept_temp_files: usize,
}

/// Whether the list's version is 1.1.0 or later (an unparsable version is
/// not), where GC and STATUS exist.
fn at_least_1_1(list: &NetworkConfigList) -> bool {
    Version::parse(list.cni_version()).is_ok_and(|v| v >= Version::new(1, 1, 0))
}
