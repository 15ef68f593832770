//! A live view of a configuration directory: [`ConfigWatcher`].
//!
//! One dedicated thread owns the file-system watches. It gathers events,
//! waits for them to settle (debounce), reads the whole directory again and
//! publishes the result as an immutable [`ConfigSnapshot`] behind an `Arc`.
//! Readers clone the current `Arc` and never wait for a rescan, a plugin run
//! or anything else.
//!
//! A rescan reads every file, so a missed or coalesced event cannot leave a
//! snapshot stale: the next event (or the periodic rescan) repairs it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use tokio::sync::{oneshot, watch};

use super::{ConfigLoader, NetworkConfigList};
use crate::error::{Error, ErrorKind};
use crate::exec::{DEFAULT_PLUGIN_DIR, find_plugin};

const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
const MAX_DEBOUNCE: Duration = Duration::from_secs(60);
const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(60);
const MIN_RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Under a steady stream of events, a rescan still happens this many
/// debounce periods after the first one.
const MAX_DELAY_FACTOR: u32 = 10;

/// Watches a configuration directory and the plugin directories, and keeps
/// an up-to-date [`ConfigSnapshot`] of the networks they make usable.
///
/// Any change to the directory, a network's drop-in directory
/// (`<dir>/<network>/`) or a plugin directory leads (after a short quiet
/// period, see [`ConfigWatcherBuilder::debounce`]) to a full rescan; a new
/// snapshot is published when its content differs from the current one.
///
/// # Last good wins
///
/// A file that cannot be loaded (broken, half-written, emptied, unreadable)
/// never takes a network away: the last version of *that file* that loaded
/// keeps being served, and the file is listed in
/// [`ConfigSnapshot::problems`] (and logged with `tracing` once, when the
/// problem appears). Last good content is kept per file, so a file fixed to
/// name a different network replaces the old name. A file that is deleted
/// (or whose directory is) does take its network away. The directory may be
/// missing at start, removed and created again.
///
/// # Threads
///
/// The watcher needs no async runtime: it runs on a thread of its own (plus
/// `notify`'s event thread), and publishes through a `tokio::sync::watch`
/// channel that async tasks can await with [`ConfigUpdates::changed`].
/// Dropping the `ConfigWatcher` tells its thread to stop and returns without
/// waiting: the thread finishes the rescan in progress, if any, and exits,
/// releasing the watches (and with them `notify`'s thread); subscribers then
/// get `None` from [`ConfigUpdates::changed`].
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), libcni::Error> {
/// use libcni::ConfigWatcher;
///
/// let watcher = ConfigWatcher::builder("/etc/cni/net.d")
///     .plugin_dirs(["/opt/cni/bin"])
///     .start_async()
///     .await?;
/// let snap = watcher.snapshot();
/// match snap.default_network() {
///     Some(net) => println!("default network: {}", net.name()),
///     None => {
///         for r in snap.readiness() {
///             println!("{r}");
///         }
///         for p in snap.problems() {
///             println!("{p}");
///         }
///     }
/// }
/// // Wait until a usable default network appears.
/// let mut updates = watcher.subscribe();
/// updates.wait_for(|s| s.has_usable_default()).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ConfigWatcher {
    updates: ConfigUpdates,
    control: mpsc::Sender<Msg>,
}

/// Configures and starts a [`ConfigWatcher`]; see [`ConfigWatcher::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until started"]
pub struct ConfigWatcherBuilder {
    conf_dir: PathBuf,
    plugin_dirs: Vec<PathBuf>,
    debounce: Duration,
    rescan_interval: Option<Duration>,
}

/// A handle to await new snapshots of a [`ConfigWatcher`]; cheap to clone,
/// and usable after the watcher is gone (it then keeps the last snapshot).
#[derive(Debug, Clone)]
pub struct ConfigUpdates {
    rx: watch::Receiver<Arc<ConfigSnapshot>>,
}

/// The networks of a configuration directory at one moment, with their
/// readiness and the problems found. Immutable: a change produces a new
/// snapshot with a higher [`generation`](Self::generation).
#[derive(Debug)]
pub struct ConfigSnapshot {
    generation: u64,
    conf_dir: PathBuf,
    plugin_dirs: Vec<PathBuf>,
    networks: Vec<NetworkConfigList>,
    readiness: Vec<NetworkReadiness>,
    problems: Vec<ConfigProblemReport>,
}

/// Whether one served network can be used now, and why not.
///
/// A network is *ready* when the binary of every plugin in its list, and of
/// every plugin's IPAM plugin (`ipam.type`), is found in the plugin
/// directories as [`find_plugin`] finds it: a regular file with an execute
/// bit. Nothing is run to find out.
#[derive(Debug)]
pub struct NetworkReadiness {
    network: String,
    source: Option<PathBuf>,
    reasons: Vec<Error>,
    last_good: bool,
}

/// A file (or directory) that could not be used in the latest scan.
#[derive(Debug)]
pub struct ConfigProblemReport {
    path: PathBuf,
    error: Error,
    last_good: Option<String>,
}

enum Msg {
    Event(notify::Result<notify::Event>),
    Rescan,
    Stop,
}

impl ConfigWatcher {
    /// A builder for a watcher of the configuration directory `conf_dir`
    /// (libcni's default is `/etc/cni/net.d`).
    pub fn builder(conf_dir: impl Into<PathBuf>) -> ConfigWatcherBuilder {
        ConfigWatcherBuilder {
            conf_dir: conf_dir.into(),
            plugin_dirs: vec![PathBuf::from(DEFAULT_PLUGIN_DIR)],
            debounce: DEFAULT_DEBOUNCE,
            rescan_interval: Some(DEFAULT_RESCAN_INTERVAL),
        }
    }

    /// The current snapshot. Never waits for a rescan: it clones an `Arc`.
    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        self.updates.snapshot()
    }

    /// The generation of the current snapshot (see
    /// [`ConfigSnapshot::generation`]).
    pub fn generation(&self) -> u64 {
        self.updates.rx.borrow().generation
    }

    /// A handle that waits for the snapshots published from now on.
    pub fn subscribe(&self) -> ConfigUpdates {
        let mut rx = self.updates.rx.clone();
        rx.borrow_and_update();
        ConfigUpdates { rx }
    }

    /// Asks for a rescan now (after the usual debounce), for instance on
    /// `SIGHUP`. Not needed for changes on disk: those are watched.
    pub fn rescan(&self) {
        let _ = self.control.send(Msg::Rescan);
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        let _ = self.control.send(Msg::Stop);
    }
}

impl ConfigWatcherBuilder {
    /// The plugin directories, searched in order (libcni's `CNI_PATH`). The
    /// default is [`DEFAULT_PLUGIN_DIR`]. They are watched too, so a plugin
    /// installed after start makes its networks ready.
    pub fn plugin_dirs<I>(mut self, dirs: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<PathBuf>,
    {
        self.plugin_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// How long the directories must be quiet after an event before the
    /// rescan; under a steady stream of events, a rescan still happens ten
    /// periods after the first event. The default is 100 ms; at most one
    /// minute (longer values are lowered to that).
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.debounce = quiet.min(MAX_DEBOUNCE);
        self
    }

    /// The interval of a full rescan without any event: a safety net for
    /// events that cannot be watched (a network file system, a full inotify
    /// queue, a watch limit reached). `None` disables it. The default is 60
    /// seconds; shorter intervals than one second are raised to one second.
    pub fn rescan_interval(mut self, every: Option<Duration>) -> Self {
        self.rescan_interval = every.map(|d| d.max(MIN_RESCAN_INTERVAL));
        self
    }

    /// Starts watching, and returns once the first scan is published (so
    /// [`snapshot`](ConfigWatcher::snapshot) shows the directory as it is).
    ///
    /// It blocks the calling thread for that first scan (the watcher's own
    /// thread does it), and works inside or outside a tokio runtime. In
    /// async code, [`start_async`](Self::start_async) waits without
    /// blocking.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] when the file-system watcher (inotify) or its
    /// thread cannot be created.
    pub fn start(self) -> Result<ConfigWatcher, Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        let conf_dir = self.conf_dir.clone();
        let control = self.spawn(Ready::Blocking(tx))?;
        let rx = rx.recv().map_err(|_| thread_died(&conf_dir))?;
        Ok(ConfigWatcher::new(rx, control))
    }

    /// As [`start`](Self::start), awaiting the first scan instead of
    /// blocking (creating the watcher and its thread is quick).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// # Cancellation
    ///
    /// If the future is dropped before the first scan is published, the
    /// watcher thread stops after that scan.
    pub async fn start_async(self) -> Result<ConfigWatcher, Error> {
        let (tx, rx) = oneshot::channel();
        let conf_dir = self.conf_dir.clone();
        let control = self.spawn(Ready::Async(tx))?;
        let rx = rx.await.map_err(|_| thread_died(&conf_dir))?;
        Ok(ConfigWatcher::new(rx, control))
    }

    fn spawn(self, ready: Ready) -> Result<mpsc::Sender<Msg>, Error> {
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let watcher = notify::recommended_watcher(move |ev| {
            let _ = events.send(Msg::Event(ev));
        })
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Io {
                    action: "starting the config watcher",
                },
                e,
            )
            .at_path(&self.conf_dir)
        })?;
        let debounce = self.debounce;
        let interval = self.rescan_interval;
        let scanner = Scanner::new(self.conf_dir.clone(), self.plugin_dirs);
        std::thread::Builder::new()
            .name("libcni-config-watch".to_owned())
            .spawn(move || run(scanner, watcher, rx, ready, debounce, interval))
            .map_err(|e| Error::io("starting the config watcher thread", &self.conf_dir, e))?;
        Ok(tx)
    }
}

impl ConfigWatcher {
    fn new(rx: watch::Receiver<Arc<ConfigSnapshot>>, control: mpsc::Sender<Msg>) -> ConfigWatcher {
        ConfigWatcher {
            updates: ConfigUpdates { rx },
            control,
        }
    }
}

fn thread_died(conf_dir: &Path) -> Error {
    Error::with_source(
        ErrorKind::Io {
            action: "starting the config watcher",
        },
        "the watcher thread ended before its first scan",
    )
    .at_path(conf_dir)
}

impl ConfigUpdates {
    /// The latest published snapshot (without marking it seen).
    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        self.rx.borrow().clone()
    }

    /// Waits for a snapshot newer than the last one this handle returned
    /// (or, for a fresh handle, than the one current when it was made), and
    /// returns it. Snapshots published in between are skipped: the newest
    /// wins. `None` once the watcher is dropped.
    pub async fn changed(&mut self) -> Option<Arc<ConfigSnapshot>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }

    /// Returns the first snapshot, starting with the current one, for which
    /// `ready` is true; `None` if the watcher is dropped first.
    pub async fn wait_for(
        &mut self,
        mut ready: impl FnMut(&ConfigSnapshot) -> bool,
    ) -> Option<Arc<ConfigSnapshot>> {
        let found = self.rx.wait_for(|s| ready(s)).await.ok()?;
        Some(found.clone())
    }
}

impl ConfigSnapshot {
    /// The snapshot's number: 1 for the first scan, then one more for each
    /// snapshot published (only scans that change something publish one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration directory watched.
    pub fn conf_dir(&self) -> &Path {
        &self.conf_dir
    }

    /// The plugin directories, in search order.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The networks served, in file order as [`ConfigLoader::load_all`]
    /// returns them: each file that loads, or failing that its last good
    /// version. Two files may define the same name; see
    /// [`network`](Self::network).
    pub fn networks(&self) -> &[NetworkConfigList] {
        &self.networks
    }

    /// The network `name` as [`ConfigLoader::network`] picks it (and
    /// [`LoadedConfigs::get`](super::LoadedConfigs::get)): the first
    /// `.conflist` defining it, else the first `.conf`/`.json`.
    pub fn network(&self, name: &str) -> Option<&NetworkConfigList> {
        self.pick(name).map(|i| &self.networks[i])
    }

    /// The default network: the first served network, in file order (all
    /// three extensions, byte order of file names) that is
    /// [ready](NetworkReadiness::is_ready). This is ocicni's rule (the first
    /// file that loads and whose plugins all exist; here their IPAM plugins
    /// too); unlike
    /// [`ConfigLoader::default_network`], a network whose plugins are not
    /// installed is passed over. `None` when there is no usable network:
    /// [`readiness`](Self::readiness) and [`problems`](Self::problems) say
    /// why.
    pub fn default_network(&self) -> Option<&NetworkConfigList> {
        self.readiness
            .iter()
            .position(NetworkReadiness::is_ready)
            .map(|i| &self.networks[i])
    }

    /// Whether there is a usable [default network](Self::default_network):
    /// a runtime's "network ready" condition.
    pub fn has_usable_default(&self) -> bool {
        self.readiness.iter().any(NetworkReadiness::is_ready)
    }

    /// The readiness of every served network, in the order of
    /// [`networks`](Self::networks).
    pub fn readiness(&self) -> &[NetworkReadiness] {
        &self.readiness
    }

    /// The readiness of the network `name`, as [`network`](Self::network)
    /// picks it.
    pub fn network_readiness(&self, name: &str) -> Option<&NetworkReadiness> {
        self.pick(name).map(|i| &self.readiness[i])
    }

    /// Whether the network `name` is served and ready.
    pub fn is_ready(&self, name: &str) -> bool {
        self.network_readiness(name)
            .is_some_and(NetworkReadiness::is_ready)
    }

    /// The current problems, in file order: config files that could not be
    /// loaded, and directories that could not be read or watched.
    pub fn problems(&self) -> &[ConfigProblemReport] {
        &self.problems
    }

    /// The current problem of the file (or directory) `path`, as named in
    /// [`ConfigProblemReport::path`].
    pub fn problem(&self, path: &Path) -> Option<&ConfigProblemReport> {
        self.problems.iter().find(|p| p.path == path)
    }

    fn pick(&self, name: &str) -> Option<usize> {
        super::load::pick(&self.networks, name)
    }
}

impl NetworkReadiness {
    /// The network's name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The file the network was loaded from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether every plugin binary the network needs is installed.
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Why the network is not ready, one error per plugin type, as
    /// [`find_plugin`] reports it: [`ErrorKind::PluginNotFound`] (with the
    /// directories searched), [`ErrorKind::PluginNotExecutable`],
    /// [`ErrorKind::InvalidPluginName`] or [`ErrorKind::NoPluginDirs`]. Each
    /// names the network. Empty when ready.
    pub fn reasons(&self) -> &[Error] {
        &self.reasons
    }

    /// The plugin types whose binary is in no plugin directory.
    pub fn missing_plugins(&self) -> impl Iterator<Item = &str> {
        self.reasons.iter().filter_map(|e| match e.kind() {
            ErrorKind::PluginNotFound { plugin, .. } => Some(plugin.as_str()),
            _ => None,
        })
    }

    /// Whether the network is served from the last good version of a file
    /// that no longer loads (the file is in [`ConfigSnapshot::problems`]).
    pub fn serving_last_good(&self) -> bool {
        self.last_good
    }
}

impl fmt::Display for NetworkReadiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network `{}`", self.network)?;
        if let Some(p) = &self.source {
            write!(f, " (`{}`)", p.display())?;
        }
        if self.reasons.is_empty() {
            f.write_str(": ready")?;
        } else {
            f.write_str(": not ready: ")?;
            for (i, e) in self.reasons.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{}", e.kind())?;
            }
        }
        if self.last_good {
            f.write_str(" (last good version of a broken file)")?;
        }
        Ok(())
    }
}

impl ConfigProblemReport {
    /// The config file that could not be loaded, or the directory that
    /// could not be read or watched. (For a network list whose drop-in
    /// plugin config is broken, this is the list's file, and
    /// [`error`](Self::error) names the drop-in.)
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why: a syntax error with line and column, an invalid config, an I/O
    /// error, as the loaders report them.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Whether an older good version of the file is still being served.
    pub fn serving_last_good(&self) -> bool {
        self.last_good.is_some()
    }

    /// The network still served from the file's last good version, if any.
    pub fn last_good_network(&self) -> Option<&str> {
        self.last_good.as_deref()
    }
}

impl fmt::Display for ConfigProblemReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if self.error.path() != Some(self.path.as_path()) {
            write!(f, " (for `{}`)", self.path.display())?;
        }
        if let Some(net) = &self.last_good {
            write!(
                f,
                "; still serving the last good version of network `{net}`"
            )?;
        }
        Ok(())
    }
}

/// How the watcher thread hands its first snapshot to `start`.
enum Ready {
    Blocking(mpsc::SyncSender<watch::Receiver<Arc<ConfigSnapshot>>>),
    Async(oneshot::Sender<watch::Receiver<Arc<ConfigSnapshot>>>),
}

impl Ready {
    /// False when nobody waits any more.
    fn send(self, rx: watch::Receiver<Arc<ConfigSnapshot>>) -> bool {
        match self {
            Ready::Blocking(tx) => tx.send(rx).is_ok(),
            Ready::Async(tx) => tx.send(rx).is_ok(),
        }
    }
}

/// The watcher thread: first scan, then event → settle → rescan → publish,
/// until told to stop.
fn run(
    mut scanner: Scanner,
    mut watcher: RecommendedWatcher,
    rx: mpsc::Receiver<Msg>,
    ready: Ready,
    debounce: Duration,
    interval: Option<Duration>,
) {
    let first = scanner
        .cycle(&mut watcher)
        .unwrap_or_else(|| scanner.current());
    let (tx, out) = watch::channel(first);
    if !ready.send(out) {
        return;
    }
    let next_rescan = |now: Instant| interval.and_then(|i| now.checked_add(i));
    let mut periodic = next_rescan(Instant::now());
    loop {
        let msg = match periodic {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let dirty = match msg {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::Rescan) | Err(RecvTimeoutError::Timeout) => true,
            Ok(Msg::Event(ev)) => scanner.note(&ev),
        };
        if !dirty {
            continue;
        }
        if !settle(&rx, &mut scanner, debounce) {
            return;
        }
        if let Some(snap) = scanner.cycle(&mut watcher) {
            tx.send_replace(snap);
        }
        periodic = next_rescan(Instant::now());
    }
}

/// Waits until no relevant event came for `debounce`, or `MAX_DELAY_FACTOR`
/// debounce periods passed since the start. False when told to stop.
fn settle(rx: &mpsc::Receiver<Msg>, scanner: &mut Scanner, debounce: Duration) -> bool {
    let start = Instant::now();
    let at = |d: Duration| start.checked_add(d).unwrap_or(start);
    let cap = at(debounce.saturating_mul(MAX_DELAY_FACTOR));
    let mut quiet = at(debounce);
    loop {
        let now = Instant::now();
        let until = quiet.min(cap);
        if now >= until {
            return true;
        }
        match rx.recv_timeout(until - now) {
            Ok(Msg::Event(ev)) => {
                if scanner.note(&ev) {
                    quiet = Instant::now().checked_add(debounce).unwrap_or(cap);
                }
            }
            Ok(Msg::Rescan) => {}
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
            Err(RecvTimeoutError::Timeout) => return true,
        }
    }
}

/// A directory's identity, to notice one replaced under the same path.
type DirId = (u64, u64);

/// The watcher thread's state.
struct Scanner {
    loader: ConfigLoader,
    plugin_dirs: Vec<PathBuf>,
    /// Absolute forms of the config dir and the plugin dirs: event paths are
    /// absolute.
    conf_abs: PathBuf,
    roots: Vec<PathBuf>,
    /// The last version of each config file that loaded, while the file
    /// exists.
    last_good: HashMap<PathBuf, NetworkConfigList>,
    /// The directories watched, with the identity they had then; `None`
    /// once an event said the directory was removed or renamed.
    watched: HashMap<PathBuf, Option<DirId>>,
    current: Option<Arc<ConfigSnapshot>>,
}

struct Scan {
    networks: Vec<NetworkConfigList>,
    last_good: Vec<bool>,
    problems: Vec<ConfigProblemReport>,
}

impl Scanner {
    fn new(conf_dir: PathBuf, plugin_dirs: Vec<PathBuf>) -> Scanner {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let conf_abs = abs(&conf_dir);
        let mut roots = vec![conf_abs.clone()];
        roots.extend(plugin_dirs.iter().map(|p| abs(p)));
        Scanner {
            loader: ConfigLoader::new(conf_dir),
            plugin_dirs,
            conf_abs,
            roots,
            last_good: HashMap::new(),
            watched: HashMap::new(),
            current: None,
        }
    }

    fn current(&self) -> Arc<ConfigSnapshot> {
        self.current.clone().unwrap_or_else(|| {
            Arc::new(ConfigSnapshot {
                generation: 0,
                conf_dir: self.loader.dir().to_owned(),
                plugin_dirs: self.plugin_dirs.clone(),
                networks: Vec::new(),
                readiness: Vec::new(),
                problems: Vec::new(),
            })
        })
    }

    /// Takes note of an event; true if it calls for a rescan.
    fn note(&mut self, ev: &notify::Result<notify::Event>) -> bool {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, "file-system watch error; rescanning");
                self.forget_watches();
                return true;
            }
        };
        if ev.need_rescan() {
            self.forget_watches();
            return true;
        }
        if matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
        ) {
            for p in &ev.paths {
                if let Some(id) = self.watched.get_mut(p) {
                    *id = None;
                }
            }
        }
        relevant(ev, &self.roots)
    }

    fn forget_watches(&mut self) {
        for id in self.watched.values_mut() {
            *id = None;
        }
    }

    /// Re-establishes the watches, rescans, and returns the new snapshot if
    /// anything changed.
    fn cycle(&mut self, watcher: &mut impl notify::Watcher) -> Option<Arc<ConfigSnapshot>> {
        tracing::debug!(dir = %self.loader.dir().display(), "rescanning network configs");
        let watch_problems = self.update_watches(watcher);
        let mut scan = self.scan();
        scan.problems.extend(watch_problems);
        let readiness = scan
            .networks
            .iter()
            .zip(&scan.last_good)
            .map(|(net, last_good)| readiness(net, &self.plugin_dirs, *last_good))
            .collect();
        let prev = self.current.as_deref();
        let snap = ConfigSnapshot {
            generation: prev.map_or(1, |p| p.generation + 1),
            conf_dir: self.loader.dir().to_owned(),
            plugin_dirs: self.plugin_dirs.clone(),
            networks: scan.networks,
            readiness,
            problems: scan.problems,
        };
        if prev.is_some_and(|p| same_content(p, &snap)) {
            return None;
        }
        log_changes(prev, &snap);
        let snap = Arc::new(snap);
        self.current = Some(snap.clone());
        Some(snap)
    }

    /// The directories to watch: each root that exists and the nearest
    /// existing ancestor of each (to see it created, removed or replaced),
    /// and the subdirectories of the config dir (drop-in directories).
    fn wanted_dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        for root in &self.roots {
            if root.is_dir() {
                dirs.insert(root.clone());
            }
            if let Some(up) = root.ancestors().skip(1).find(|a| a.is_dir()) {
                dirs.insert(up.to_owned());
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.conf_abs) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.insert(path);
                }
            }
        }
        dirs
    }

    /// Brings the watches in line with [`wanted_dirs`](Self::wanted_dirs),
    /// until that is stable (a directory may appear while an ancestor's
    /// watch is being added). Only new, replaced or removed directories
    /// cost a call to the watcher. Returns the watches that failed.
    fn update_watches(&mut self, watcher: &mut impl notify::Watcher) -> Vec<ConfigProblemReport> {
        let mut failed = HashMap::new();
        let mut wanted = self.wanted_dirs();
        for _ in 0..4 {
            self.watched.retain(|dir, _| {
                let keep = wanted.contains(dir);
                if !keep {
                    let _ = watcher.unwatch(dir);
                }
                keep
            });
            for dir in &wanted {
                let Ok(meta) = std::fs::metadata(dir) else {
                    continue; // gone again; its parent's watch reports it
                };
                let id = Some((meta.dev(), meta.ino()));
                match self.watched.get(dir) {
                    Some(old) if *old == id => continue,
                    Some(_) => {
                        let _ = watcher.unwatch(dir);
                        self.watched.remove(dir);
                    }
                    None => {}
                }
                match watcher.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        failed.remove(dir);
                        self.watched.insert(dir.clone(), id);
                    }
                    Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
                    Err(e) => {
                        failed.insert(dir.clone(), e);
                    }
                }
            }
            let again = self.wanted_dirs();
            if again == wanted {
                break;
            }
            wanted = again;
        }
        let mut failed: Vec<_> = failed.into_iter().collect();
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        failed
            .into_iter()
            .map(|(dir, e)| ConfigProblemReport {
                error: Error::with_source(
                    ErrorKind::Io {
                        action: "watching directory",
                    },
                    e,
                )
                .at_path(&dir),
                path: dir,
                last_good: None,
            })
            .collect()
    }

    /// Reads every file again; updates the last good versions.
    fn scan(&mut self) -> Scan {
        let mut scan = Scan {
            networks: Vec::new(),
            last_good: Vec::new(),
            problems: Vec::new(),
        };
        let files = match self.loader.files() {
            Ok(files) => files,
            Err(e) => {
                // Which files exist is unknown: serve every last good one.
                let mut kept: Vec<_> = self.last_good.iter().collect();
                kept.sort_by(|a, b| file_name(a.0).cmp(file_name(b.0)));
                for (_, net) in kept {
                    scan.networks.push(net.clone());
                    scan.last_good.push(true);
                }
                scan.problems.push(ConfigProblemReport {
                    path: self.loader.dir().to_owned(),
                    error: e,
                    last_good: None,
                });
                return scan;
            }
        };
        let mut next = HashMap::with_capacity(files.len());
        for file in files {
            match super::load::load_file(&file, self.loader.limits()) {
                Ok(net) => {
                    scan.networks.push(net.clone());
                    scan.last_good.push(false);
                    next.insert(file, net);
                }
                Err(e) if vanished(&e, &file) => {}
                Err(e) => {
                    let old = self.last_good.remove(&file);
                    scan.problems.push(ConfigProblemReport {
                        path: file.clone(),
                        error: e,
                        last_good: old.as_ref().map(|n| n.name().to_owned()),
                    });
                    if let Some(old) = old {
                        scan.networks.push(old.clone());
                        scan.last_good.push(true);
                        next.insert(file, old);
                    }
                }
            }
        }
        self.last_good = next;
        scan
    }
}

fn file_name(path: &Path) -> &[u8] {
    path.file_name().map_or(&[][..], |n| n.as_bytes())
}

/// Whether loading `file` failed because it was deleted after the listing
/// (not a dangling symlink, not a drop-in file that vanished).
fn vanished(e: &Error, file: &Path) -> bool {
    matches!(e.kind(), ErrorKind::Io { .. })
        && e.path() == Some(file)
        && e.source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        && std::fs::symlink_metadata(file).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Whether an event can change a snapshot: not a mere open or read (the
/// scans themselves cause those), and about a root, inside one, or an
/// ancestor of one.
fn relevant(ev: &notify::Event, roots: &[PathBuf]) -> bool {
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    ev.paths.is_empty()
        || ev
            .paths
            .iter()
            .any(|p| roots.iter().any(|r| p.starts_with(r) || r.starts_with(p)))
}

fn readiness(net: &NetworkConfigList, dirs: &[PathBuf], last_good: bool) -> NetworkReadiness {
    let mut seen = HashSet::new();
    let mut reasons = Vec::new();
    if dirs.is_empty() {
        reasons.push(Error::new(ErrorKind::NoPluginDirs).in_network(net.name()));
    }
    for plugin in net.plugins().iter().filter(|_| !dirs.is_empty()) {
        let ipam = plugin.ipam_type().filter(|t| !t.is_empty());
        for ty in std::iter::once(plugin.plugin_type().to_owned()).chain(ipam) {
            if !seen.insert(ty.clone()) {
                continue;
            }
            if let Err(e) = find_plugin(&ty, dirs) {
                reasons.push(e.in_network(net.name()));
            }
        }
    }
    NetworkReadiness {
        network: net.name().to_owned(),
        source: net.source().map(Path::to_owned),
        reasons,
        last_good,
    }
}

fn same_network(a: &NetworkConfigList, b: &NetworkConfigList) -> bool {
    a.source() == b.source()
        && a.bytes() == b.bytes()
        && a.plugins().len() == b.plugins().len()
        && a.plugins()
            .iter()
            .zip(b.plugins())
            .all(|(x, y)| x.raw() == y.raw() && x.source() == y.source())
}

fn same_readiness(a: &NetworkReadiness, b: &NetworkReadiness) -> bool {
    a.network == b.network
        && a.source == b.source
        && a.last_good == b.last_good
        && a.reasons.len() == b.reasons.len()
        && a.reasons
            .iter()
            .zip(&b.reasons)
            .all(|(x, y)| x.to_string() == y.to_string())
}

fn same_problem(a: &ConfigProblemReport, b: &ConfigProblemReport) -> bool {
    a.path == b.path && a.last_good == b.last_good && a.error.to_string() == b.error.to_string()
}

fn same_content(a: &ConfigSnapshot, b: &ConfigSnapshot) -> bool {
    fn all<T>(x: &[T], y: &[T], eq: fn(&T, &T) -> bool) -> bool {
        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| eq(a, b))
    }
    all(&a.networks, &b.networks, same_network)
        && all(&a.readiness, &b.readiness, same_readiness)
        && all(&a.problems, &b.problems, same_problem)
}

/// An error, with its causes for an I/O error (other kinds say it all),
/// for logs.
struct Chain<'a>(&'a Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        if !matches!(self.0.kind(), ErrorKind::Io { .. }) {
            return Ok(());
        }
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Logs what changed from `prev` (nothing, for the first scan) to `next`.
fn log_changes(prev: Option<&ConfigSnapshot>, next: &ConfigSnapshot) {
    let none = [];
    let prev_problems = prev.map_or(&none[..], |p| &p.problems[..]);
    for p in &next.problems {
        if prev_problems.iter().any(|q| same_problem(p, q)) {
            continue;
        }
        let (path, error) = (p.path.display(), Chain(&p.error));
        match &p.last_good {
            Some(net) => tracing::warn!(
                %path,
                %error,
                "network config problem; still serving the last good version of network `{net}`"
            ),
            None => tracing::warn!(%path, %error, "network config problem"),
        }
    }
    for q in prev_problems {
        if next.problem(&q.path).is_none() {
            tracing::info!(path = %q.path.display(), "network config problem resolved");
        }
    }
    let key = |r: &NetworkReadiness| (r.network.clone(), r.source.clone());
    let before: HashMap<_, &NetworkReadiness> = prev
        .map(|p| p.readiness.iter().map(|r| (key(r), r)).collect())
        .unwrap_or_default();
    let after: HashMap<_, &NetworkReadiness> = next.readiness.iter().map(|r| (key(r), r)).collect();
    let before_nets: HashMap<_, &NetworkConfigList> = prev
        .map(|p| p.readiness.iter().map(key).zip(&p.networks).collect())
        .unwrap_or_default();
    for (r, net) in next.readiness.iter().zip(&next.networks) {
        let source = r.source.as_deref().unwrap_or(Path::new("")).display();
        let was = before.get(&key(r));
        match before_nets.get(&key(r)) {
            None => {
                tracing::info!(network = %r.network, %source, ready = r.is_ready(), "network config appeared")
            }
            Some(old) if !same_network(old, net) => {
                tracing::info!(network = %r.network, %source, "network config changed");
            }
            Some(_) => {}
        }
        match (was.map(|w| w.is_ready()), r.is_ready()) {
            (Some(true), true) | (None, true) => {}
            (_, true) => tracing::info!(network = %r.network, %source, "network ready"),
            (Some(false), false) if was.is_some_and(|w| same_readiness(w, r)) => {}
            (_, false) => {
                tracing::warn!(network = %r.network, %source, reasons = %r, "network not ready")
            }
        }
    }
    for (k, r) in &before {
        if !after.contains_key(k) {
            let source = r.source.as_deref().unwrap_or(Path::new("")).display();
            tracing::info!(network = %r.network, %source, "network config removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watcher_types_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ConfigWatcher>();
        assert_send_sync::<ConfigUpdates>();
        assert_send_sync::<ConfigSnapshot>();
        fn assert_send<T: Send>(_: &T) {}
        let mut updates = ConfigUpdates {
            rx: watch::channel(Arc::new(ConfigSnapshot {
                generation: 1,
                conf_dir: PathBuf::new(),
                plugin_dirs: Vec::new(),
                networks: Vec::new(),
                readiness: Vec::new(),
                problems: Vec::new(),
            }))
            .1,
        };
        assert_send(&updates.changed());
        assert_send(&updates.wait_for(|_| true));
        assert_send(&ConfigWatcher::builder("/x").start_async());
    }

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn opens_and_reads_are_not_changes() {
        let roots = [
            PathBuf::from("/etc/cni/net.d"),
            PathBuf::from("/opt/cni/bin"),
        ];
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(!relevant(&event(open, "/etc/cni/net.d/a.conf"), &roots));
        assert!(!relevant(&event(read, "/etc/cni/net.d/a.conf"), &roots));
        assert!(relevant(&event(written, "/etc/cni/net.d/a.conf"), &roots));
        let create = EventKind::Create(notify::event::CreateKind::Any);
        // Inside a root, a root itself, an ancestor of a root.
        assert!(relevant(
            &event(create, "/etc/cni/net.d/net/x.conf"),
            &roots
        ));
        assert!(relevant(&event(create, "/etc/cni/net.d"), &roots));
        assert!(relevant(&event(create, "/opt/cni"), &roots));
        // A sibling in a watched parent directory.
        assert!(!relevant(&event(create, "/etc/cni/other"), &roots));
        assert!(!relevant(&event(create, "/opt/cni/bin2"), &roots));
    }

    fn net(file: &str, name: &str) -> NetworkConfigList {
        let mut n = NetworkConfigList::from_bytes(
            format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"p"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        n.source = Some(PathBuf::from(file));
        n
    }

    fn snapshot(nets: Vec<(NetworkConfigList, bool)>) -> ConfigSnapshot {
        let readiness = nets
            .iter()
            .map(|(n, ready)| NetworkReadiness {
                network: n.name().to_owned(),
                source: n.source().map(Path::to_owned),
                reasons: if *ready {
                    Vec::new()
                } else {
                    vec![Error::new(ErrorKind::NoPluginDirs)]
                },
                last_good: false,
            })
            .collect();
        ConfigSnapshot {
            generation: 1,
            conf_dir: PathBuf::from("/d"),
            plugin_dirs: Vec::new(),
            networks: nets.into_iter().map(|(n, _)| n).collect(),
            readiness,
            problems: Vec::new(),
        }
    }

    #[test]
    fn network_picks_the_first_conflist_then_the_first_conf() {
        let s = snapshot(vec![
            (net("/d/00-a.conf", "a"), true),
            (net("/d/10-a.conflist", "a"), false),
            (net("/d/20-a.conflist", "a"), true),
            (net("/d/30-b.json", "b"), true),
            (net("/d/40-b.conf", "b"), true),
        ]);
        assert_eq!(
            s.network("a").unwrap().source(),
            Some(Path::new("/d/10-a.conflist"))
        );
        assert!(!s.is_ready("a"));
        assert_eq!(
            s.network("b").unwrap().source(),
            Some(Path::new("/d/30-b.json"))
        );
        assert!(s.network("c").is_none());
        // The default is the first ready network in file order.
        assert_eq!(
            s.default_network().unwrap().source(),
            Some(Path::new("/d/00-a.conf"))
        );
    }

    #[test]
    fn default_skips_networks_that_are_not_ready() {
        let s = snapshot(vec![
            (net("/d/00-multus.conf", "multus"), false),
            (net("/d/10-calico.conflist", "calico"), true),
        ]);
        assert_eq!(s.default_network().unwrap().name(), "calico");
        assert!(s.has_usable_default());
        let s = snapshot(vec![(net("/d/00-multus.conf", "multus"), false)]);
        assert!(s.default_network().is_none());
        assert!(!s.has_usable_default());
    }

    #[test]
    fn content_comparison_ignores_the_generation_only() {
        let a = snapshot(vec![(net("/d/a.conflist", "a"), true)]);
        let mut b = snapshot(vec![(net("/d/a.conflist", "a"), true)]);
        b.generation = 7;
        assert!(same_content(&a, &b));
        let c = snapshot(vec![(net("/d/a.conflist", "a"), false)]);
        assert!(!same_content(&a, &c));
        let d = snapshot(vec![(net("/d/a.conflist", "b"), true)]);
        assert!(!same_content(&a, &d));
    }
}
