//! Finding and loading the network configurations in a directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Limits, NetworkConfigList, PluginConfig};
use crate::error::{Error, ErrorKind};

/// The default configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/cni/net.d";

/// Loads network configurations from a directory, as libcni does: the
/// `.conf`, `.conflist` and `.json` files directly in it (not recursive), in
/// byte-wise order of file name.
///
/// Unlike libcni, a file that cannot be read or parsed never hides a good
/// network in another file: it is skipped and reported (with file, line and
/// column) through [`LoadedConfigs::skipped`], the `skipped` list of
/// [`ErrorKind::NetworkNotFound`], and a `tracing` warning.
///
/// Files over a size cap ([`with_max_file_size`](Self::with_max_file_size))
/// or nested deeper than a depth cap ([`with_max_depth`](Self::with_max_depth))
/// are skipped the same way, with [`ErrorKind::ConfigTooLarge`] or
/// [`ConfigProblem::TooDeep`](crate::error::ConfigProblem::TooDeep) naming
/// the file, so a huge or hostile file costs neither memory nor stack.
/// Symlinked files are followed, as in libcni (Kubernetes ConfigMap mounts
/// are symlinks).
///
/// # Example
///
/// ```no_run
/// # fn main() -> Result<(), libcni::Error> {
/// let loader = libcni::ConfigLoader::new("/etc/cni/net.d");
/// let net = loader.network("mynet")?;
/// println!("{} runs {} plugins", net.name(), net.plugins().len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    dir: PathBuf,
    limits: Limits,
}

/// Every valid network in a directory, and an error for each file skipped.
#[derive(Debug, Default)]
pub struct LoadedConfigs {
    networks: Vec<NetworkConfigList>,
    skipped: Vec<Error>,
}

impl LoadedConfigs {
    /// The valid networks, in file order.
    pub fn networks(&self) -> &[NetworkConfigList] {
        &self.networks
    }

    /// One error per file that could not be loaded, in file order.
    pub fn skipped(&self) -> &[Error] {
        &self.skipped
    }

    /// The network `name` as [`ConfigLoader::network`] would pick it: the
    /// first `.conflist` defining it, else the first `.conf`/`.json`.
    pub fn get(&self, name: &str) -> Option<&NetworkConfigList> {
        pick(&self.networks, name).map(|i| &self.networks[i])
    }

    /// Splits into the networks and the errors.
    pub fn into_parts(self) -> (Vec<NetworkConfigList>, Vec<Error>) {
        (self.networks, self.skipped)
    }
}

/// A network found by [`ConfigLoader::find_network`], with the files that
/// were skipped before it.
#[derive(Debug)]
pub struct NetworkLookup {
    network: NetworkConfigList,
    skipped: Vec<Error>,
}

impl NetworkLookup {
    /// The network.
    pub fn network(&self) -> &NetworkConfigList {
        &self.network
    }

    /// An error for each file skipped because it could not be loaded.
    pub fn skipped(&self) -> &[Error] {
        &self.skipped
    }

    /// The network, dropping the rest.
    pub fn into_network(self) -> NetworkConfigList {
        self.network
    }

    /// The network and the skipped files' errors.
    pub fn into_parts(self) -> (NetworkConfigList, Vec<Error>) {
        (self.network, self.skipped)
    }
}

impl Default for ConfigLoader {
    fn default() -> Self {
        ConfigLoader::new(DEFAULT_CONFIG_DIR)
    }
}

impl ConfigLoader {
    /// A loader for `dir` (libcni's default is `/etc/cni/net.d`, see
    /// [`ConfigLoader::default`]).
    pub fn new(dir: impl Into<PathBuf>) -> ConfigLoader {
        ConfigLoader {
            dir: dir.into(),
            limits: Limits::default(),
        }
    }

    /// Sets the largest config file (and drop-in) loaded, in bytes; larger
    /// ones are skipped with [`ErrorKind::ConfigTooLarge`] without being
    /// read. Default: [`DEFAULT_MAX_CONFIG_SIZE`](super::DEFAULT_MAX_CONFIG_SIZE)
    /// (4 MiB).
    pub fn with_max_file_size(mut self, bytes: u64) -> ConfigLoader {
        self.limits.max_size = bytes;
        self
    }

    /// Sets how deeply a config's JSON may nest objects and arrays; deeper
    /// files are skipped with
    /// [`ConfigProblem::TooDeep`](crate::error::ConfigProblem::TooDeep).
    /// Default: [`DEFAULT_MAX_CONFIG_DEPTH`](super::DEFAULT_MAX_CONFIG_DEPTH)
    /// (64); the JSON parser itself stops at 128.
    pub fn with_max_depth(mut self, depth: usize) -> ConfigLoader {
        self.limits.max_depth = depth;
        self
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The size cap on config files, in bytes.
    pub fn max_file_size(&self) -> u64 {
        self.limits.max_size
    }

    /// The nesting cap on config files.
    pub fn max_depth(&self) -> usize {
        self.limits.max_depth
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config files, as libcni's `ConfFiles` lists them: entries of the
    /// directory (directories excluded, symlinks included) whose extension —
    /// from the last `.`, case-sensitive — is `.conf`, `.conflist` or `.json`,
    /// in byte order. A missing directory has no files.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the directory exists but cannot be read.
    pub fn files(&self) -> Result<Vec<PathBuf>, Error> {
        conf_files(&self.dir, &[b".conf", b".conflist", b".json"])
    }

    /// Loads the network `name`: the first `.conflist` (in file order) that
    /// defines it wins; if none does, the first `.conf` or `.json`, promoted
    /// to a list of one plugin.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoConfigs`] when the directory has no config file at all,
    /// [`ErrorKind::NetworkNotFound`] (listing the files skipped) when no
    /// valid file defines the network, [`ErrorKind::Io`] when the directory
    /// cannot be read.
    pub fn network(&self, name: &str) -> Result<NetworkConfigList, Error> {
        self.find_network(name).map(NetworkLookup::into_network)
    }

    /// As [`network`](Self::network), and also the files that were skipped
    /// on the way (sorted before the match and failing to load), so a tool
    /// can tell its user about them even when the lookup succeeds.
    ///
    /// # Errors
    ///
    /// As [`network`](Self::network).
    pub fn find_network(&self, name: &str) -> Result<NetworkLookup, Error> {
        let files = self.files()?;
        if files.is_empty() {
            return Err(Error::new(ErrorKind::NoConfigs {
                dir: self.dir.clone(),
            }));
        }
        let mut skipped = Vec::new();
        let (lists, singles): (Vec<&PathBuf>, Vec<&PathBuf>) =
            files.iter().partition(|p| ext(p) == b".conflist");
        for path in lists.into_iter().chain(singles) {
            match load_file(path, &self.limits) {
                Ok(net) if net.name() == name => {
                    report(&skipped);
                    return Ok(NetworkLookup {
                        network: net,
                        skipped,
                    });
                }
                Ok(_) => {}
                Err(e) => skipped.push(e),
            }
        }
        report(&skipped);
        Err(Error::new(ErrorKind::NetworkNotFound {
            network: name.to_owned(),
            dir: self.dir.clone(),
            skipped,
        }))
    }

    /// The default network: the first file (of all three extensions, in byte
    /// order) that loads, as go-cni and ocicni pick it. With a multus
    /// `00-multus.conf` beside a `10-calico.conflist`, multus is the default.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoConfigs`] when there is no config file,
    /// [`ErrorKind::NoValidConfig`] when none loads.
    pub fn default_network(&self) -> Result<NetworkConfigList, Error> {
        let files = self.files()?;
        let mut skipped = Vec::new();
        for path in &files {
            match load_file(path, &self.limits) {
                Ok(net) => {
                    report(&skipped);
                    return Ok(net);
                }
                Err(e) => skipped.push(e),
            }
        }
        report(&skipped);
        if files.is_empty() {
            return Err(Error::new(ErrorKind::NoConfigs {
                dir: self.dir.clone(),
            }));
        }
        Err(Error::new(ErrorKind::NoValidConfig {
            dir: self.dir.clone(),
            skipped,
        }))
    }

    /// Loads every file: the valid networks, in file order, and an error for
    /// each file that could not be loaded.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] only if the directory itself cannot be read.
    pub fn load_all(&self) -> Result<LoadedConfigs, Error> {
        let mut out = LoadedConfigs::default();
        for loaded in load_files(&self.files()?, &self.limits) {
            match loaded {
                Ok(net) => out.networks.push(net),
                Err(e) => out.skipped.push(e),
            }
        }
        report(&out.skipped);
        Ok(out)
    }
}

/// Files per thread below which a directory is loaded on the calling thread
/// alone: starting a thread costs about as much as loading a few dozen files.
const FILES_PER_THREAD: usize = 256;

/// Loads `files`, in order. A large directory (a node with hundreds of
/// networks) is split into consecutive chunks loaded by several threads, at
/// most one per CPU (and 8); the results keep the file order, so what
/// loads, what is skipped and which network is the default do not depend
/// on it. A thread that cannot be started leaves its chunk to the caller.
fn load_files(files: &[PathBuf], limits: &Limits) -> Vec<Result<NetworkConfigList, Error>> {
    let load = |chunk: &[PathBuf]| -> Vec<Result<NetworkConfigList, Error>> {
        chunk.iter().map(|p| load_file(p, limits)).collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(files.len() / FILES_PER_THREAD);
    if threads <= 1 {
        return load(files);
    }
    let size = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut chunks = files.chunks(size);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|chunk| {
                let handle = std::thread::Builder::new()
                    .name("libcni-load".to_owned())
                    .spawn_scoped(s, move || load(chunk));
                (chunk, handle)
            })
            .collect();
        let mut out = load(first);
        for (chunk, handle) in others {
            match handle {
                Ok(h) => out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
                Err(_) => out.extend(load(chunk)),
            }
        }
        out
    })
}

/// The index of network `name` among `networks` (in file order) as libcni
/// picks it: the first `.conflist` defining it, else the first other file.
pub(crate) fn pick(networks: &[NetworkConfigList], name: &str) -> Option<usize> {
    let mut first = None;
    for (i, net) in networks.iter().enumerate() {
        if net.name() != name {
            continue;
        }
        if net.source().is_some_and(|p| ext(p) == b".conflist") {
            return Some(i);
        }
        first.get_or_insert(i);
    }
    first
}

fn report(skipped: &[Error]) {
    for e in skipped {
        tracing::warn!(error = %e, "skipping network config file");
    }
}

/// Loads one config file by its extension.
pub(super) fn load_file(path: &Path, limits: &Limits) -> Result<NetworkConfigList, Error> {
    if ext(path) == b".conflist" {
        NetworkConfigList::from_file_with(path, limits)
    } else {
        NetworkConfigList::from_plugin(PluginConfig::from_file_with(path, limits)?)
    }
}

/// Go's `filepath.Ext` on the file name: from the last `.`, or empty.
fn ext(path: &Path) -> &[u8] {
    let name = path.file_name().map_or(&[][..], OsStr::as_bytes);
    name.iter()
        .rposition(|b| *b == b'.')
        .map_or(&[][..], |i| &name[i..])
}

fn conf_files(dir: &Path, exts: &[&[u8]]) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading config directory", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("reading config directory", dir, e))?;
        // Like Go's os.ReadDir: the entry's own type, not a symlink's target.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        if exts.contains(&ext(Path::new(&name))) {
            names.push(name);
        }
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// The drop-in plugin configs of a network: `<dir>/*.conf`, sorted, each
/// needing a `type`. A missing directory has none.
pub(super) fn dropins(dir: &Path, limits: &Limits) -> Result<Vec<PluginConfig>, Error> {
    conf_files(dir, &[b".conf"])?
        .into_iter()
        .map(|p| PluginConfig::from_file_with(&p, limits))
        .collect()
}
