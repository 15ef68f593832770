//! The result cache, on disk exactly as libcni lays it out:
//! `<cache dir>/results/<network>-<container id>-<ifname>`, directories
//! `0700`, files `0600`, JSON `{"kind":"cniCacheV1",...}`.
//!
//! Unlike libcni, every write is atomic and durable (temp file, fsync,
//! rename, fsync of the directory), names that would escape the directory
//! are refused on every operation, and no symlink under the cache directory
//! is followed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{AttachmentField, Error, ErrorKind};
use crate::json::{get_ci, to_go_json};
use crate::plan::RuntimeConfig;
use crate::result::CniResult;

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
    pub cni_args: Vec<(String, String)>,
    /// The capability arguments.
    pub capability_args: Map<String, Value>,
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
    pub(crate) result: Option<Value>,
}

#[derive(Serialize)]
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
    result: &'a RawValue,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
}

fn check_component(field: AttachmentField, value: &str) -> Result<(), Error> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.contains('/') {
        "contains `/`, which would escape the cache directory"
    } else if value.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::new(ErrorKind::InvalidAttachment {
        field,
        value: value.to_owned(),
        reason,
    }))
}

impl Cache {
    pub(crate) fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// The cache file of an attachment, refusing names that would escape the
    /// results directory.
    pub(crate) fn file(&self, network: &str, rt: &RuntimeConfig) -> Result<PathBuf, Error> {
        check_component(AttachmentField::NetworkName, network)?;
        check_component(AttachmentField::ContainerId, rt.container_id())?;
        check_component(AttachmentField::IfName, rt.ifname())?;
        Ok(self
            .results_dir()
            .join(format!("{network}-{}-{}", rt.container_id(), rt.ifname())))
    }

    /// Refuses a `results` directory that is a symlink (it could point
    /// anywhere).
    fn check_results_dir(&self) -> Result<bool, Error> {
        let dir = self.results_dir();
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => Err(Error::new(ErrorKind::Cache {
                reason: "the results directory is a symlink; not following it".into(),
            })
            .at_path(dir)),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == IoKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("inspecting cache directory", &dir, e)),
        }
    }

    /// Reads a cache file. `Ok(None)` when there is none (or it cannot be
    /// read, as libcni treats any read error).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Cache`] when the file or `results` is a symlink.
    pub(crate) fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        if !self.check_results_dir()? {
            return Ok(None);
        }
        read_nofollow(path)
    }

    /// Writes the cache entry for an attachment: atomically and durably.
    pub(crate) fn write(
        &self,
        path: &Path,
        network: &str,
        rt: &RuntimeConfig,
        config: &[u8],
        result: &CniResult,
    ) -> Result<(), Error> {
        let result_json = result.to_json_sorted();
        let result_raw: Box<RawValue> =
            serde_json::from_slice(&result_json).expect("results serialise to valid JSON");
        let entry = EntryOut {
            kind: KIND,
            container_id: rt.container_id(),
            config: base64_encode(config),
            ifname: rt.ifname(),
            network,
            netns: rt.netns(),
            cni_args: rt
                .cni_args()
                .iter()
                .map(|(k, v)| [k.as_str(), v.as_str()])
                .collect(),
            capability_args: rt.capability_arguments(),
            result: &result_raw,
        };
        let bytes = to_go_json(&entry);
        let dir = self.results_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("creating cache directory", &dir, e))?;
        self.check_results_dir()?;
        write_atomic(&dir, path, &bytes)
    }

    /// Every attachment in the cache (of `container_id` if not empty), in
    /// file-name order, as libcni 1.3's `GetCachedAttachments`: files that are
    /// not `cniCacheV1` entries, or lack an interface or network name, are
    /// skipped.
    pub(crate) fn attachments(&self, container_id: &str) -> Result<Vec<Attachment>, Error> {
        if !self.check_results_dir()? {
            return Ok(Vec::new());
        }
        let dir = self.results_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading cache directory", &dir, e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort_unstable();
        let part = format!("-{container_id}-");
        let mut out = Vec::new();
        for name in names {
            if !container_id.is_empty() {
                match name.find(&part) {
                    Some(pos) if pos > 0 && pos + part.len() < name.len() => {}
                    _ => continue,
                }
            }
            let Ok(Some(bytes)) = read_nofollow(&dir.join(&name)) else {
                continue;
            };
            let Ok(e) = decode(&bytes) else { continue };
            if (!container_id.is_empty() && e.container_id != container_id)
                || e.ifname.is_empty()
                || e.network.is_empty()
            {
                continue;
            }
            out.push(Attachment {
                container_id: e.container_id,
                network: e.network,
                ifname: e.ifname,
                config: e.config.unwrap_or_default(),
                netns: e.netns,
                cni_args: e.cni_args.unwrap_or_default(),
                capability_args: e.capability_args.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Removes an attachment's cache file (a missing file is fine). The
    /// directory is not synced: if a crash brings the entry back, the next
    /// DEL or GC of that attachment removes it again (DEL is idempotent).
    pub(crate) fn remove(&self, path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing cache file", path, e)),
        }
    }
}

/// Reads a file without following a symlink at its last component;
/// `Ok(None)` when it cannot be read (as libcni treats any read error).
fn read_nofollow(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match file {
        Ok(mut f) => {
            let mut buf = Vec::new();
            match std::io::Read::read_to_end(&mut f, &mut buf) {
                Ok(_) => Ok(Some(buf)),
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "cache file unreadable");
                    Ok(None)
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Error::new(ErrorKind::Cache {
            reason: "the cache file is a symlink; not following it".into(),
        })
        .at_path(path)),
        Err(e) => {
            if e.kind() != IoKind::NotFound {
                tracing::debug!(path = %path.display(), error = %e, "cache file unreadable");
            }
            Ok(None)
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// temp file (0600, O_EXCL, O_NOFOLLOW) + fdatasync + rename + fsync(dir).
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("writing cache file", path, e)
    })
}

/// Decodes a cache file as a `cniCacheV1` entry with Go's rules; `Err` when
/// it is not valid JSON, has a field of the wrong type, or has another kind.
pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let obj = match &v {
        Value::Object(m) => m,
        Value::Null => return Err("wrong kind: \"\"".into()),
        _ => return Err("not a JSON object".into()),
    };
    let string = |k: &str| -> Result<String, String> {
        match get_ci(obj, k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("`{k}` is not a string")),
        }
    };
    let kind = string("kind")?;
    let mut e = Entry {
        container_id: string("containerId")?,
        ifname: string("ifName")?,
        network: string("networkName")?,
        netns: string("netns")?,
        ..Entry::default()
    };
    e.config = match get_ci(obj, "config") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(base64_decode(s).ok_or("`config` is not base64")?),
        Some(_) => return Err("`config` is not a string".into()),
    };
    e.cni_args = match get_ci(obj, "cniArgs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
                    _ => Err("`cniArgs` holds something other than a [key, value] pair".to_owned()),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err("`cniArgs` is not an array".into()),
    };
    e.capability_args = match get_ci(obj, "capabilityArgs") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return Err("`capabilityArgs` is not an object".into()),
    };
    e.result = match get_ci(obj, "result") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err("`result` is not an object".into()),
    };
    if kind != KIND {
        return Err(format!("wrong kind: {kind:?}"));
    }
    Ok(e)
}

/// The cached result in a cache file's bytes, as libcni's `getCachedResult`
/// reads it: a `cniCacheV1` entry's `result` (an empty one if absent), or,
/// for anything else, the whole file as a bare (legacy) result.
pub(crate) fn cached_result(bytes: &[u8]) -> Result<CniResult, Error> {
    match decode(bytes) {
        Ok(entry) => {
            let json = entry
                .result
                .map_or_else(|| b"{}".to_vec(), |v| to_go_json(&v));
            CniResult::from_json(&json)
        }
        Err(_) => CniResult::from_json(bytes),
    }
}

/// libcni's `GetNetworkListCachedConfig`.
pub(crate) fn cached_config(bytes: &[u8], rt: &RuntimeConfig) -> Result<CachedConfig, Error> {
    let entry = decode(bytes).map_err(|reason| Error::new(ErrorKind::Cache { reason }))?;
    let mut runtime = rt.clone();
    if let Some(args) = entry.cni_args {
        runtime = runtime.args(args);
    }
    runtime = runtime.capability_args(entry.capability_args.unwrap_or_default());
    Ok(CachedConfig {
        config: entry.config.unwrap_or_default(),
        runtime,
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Go's `[]byte` JSON encoding).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding, as Go's `encoding/json` does for
/// `[]byte` (newlines are ignored).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s.bytes().filter(|b| *b != b'\r' && *b != b'\n').collect();
    if clean.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for (ci, chunk) in clean.chunks(4).enumerate() {
        let last = ci == clean.len() / 4 - 1;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if last && i >= 2 => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            if pad > 0 && c != b'=' {
                return None;
            }
            n = (n << 6) | u32::from(v);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in ["Zg=", "Z===", "Zm9v!", "Zg==Zg=="] {
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
