//! Operations on networks: ADD, CHECK, DEL, VERSION, validation, and cache
//! lookups.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

mod attach;
mod gc;
mod query;

use crate::cache::{self, Attachment, CacheDir, CachedConfig, Finish, RESULTS, Slot, blocking};
use crate::config::{NetworkConfigList, PluginConfig};
use crate::error::{CacheProblem, Error, ErrorKind, GcFailure, Op};
use crate::exec::{DEFAULT_MAX_OUTPUT, ExecOutput, ExecRequest, PluginExec, ProcessExec};
use crate::name::validate_add;
use crate::observe::{
    self, Killed, Observer, ObserverSlot, OperationEvent, Outcome, PluginRunEvent,
};
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
    max_output: usize,
    env: PluginEnv,
    rollback: bool,
    limiter: Option<(Arc<tokio::sync::Semaphore>, usize)>,
    observer: ObserverSlot,
    exec: Arc<E>,
}

impl<E> Clone for Cni<E> {
    fn clone(&self) -> Cni<E> {
        Cni {
            plugin_dirs: self.plugin_dirs.clone(),
            cache: self.cache.clone(),
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            max_output: self.max_output,
            env: self.env.clone(),
            rollback: self.rollback,
            limiter: self.limiter.clone(),
            observer: self.observer.clone(),
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
            max_output: DEFAULT_MAX_OUTPUT,
            env: PluginEnv::inherit(),
            rollback: false,
            limiter: None,
            observer: ObserverSlot::default(),
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

    /// Caps what one plugin run may write to stdout, and separately to
    /// stderr, in bytes: a plugin that writes more (a runaway loop, a
    /// hostile binary) has its process group killed and the operation fails
    /// with [`ErrorKind::OutputTooLarge`]; memory stays bounded by the cap.
    /// Default: [`DEFAULT_MAX_OUTPUT`] (16 MiB; real results are a few KiB).
    /// libcni has no cap.
    pub fn with_max_output(mut self, bytes: usize) -> Cni<E> {
        self.max_output = bytes;
        self
    }

    /// The cap on a plugin run's stdout (and stderr), in bytes.
    pub fn max_output(&self) -> usize {
        self.max_output
    }

    /// Uses another plugin executor (for tests, or special spawning needs
    /// such as running plugins through `nsenter`).
    pub fn with_exec<E2: PluginExec>(self, exec: E2) -> Cni<E2> {
        Cni {
            plugin_dirs: self.plugin_dirs,
            cache: self.cache,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            max_output: self.max_output,
            env: self.env,
            rollback: self.rollback,
            limiter: self.limiter,
            observer: self.observer,
            exec: Arc::new(exec),
        }
    }

    /// Sets whether a failed ADD is rolled back: once a plugin has started,
    /// any failure (a plugin, the deadline, the cache write) is followed by
    /// a DEL of the whole list, so no address or interface leaks; the
    /// original error is returned with the rollback's outcome attached
    /// ([`Error::rollback`]). Default: off, as in libcni (and `cnitool
    /// add`); the pod facade turns it on.
    pub fn with_rollback(mut self, yes: bool) -> Cni<E> {
        self.rollback = yes;
        self
    }

    /// Bounds how many plugins run at once through this `Cni` and its
    /// clones (a node starting 100 pods should not fork 300 plugins at
    /// once). Waiters are served first come, first served, and the wait
    /// counts against the call's deadline. Default: no bound. Zero is
    /// raised to one.
    pub fn with_max_concurrent_plugins(mut self, max: usize) -> Cni<E> {
        let max = max.max(1);
        self.limiter = Some((Arc::new(tokio::sync::Semaphore::new(max)), max));
        self
    }

    /// Sets the observer told of the end of every operation and plugin run,
    /// with its network, plugin, duration and outcome: the hook for metrics
    /// (see [`Observer`]). It is shared by the `Cni`'s clones. Default: none.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Cni<E> {
        self.observer = ObserverSlot(Some(observer));
        self
    }

    /// The observer, if one is set.
    pub fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.0.as_ref()
    }

    /// Whether failed ADDs are rolled back.
    pub fn rollback(&self) -> bool {
        self.rollback
    }

    /// The bound on concurrent plugin runs, if any.
    pub fn max_concurrent_plugins(&self) -> Option<usize> {
        self.limiter.as_ref().map(|(_, max)| *max)
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

/// The span of an operation (see [`observe`](crate::observe) for its
/// fields). GC and STATUS have no attachment.
fn op_span(op: Op, network: &str, rt: Option<&RuntimeConfig>) -> tracing::Span {
    let span = tracing::info_span!(
        "cni",
        cni.operation = op.as_str(),
        cni.network.name = network,
        container.id = tracing::field::Empty,
        network.interface.name = tracing::field::Empty,
        error.r#type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // Recording looks the field up by name: not for a span nobody wants.
    if let Some(rt) = rt.filter(|_| !span.is_disabled()) {
        span.record("container.id", rt.container_id());
        span.record("network.interface.name", rt.ifname());
    }
    span
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
        blocking(self.finder(list)).await
    }

    /// The lookups of every plugin binary of a list, in list order, to run
    /// off the reactor.
    fn finder(
        &self,
        list: &NetworkConfigList,
    ) -> impl FnOnce() -> Vec<Result<PathBuf, Error>> + Send + 'static {
        let exec = self.exec.clone();
        let dirs = self.plugin_dirs.clone();
        let types: Vec<String> = list
            .plugins()
            .iter()
            .map(|p| p.plugin_type().to_owned())
            .collect();
        move || types.iter().map(|t| exec.find(t, &dirs)).collect()
    }

    /// Finds the list's plugins and opens the attachment's cache slot (see
    /// [`Slot::open_after`]) in one hop off the reactor: the slot and the
    /// lookups, all found (for [`build_found`](Self::build_found)). A plugin
    /// not found is the error (as the plan reports it), and then the cache
    /// is not touched.
    async fn find_and_open(
        &self,
        op: Op,
        list: &NetworkConfigList,
        cache: &CacheDir,
        name: String,
        read: bool,
    ) -> Result<(Slot, Vec<Result<PathBuf, Error>>), Error> {
        let all_found = |paths: &Vec<Result<PathBuf, Error>>| paths.iter().all(Result::is_ok);
        match Slot::open_after(cache, name, read, self.finder(list), all_found).await {
            (Some(slot), paths) => Ok((slot, paths)),
            (None, paths) => Err(self
                .build_found(op, list, None, None, None, paths)
                .expect_err("a plugin was not found")),
        }
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
            cni.plugin.r#type = inv.plugin_type(),
            cni.command = inv.op().as_str(),
            cni.network.name = network,
            process.executable.path = %inv.path().display(),
            cni.plugin.stdin.bytes = stdin.len(),
            cni.plugin.stdout.bytes = tracing::field::Empty,
            cni.plugin.stderr.bytes = tracing::field::Empty,
            process.exit.code = tracing::field::Empty,
            cni.plugin.signal = tracing::field::Empty,
            status = tracing::field::Empty,
            cni.error.code = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            cni.plugin.killed = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let env = observe::plugin_env(&span, inv.exec_env());
        let req = ExecRequest {
            path: inv.path(),
            op: inv.op(),
            env: &env,
            stdin,
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            max_output: self.max_output,
        };
        let _permit = match &self.limiter {
            Some((sem, _)) => Some(
                sem.acquire()
                    .instrument(span.clone())
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        // The run's duration, without the wait for a permit. Until the run
        // ends, dropping this future (a deadline, a cancellation) is a kill.
        let mut watch = RunWatch {
            span: &span,
            observer: self.observer.0.as_deref(),
            inv,
            network,
            stdin_bytes: stdin.len(),
            started: Instant::now(),
            done: false,
        };
        let res = self.exec.exec(req).instrument(span.clone()).await;
        let _entered = span.enter();
        // Recording looks the field up by name: not for a span nobody wants.
        let traced = !span.is_disabled();
        let res = match res {
            Ok(out) => {
                if traced {
                    observe::record_exit(&span, out.status);
                    span.record("cni.plugin.stdout.bytes", out.stdout.len());
                    span.record("cni.plugin.stderr.bytes", out.stderr.len());
                }
                tracing::debug!("plugin finished");
                if !out.stderr.is_empty() {
                    tracing::info!(
                        stderr = %String::from_utf8_lossy(&out.stderr),
                        "plugin wrote to stderr"
                    );
                }
                if out.status.success() {
                    Ok(out)
                } else {
                    let e = ctx(out.failure());
                    if let Some(code) = observe::cni_error_code(&e) {
                        span.record("cni.error.code", code);
                    }
                    Err((e, Some(out)))
                }
            }
            Err(e) => {
                span.record("status", "not run to completion");
                tracing::warn!(error = %e, "plugin run failed");
                Err((ctx(e), None))
            }
        };
        match &res {
            Ok(out) => watch.finish(Outcome::Success, Some(out)),
            Err((e, out)) => watch.finish(Outcome::Failed(e), out.as_ref()),
        }
        res.map_err(|(e, _)| e)
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
                        problem: CacheProblem::UnusableResult {
                            reason: e.to_string(),
                        },
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
        let paths = self.find_all(list).await;
        self.build_found(op, list, rt, cached, valid, paths)
    }

    /// Builds a plan from lookups already made (`paths`, one per plugin in
    /// list order); the first failed lookup is the error.
    fn build_found(
        &self,
        op: Op,
        list: &NetworkConfigList,
        rt: Option<&RuntimeConfig>,
        cached: Option<CniResult>,
        valid: Option<&[AttachmentId]>,
        paths: Vec<Result<PathBuf, Error>>,
    ) -> Result<Plan, Error> {
        let mut paths = paths.into_iter();
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

/// Watches one plugin run: records its end on the span and tells the
/// observer, also when the run's future is dropped (a kill).
struct RunWatch<'a> {
    span: &'a tracing::Span,
    observer: Option<&'a dyn Observer>,
    inv: &'a Invocation,
    network: &'a str,
    stdin_bytes: usize,
    started: Instant,
    done: bool,
}

impl RunWatch<'_> {
    fn finish(&mut self, outcome: Outcome<'_>, out: Option<&ExecOutput>) {
        self.done = true;
        let duration = self.started.elapsed();
        if !self.span.is_disabled() {
            self.span
                .record("duration_ms", duration.as_secs_f64() * 1e3);
        }
        let killed = match outcome {
            Outcome::Cancelled => Some(Killed::Cancelled),
            Outcome::Failed(e) if e.is_timeout() => Some(Killed::Timeout),
            _ => None,
        };
        if let Some(k) = killed {
            self.span.record("cni.plugin.killed", k.as_str());
        }
        match outcome {
            Outcome::Failed(e) => observe::record_error(self.span, e),
            Outcome::Cancelled => {
                self.span.record("error.type", "cancelled");
                self.span.record("otel.status_code", "ERROR");
            }
            Outcome::Success => {}
        }
        if let Some(o) = self.observer {
            o.plugin_run(&PluginRunEvent {
                op: self.inv.op(),
                network: self.network,
                plugin_type: self.inv.plugin_type(),
                path: self.inv.path(),
                duration,
                status: out.map(|o| o.status),
                stdin_bytes: self.stdin_bytes,
                stdout_bytes: out.map_or(0, |o| o.stdout.len()),
                stderr_bytes: out.map_or(0, |o| o.stderr.len()),
                killed,
                outcome,
            });
        }
    }
}

impl Drop for RunWatch<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _entered = self.span.enter();
            self.finish(Outcome::Cancelled, None);
            tracing::info!("plugin killed: the operation was cancelled");
        }
    }
}

impl<E> Cni<E> {
    /// Tells the observer, and the operation's span, how an operation
    /// ended.
    fn observe_op<T>(
        &self,
        span: &tracing::Span,
        op: Op,
        network: &str,
        rt: Option<&RuntimeConfig>,
        started: Instant,
        res: &Result<T, Error>,
    ) {
        if let Err(e) = res {
            observe::record_error(span, e);
        }
        if let Some(o) = &self.observer.0 {
            o.operation(&OperationEvent {
                op,
                network,
                container_id: rt.map(RuntimeConfig::container_id),
                ifname: rt.map(RuntimeConfig::ifname),
                duration: started.elapsed(),
                outcome: match res {
                    Ok(_) => Outcome::Success,
                    Err(e) => Outcome::Failed(e),
                },
            });
        }
    }
}
