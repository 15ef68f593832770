//! CNI spec versions: parsing, comparison, and the `VERSION` reply.
//!
//! Version strings follow libcni's `ParseVersion`: `""` means `0.1.0`, up to
//! three dot-separated decimal parts, missing parts are `0`. Comparison is
//! numeric, but everywhere a version *names* a format (result types, the
//! `VERSION` check) libcni matches the exact string, and so does this crate:
//! `"1.0"` compares equal to `"1.0.0"` but is not a known result version.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::{Error, ErrorKind, VersionProblem};

/// A parsed version number (`major.minor.micro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    major: i64,
    minor: i64,
    micro: i64,
}

impl Version {
    /// Builds a version from its parts.
    pub const fn new(major: i64, minor: i64, micro: i64) -> Version {
        Version {
            major,
            minor,
            micro,
        }
    }

    /// Parses a version with libcni's rules: `""` is `0.1.0`; at most three
    /// parts; each part is a decimal integer as Go's `strconv.Atoi` reads it
    /// (an optional sign, leading zeros allowed); missing parts are `0`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidVersion`] for anything else.
    pub fn parse(s: &str) -> Result<Version, Error> {
        Version::parse_problem(s).map_err(|problem| {
            Error::new(ErrorKind::InvalidVersion {
                version: s.to_owned(),
                problem,
            })
        })
    }

    pub(crate) fn parse_problem(s: &str) -> Result<Version, VersionProblem> {
        if s.is_empty() {
            return Ok(Version::new(0, 1, 0));
        }
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() >= 4 {
            return Err(VersionProblem::TooManyParts);
        }
        let names = ["major", "minor", "micro"];
        let mut nums = [0i64; 3];
        for (i, p) in parts.iter().enumerate() {
            nums[i] = atoi(p).ok_or_else(|| VersionProblem::NotANumber {
                part: names[i],
                value: (*p).to_owned(),
            })?;
        }
        Ok(Version::new(nums[0], nums[1], nums[2]))
    }

    /// The major part.
    pub fn major(&self) -> i64 {
        self.major
    }

    /// The minor part.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The micro (patch) part.
    pub fn micro(&self) -> i64 {
        self.micro
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Version, Error> {
        Version::parse(s)
    }
}

/// Go's `strconv.Atoi` on a 64-bit platform.
fn atoi(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i128 = 0;
    for b in digits.bytes() {
        n = n * 10 + i128::from(b - b'0');
        if n > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let n = if neg { -n } else { n };
    i64::try_from(n).ok()
}

/// Compares two version strings numerically (libcni's
/// `GreaterThanOrEqualTo`/`GreaterThan`).
///
/// # Errors
///
/// [`ErrorKind::InvalidVersion`] if either does not parse.
pub fn compare(a: &str, b: &str) -> Result<Ordering, Error> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// The spec versions this library knows, each naming a result format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SpecVersion {
    /// 0.1.0
    V0_1_0,
    /// 0.2.0
    V0_2_0,
    /// 0.3.0
    V0_3_0,
    /// 0.3.1
    V0_3_1,
    /// 0.4.0
    V0_4_0,
    /// 1.0.0
    V1_0_0,
    /// 1.1.0
    V1_1_0,
}

impl SpecVersion {
    /// Every known version, oldest first.
    pub const ALL: [SpecVersion; 7] = [
        SpecVersion::V0_1_0,
        SpecVersion::V0_2_0,
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The newest version this library implements (`1.1.0`).
    pub const LATEST: SpecVersion = SpecVersion::V1_1_0;

    /// The version string, e.g. `"0.3.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_1_0 => "0.1.0",
            SpecVersion::V0_2_0 => "0.2.0",
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Looks up a version by its exact string, as libcni's result creators
    /// and converters do (`""` is not accepted here; see [`SpecVersion::from_result_str`]).
    pub fn from_exact(s: &str) -> Option<SpecVersion> {
        SpecVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Like [`from_exact`](SpecVersion::from_exact) but `""` means `0.1.0`,
    /// as in a result or a conversion target.
    pub fn from_result_str(s: &str) -> Option<SpecVersion> {
        if s.is_empty() {
            Some(SpecVersion::V0_1_0)
        } else {
            SpecVersion::from_exact(s)
        }
    }

    /// The numeric version.
    pub fn version(self) -> Version {
        match self {
            SpecVersion::V0_1_0 => Version::new(0, 1, 0),
            SpecVersion::V0_2_0 => Version::new(0, 2, 0),
            SpecVersion::V0_3_0 => Version::new(0, 3, 0),
            SpecVersion::V0_3_1 => Version::new(0, 3, 1),
            SpecVersion::V0_4_0 => Version::new(0, 4, 0),
            SpecVersion::V1_0_0 => Version::new(1, 0, 0),
            SpecVersion::V1_1_0 => Version::new(1, 1, 0),
        }
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Picks the network's version from `cniVersion` and `cniVersions` as libcni
/// 1.3 does: entries above [`SpecVersion::LATEST`] are dropped, `cniVersion`
/// joins the set when it is non-empty and not above it, and the highest wins
/// as its original string (on a numeric tie, the first listed). With an empty
/// set, `cniVersion` stays as written.
pub(crate) fn select_version(
    cni_version: &str,
    cni_versions: &[String],
) -> Result<String, (usize, VersionProblem)> {
    let latest = SpecVersion::LATEST.version();
    let mut best: Option<(Version, &str)> = None;
    let candidates = cni_versions
        .iter()
        .map(String::as_str)
        .enumerate()
        .chain((!cni_version.is_empty()).then_some((usize::MAX, cni_version)));
    for (idx, v) in candidates {
        let parsed = Version::parse_problem(v).map_err(|p| (idx, p))?;
        if parsed <= latest && best.is_none_or(|(b, _)| parsed > b) {
            best = Some((parsed, v));
        }
    }
    Ok(best.map_or_else(|| cni_version.to_owned(), |(_, s)| s.to_owned()))
}

/// A plugin's reply to `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    cni_version: String,
    supported_versions: Vec<String>,
}

impl VersionInfo {
    /// Builds a reply.
    pub fn new(cni_version: impl Into<String>, supported_versions: Vec<String>) -> VersionInfo {
        VersionInfo {
            cni_version: cni_version.into(),
            supported_versions,
        }
    }

    /// What a plugin that predates `VERSION` supports: `0.1.0` only.
    pub fn legacy() -> VersionInfo {
        VersionInfo::new("0.1.0", vec!["0.1.0".to_owned()])
    }

    /// Decodes a `VERSION` reply as libcni does: `cniVersion` is required;
    /// `supportedVersions` must be non-empty, except that a `0.2.0` reply
    /// without it means `["0.1.0", "0.2.0"]`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidVersionInfo`].
    pub fn from_json(bytes: &[u8]) -> Result<VersionInfo, Error> {
        let bad = |reason: String| Error::new(ErrorKind::InvalidVersionInfo { reason });
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let obj = match &v {
            Value::Object(m) => m,
            Value::Null => &serde_json::Map::new(),
            other => {
                return Err(bad(format!(
                    "expected an object, found {}",
                    json_type(other)
                )));
            }
        };
        let cni_version = match crate::json::get_ci(obj, "cniVersion") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(bad(format!("cniVersion is {}", json_type(other)))),
        };
        if cni_version.is_empty() {
            return Err(bad("missing field cniVersion".to_owned()));
        }
        let supported = match crate::json::get_ci(obj, "supportedVersions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(bad(format!("supportedVersions holds {}", json_type(other)))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(bad(format!("supportedVersions is {}", json_type(other)))),
        };
        if supported.is_empty() {
            if cni_version == "0.2.0" {
                return Ok(VersionInfo::new(
                    "0.2.0",
                    vec!["0.1.0".into(), "0.2.0".into()],
                ));
            }
            return Err(bad("missing field supportedVersions".to_owned()));
        }
        Ok(VersionInfo::new(cni_version, supported))
    }

    /// The `cniVersion` of the reply.
    pub fn cni_version(&self) -> &str {
        &self.cni_version
    }

    /// The versions the plugin supports, as it listed them.
    pub fn supported_versions(&self) -> &[String] {
        &self.supported_versions
    }

    /// Whether `version` is listed, by exact string (`""` means `0.1.0`).
    pub fn supports(&self, version: &str) -> bool {
        let version = if version.is_empty() { "0.1.0" } else { version };
        self.supported_versions.iter().any(|v| v == version)
    }

    /// The reply as JSON (`{"cniVersion":..,"supportedVersions":[..]}`).
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Reply<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            #[serde(rename = "supportedVersions")]
            supported_versions: &'a [String],
        }
        crate::json::to_go_json(&Reply {
            cni_version: &self.cni_version,
            supported_versions: &self.supported_versions,
        })
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_version_follows_libcni() {
        assert_eq!(Version::parse("").unwrap(), Version::new(0, 1, 0));
        assert_eq!(Version::parse("1").unwrap(), Version::new(1, 0, 0));
        assert_eq!(Version::parse("1.0").unwrap(), Version::new(1, 0, 0));
        assert_eq!(Version::parse("+1.01.0").unwrap(), Version::new(1, 1, 0));
        assert_eq!(Version::parse("-1.0.0").unwrap(), Version::new(-1, 0, 0));
        assert!(matches!(
            Version::parse("1.0.0.0").unwrap_err().kind(),
            ErrorKind::InvalidVersion {
                problem: VersionProblem::TooManyParts,
                ..
            }
        ));
        for bad in [
            "1.0.0-rc1",
            "1..0",
            "a",
            ".",
            "1. 0",
            "99999999999999999999",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compare_is_numeric() {
        assert_eq!(compare("1.0", "1.0.0").unwrap(), Ordering::Equal);
        assert_eq!(compare("0.10.0", "0.4.0").unwrap(), Ordering::Greater);
        assert_eq!(compare("", "0.1.0").unwrap(), Ordering::Equal);
    }

    #[test]
    fn select_version_picks_highest_supported_as_written() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(select_version("", &s(&["1.0", "0.4.0"])).unwrap(), "1.0");
        assert_eq!(
            select_version("0.3.1", &s(&["0.4.0", "2.0.0"])).unwrap(),
            "0.4.0"
        );
        assert_eq!(select_version("2.0.0", &s(&[])).unwrap(), "2.0.0");
        assert_eq!(select_version("2.0.0", &s(&["3.0.0"])).unwrap(), "2.0.0");
        assert_eq!(select_version("1.0", &s(&["1.0.0"])).unwrap(), "1.0.0");
        assert!(select_version("", &s(&["1.0.0", "x"])).is_err());
        assert!(select_version("bogus", &s(&["1.0.0"])).is_err());
    }

    #[test]
    fn version_info_decoding() {
        let vi = VersionInfo::from_json(
            br#"{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}"#,
        )
        .unwrap();
        assert!(vi.supports("1.0.0"));
        assert!(!vi.supports("1.0"));
        let legacy = VersionInfo::from_json(br#"{"cniVersion":"0.2.0"}"#).unwrap();
        assert_eq!(legacy.supported_versions(), ["0.1.0", "0.2.0"]);
        assert!(legacy.supports(""));
        assert!(VersionInfo::from_json(br#"{"cniVersion":"1.0.0"}"#).is_err());
        assert!(VersionInfo::from_json(br#"{"supportedVersions":["1.0.0"]}"#).is_err());
        assert!(VersionInfo::from_json(b"garbage").is_err());
    }
}
