//! Network configurations: parsing and validation (no I/O here except in
//! [`NetworkConfigList::from_file`]), and the directory [`ConfigLoader`].
//!
//! Each plugin's configuration is kept as the raw JSON text it had in the
//! file, so fields this library does not know reach the plugin exactly as
//! written: numbers keep their precision and strings their escapes.

mod load;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

pub(crate) use self::load::pick;
pub use self::load::{ConfigLoader, LoadedConfigs, NetworkLookup};
pub use self::watch::{
    ConfigProblemReport, ConfigSnapshot, ConfigUpdates, ConfigWatcher, ConfigWatcherBuilder,
    NetworkReadiness,
};
use crate::error::{ConfigProblem, Error, ErrorKind, VersionProblem};
use crate::json::{RawObject, compact_into, raw_type, to_go_json};
use crate::name::{valid_name, valid_plugin_type};
use crate::version::{Version, select_version};

/// A network configuration list: a named network and the chain of plugins
/// that implement it.
#[derive(Debug, Clone)]
pub struct NetworkConfigList {
    name: String,
    cni_version: String,
    cni_versions: Vec<String>,
    disable_check: bool,
    disable_gc: bool,
    load_only_inlined_plugins: bool,
    plugins: Vec<PluginConfig>,
    bytes: Arc<[u8]>,
    source: Option<PathBuf>,
}

/// One plugin's configuration within a network.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    raw: Arc<str>,
    plugin_type: String,
    name: String,
    cni_version: String,
    capabilities: BTreeMap<String, bool>,
    source: Option<PathBuf>,
    /// `raw` encoded for stdin, on first use.
    compact: crate::compact::LazyCompact,
}

impl NetworkConfigList {
    /// Parses a network configuration list (`.conflist` contents), without
    /// drop-in plugin configs (see [`from_file`](Self::from_file)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Syntax`] for invalid JSON (with line and column),
    /// [`ErrorKind::InvalidConfig`] for a config that breaks the spec's rules.
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkConfigList, Error> {
        parse_list(bytes, None, None, &Limits::default())
    }

    /// Reads and parses a `.conflist` file, appending the drop-in plugin
    /// configs in `<dir>/<network name>/*.conf` unless
    /// `loadOnlyInlinedPlugins` is set (spec 1.1).
    ///
    /// # Errors
    ///
    /// As [`from_bytes`](Self::from_bytes), plus [`ErrorKind::Io`],
    /// [`ErrorKind::ConfigTooLarge`] for a file over
    /// [`DEFAULT_MAX_CONFIG_SIZE`] and [`ConfigProblem::NotARegularFile`];
    /// every error names the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<NetworkConfigList, Error> {
        Self::from_file_with(path.as_ref(), &Limits::default())
    }

    pub(crate) fn from_file_with(path: &Path, limits: &Limits) -> Result<NetworkConfigList, Error> {
        let bytes = read_config(path, limits)?;
        let dropin_dir = path.parent().unwrap_or(Path::new("."));
        parse_list(&bytes, Some(path), Some(dropin_dir), limits)
    }

    /// Promotes a single plugin configuration (a `.conf`/`.json` file) to a
    /// list of one plugin, named and versioned by the plugin's own `name`
    /// and `cniVersion` (libcni's `ConfListFromConf`). `disableCheck` in the
    /// plugin config is not honoured, as in libcni.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] if the plugin config has no valid name or
    /// version.
    pub fn from_plugin(plugin: PluginConfig) -> Result<NetworkConfigList, Error> {
        let ctx = |e: Error| match &plugin.source {
            Some(p) => e.at_path(p.clone()),
            None => e,
        };
        validate_network_name(&plugin.name).map_err(ctx)?;
        if !plugin.cni_version.is_empty() {
            Version::parse_problem(&plugin.cni_version)
                .map_err(|reason| invalid_version("cniVersion", &plugin.cni_version, reason))
                .map_err(ctx)?;
        }
        // libcni caches `{"cniVersion":..,"name":..,"plugins":[<conf>]}`; the
        // conf is embedded as written rather than re-encoded.
        let mut bytes = Vec::with_capacity(plugin.raw.len() + 64);
        bytes.extend_from_slice(b"{\"cniVersion\":");
        bytes.extend_from_slice(&to_go_json(&plugin.cni_version));
        bytes.extend_from_slice(b",\"name\":");
        bytes.extend_from_slice(&to_go_json(&plugin.name));
        bytes.extend_from_slice(b",\"plugins\":[");
        compact_into(&plugin.raw, &mut bytes);
        bytes.extend_from_slice(b"]}");
        let mut list = NetworkConfigList::single(&plugin);
        list.bytes = bytes.into();
        Ok(list)
    }

    /// A single plugin configuration as a network of its own, named and
    /// versioned by the plugin, caching the plugin's JSON (libcni's
    /// single-config operations). Unlike [`from_plugin`](Self::from_plugin)
    /// it validates nothing: ADD checks the name.
    pub(crate) fn single(plugin: &PluginConfig) -> NetworkConfigList {
        NetworkConfigList {
            name: plugin.name.clone(),
            cni_version: plugin.cni_version.clone(),
            cni_versions: Vec::new(),
            disable_check: false,
            disable_gc: false,
            load_only_inlined_plugins: false,
            plugins: vec![plugin.clone()],
            bytes: Arc::from(plugin.raw.as_bytes()),
            source: plugin.source.clone(),
        }
    }

    /// The network name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The spec version the network uses: `cniVersion`, or the highest
    /// supported entry of `cniVersions`, as written (`""` if neither is set,
    /// which the spec reads as `0.1.0`).
    pub fn cni_version(&self) -> &str {
        &self.cni_version
    }

    /// The `cniVersions` list, as written.
    pub fn cni_versions(&self) -> &[String] {
        &self.cni_versions
    }

    /// Whether `disableCheck` is set: CHECK then succeeds without running
    /// any plugin.
    pub fn disable_check(&self) -> bool {
        self.disable_check
    }

    /// Whether `disableGC` is set.
    pub fn disable_gc(&self) -> bool {
        self.disable_gc
    }

    /// Whether `loadOnlyInlinedPlugins` is set.
    pub fn load_only_inlined_plugins(&self) -> bool {
        self.load_only_inlined_plugins
    }

    /// The plugins, in ADD order (inline ones, then drop-ins).
    pub fn plugins(&self) -> &[PluginConfig] {
        &self.plugins
    }

    /// The configuration bytes as loaded: the file's contents for a
    /// `.conflist`, a synthetic list for a promoted `.conf`. This is what the
    /// result cache records.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file the network was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The `true` capabilities of all plugins, de-duplicated, sorted.
    pub fn capabilities(&self) -> Vec<&str> {
        let mut caps: Vec<&str> = self.plugins.iter().flat_map(|p| p.capabilities()).collect();
        caps.sort_unstable();
        caps.dedup();
        caps
    }
}

impl PluginConfig {
    /// Parses one plugin's configuration (a `.conf` file or a drop-in).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Syntax`] for invalid JSON, [`ErrorKind::InvalidConfig`]
    /// for a missing or invalid `type` or a typed field of the wrong type.
    pub fn from_bytes(bytes: &[u8]) -> Result<PluginConfig, Error> {
        PluginConfig::from_bytes_with(bytes, &Limits::default())
    }

    fn from_bytes_with(bytes: &[u8], limits: &Limits) -> Result<PluginConfig, Error> {
        check_depth(bytes, limits.max_depth)?;
        let text = utf8(bytes)?;
        let raw = parse_raw(text)?;
        PluginConfig::from_raw(raw, 0, None)
    }

    /// Reads and parses a single plugin configuration file.
    ///
    /// # Errors
    ///
    /// As [`from_bytes`](Self::from_bytes), plus [`ErrorKind::Io`],
    /// [`ErrorKind::ConfigTooLarge`] for a file over
    /// [`DEFAULT_MAX_CONFIG_SIZE`] and [`ConfigProblem::NotARegularFile`];
    /// errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<PluginConfig, Error> {
        PluginConfig::from_file_with(path.as_ref(), &Limits::default())
    }

    pub(crate) fn from_file_with(path: &Path, limits: &Limits) -> Result<PluginConfig, Error> {
        let bytes = read_config(path, limits)?;
        let mut p = PluginConfig::from_bytes_with(&bytes, limits).map_err(|e| e.at_path(path))?;
        p.source = Some(path.to_owned());
        Ok(p)
    }

    fn from_raw(
        raw: &RawValue,
        index: usize,
        list_name: Option<&str>,
    ) -> Result<PluginConfig, Error> {
        let field = |f: &str| {
            if list_name.is_some() {
                format!("plugins[{index}].{f}")
            } else {
                f.to_owned()
            }
        };
        let text = raw.get();
        if !text.starts_with('{') {
            if text == "null" {
                return Err(Error::config(ConfigProblem::MissingType { index }));
            }
            return Err(Error::config(ConfigProblem::NotAnObject {
                found: raw_type(raw),
            }));
        }
        let obj = RawObject::parse(text).map_err(|e| syntax_error(&e))?;
        let string = |name: &str| -> Result<String, Error> {
            match obj.get_ci(name) {
                None => Ok(String::new()),
                Some(r) => match serde_json::from_str::<Option<String>>(r.get()) {
                    Ok(s) => Ok(s.unwrap_or_default()),
                    Err(_) => Err(Error::config(ConfigProblem::FieldType {
                        field: field(name),
                        expected: "a string",
                        found: raw_type(r),
                    })),
                },
            }
        };
        let plugin_type = string("type")?;
        let name = string("name")?;
        let cni_version = string("cniVersion")?;
        if plugin_type.is_empty() {
            return Err(Error::config(ConfigProblem::MissingType { index }));
        }
        if !valid_plugin_type(&plugin_type) {
            return Err(Error::config(ConfigProblem::InvalidPluginType {
                index,
                plugin_type,
            }));
        }
        let typed = |name: &str,
                     expected: &'static str,
                     ok: fn(&Value) -> bool|
         -> Result<Option<Value>, Error> {
            let Some(r) = obj.get_ci(name) else {
                return Ok(None);
            };
            let v: Value = serde_json::from_str(r.get()).map_err(|e| syntax_error(&e))?;
            if v.is_null() || ok(&v) {
                Ok(Some(v))
            } else {
                Err(Error::config(ConfigProblem::FieldType {
                    field: field(name),
                    expected,
                    found: raw_type(r),
                }))
            }
        };
        let capabilities = match typed("capabilities", "an object of booleans", |v| {
            v.as_object()
                .is_some_and(|m| m.values().all(|x| x.is_boolean() || x.is_null()))
        })? {
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| (k, v.as_bool().unwrap_or(false)))
                .collect(),
            _ => BTreeMap::new(),
        };
        typed("ipam", "an object with a string `type`", |v| {
            v.as_object().is_some_and(|m| {
                crate::json::get_ci(m, "type").is_none_or(|t| t.is_string() || t.is_null())
            })
        })?;
        typed(
            "dns",
            "an object of string lists and a string `domain`",
            |v| {
                v.as_object().is_some_and(|m| {
                    let list = |k| {
                        crate::json::get_ci(m, k).is_none_or(|x| {
                            x.is_null()
                                || x.as_array()
                                    .is_some_and(|a| a.iter().all(|s| s.is_string() || s.is_null()))
                        })
                    };
                    list("nameservers")
                        && list("search")
                        && list("options")
                        && crate::json::get_ci(m, "domain")
                            .is_none_or(|d| d.is_string() || d.is_null())
                })
            },
        )?;
        typed("prevResult", "an object", Value::is_object)?;
        Ok(PluginConfig {
            raw: Arc::from(text),
            plugin_type,
            name,
            cni_version,
            capabilities,
            source: None,
            compact: Default::default(),
        })
    }

    /// The plugin type: the name of its binary.
    pub fn plugin_type(&self) -> &str {
        &self.plugin_type
    }

    /// The plugin entry's own `name` (empty if unset). In a list, the list's
    /// name is what the plugin receives.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin entry's own `cniVersion` (empty if unset).
    pub fn cni_version(&self) -> &str {
        &self.cni_version
    }

    /// The capabilities set to `true`, sorted.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities
            .iter()
            .filter(|(_, v)| **v)
            .map(|(k, _)| k.as_str())
    }

    /// Whether capability `name` is set to `true`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.get(name).copied().unwrap_or(false)
    }

    /// The plugin's configuration as written (a JSON object).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The configuration encoded for plugins' stdin (made once, shared by
    /// clones).
    pub(crate) fn compact(&self) -> Arc<crate::compact::CompactObject> {
        self.compact.get(&self.raw)
    }

    /// The type of the IPAM plugin it delegates to (`ipam.type`), if any,
    /// as written (it may be empty).
    pub fn ipam_type(&self) -> Option<String> {
        self.get("ipam")?.get("type")?.as_str().map(str::to_owned)
    }

    /// A top-level field of the plugin's configuration, decoded.
    pub fn get(&self, key: &str) -> Option<Value> {
        let obj = RawObject::parse(&self.raw).ok()?;
        obj.get(key)
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }

    /// The file a drop-in or single-plugin config was loaded from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }
}

/// The default cap on a config file's size: 4 MiB (real configs are a few
/// KiB; a Multus config with many delegates stays far below).
pub const DEFAULT_MAX_CONFIG_SIZE: u64 = 4 << 20;

/// The default cap on how deeply a config's JSON nests (objects and
/// arrays): 64 levels (real configs use under 10). The JSON parser refuses
/// more than 128 in any case.
pub const DEFAULT_MAX_CONFIG_DEPTH: usize = 64;

/// The caps that loading a config file applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_size: u64,
    pub(crate) max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_size: DEFAULT_MAX_CONFIG_SIZE,
            max_depth: DEFAULT_MAX_CONFIG_DEPTH,
        }
    }
}

/// Reads a config file (a symlink is followed, as in libcni: Kubernetes
/// ConfigMap mounts are symlinks) without reading more than the size cap,
/// and without hanging on a FIFO or device planted in the config dir.
fn read_config(path: &Path, limits: &Limits) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::io("reading config file", path, e);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::config(ConfigProblem::NotARegularFile).at_path(path));
    }
    let too_large = |size: u64| {
        Error::new(ErrorKind::ConfigTooLarge {
            size,
            limit: limits.max_size,
        })
        .at_path(path)
    };
    if meta.len() > limits.max_size {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow after the fstat: never read past the cap.
    file.take(limits.max_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limits.max_size {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Refuses JSON nested deeper than `max` (a linear scan, before parsing):
/// brackets inside strings do not count.
fn check_depth(bytes: &[u8], max: usize) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(Error::config(ConfigProblem::TooDeep { limit: max }));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn validate_network_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::config(ConfigProblem::MissingName));
    }
    if !valid_name(name) {
        return Err(Error::config(ConfigProblem::InvalidName {
            name: name.to_owned(),
        }));
    }
    Ok(())
}

fn invalid_version(field: &str, version: &str, reason: VersionProblem) -> Error {
    Error::config(ConfigProblem::InvalidVersion {
        field: field.to_owned(),
        version: version.to_owned(),
        reason,
    })
}

fn syntax_error(e: &serde_json::Error) -> Error {
    Error::new(ErrorKind::Syntax {
        line: e.line(),
        column: e.column(),
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        Error::with_source(ErrorKind::Syntax { line, column }, e)
    })
}

/// Checks the whole text is one JSON value (errors carry line and column).
fn parse_raw(text: &str) -> Result<&RawValue, Error> {
    serde_json::from_str::<&RawValue>(text).map_err(|e| {
        let kind = ErrorKind::Syntax {
            line: e.line(),
            column: e.column(),
        };
        Error::with_source(kind, e)
    })
}

fn read_bool(obj: &RawObject<'_>, field: &'static str) -> Result<bool, Error> {
    let Some(r) = obj.get(field) else {
        return Ok(false);
    };
    match serde_json::from_str::<Value>(r.get()) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::config(ConfigProblem::InvalidBool {
                field,
                value: s.to_lowercase(),
            })),
        },
        _ => Err(Error::config(ConfigProblem::FieldType {
            field: field.to_owned(),
            expected: "a boolean or \"true\"/\"false\"",
            found: raw_type(r),
        })),
    }
}

fn parse_list(
    bytes: &[u8],
    path: Option<&Path>,
    dropin_dir: Option<&Path>,
    limits: &Limits,
) -> Result<NetworkConfigList, Error> {
    let at = |e: Error| match path {
        Some(p) => e.at_path(p),
        None => e,
    };
    check_depth(bytes, limits.max_depth).map_err(at)?;
    let text = utf8(bytes).map_err(at)?;
    // A document that is an object (nearly all) is parsed once, as one;
    // anything else goes through the generic parse for its error.
    let obj = match RawObject::parse(text) {
        Ok(obj) => obj,
        Err(_) => {
            let raw = parse_raw(text).map_err(at)?;
            if !raw.get().starts_with('{') {
                return Err(at(Error::config(ConfigProblem::NotAnObject {
                    found: raw_type(raw),
                })));
            }
            let e = RawObject::parse(raw.get()).err();
            return Err(at(e.map_or_else(
                || Error::config(ConfigProblem::NotAnObject { found: "an object" }),
                |e| syntax_error(&e),
            )));
        }
    };

    let opt_string = |field: &str| -> Result<Option<String>, Error> {
        match obj.get(field) {
            None => Ok(None),
            Some(r) => serde_json::from_str::<String>(r.get())
                .map(Some)
                .map_err(|_| {
                    Error::config(ConfigProblem::FieldType {
                        field: field.to_owned(),
                        expected: "a string",
                        found: raw_type(r),
                    })
                }),
        }
    };
    let name = opt_string("name").map_err(at)?.unwrap_or_default();
    validate_network_name(&name).map_err(at)?;
    let at = |e: Error| at(e.in_network(name.clone()));

    let written_version = opt_string("cniVersion").map_err(at)?.unwrap_or_default();
    let cni_versions: Vec<String> = match obj.get("cniVersions") {
        None => Vec::new(),
        Some(r) => {
            let v: Value = serde_json::from_str(r.get()).map_err(|e| at(syntax_error(&e)))?;
            let Value::Array(items) = v else {
                return Err(at(Error::config(ConfigProblem::FieldType {
                    field: "cniVersions".to_owned(),
                    expected: "an array of strings",
                    found: raw_type(r),
                })));
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) => Ok(s),
                    other => Err(at(Error::config(ConfigProblem::FieldType {
                        field: format!("cniVersions[{i}]"),
                        expected: "a string",
                        found: crate::version::json_type(&other),
                    }))),
                })
                .collect::<Result<_, _>>()?
        }
    };
    let cni_version = select_version(&written_version, &cni_versions).map_err(|(i, reason)| {
        if i == usize::MAX {
            at(invalid_version("cniVersion", &written_version, reason))
        } else {
            at(invalid_version(
                &format!("cniVersions[{i}]"),
                &cni_versions[i],
                reason,
            ))
        }
    })?;
    if obj.get("cniVersions").is_none() && !cni_version.is_empty() {
        Version::parse_problem(&cni_version)
            .map_err(|reason| at(invalid_version("cniVersion", &cni_version, reason)))?;
    }

    let disable_check = read_bool(&obj, "disableCheck").map_err(at)?;
    let disable_gc = read_bool(&obj, "disableGC").map_err(at)?;
    let load_only_inlined_plugins = read_bool(&obj, "loadOnlyInlinedPlugins").map_err(at)?;

    let mut plugins = Vec::new();
    match obj.get("plugins") {
        None if load_only_inlined_plugins => {
            return Err(at(Error::config(ConfigProblem::InlinedPluginsMissing)));
        }
        None => {}
        Some(r) => {
            let items: Vec<&RawValue> = serde_json::from_str(r.get()).map_err(|_| {
                at(Error::config(ConfigProblem::FieldType {
                    field: "plugins".to_owned(),
                    expected: "an array",
                    found: raw_type(r),
                }))
            })?;
            if items.is_empty() {
                return Err(at(Error::config(ConfigProblem::NoPlugins)));
            }
            for (i, item) in items.into_iter().enumerate() {
                plugins.push(PluginConfig::from_raw(item, i, Some(&name)).map_err(at)?);
            }
        }
    }
    if let Some(dir) = dropin_dir.filter(|_| !load_only_inlined_plugins) {
        plugins.extend(
            load::dropins(&dir.join(&name), limits).map_err(|e| e.in_network(name.clone()))?,
        );
    }
    if plugins.is_empty() {
        return Err(at(Error::config(ConfigProblem::MissingPlugins)));
    }
    Ok(NetworkConfigList {
        name,
        cni_version,
        cni_versions,
        disable_check,
        disable_gc,
        load_only_inlined_plugins,
        plugins,
        bytes: bytes.into(),
        source: path.map(Path::to_owned),
    })
}

#[cfg(test)]
mod tests;
