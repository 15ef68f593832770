//! Plugin results of every spec version, their JSON forms, and conversion
//! between versions with libcni's rules.
//!
//! A [`CniResult`] is one of three shapes: [`Result020`] (0.1.0, 0.2.0),
//! [`Result040`] (0.3.0, 0.3.1, 0.4.0) and [`Result100`] (1.0.0, 1.1.0).
//! Parsing follows libcni's typed decoding (unknown keys are dropped, Go's
//! case-insensitive key matching, addresses must be CIDRs); printing
//! reproduces libcni 1.3's bytes, so what a plugin receives as `prevResult`
//! and what lands in the cache are what libcni would have written.

mod types;
mod write;

use std::net::IpAddr;

pub use self::types::{
    CidrParseError, Dns, Interface, IpConfig, IpConfig020, IpConfig040, IpNet, Result020,
    Result040, Result100, Route,
};
use self::write::{Order, write_result020, write_result040, write_result100};
use crate::error::{Error, ErrorKind};
use crate::json::tree::{Json, Object, get_ci};
use crate::json::{self, to_go_json_pretty};
pub use crate::plugin_error::{ErrorCode, PluginError};
use crate::version::SpecVersion;

/// A plugin result in one of the spec's shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CniResult {
    /// A 0.1.0 or 0.2.0 result.
    V020(Result020),
    /// A 0.3.0, 0.3.1 or 0.4.0 result.
    V040(Result040),
    /// A 1.0.0 or 1.1.0 result.
    V100(Result100),
}

impl CniResult {
    /// Parses a result whose version is its own `cniVersion` (`""` or absent
    /// means `0.1.0`), like libcni's `create.CreateFromBytes`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidResult`] for malformed JSON or fields,
    /// [`ErrorKind::UnsupportedResultVersion`] for an unknown version.
    pub fn from_json(bytes: &[u8]) -> Result<CniResult, Error> {
        CniResult::from_tree(&parse_tree(bytes)?)
    }

    /// [`from_json`](CniResult::from_json) of a value already parsed.
    pub(crate) fn from_tree(value: &Json<'_>) -> Result<CniResult, Error> {
        CniResult::from_object(as_object(value)?)
    }

    /// [`from_json`](CniResult::from_json) of an object already parsed.
    pub(crate) fn from_object(obj: &Object<'_>) -> Result<CniResult, Error> {
        let version = match get_ci(obj, "cniVersion") {
            Some(Json::String(s)) => s.as_ref(),
            None | Some(Json::Null) => "",
            Some(other) => {
                return Err(invalid(format!(
                    "`cniVersion` must be a string, found {}",
                    other.type_name()
                )));
            }
        };
        CniResult::create(version, obj)
    }

    /// Parses what a plugin printed on ADD, as libcni's
    /// `ExecPluginWithResult` does: a non-empty string `cniVersion` in the
    /// output is used as is; otherwise the config's version is assumed (`""`
    /// meaning `0.1.0`). `null` counts as `{}`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::EmptyResult`] for empty output, otherwise as
    /// [`from_json`](CniResult::from_json).
    pub fn from_plugin_output(stdout: &[u8], config_version: &str) -> Result<CniResult, Error> {
        if stdout.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::new(ErrorKind::EmptyResult));
        }
        let value = parse_tree(stdout)?;
        let obj: &Object<'_> = match &value {
            Json::Object(m) => m,
            Json::Null => &[],
            other => {
                return Err(invalid(format!(
                    "expected a JSON object, found {}",
                    other.type_name()
                )));
            }
        };
        // libcni sets `cniVersion` (the exact key) to the version used, so
        // the JSON's own version is always that one.
        let version = match json::tree::get(obj, "cniVersion") {
            Some(Json::String(s)) if !s.is_empty() => s.as_ref(),
            _ if config_version.is_empty() => "0.1.0",
            _ => config_version,
        };
        CniResult::create(version, obj)
    }

    /// libcni's `convert.Create(version, bytes)`: picks the shape by
    /// `version`, which is also the JSON's own `cniVersion` here (libcni
    /// then requires that to name the same shape, which it always does).
    fn create(version: &str, obj: &Object<'_>) -> Result<CniResult, Error> {
        let Some(spec) = SpecVersion::from_result_str(version) else {
            return Err(Error::new(ErrorKind::UnsupportedResultVersion {
                version: version.to_owned(),
            }));
        };
        let d = Decoder { path: Path::Root };
        match shape(spec) {
            Shape::V020 => d.result020(obj, spec).map(CniResult::V020),
            Shape::V040 => d.result040(obj, spec).map(CniResult::V040),
            Shape::V100 => d.result100(obj, spec).map(CniResult::V100),
        }
    }

    /// The result's spec version.
    pub fn version(&self) -> SpecVersion {
        match self {
            CniResult::V020(r) => r.cni_version,
            CniResult::V040(r) => r.cni_version,
            CniResult::V100(r) => r.cni_version,
        }
    }

    /// Converts to the version named by `to` (libcni's `GetAsVersion`): the
    /// same version is returned as is, `""` means `0.1.0`, and only exact
    /// version strings are known (`"1.0"` has no converter).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conversion`] when there is no converter, or when a
    /// conversion to 0.1.0/0.2.0 finds no IP address.
    pub fn convert(&self, to: &str) -> Result<CniResult, Error> {
        let target = SpecVersion::from_result_str(to).ok_or_else(|| {
            Error::new(ErrorKind::Conversion {
                from: self.version().to_string(),
                to: to.to_owned(),
                reason: "no converter for that version",
            })
        })?;
        self.convert_to(target)
    }

    /// Converts to a known version.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conversion`] when a conversion to 0.1.0/0.2.0 finds no IP
    /// address.
    pub fn convert_to(&self, to: SpecVersion) -> Result<CniResult, Error> {
        if self.version() == to {
            return Ok(self.clone());
        }
        let conv_err = |reason| {
            Error::new(ErrorKind::Conversion {
                from: self.version().to_string(),
                to: to.to_string(),
                reason,
            })
        };
        // Everything goes through the 0.4.0 shape, as libcni's converters do.
        let r040 = match self {
            CniResult::V020(r) => r.to_040(to),
            CniResult::V040(r) => Result040 {
                cni_version: to,
                ..r.clone()
            },
            CniResult::V100(r) => r.to_040(to),
        };
        Ok(match shape(to) {
            Shape::V020 => CniResult::V020(match self {
                CniResult::V020(r) => Result020 {
                    cni_version: to,
                    ..r.clone()
                },
                _ => r040.to_020(to).map_err(conv_err)?,
            }),
            Shape::V040 => CniResult::V040(r040),
            Shape::V100 => CniResult::V100(match self {
                CniResult::V100(r) => Result100 {
                    cni_version: to,
                    ..r.clone()
                },
                _ => r040.to_100(to),
            }),
        })
    }

    /// Converts to the 1.1.0 shape, for uniform access to interfaces, IPs and
    /// routes whatever version the plugin spoke.
    pub fn to_latest(&self) -> Result100 {
        match self.convert_to(SpecVersion::LATEST) {
            Ok(CniResult::V100(r)) => r,
            _ => unreachable!("conversion upwards always succeeds and yields 1.x"),
        }
    }

    /// The result as libcni 1.3 marshals it: what a plugin receives as
    /// `prevResult`. 0.x results keep Go's struct field order (with
    /// `"dns":{}`); 1.x results have sorted keys and omit an empty `dns`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        match self {
            CniResult::V020(r) => write_result020(r, Order::Struct, &mut out),
            CniResult::V040(r) => write_result040(r, Order::Struct, &mut out),
            CniResult::V100(r) => write_result100(r, Order::Sorted, &mut out),
        }
        out
    }

    /// The result indented by four spaces, as `cnitool add` prints it.
    pub fn to_json_pretty(&self) -> Vec<u8> {
        match self {
            CniResult::V020(r) => to_go_json_pretty(r),
            CniResult::V040(r) => to_go_json_pretty(r),
            CniResult::V100(r) => {
                to_go_json_pretty(&serde_json::to_value(r).expect("results convert to values"))
            }
        }
    }

    /// The result with keys sorted at every level: its form in the cache.
    pub fn to_json_sorted(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_sorted(&mut out);
        out
    }

    /// [`to_json_sorted`](CniResult::to_json_sorted), appended to `out`.
    pub(crate) fn write_sorted(&self, out: &mut Vec<u8>) {
        match self {
            CniResult::V020(r) => write_result020(r, Order::Sorted, out),
            CniResult::V040(r) => write_result040(r, Order::Sorted, out),
            CniResult::V100(r) => write_result100(r, Order::Sorted, out),
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Shape {
    V020,
    V040,
    V100,
}

fn shape(v: SpecVersion) -> Shape {
    match v {
        SpecVersion::V0_1_0 | SpecVersion::V0_2_0 => Shape::V020,
        SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0 => Shape::V040,
        SpecVersion::V1_0_0 | SpecVersion::V1_1_0 => Shape::V100,
    }
}

fn invalid(reason: String) -> Error {
    Error::new(ErrorKind::InvalidResult { reason })
}

fn parse_tree(bytes: &[u8]) -> Result<Json<'_>, Error> {
    Json::parse(bytes).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidResult {
                reason: format!("not JSON (line {}, column {})", e.line(), e.column()),
            },
            e,
        )
    })
}

fn as_object<'t, 'a>(v: &'t Json<'a>) -> Result<&'t Object<'a>, Error> {
    match v {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(&[]),
        other => Err(invalid(format!(
            "expected a JSON object, found {}",
            other.type_name()
        ))),
    }
}

/// Where a [`Decoder`] is in the document, written out only for an error
/// message: `ips[0].address`.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    /// A field of the parent.
    Field(&'p Path<'p>, &'p str),
    /// An element of the parent's array field.
    Index(&'p Path<'p>, &'p str, usize),
}

impl Path<'_> {
    fn write(&self, out: &mut String) {
        let (parent, field) = match *self {
            Path::Root => return,
            Path::Field(p, f) | Path::Index(p, f, _) => (p, f),
        };
        parent.write(out);
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(field);
        if let Path::Index(_, _, i) = *self {
            out.push_str(&format!("[{i}]"));
        }
    }
}

/// Decodes JSON values into the typed result with Go's `encoding/json`
/// semantics: `null` is "absent", keys match case-insensitively, unknown
/// keys are ignored, numbers for `int` fields must be integers.
struct Decoder<'p> {
    path: Path<'p>,
}

impl<'p> Decoder<'p> {
    fn at(&self, field: &str) -> String {
        let mut s = String::new();
        Path::Field(&self.path, field).write(&mut s);
        s
    }

    fn child<'c>(&'c self, field: &'c str) -> Decoder<'c> {
        Decoder {
            path: Path::Field(&self.path, field),
        }
    }

    fn type_err(&self, field: &str, expected: &str, found: &Json<'_>) -> Error {
        invalid(format!(
            "`{}` must be {expected}, found {}",
            self.at(field),
            found.type_name()
        ))
    }

    fn opt_str<'t>(&self, obj: &'t Object<'_>, field: &str) -> Result<Option<&'t str>, Error> {
        match get_ci(obj, field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.type_err(field, "a string", other)),
        }
    }

    fn string(&self, obj: &Object<'_>, field: &str) -> Result<String, Error> {
        Ok(self.opt_str(obj, field)?.unwrap_or_default().to_owned())
    }

    /// An `int` field; `Some(0)` is kept (for `*int` fields such as `table`).
    fn opt_int(&self, obj: &Object<'_>, field: &str) -> Result<Option<i64>, Error> {
        match get_ci(obj, field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                invalid(format!(
                    "`{}` must be an integer, found {n}",
                    self.at(field)
                ))
            }),
            Some(other) => Err(self.type_err(field, "an integer", other)),
        }
    }

    /// An `int` field with `omitempty`: 0 is unset.
    fn nonzero_int(&self, obj: &Object<'_>, field: &str) -> Result<Option<i64>, Error> {
        Ok(self.opt_int(obj, field)?.filter(|n| *n != 0))
    }

    fn cidr(&self, obj: &Object<'_>, field: &str) -> Result<IpNet, Error> {
        match self.opt_str(obj, field)? {
            None => Err(invalid(format!("`{}` is missing", self.at(field)))),
            Some(s) => s
                .parse::<IpNet>()
                .map_err(|e| invalid(format!("`{}`: {e}", self.at(field)))),
        }
    }

    fn ip(&self, obj: &Object<'_>, field: &str) -> Result<Option<IpAddr>, Error> {
        match self.opt_str(obj, field)? {
            None | Some("") => Ok(None),
            Some(s) => types::parse_ip(s)
                .map(Some)
                .ok_or_else(|| invalid(format!("`{}`: invalid IP address: {s}", self.at(field)))),
        }
    }

    fn array<'t, 'a>(&self, obj: &'t Object<'a>, field: &str) -> Result<&'t [Json<'a>], Error> {
        match get_ci(obj, field) {
            None | Some(Json::Null) => Ok(&[]),
            Some(Json::Array(a)) => Ok(a),
            Some(other) => Err(self.type_err(field, "an array", other)),
        }
    }

    fn objects<'t, 'a, T>(
        &self,
        obj: &'t Object<'a>,
        field: &str,
        f: impl Fn(&Decoder<'_>, &'t Object<'a>) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let items = self.array(obj, field)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            let d = Decoder {
                path: Path::Index(&self.path, field, i),
            };
            out.push(match v {
                Json::Object(m) => f(&d, m)?,
                other => {
                    let mut path = String::new();
                    d.path.write(&mut path);
                    return Err(invalid(format!(
                        "`{path}` must be an object, found {}",
                        other.type_name()
                    )));
                }
            });
        }
        Ok(out)
    }

    fn strings(&self, obj: &Object<'_>, field: &str) -> Result<Vec<String>, Error> {
        self.array(obj, field)?
            .iter()
            .map(|v| match v {
                Json::String(s) => Ok(s.as_ref().to_owned()),
                Json::Null => Ok(String::new()),
                other => Err(self.type_err(field, "an array of strings", other)),
            })
            .collect()
    }

    fn object<'t, 'a>(
        &self,
        obj: &'t Object<'a>,
        field: &str,
    ) -> Result<Option<&'t Object<'a>>, Error> {
        match get_ci(obj, field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.type_err(field, "an object", other)),
        }
    }

    fn dns(&self, obj: &Object<'_>) -> Result<Dns, Error> {
        let Some(m) = self.object(obj, "dns")? else {
            return Ok(Dns::default());
        };
        let d = self.child("dns");
        Ok(Dns {
            nameservers: d.strings(m, "nameservers")?,
            domain: d.string(m, "domain")?,
            search: d.strings(m, "search")?,
            options: d.strings(m, "options")?,
        })
    }

    fn route(&self, m: &Object<'_>) -> Result<Route, Error> {
        Ok(Route {
            dst: self.cidr(m, "dst")?,
            gw: self.ip(m, "gw")?,
            mtu: self.nonzero_int(m, "mtu")?,
            advmss: self.nonzero_int(m, "advmss")?,
            priority: self.nonzero_int(m, "priority")?,
            table: self.opt_int(m, "table")?,
            scope: self.opt_int(m, "scope")?,
        })
    }

    fn interface(&self, m: &Object<'_>, v1: bool) -> Result<Interface, Error> {
        let mut i = Interface {
            name: self.string(m, "name")?,
            mac: self.string(m, "mac")?,
            sandbox: self.string(m, "sandbox")?,
            ..Interface::default()
        };
        if v1 {
            i.mtu = self.nonzero_int(m, "mtu")?;
            i.socket_path = self.string(m, "socketPath")?;
            i.pci_id = self.string(m, "pciID")?;
        }
        Ok(i)
    }

    fn ipconfig020(&self, obj: &Object<'_>, field: &str) -> Result<Option<IpConfig020>, Error> {
        let Some(m) = self.object(obj, field)? else {
            return Ok(None);
        };
        let d = self.child(field);
        Ok(Some(IpConfig020 {
            ip: d.cidr(m, "ip")?,
            gateway: d.ip(m, "gateway")?,
            routes: d.objects(m, "routes", |d, m| d.route(m))?,
        }))
    }

    fn result020(&self, obj: &Object<'_>, v: SpecVersion) -> Result<Result020, Error> {
        Ok(Result020 {
            cni_version: v,
            ip4: self.ipconfig020(obj, "ip4")?,
            ip6: self.ipconfig020(obj, "ip6")?,
            dns: self.dns(obj)?,
        })
    }

    fn result040(&self, obj: &Object<'_>, v: SpecVersion) -> Result<Result040, Error> {
        Ok(Result040 {
            cni_version: v,
            interfaces: self.objects(obj, "interfaces", |d, m| d.interface(m, false))?,
            ips: self.objects(obj, "ips", |d, m| {
                Ok(IpConfig040 {
                    version: d.string(m, "version")?,
                    interface: d.opt_int(m, "interface")?,
                    address: d.cidr(m, "address")?,
                    gateway: d.ip(m, "gateway")?,
                })
            })?,
            routes: self.objects(obj, "routes", |d, m| d.route(m))?,
            dns: self.dns(obj)?,
        })
    }

    fn result100(&self, obj: &Object<'_>, v: SpecVersion) -> Result<Result100, Error> {
        Ok(Result100 {
            cni_version: v,
            interfaces: self.objects(obj, "interfaces", |d, m| d.interface(m, true))?,
            ips: self.objects(obj, "ips", |d, m| {
                Ok(IpConfig {
                    interface: d.opt_int(m, "interface")?,
                    address: d.cidr(m, "address")?,
                    gateway: d.ip(m, "gateway")?,
                })
            })?,
            routes: self.objects(obj, "routes", |d, m| d.route(m))?,
            dns: self.dns(obj)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod oracle;
#[cfg(test)]
mod tests;
