//! The result cache, on disk exactly as libcni lays it out:
//! `<cache dir>/results/<network>-<container id>-<ifname>`, directories
//! `0700`, files `0600`, JSON `{"kind":"cniCacheV1",...}`.
//!
//! Unlike libcni, every write is atomic and durable (temp file, fsync,
//! rename, fsync of the directory), names that would escape the directory
//! are refused on every operation, and no symlink under the cache directory
//! is followed (`dir.rs`, the file-system layer, works on directory fds).

mod dir;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{CacheProblem, Error, ErrorKind};
use crate::json::tree::{self, Json, Object, get_ci};
use crate::json::{write_go_json, write_go_str};
pub(crate) use crate::name::entry_name;
use crate::plan::RuntimeConfig;
use crate::result::CniResult;

pub(crate) use self::dir::{CacheDir, OpenCache, RESULTS, sweep_locks};
use self::dir::{FileLock, LOCKS, TryLock, try_lock};

/// The default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

const KIND: &str = "cniCacheV1";

/// What the cache recorded for an attachment at ADD time.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedConfig {
    config: Vec<u8>,
    runtime: RuntimeConfig,
}

impl CachedConfig {
    /// The network configuration bytes that were used (base64-decoded).
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// The runtime config given, with the cached `CNI_ARGS` (when any were
    /// cached) and capability arguments (always) in place, as libcni's
    /// `GetNetworkListCachedConfig` returns it.
    pub fn runtime_config(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

/// An attachment recorded in the cache (libcni 1.3's `NetworkAttachment`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Attachment {
    /// The container ID.
    pub container_id: String,
    /// The network name.
    pub network: String,
    /// The interface name.
    pub ifname: String,
    /// The network configuration bytes used at ADD.
    pub config: Vec<u8>,
    /// The network namespace path (empty if not recorded).
    pub netns: String,
    /// The `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// The capability arguments.
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    /// The runtime config the attachment was added with (container ID,
    /// netns, interface name, `CNI_ARGS`, capability arguments), as GC uses
    /// it to delete a stale attachment.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig::new(&*self.container_id, &*self.netns, &*self.ifname)
            .with_args(self.args.clone())
            .with_capability_args(self.capability_args.clone())
    }
}

/// A decoded `cniCacheV1` file.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    pub(crate) container_id: String,
    pub(crate) config: Option<Vec<u8>>,
    pub(crate) ifname: String,
    pub(crate) network: String,
    pub(crate) netns: String,
    pub(crate) cni_args: Option<Vec<(String, String)>>,
    pub(crate) capability_args: Option<Map<String, Value>>,
}

/// Runs blocking file-system work off the async reactor.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Encodes a cache entry: libcni's `cniCacheV1` bytes (those of
/// `to_go_json` of the entry with its fields in this order; the result is
/// written sorted, as libcni 1.3 writes it, as the last field).
pub(crate) fn encode(
    network: &str,
    rt: &RuntimeConfig,
    config: &[u8],
    result: &CniResult,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + config.len() * 4 / 3);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(KIND.as_bytes());
    out.extend_from_slice(b"\",\"containerId\":");
    write_go_str(rt.container_id(), &mut out);
    // The base64 alphabet and padding need no escaping.
    out.extend_from_slice(b",\"config\":\"");
    out.extend_from_slice(base64_encode(config).as_bytes());
    out.extend_from_slice(b"\",\"ifName\":");
    write_go_str(rt.ifname(), &mut out);
    out.extend_from_slice(b",\"networkName\":");
    write_go_str(network, &mut out);
    if !rt.netns().is_empty() {
        out.extend_from_slice(b",\"netns\":");
        write_go_str(rt.netns(), &mut out);
    }
    if !rt.args().is_empty() {
        out.extend_from_slice(b",\"cniArgs\":[");
        for (i, (k, v)) in rt.args().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_go_str(k, &mut out);
            out.push(b',');
            write_go_str(v, &mut out);
            out.push(b']');
        }
        out.push(b']');
    }
    if !rt.capability_args().is_empty() {
        out.extend_from_slice(b",\"capabilityArgs\":");
        write_go_json(rt.capability_args(), &mut out);
    }
    out.extend_from_slice(b",\"result\":");
    result.write_sorted(&mut out);
    out.push(b'}');
    out
}

/// What an operation does to the cache entry when it ends.
pub(crate) enum Finish {
    /// Writes this entry (a successful ADD).
    Write(Vec<u8>),
    /// Removes the entry (a successful DEL).
    Remove,
    /// Leaves the entry as it is (CHECK, or a failed operation).
    Keep,
}

/// One attachment's place in the cache, opened and locked for the length of
/// an operation: operations on the same attachment wait for each other, in
/// this process (an async mutex) and across processes (an `flock` on
/// `locks/<entry name>`).
///
/// The cross-process lock is best effort: if `locks/` cannot be used (a
/// read-only cache directory, a symlink), the operation goes on with the
/// in-process lock, so a DEL is never blocked by it. A `results/` that
/// cannot be used (a symlink, not a directory) is kept as a problem that
/// each operation weighs: ADD and CHECK fail on it, DEL goes on without a
/// cached result and removes nothing.
pub(crate) struct Slot {
    state: SlotState,
    _local: LocalLock,
}

#[derive(Default)]
struct SlotState {
    dir: Option<CacheDir>,
    name: String,
    cache: Option<OpenCache>,
    results: Option<OwnedFd>,
    problem: Option<Error>,
    locks: Option<OwnedFd>,
    lock: Option<FileLock>,
    /// Whether waiting for the file lock is over (held, or given up on).
    locked: bool,
    want_read: bool,
    read: Option<Result<Option<Vec<u8>>, Error>>,
}

impl SlotState {
    /// One blocking step: open what is not open yet, try the file lock
    /// once, and read the entry once the lock is held.
    fn step(&mut self) {
        if self.cache.is_none() && self.problem.is_none() {
            let dir = self.dir.as_ref().expect("set at open");
            match dir.open(true) {
                Ok(c) => {
                    let cache = c.expect("created when missing");
                    match cache.subdir(RESULTS, true) {
                        Ok(r) => self.results = r,
                        Err(e) => self.problem = Some(e),
                    }
                    match cache.locks_dir() {
                        Ok(l) => self.locks = Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot use the cross-process attachment lock; going on with the in-process lock");
                            self.locked = true;
                        }
                    }
                    self.cache = Some(cache);
                }
                Err(e) => {
                    self.problem = Some(e);
                    self.locked = true;
                }
            }
        }
        if !self.locked {
            let locks = self.locks.as_ref().expect("opened above");
            match try_lock(locks, &self.name) {
                Ok(TryLock::Locked(l)) => {
                    self.lock = Some(l);
                    self.locked = true;
                }
                Ok(TryLock::Busy) => return,
                Err(e) => {
                    let path = self.cache.as_ref().map(|c| c.file_path(LOCKS, &self.name));
                    tracing::warn!(path = ?path, error = %e, "cannot take the cross-process attachment lock; going on with the in-process lock");
                    self.locked = true;
                }
            }
        }
        if self.want_read && self.read.is_none() {
            self.read = Some(match (&self.cache, &self.results) {
                (Some(c), Some(r)) => c.read(r.as_fd(), &self.name),
                _ => Err(self.problem.take().unwrap_or_else(|| {
                    Error::new(ErrorKind::Cache {
                        problem: CacheProblem::Unusable,
                    })
                })),
            });
        }
    }

    fn finish(mut self, finish: Finish) -> Result<(), Error> {
        let (Some(cache), Some(results)) = (&self.cache, &self.results) else {
            return match (finish, self.problem.take()) {
                (Finish::Write(_), Some(p)) => Err(p),
                _ => Ok(()),
            };
        };
        let (res, written) = match finish {
            Finish::Write(bytes) => {
                let res = cache.write(results.as_fd(), &self.name, &bytes);
                let ok = res.is_ok();
                (res, ok)
            }
            Finish::Remove => (cache.remove(results.as_fd(), &self.name), false),
            Finish::Keep => (Ok(()), false),
        };
        if let Some(lock) = self.lock.take() {
            // An entry just written is there (no need to look); the lock
            // file of an attachment with no entry goes.
            if !written && !OpenCache::exists(results.as_fd(), &self.name) {
                lock.remove();
            }
        }
        res
    }
}

impl Slot {
    /// Opens the cache for entry `name` and waits for its locks; with
    /// `read`, then reads the entry (see [`Slot::take_read`]). `first` runs
    /// off the reactor in the same blocking call that opens the cache and
    /// first tries the lock (one thread hop instead of two); when `proceed`
    /// refuses its value, nothing is opened or locked and the value comes
    /// back alone.
    pub(crate) async fn open_after<T: Send + 'static>(
        dir: &CacheDir,
        name: String,
        read: bool,
        first: impl FnOnce() -> T + Send + 'static,
        proceed: fn(&T) -> bool,
    ) -> (Option<Slot>, T) {
        let local = local_lock(dir.path().join(RESULTS).join(&name)).await;
        let state = SlotState {
            dir: Some(dir.clone()),
            name,
            want_read: read,
            ..SlotState::default()
        };
        let (mut state, value, proceeds) = blocking(move || {
            let mut state = state;
            let value = first();
            let proceeds = proceed(&value);
            if proceeds {
                state.step();
            }
            (state, value, proceeds)
        })
        .await;
        if !proceeds {
            return (None, value);
        }
        let mut delay = Duration::from_millis(1);
        while !state.locked {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(20));
            state = blocking(move || {
                state.step();
                state
            })
            .await;
        }
        let slot = Slot {
            state,
            _local: local,
        };
        (Some(slot), value)
    }

    /// The problem that makes `results/` unusable, if any (taken).
    pub(crate) fn take_problem(&mut self) -> Option<Error> {
        self.state.problem.take()
    }

    /// The entry's bytes read at open (`Ok(None)`: there is none).
    pub(crate) fn take_read(&mut self) -> Result<Option<Vec<u8>>, Error> {
        self.state.read.take().unwrap_or(Ok(None))
    }

    /// Writes, removes or keeps the entry, then releases the locks; the
    /// lock file is removed when no entry is left behind.
    pub(crate) async fn finish(self, finish: Finish) -> Result<(), Error> {
        let Slot { state, _local } = self;
        blocking(move || state.finish(finish)).await
    }
}

type LockTable = std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;

/// The in-process lock table: one mutex per attachment in use, removed
/// when its last user is done, so the table holds only the attachments
/// being worked on (not one entry per attachment ever seen).
static LOCAL_LOCKS: std::sync::LazyLock<LockTable> = std::sync::LazyLock::new(Default::default);

/// The in-process lock of one attachment (its cache entry's path), held
/// until dropped.
pub(crate) struct LocalLock {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: PathBuf,
}

async fn local_lock(key: PathBuf) -> LocalLock {
    let lock = LOCAL_LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_default()
        .clone();
    LocalLock {
        guard: Some(lock.lock_owned().await),
        key,
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        let guard = self.guard.take().expect("held until dropped");
        let mut map = LOCAL_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        let lock = tokio::sync::OwnedMutexGuard::mutex(&guard).clone();
        drop(guard);
        // Only the table's reference and `lock` are left: nobody else holds
        // or waits for it (a waiter holds a clone, taken under the table's
        // lock, which is held here).
        if Arc::strong_count(&lock) == 2 {
            map.remove(&self.key);
        }
    }
}

/// The cached attachments (of `container_id` if given), in file-name order,
/// as libcni 1.3's `GetCachedAttachments`, plus an error for each file
/// skipped (not a `cniCacheV1` entry, no interface or network name, a
/// symlink, unreadable). Blocking.
pub(crate) fn attachments(
    dir: &CacheDir,
    container_id: Option<&str>,
) -> Result<(Vec<Attachment>, Vec<Error>), Error> {
    let Some(cache) = dir.open(false)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let Some(results) = cache.subdir(RESULTS, false)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let part = container_id.map(|c| format!("-{c}-"));
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for name in cache.list(results.as_fd(), RESULTS)? {
        if let Some(part) = &part {
            match name.find(part.as_str()) {
                Some(pos) if pos > 0 && pos + part.len() < name.len() => {}
                _ => continue,
            }
        }
        let path = || cache.file_path(RESULTS, &name);
        let bytes = match cache.read(results.as_fd(), &name) {
            Ok(Some(b)) => b,
            Ok(None) => continue, // removed meanwhile
            Err(e) => {
                skipped.push(e);
                continue;
            }
        };
        let e = match decode(&bytes) {
            Ok(e) => e,
            Err(problem) => {
                skipped.push(Error::new(ErrorKind::Cache { problem }).at_path(path()));
                continue;
            }
        };
        if container_id.is_some_and(|c| e.container_id != c) {
            continue;
        }
        if e.ifname.is_empty() || e.network.is_empty() {
            skipped.push(
                Error::new(ErrorKind::Cache {
                    problem: CacheProblem::MissingNames,
                })
                .at_path(path()),
            );
            continue;
        }
        out.push(Attachment {
            container_id: e.container_id,
            network: e.network,
            ifname: e.ifname,
            config: e.config.unwrap_or_default(),
            netns: e.netns,
            args: e.cni_args.unwrap_or_default(),
            capability_args: e.capability_args.unwrap_or_default(),
        });
    }
    Ok((out, skipped))
}
/// Decodes a cache file as a `cniCacheV1` entry with Go's rules; `Err` when
/// it is not valid JSON, has a field of the wrong type, or has another kind.
pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, CacheProblem> {
    let tree = parse_entry(bytes)?;
    let e = EntryRef::read(&tree)?;
    Ok(Entry {
        container_id: e.container_id.to_owned(),
        config: match e.config {
            Some(c) => Some(base64_decode(c).ok_or(CacheProblem::NotBase64)?),
            None => None,
        },
        ifname: e.ifname.to_owned(),
        network: e.network.to_owned(),
        netns: e.netns.to_owned(),
        cni_args: e.cni_args.map(|pairs| {
            pairs
                .iter()
                .map(|p| {
                    let (k, v) = string_pair(p).expect("checked by EntryRef::read");
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        }),
        capability_args: e.capability_args.map(tree::to_map),
    })
}

fn parse_entry(bytes: &[u8]) -> Result<Json<'_>, CacheProblem> {
    Json::parse(bytes).map_err(|e| CacheProblem::NotJson {
        reason: e.to_string(),
    })
}

/// A `cniCacheV1` entry checked as [`decode`] checks it, its fields borrowed
/// from the parsed file, `config` still base64 (checked to decode).
struct EntryRef<'t, 'a> {
    container_id: &'t str,
    config: Option<&'t str>,
    ifname: &'t str,
    network: &'t str,
    netns: &'t str,
    /// `[key, value]` string pairs.
    cni_args: Option<&'t [Json<'a>]>,
    capability_args: Option<&'t Object<'a>>,
    result: Option<&'t Object<'a>>,
}

impl<'t, 'a> EntryRef<'t, 'a> {
    /// The entry in a parsed cache file (the checks and their order are
    /// those of Go's `json.Unmarshal` into libcni's `cachedInfo`, then of
    /// its `Kind`).
    fn read(tree: &'t Json<'a>) -> Result<EntryRef<'t, 'a>, CacheProblem> {
        use CacheProblem::FieldType;
        let obj: &'t Object<'a> = match tree {
            Json::Object(m) => m,
            Json::Null => {
                return Err(CacheProblem::WrongKind {
                    kind: String::new(),
                });
            }
            _ => return Err(CacheProblem::NotAnObject),
        };
        let string = |field: &'static str| -> Result<&'t str, CacheProblem> {
            match get_ci(obj, field) {
                None | Some(Json::Null) => Ok(""),
                Some(Json::String(s)) => Ok(s),
                Some(_) => Err(FieldType {
                    field,
                    expected: "a string",
                }),
            }
        };
        let kind = string("kind")?;
        let container_id = string("containerId")?;
        let ifname = string("ifName")?;
        let network = string("networkName")?;
        let netns = string("netns")?;
        let config = match get_ci(obj, "config") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if base64_valid(s) => Some(s.as_ref()),
            Some(Json::String(_)) => return Err(CacheProblem::NotBase64),
            Some(_) => {
                return Err(FieldType {
                    field: "config",
                    expected: "a string",
                });
            }
        };
        let pairs = FieldType {
            field: "cniArgs",
            expected: "an array of [key, value] string pairs",
        };
        let cni_args = match get_ci(obj, "cniArgs") {
            None | Some(Json::Null) => None,
            Some(Json::Array(a)) if a.iter().all(|p| string_pair(p).is_some()) => Some(&a[..]),
            Some(_) => return Err(pairs),
        };
        let object = |field: &'static str| -> Result<Option<&'t Object<'a>>, CacheProblem> {
            match get_ci(obj, field) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::Object(m)) => Ok(Some(&m[..])),
                Some(_) => Err(FieldType {
                    field,
                    expected: "an object",
                }),
            }
        };
        let capability_args = object("capabilityArgs")?;
        let result = object("result")?;
        if kind != KIND {
            return Err(CacheProblem::WrongKind {
                kind: kind.to_owned(),
            });
        }
        Ok(EntryRef {
            container_id,
            config,
            ifname,
            network,
            netns,
            cni_args,
            capability_args,
            result,
        })
    }
}

/// A `cniArgs` element: exactly two strings.
fn string_pair<'t>(p: &'t Json<'_>) -> Option<(&'t str, &'t str)> {
    match p {
        Json::Array(a) => match a.as_slice() {
            [Json::String(k), Json::String(v)] => Some((k, v)),
            _ => None,
        },
        _ => None,
    }
}

/// The cached result in a cache file's bytes, as libcni's `getCachedResult`
/// reads it: a `cniCacheV1` entry's `result` (an empty one if absent), or,
/// for anything else, the whole file as a bare (legacy) result.
pub(crate) fn cached_result(bytes: &[u8]) -> Result<CniResult, Error> {
    let Ok(tree) = Json::parse(bytes) else {
        // Not JSON: the error of parsing it as a bare result.
        return CniResult::from_json(bytes);
    };
    match EntryRef::read(&tree) {
        // libcni re-marshals the entry's `result` map and parses that; the
        // value parsed here is the same, so it is used as it is.
        Ok(entry) => CniResult::from_object(entry.result.unwrap_or(&[])),
        Err(_) => CniResult::from_tree(&tree),
    }
}

/// libcni's `GetNetworkListCachedConfig`.
pub(crate) fn cached_config(bytes: &[u8], rt: &RuntimeConfig) -> Result<CachedConfig, Error> {
    let entry = decode(bytes).map_err(|problem| Error::new(ErrorKind::Cache { problem }))?;
    let mut runtime = rt.clone();
    if let Some(args) = entry.cni_args {
        runtime = runtime.with_args(args);
    }
    runtime = runtime.with_capability_args(entry.capability_args.unwrap_or_default());
    Ok(CachedConfig {
        config: entry.config.unwrap_or_default(),
        runtime,
    })
}

/// Go's `base64.StdEncoding`: standard alphabet, padding required, and
/// (not being `Strict`) non-zero trailing bits accepted.
const GO_STD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

/// Standard base64 with padding (Go's `[]byte` JSON encoding).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    base64::Engine::encode(&GO_STD, data)
}

/// Decodes standard base64 with padding, as Go's `encoding/json` does for
/// `[]byte` (`\r` and `\n` are ignored).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    if s.contains(['\r', '\n']) {
        let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        base64::Engine::decode(&GO_STD, clean).ok()
    } else {
        base64::Engine::decode(&GO_STD, s).ok()
    }
}

/// Whether [`base64_decode`] accepts `s`, without decoding it: standard
/// alphabet, `\r` and `\n` ignored, a length that is a multiple of 4, and
/// at most two `=`, only at the end.
pub(crate) fn base64_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    // The usual case (no line breaks) in one pass without early exits,
    // which the compiler vectorizes.
    let body = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    if bytes.len() % 4 == 0
        && body.iter().fold(true, |ok, &b| {
            ok & (b.is_ascii_alphanumeric() | (b == b'+') | (b == b'/'))
        })
    {
        return true;
    }
    let mut n = 0usize;
    let mut pad = 0usize;
    for &b in bytes {
        match b {
            b'\r' | b'\n' => continue,
            b'=' => pad += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if pad == 0 => {}
            _ => return false,
        }
        n += 1;
    }
    n % 4 == 0 && pad <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The entry decoding as it was before the borrowed tree, over a
    /// `serde_json::Value`: the oracle `decode` and `cached_result` are
    /// checked against.
    use crate::result::oracle::Legacy;

    mod oracle {
        use serde_json::{Map, Value};

        use super::super::{KIND, base64_decode};
        use crate::error::{CacheProblem, Error};
        use crate::result::CniResult;
        use crate::result::oracle::Legacy;

        #[derive(Debug, Default)]
        pub(super) struct OldEntry {
            pub(super) container_id: String,
            pub(super) config: Option<Vec<u8>>,
            pub(super) ifname: String,
            pub(super) network: String,
            pub(super) netns: String,
            pub(super) cni_args: Option<Vec<(String, String)>>,
            pub(super) capability_args: Option<Map<String, Value>>,
            pub(super) result: Option<Value>,
        }

        pub(super) fn cached_result(bytes: &[u8]) -> Result<CniResult, Error> {
            match decode(bytes) {
                Ok(entry) => Legacy::from_value(
                    &entry
                        .result
                        .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                ),
                Err(_) => Legacy::from_json(bytes),
            }
        }

        pub(super) fn decode(bytes: &[u8]) -> Result<OldEntry, CacheProblem> {
            use CacheProblem::FieldType;
            let v: Value = serde_json::from_slice(bytes).map_err(|e| CacheProblem::NotJson {
                reason: e.to_string(),
            })?;
            let obj = match &v {
                Value::Object(m) => m,
                Value::Null => {
                    return Err(CacheProblem::WrongKind {
                        kind: String::new(),
                    });
                }
                _ => return Err(CacheProblem::NotAnObject),
            };
            let string = |field: &'static str| -> Result<String, CacheProblem> {
                match crate::json::get_ci(obj, field) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(FieldType {
                        field,
                        expected: "a string",
                    }),
                }
            };
            let kind = string("kind")?;
            let mut e = OldEntry {
                container_id: string("containerId")?,
                ifname: string("ifName")?,
                network: string("networkName")?,
                netns: string("netns")?,
                ..OldEntry::default()
            };
            e.config = match crate::json::get_ci(obj, "config") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(base64_decode(s).ok_or(CacheProblem::NotBase64)?),
                Some(_) => {
                    return Err(FieldType {
                        field: "config",
                        expected: "a string",
                    });
                }
            };
            let pairs = FieldType {
                field: "cniArgs",
                expected: "an array of [key, value] string pairs",
            };
            e.cni_args = match crate::json::get_ci(obj, "cniArgs") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([Value::String(k), Value::String(v)]) => {
                                Ok((k.clone(), v.clone()))
                            }
                            _ => Err(pairs.clone()),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(_) => return Err(pairs),
            };
            e.capability_args = match crate::json::get_ci(obj, "capabilityArgs") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(_) => {
                    return Err(FieldType {
                        field: "capabilityArgs",
                        expected: "an object",
                    });
                }
            };
            e.result = match crate::json::get_ci(obj, "result") {
                None | Some(Value::Null) => None,
                Some(v @ Value::Object(_)) => Some(v.clone()),
                Some(_) => {
                    return Err(FieldType {
                        field: "result",
                        expected: "an object",
                    });
                }
            };
            if kind != KIND {
                return Err(CacheProblem::WrongKind { kind });
            }
            Ok(e)
        }
    }

    /// The entry as `encode` wrote it through serde: the oracle of its
    /// bytes.
    #[derive(serde::Serialize)]
    struct EntryOut<'a> {
        kind: &'static str,
        #[serde(rename = "containerId")]
        container_id: &'a str,
        config: String,
        #[serde(rename = "ifName")]
        ifname: &'a str,
        #[serde(rename = "networkName")]
        network: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        netns: &'a str,
        #[serde(rename = "cniArgs", skip_serializing_if = "<[_]>::is_empty")]
        cni_args: Vec<[&'a str; 2]>,
        #[serde(rename = "capabilityArgs", skip_serializing_if = "Map::is_empty")]
        capability_args: &'a Map<String, Value>,
        // `result` comes last, spliced in as bytes (see `encode`).
    }

    fn encode_oracle(
        network: &str,
        rt: &RuntimeConfig,
        config: &[u8],
        result: &CniResult,
    ) -> Vec<u8> {
        let entry = EntryOut {
            kind: KIND,
            container_id: rt.container_id(),
            config: base64_encode(config),
            ifname: rt.ifname(),
            network,
            netns: rt.netns(),
            cni_args: rt
                .args()
                .iter()
                .map(|(k, v)| [k.as_str(), v.as_str()])
                .collect(),
            capability_args: rt.capability_args(),
        };
        let mut out = crate::json::to_go_json(&entry);
        out.pop();
        out.extend_from_slice(b",\"result\":");
        out.extend_from_slice(&Legacy::to_json_sorted(result));
        out.push(b'}');
        out
    }

    #[test]
    fn encode_matches_the_serde_oracle() {
        let results = [
            RESULT,
            r#"{"cniVersion":"1.1.0","dns":{"nameservers":["1.1.1.1"]},"routes":[{"dst":"::/0","table":0}]}"#,
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24","gateway":"10.0.0.1"}]}"#,
            r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#,
        ];
        let rts = [
            RuntimeConfig::new("c1", "/var/run/netns/x", "eth0"),
            RuntimeConfig::new("c<&>\"1\u{2028}", "", "eth\n0")
                .with_args(vec![
                    ("K".to_owned(), "V".to_owned()),
                    ("\u{1}".to_owned(), "<".to_owned()),
                ])
                .capability_arg("portMappings", serde_json::json!([{"hostPort": 80}]))
                .capability_arg("a<b", serde_json::json!({"z": 1, "a": [null, 1.5]})),
        ];
        for r in results {
            let r = CniResult::from_json(r.as_bytes()).unwrap();
            for rt in &rts {
                for (net, config) in [("net", &b"{}"[..]), ("n\u{2029}", b"\xff\x00\x01abc")] {
                    assert_eq!(
                        String::from_utf8(encode(net, rt, config, &r)).unwrap(),
                        String::from_utf8(encode_oracle(net, rt, config, &r)).unwrap()
                    );
                }
            }
        }
    }

    /// What `decode` and `cached_result` make of `bytes`, for comparison.
    fn outcome(bytes: &[u8]) -> String {
        let entry = decode(bytes).map(|e| {
            (
                e.container_id,
                e.config,
                e.ifname,
                e.network,
                e.netns,
                e.cni_args,
                e.capability_args,
            )
        });
        let result = cached_result(bytes).map_err(|e| (format!("{:?}", e.kind()), e.to_string()));
        format!("{entry:?} {result:?}")
    }

    fn oracle_outcome(bytes: &[u8]) -> String {
        let entry = oracle::decode(bytes).map(|e| {
            (
                e.container_id,
                e.config,
                e.ifname,
                e.network,
                e.netns,
                e.cni_args,
                e.capability_args,
            )
        });
        let result =
            oracle::cached_result(bytes).map_err(|e| (format!("{:?}", e.kind()), e.to_string()));
        format!("{entry:?} {result:?}")
    }

    fn check_against_oracle(bytes: &[u8]) {
        assert_eq!(
            outcome(bytes),
            oracle_outcome(bytes),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }

    const RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/ns"}],"ips":[{"address":"10.1.2.3/24","interface":0}]}"#;

    #[test]
    fn decoding_matches_the_value_oracle() {
        let rt = RuntimeConfig::new("c1", "/var/run/netns/x", "eth0")
            .with_args(vec![("K".to_owned(), "V".to_owned())])
            .capability_arg(
                "portMappings",
                serde_json::json!([{"hostPort": 80, "x": null}]),
            )
            .capability_arg(
                "bandwidth",
                serde_json::json!({"rate": 1e3, "big": 18446744073709551615u64}),
            );
        let result = CniResult::from_json(RESULT.as_bytes()).unwrap();
        let written = encode(
            "net",
            &rt,
            br#"{"cniVersion":"1.0.0","name":"net"}"#,
            &result,
        );
        let written = String::from_utf8(written).unwrap();
        let bare = RuntimeConfig::new("c1", "", "eth0");
        let plain = String::from_utf8(encode("net", &bare, b"", &result)).unwrap();
        let cases = [
            written.as_str(),
            plain.as_str(),
            RESULT,
            "",
            "null",
            "[]",
            "5",
            "garbage",
            "{}",
            r#"{"kind":"cniCacheV1"}"#,
            r#"{"kind":"cniCacheV2","cniVersion":"0.4.0"}"#,
            r#"{"KIND":"cniCacheV1","Kind":"x","result":{"cniVersion":"0.4.0"}}"#,
            r#"{"kind":"cniCacheV1","kind":"x","cniVersion":"1.0.0"}"#,
            r#"{"kind":"cniCacheV1","kInd":"x","result":{"cniVersion":"1.0.0"}}"#,
            r#"{"kind":5,"cniVersion":"1.0.0"}"#,
            r#"{"kind":"cniCacheV1","containerId":5,"cniVersion":"1.0.0"}"#,
            r#"{"kind":"cniCacheV1","ifName":null,"netns":"n","networkName":"xA"}"#,
            r#"{"kind":"cniCacheV1","config":"e30="}"#,
            r#"{"kind":"cniCacheV1","config":"e3
0="}"#,
            r#"{"kind":"cniCacheV1","config":"e30"}"#,
            r#"{"kind":"cniCacheV1","config":"e30="}"#,
            r#"{"kind":"cniCacheV1","config":5,"cniVersion":"0.4.0"}"#,
            r#"{"kind":"cniCacheV1","config":"!","cniVersion":"0.4.0"}"#,
            r#"{"kind":"cniCacheV1","Config":"!","config":"e30="}"#,
            r#"{"kind":"cniCacheV1","cniArgs":[["a","b"],["c","d"]]}"#,
            r#"{"kind":"cniCacheV1","cniArgs":[]}"#,
            r#"{"kind":"cniCacheV1","cniArgs":null}"#,
            r#"{"kind":"cniCacheV1","cniArgs":[["a"]]}"#,
            r#"{"kind":"cniCacheV1","cniArgs":[["a","b","c"]]}"#,
            r#"{"kind":"cniCacheV1","cniArgs":[["a",null]]}"#,
            r#"{"kind":"cniCacheV1","cniArgs":{"a":"b"}}"#,
            r#"{"kind":"cniCacheV1","capabilityArgs":{"a":{"b":1,"b":2},"A":[1.5,null]}}"#,
            r#"{"kind":"cniCacheV1","capabilityArgs":[]}"#,
            r#"{"kind":"cniCacheV1","result":null}"#,
            r#"{"kind":"cniCacheV1","result":[]}"#,
            r#"{"kind":"cniCacheV1","result":{"cniVersion":"9"}}"#,
            r#"{"kind":"cniCacheV1","result":{"cniVersion":"1.0.0","ips":[{"address":"x"}]}}"#,
            r#"{"kind":"cniCacheV1","Result":{"cniVersion":"1.0.0"},"RESULT":{"cniVersion":"0.2.0"}}"#,
            r#"{"kind":"cniCacheV1","result":{"cniVersion":"1.0.0"},"result":{"cniVersion":"0.2.0"}}"#,
            r#"{"kind":"cniCacheV1","result":{"cniVersion":"1.0.0"}} trailing"#,
        ];
        for c in cases {
            check_against_oracle(c.as_bytes());
        }
    }

    /// A cache entry's member: a known field (its case flipped now and then)
    /// with a value of its type mostly, or an unknown one.
    fn member() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("kind"),
            Just("Kind"),
            Just("containerId"),
            Just("containerID"),
            Just("config"),
            Just("ifName"),
            Just("networkName"),
            Just("netns"),
            Just("cniArgs"),
            Just("capabilityArgs"),
            Just("result"),
            Just("RESULT"),
            Just("cniVersion"),
            Just("ips"),
            Just("other"),
        ];
        let value = prop_oneof![
            Just(r#""cniCacheV1""#),
            Just(r#""cniCacheV1""#),
            Just(r#""""#),
            Just(r#""e30=""#),
            Just(r#""e30""#),
            Just(
                r#""Zm9v
Yg==""#
            ),
            Just(r#""1.0.0""#),
            Just(r#""0.4.0""#),
            Just(r#""0.2.0""#),
            Just("null"),
            Just("5"),
            Just("[]"),
            Just("{}"),
            Just(r#"[["K","V"]]"#),
            Just(r#"[["K"]]"#),
            Just(r#"{"portMappings":[{"hostPort":80}],"a":1,"a":2}"#),
            Just(r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#),
            Just(r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#),
            Just(r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2"}]}"#),
            Just(r#"[{"address":"10.0.0.2/24"}]"#),
        ];
        (key, value).prop_map(|(k, v)| format!("\"{k}\":{v}"))
    }

    proptest! {
        #[test]
        fn decoding_matches_the_value_oracle_on_entryish_json(
            members in prop::collection::vec(member(), 0..8),
        ) {
            check_against_oracle(format!("{{{}}}", members.join(",")).as_bytes());
        }

        #[test]
        fn encode_matches_the_serde_oracle_on_any_strings(
            id in ".{0,8}",
            netns in "(/[a-z<]{1,4}){0,2}",
            ifname in ".{0,4}",
            net in ".{0,6}",
            args in prop::collection::vec((".{0,3}", ".{0,3}"), 0..3),
            config in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let rt = RuntimeConfig::new(id, netns, ifname).with_args(args);
            let r = CniResult::from_json(RESULT.as_bytes()).unwrap();
            prop_assert_eq!(encode(&net, &rt, &config, &r), encode_oracle(&net, &rt, &config, &r));
        }

        #[test]
        fn base64_valid_is_what_base64_decode_accepts(
            s in prop_oneof!["[A-Za-z0-9+/=\r\n!_-]{0,12}", "[A/=\r\n!]{0,12}"],
        ) {
            prop_assert_eq!(base64_valid(&s), base64_decode(&s).is_some(), "{:?}", s);
        }

        #[test]
        fn base64_valid_accepts_every_encoding(data in prop::collection::vec(any::<u8>(), 0..40), breaks in prop::collection::vec(0usize..64, 0..3)) {
            let mut s = base64_encode(&data);
            for b in breaks {
                s.insert_str(b.min(s.len()), "\r\n");
            }
            prop_assert!(base64_valid(&s), "{:?}", s);
            prop_assert_eq!(base64_decode(&s).unwrap(), data);
        }
    }

    #[tokio::test]
    async fn local_locks_are_forgotten_once_released() {
        let key = |i: usize| PathBuf::from(format!("/nonexistent/local-lock-test/{i}"));
        let strong = |i: usize| {
            LOCAL_LOCKS
                .lock()
                .unwrap()
                .get(&key(i))
                .map(Arc::strong_count)
        };
        for i in 0..100 {
            drop(local_lock(key(i)).await);
        }
        assert!((0..100).all(|i| strong(i).is_none()));
        // Held, with a waiter: kept until the waiter is done too.
        let held = local_lock(key(0)).await;
        let waiter = tokio::spawn(async move { drop(local_lock(key(0)).await) });
        while strong(0) != Some(3) {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(strong(0).is_some());
        waiter.await.unwrap();
        assert_eq!(strong(0), None);
    }

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\x00", "//4A"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw);
        }
        // Go's StdEncoding is not strict: non-zero trailing bits decode.
        assert_eq!(base64_decode("Zh==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm9v\r\nYg==").unwrap(), b"foob");
        for bad in ["Zg=", "Z===", "Zm9v!", "Zg==Zg==", "Zg"] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn entry_decoding_follows_go() {
        let e = decode(br#"{"kind":"cniCacheV1","containerId":"c","config":"e30=","ifName":"eth0","networkName":"n","cniArgs":[["K","V"]],"result":{"cniVersion":"1.0.0"}}"#).unwrap();
        assert_eq!(e.config.as_deref(), Some(&b"{}"[..]));
        assert_eq!(e.cni_args.unwrap(), [("K".to_owned(), "V".to_owned())]);
        assert!(decode(br#"{"kind":"other"}"#).is_err());
        assert!(decode(b"").is_err());
        assert!(decode(br#"{"kind":"cniCacheV1","config":"!"}"#).is_err());
    }

    #[test]
    fn cached_result_falls_back_to_legacy_and_empty() {
        let r = cached_result(
            br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#,
        )
        .unwrap();
        assert_eq!(r.version().as_str(), "0.4.0");
        let r = cached_result(br#"{"kind":"cniCacheV1","containerId":"c"}"#).unwrap();
        assert_eq!(r.version().as_str(), "0.1.0");
        assert!(cached_result(b"").is_err());
        assert!(cached_result(b"garbage").is_err());
    }
}
