//! The result decoder as it was before the borrowed tree: over a
//! `serde_json::Value`. Kept, in tests only, as the oracle the decoder in
//! `mod.rs` is checked against (`tests::decoder_matches_the_value_oracle`).

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::*;
use crate::version::json_type;

pub(crate) struct Legacy;

impl Legacy {
    /// `CniResult::to_json` through serde: 0.x results in struct order, 1.x
    /// results sorted through a `Value` (the same bytes the sorted serde
    /// views gave).
    pub(crate) fn to_json(r: &CniResult) -> Vec<u8> {
        match r {
            CniResult::V020(r) => crate::json::to_go_json(r),
            CniResult::V040(r) => crate::json::to_go_json(r),
            CniResult::V100(r) => crate::json::to_go_json_sorted(r),
        }
    }

    /// `CniResult::to_json_sorted` through serde and a `Value`.
    pub(crate) fn to_json_sorted(r: &CniResult) -> Vec<u8> {
        match r {
            CniResult::V020(r) => crate::json::to_go_json_sorted(r),
            CniResult::V040(r) => crate::json::to_go_json_sorted(r),
            CniResult::V100(r) => crate::json::to_go_json_sorted(r),
        }
    }

    /// Parses a result whose version is its own `cniVersion` (`""` or absent
    /// means `0.1.0`), like libcni's `create.CreateFromBytes`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidResult`] for malformed JSON or fields,
    /// [`ErrorKind::UnsupportedResultVersion`] for an unknown version.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<CniResult, Error> {
        Legacy::from_value(&parse_value(bytes)?)
    }

    /// [`from_json`](CniResult::from_json) of a value already parsed.
    pub(crate) fn from_value(value: &Value) -> Result<CniResult, Error> {
        let obj = as_object(value)?;
        let version = match get_ci(obj, "cniVersion") {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) => "",
            Some(other) => {
                return Err(invalid(format!(
                    "`cniVersion` must be a string, found {}",
                    json_type(other)
                )));
            }
        };
        Legacy::create(version, obj)
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
    pub(crate) fn from_plugin_output(
        stdout: &[u8],
        config_version: &str,
    ) -> Result<CniResult, Error> {
        if stdout.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::new(ErrorKind::EmptyResult));
        }
        let mut value = parse_value(stdout)?;
        if value.is_null() {
            value = Value::Object(Map::new());
        }
        let Value::Object(obj) = &mut value else {
            return Err(invalid(format!(
                "expected a JSON object, found {}",
                json_type(&value)
            )));
        };
        let version = match obj.get("cniVersion") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                let v = if config_version.is_empty() {
                    "0.1.0"
                } else {
                    config_version
                };
                obj.insert("cniVersion".to_owned(), Value::String(v.to_owned()));
                v.to_owned()
            }
        };
        Legacy::create(&version, obj)
    }

    /// libcni's `convert.Create(version, bytes)`: picks the shape by `version`
    /// and requires the JSON's own `cniVersion` to name that shape.
    fn create(version: &str, obj: &Map<String, Value>) -> Result<CniResult, Error> {
        let unsupported = || {
            Error::new(ErrorKind::UnsupportedResultVersion {
                version: version.to_owned(),
            })
        };
        let family = SpecVersion::from_result_str(version).ok_or_else(unsupported)?;
        let d = Decoder {
            path: String::new(),
        };
        let json_version = d.opt_str(obj, "cniVersion")?.unwrap_or_default();
        let json_spec = SpecVersion::from_result_str(&json_version);
        let same_family = json_spec.is_some_and(|j| shape(j) == shape(family));
        let Some(json_spec) = json_spec.filter(|_| same_family) else {
            return Err(invalid(format!(
                "result type supports {} but its cniVersion is {json_version:?}",
                shape_versions(family)
            )));
        };
        match shape(family) {
            Shape::V020 => d.result020(obj, json_spec).map(CniResult::V020),
            Shape::V040 => d.result040(obj, json_spec).map(CniResult::V040),
            Shape::V100 => d.result100(obj, json_spec).map(CniResult::V100),
        }
    }
}

fn shape_versions(v: SpecVersion) -> &'static str {
    match shape(v) {
        Shape::V020 => "[\"\" 0.1.0 0.2.0]",
        Shape::V040 => "[0.3.0 0.3.1 0.4.0]",
        Shape::V100 => "[1.0.0 1.1.0]",
    }
}

fn get_ci<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    crate::json::get_ci(map, field)
}

fn parse_value(bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidResult {
                reason: format!("not JSON (line {}, column {})", e.line(), e.column()),
            },
            e,
        )
    })
}

fn as_object(v: &Value) -> Result<&Map<String, Value>, Error> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(&EMPTY),
        other => Err(invalid(format!(
            "expected a JSON object, found {}",
            json_type(other)
        ))),
    }
}

/// Decodes JSON values into the typed result with Go's `encoding/json`
/// semantics: `null` is "absent", keys match case-insensitively, unknown
/// keys are ignored, numbers for `int` fields must be integers.
struct Decoder {
    path: String,
}

impl Decoder {
    fn at(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn child(&self, field: &str) -> Decoder {
        Decoder {
            path: self.at(field),
        }
    }

    fn type_err(&self, field: &str, expected: &str, found: &Value) -> Error {
        invalid(format!(
            "`{}` must be {expected}, found {}",
            self.at(field),
            json_type(found)
        ))
    }

    fn opt_str(&self, obj: &Map<String, Value>, field: &str) -> Result<Option<String>, Error> {
        match get_ci(obj, field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.type_err(field, "a string", other)),
        }
    }

    fn string(&self, obj: &Map<String, Value>, field: &str) -> Result<String, Error> {
        Ok(self.opt_str(obj, field)?.unwrap_or_default())
    }

    /// An `int` field; `Some(0)` is kept (for `*int` fields such as `table`).
    fn opt_int(&self, obj: &Map<String, Value>, field: &str) -> Result<Option<i64>, Error> {
        match get_ci(obj, field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                invalid(format!(
                    "`{}` must be an integer, found {n}",
                    self.at(field)
                ))
            }),
            Some(other) => Err(self.type_err(field, "an integer", other)),
        }
    }

    /// An `int` field with `omitempty`: 0 is unset.
    fn nonzero_int(&self, obj: &Map<String, Value>, field: &str) -> Result<Option<i64>, Error> {
        Ok(self.opt_int(obj, field)?.filter(|n| *n != 0))
    }

    fn cidr(&self, obj: &Map<String, Value>, field: &str) -> Result<IpNet, Error> {
        match self.opt_str(obj, field)? {
            None => Err(invalid(format!("`{}` is missing", self.at(field)))),
            Some(s) => s
                .parse::<IpNet>()
                .map_err(|e| invalid(format!("`{}`: {e}", self.at(field)))),
        }
    }

    fn ip(&self, obj: &Map<String, Value>, field: &str) -> Result<Option<IpAddr>, Error> {
        match self.opt_str(obj, field)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => types::parse_ip(&s)
                .map(Some)
                .ok_or_else(|| invalid(format!("`{}`: invalid IP address: {s}", self.at(field)))),
        }
    }

    fn array<'v>(&self, obj: &'v Map<String, Value>, field: &str) -> Result<&'v [Value], Error> {
        match get_ci(obj, field) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(self.type_err(field, "an array", other)),
        }
    }

    fn objects<'v, T>(
        &self,
        obj: &'v Map<String, Value>,
        field: &str,
        f: impl Fn(&Decoder, &'v Map<String, Value>) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        self.array(obj, field)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let d = self.child(&format!("{field}[{i}]"));
                match v {
                    Value::Object(m) => f(&d, m),
                    other => Err(invalid(format!(
                        "`{}` must be an object, found {}",
                        d.path,
                        json_type(other)
                    ))),
                }
            })
            .collect()
    }

    fn strings(&self, obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, Error> {
        self.array(obj, field)?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                other => Err(self.type_err(field, "an array of strings", other)),
            })
            .collect()
    }

    fn object<'v>(
        &self,
        obj: &'v Map<String, Value>,
        field: &str,
    ) -> Result<Option<&'v Map<String, Value>>, Error> {
        match get_ci(obj, field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.type_err(field, "an object", other)),
        }
    }

    fn dns(&self, obj: &Map<String, Value>) -> Result<Dns, Error> {
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

    fn route(&self, m: &Map<String, Value>) -> Result<Route, Error> {
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

    fn interface(&self, m: &Map<String, Value>, v1: bool) -> Result<Interface, Error> {
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

    fn ipconfig020(
        &self,
        obj: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<IpConfig020>, Error> {
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

    fn result020(&self, obj: &Map<String, Value>, v: SpecVersion) -> Result<Result020, Error> {
        Ok(Result020 {
            cni_version: v,
            ip4: self.ipconfig020(obj, "ip4")?,
            ip6: self.ipconfig020(obj, "ip6")?,
            dns: self.dns(obj)?,
        })
    }

    fn result040(&self, obj: &Map<String, Value>, v: SpecVersion) -> Result<Result040, Error> {
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

    fn result100(&self, obj: &Map<String, Value>, v: SpecVersion) -> Result<Result100, Error> {
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
