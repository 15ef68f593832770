//! Operations on networks: ADD, CHECK, DEL, VERSION, validation, and cache
//! lookups.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::cache::{self, Attachment, CacheDir, CachedConfig, Finish, RESULTS, Slot, blocking};
use crate::config::{NetworkConfigList, PluginConfig};
use crate::error::{Error, ErrorKind, GcFailure, Op};
use crate::exec::{ExecOutput, ExecRequest, PluginExec, ProcessExec};
use crate::name::validate_add;
use crate::plan::{self, AttachmentId, Invocation, Plan, PlanInput, PluginEnv, RuntimeConfig};
use crate::result::{CniResult, PluginError};
use crate::version::{Version, VersionInfo};

/// The default time a plugin may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The default time between `SIGTERM` and `SIGKILL` when a plugin times out.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// The CNI runtime: where plugins are, where results are cached, how long a
/// plugin may run, and the operations.
///
/// Operations on different attachments run concurrently; two operations on
/// the same attachment (network, container ID, interface name) wait for
/// each other, in this process and across processes (an `flock` on
/// `<cache dir>/locks/<network>-<container id>-<ifname>`).
///
/// Setters are `with_*` and return the `Cni`; the getter of the same
/// setting has the plain name (`with_timeout` / `timeout`).
///
/// # Runtime
///
/// The operations are futures for a [tokio] runtime with its I/O and time
/// drivers enabled (`Runtime::enable_all`, or `#[tokio::main]`): polled
/// elsewhere they panic with "there is no reactor running". A
/// current-thread runtime is fine: file-system work (cache reads, durable
/// writes, locks, plugin lookup) runs on tokio's blocking pool, never on
/// the reactor. Code without tokio uses [`BlockingCni`](crate::BlockingCni).
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), libcni::Error> {
/// use std::time::Duration;
/// use libcni::{Cni, ConfigLoader, RuntimeConfig};
///
/// let cni = Cni::new(["/opt/cni/bin"])
///     .with_cache_dir("/var/lib/cni")
///     .with_timeout(Duration::from_secs(30));
/// let net = ConfigLoader::new("/etc/cni/net.d").network("mynet")?;
/// let rt = RuntimeConfig::new("c1", "/var/run/netns/c1", "eth0");
/// let result = cni.add_network_list(&net, &rt).await?;
/// println!("{}", String::from_utf8_lossy(&result.to_json()));
/// cni.del_network_list(&net, &rt).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cni<E = ProcessExec> {
    plugin_dirs: Arc<[PathBuf]>,
    cache: CacheDir,
    timeout: Duration,
    kill_grace: Duration,
    env: PluginEnv,
    exec: Arc<E>,
}

impl<E> Clone for Cni<E> {
    fn clone(&self) -> Cni<E> {
        Cni {
            plugin_dirs: self.plugin_dirs.clone(),
            cache: self.cache.clone(),
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            env: self.env.clone(),
            exec: self.exec.clone(),
        }
    }
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
            exec: Arc::new(ProcessExec::new()),
        }
    }
}

impl<E> Cni<E> {
    /// Sets the cache directory. Default: `/var/lib/cni`. A call can use
    /// another one ([`RuntimeConfig::with_cache_dir`]).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Cni<E> {
        self.cache = CacheDir::new(dir.into());
        self
    }

    /// Sets the environment plugins run with, besides the six CNI
    /// variables. Default: [`PluginEnv::inherit`], the caller's whole
    /// environment, as libcni. A call can change it further
    /// ([`RuntimeConfig::with_plugin_env`]).
    pub fn with_plugin_env(mut self, env: PluginEnv) -> Cni<E> {
        self.env = env;
        self
    }

    /// Sets how long one plugin run may take before its process group is
    /// terminated. Default: 120 s. A zero duration is raised to 1 ms;
    /// [`Duration::MAX`] means no limit. A call can also have a deadline for
    /// the whole operation ([`RuntimeConfig::with_deadline`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Cni<E> {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a timed-out plugin has after `SIGTERM` before its
    /// process group gets `SIGKILL` (sooner, as soon as the plugin itself
    /// has exited). Default: 3 s. [`Duration::MAX`] means no limit.
    pub fn with_kill_grace(mut self, grace: Duration) -> Cni<E> {
        self.kill_grace = grace;
        self
    }

    /// Uses another plugin executor (for tests, or special spawning needs
    /// such as running plugins through `nsenter`).
    pub fn with_exec<E2: PluginExec>(self, exec: E2) -> Cni<E2> {
        Cni {
            plugin_dirs: self.plugin_dirs,
            cache: self.cache,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            env: self.env,
            exec: Arc::new(exec),
        }
    }

    /// The plugin directories, searched in order.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// The environment policy for plugins.
    pub fn plugin_env(&self) -> &PluginEnv {
        &self.env
    }

    /// How long one plugin run may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a timed-out plugin has between `SIGTERM` and `SIGKILL`.
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }

    /// The plugin executor.
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// The cache directory of a call: its own, or the `Cni`'s.
    fn cache_for(&self, rt: &RuntimeConfig) -> CacheDir {
        rt.cache_dir()
            .map_or_else(|| self.cache.clone(), |d| CacheDir::new(d.to_owned()))
    }
}

/// Runs `fut` until the call's deadline, if it has one. At the deadline the
/// future is dropped, which kills a running plugin's process group.
async fn until_deadline<T>(
    deadline: Option<Instant>,
    op: Op,
    network: &str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(deadline) = deadline else {
        return fut.await;
    };
    match tokio::time::timeout_at(deadline.into(), fut).await {
        Ok(res) => res,
        Err(_) => Err(Error::new(ErrorKind::DeadlineExceeded)
            .in_network(network)
            .during(op)),
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

impl<E: PluginExec + 'static> Cni<E> {
    fn find(&self, plugin: &PluginConfig) -> Result<PathBuf, Error> {
        self.exec.find(plugin.plugin_type(), &self.plugin_dirs)
    }

    /// Finds every plugin binary of a list, off the reactor, in list order.
    async fn find_all(&self, list: &NetworkConfigList) -> Vec<Result<PathBuf, Error>> {
        let exec = self.exec.clone();
        let dirs = self.plugin_dirs.clone();
        let types: Vec<String> = list
            .plugins()
            .iter()
            .map(|p| p.plugin_type().to_owned())
            .collect();
        blocking(move || types.iter().map(|t| exec.find(t, &dirs)).collect()).await
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
            return Err(ctx(out.failure()));
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
    fn read_entry(dir: &CacheDir, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(cache) = dir.open(false)? else {
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
        dir: &CacheDir,
        list: &NetworkConfigList,
        name: &str,
    ) -> Result<Option<CniResult>, Error> {
        let path = dir.path().join(RESULTS).join(name);
        let bytes = Self::read_entry(dir, name)?;
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
                validate_add(list.name(), rt.container_id(), rt.ifname()).map_err(ctx)?;
                cache::entry_name(list.name(), rt.container_id(), rt.ifname()).map_err(ctx)?;
                self.build(op, list, Some(rt), None, None)
            }
            Op::Check => {
                check_supported(list)?;
                let name =
                    cache::entry_name(list.name(), rt.container_id(), rt.ifname()).map_err(ctx)?;
                let cached = Self::read_cached(&self.cache_for(rt), list, &name).map_err(ctx)?;
                let mut plan = self.build(op, list, Some(rt), cached, None)?;
                if list.disable_check() {
                    plan.clear();
                }
                Ok(plan)
            }
            Op::Del => {
                let name =
                    cache::entry_name(list.name(), rt.container_id(), rt.ifname()).map_err(ctx)?;
                let cached = if version_at_least(list, V0_4_0).map_err(ctx)? {
                    Self::read_cached(&self.cache_for(rt), list, &name).unwrap_or_else(|e| {
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

    /// Builds a plan, finding the binaries off the reactor.
    async fn build_async(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: Option<&RuntimeConfig>,
        cached: Option<CniResult>,
        valid: Option<&[AttachmentId]>,
    ) -> Result<Plan, Error> {
        let mut paths = self.find_all(list).await.into_iter();
        self.build_with(op, list, rt, cached, valid, |_| {
            paths.next().expect("one lookup per plugin")
        })
    }

    /// Builds a plan, finding the binaries here (blocking).
    fn build(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: Option<&RuntimeConfig>,
        cached: Option<CniResult>,
        valid: Option<&[AttachmentId]>,
    ) -> Result<Plan, Error> {
        self.build_with(op, list, rt, cached, valid, |p| self.find(p))
    }

    fn build_with(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: Option<&RuntimeConfig>,
        cached: Option<CniResult>,
        valid: Option<&[AttachmentId]>,
        resolve: impl FnMut(&PluginConfig) -> Result<PathBuf, Error>,
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
            resolve,
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
        until_deadline(
            rt.deadline(),
            Op::Add,
            list.name(),
            self.add_inner(list, rt),
        )
        .instrument(span)
        .await
    }

    async fn add_inner(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConfig,
    ) -> Result<CniResult, Error> {
        let started = Instant::now();
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Add);
        validate_add(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let name = cache::entry_name(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let plan = self
            .build_async(Op::Add, list, Some(rt), None, None)
            .await?;
        let mut slot = Slot::open(&self.cache_for(rt), name, false).await;
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
        until_deadline(
            rt.deadline(),
            Op::Check,
            list.name(),
            self.check_inner(list, rt),
        )
        .instrument(span)
        .await
    }

    async fn check_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Check);
        check_supported(list)?;
        if list.disable_check() {
            tracing::debug!("disableCheck is set; not running plugins");
            return Ok(());
        }
        let name = cache::entry_name(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let cache = self.cache_for(rt);
        let path = cache.path().join(RESULTS).join(&name);
        let mut slot = Slot::open(&cache, name, true).await;
        let res = async {
            let bytes = slot.take_read().map_err(|e| ctx(e.at_path(&path)))?;
            let cached = Self::parse_cached(list, bytes).map_err(|e| ctx(e.at_path(&path)))?;
            let plan = self
                .build_async(Op::Check, list, Some(rt), cached, None)
                .await?;
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
        until_deadline(
            rt.deadline(),
            Op::Del,
            list.name(),
            self.del_inner(list, rt),
        )
        .instrument(span)
        .await
    }

    async fn del_inner(&self, list: &NetworkConfigList, rt: &RuntimeConfig) -> Result<(), Error> {
        let net = list.name();
        let ctx = |e: Error| e.in_network(net).during(Op::Del);
        let name = cache::entry_name(net, rt.container_id(), rt.ifname()).map_err(ctx)?;
        let cache = self.cache_for(rt);
        let path = cache.path().join(RESULTS).join(&name);
        let with_prev = version_at_least(list, V0_4_0).map_err(ctx)?;
        let mut slot = Slot::open(&cache, name, with_prev).await;
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
            let plan = self
                .build_async(Op::Del, list, Some(rt), cached, None)
                .await?;
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
                    let rt = att.runtime_config();
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
            let plan = self.build_async(Op::Status, list, None, None, None).await?;
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
            return Err(ctx(out.failure()));
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
        let name = cache::entry_name(list.name(), rt.container_id(), rt.ifname())
            .map_err(|e| e.in_network(list.name()))?;
        Self::read_cached(&self.cache_for(rt), list, &name).map_err(|e| e.in_network(list.name()))
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
        let name = cache::entry_name(list.name(), rt.container_id(), rt.ifname())
            .map_err(|e| e.in_network(list.name()))?;
        let cache = self.cache_for(rt);
        let path = cache.path().join(RESULTS).join(&name);
        let ctx = |e: Error| e.at_path(&path).in_network(list.name());
        let Some(bytes) = Self::read_entry(&cache, &name).map_err(ctx)? else {
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
