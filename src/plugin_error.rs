//! The CNI error object a failing plugin prints (`{"code", "msg", "details"}`).

use std::fmt;

use serde_json::Value;

/// A CNI error code. The well-known codes are variants; any other code is kept
/// as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables.
    InvalidEnvironmentVariables,
    /// 5: I/O failure.
    IoFailure,
    /// 6: failed to decode content.
    DecodingFailure,
    /// 7: invalid network config.
    InvalidNetworkConfig,
    /// 8: invalid network namespace (libcni only, not in the spec).
    InvalidNetNs,
    /// 11: try again later.
    TryAgainLater,
    /// 50: the plugin is not available (STATUS).
    NotAvailable,
    /// 51: the plugin is not available; existing containers may have limited
    /// connectivity (STATUS).
    LimitedConnectivity,
    /// 999: internal error (libcni's skel; not in the spec).
    Internal,
    /// Any other code (0, or 100 and above: plugin-specific).
    Other(u64),
}

impl ErrorCode {
    /// The code for a number.
    pub fn from_u64(code: u64) -> ErrorCode {
        match code {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironmentVariables,
            5 => ErrorCode::IoFailure,
            6 => ErrorCode::DecodingFailure,
            7 => ErrorCode::InvalidNetworkConfig,
            8 => ErrorCode::InvalidNetNs,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            999 => ErrorCode::Internal,
            n => ErrorCode::Other(n),
        }
    }

    /// The number.
    pub fn as_u64(self) -> u64 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironmentVariables => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::InvalidNetNs => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Other(n) => n,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u64())
    }
}

/// A plugin's CNI error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    code: ErrorCode,
    msg: String,
    details: String,
    stderr: String,
}

impl PluginError {
    /// Builds an error object.
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> PluginError {
        PluginError {
            code,
            msg: msg.into(),
            details: details.into(),
            stderr: String::new(),
        }
    }

    /// Parses a plugin's stdout as an error object, as libcni does (other keys
    /// are ignored). Returns `None` when the output is not a JSON object with a
    /// numeric `code` or a string `msg`: then there is no usable error object.
    pub fn from_output(stdout: &[u8]) -> Option<PluginError> {
        let v: Value = serde_json::from_slice(stdout).ok()?;
        let obj = v.as_object()?;
        let code = crate::json::get_ci(obj, "code").and_then(Value::as_u64);
        let msg = crate::json::get_ci(obj, "msg").and_then(Value::as_str);
        if code.is_none() && msg.is_none() {
            return None;
        }
        let details = crate::json::get_ci(obj, "details")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some(PluginError::new(
            ErrorCode::from_u64(code.unwrap_or(0)),
            msg.unwrap_or_default(),
            details,
        ))
    }

    pub(crate) fn with_stderr(mut self, stderr: String) -> PluginError {
        self.stderr = stderr;
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn msg(&self) -> &str {
        &self.msg
    }

    /// The details (empty when absent).
    pub fn details(&self) -> &str {
        &self.details
    }

    /// What the plugin wrote to stderr, if anything.
    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// The error object as JSON, as a plugin prints it.
    pub fn to_json(&self, cni_version: &str) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert("cniVersion".into(), cni_version.into());
        m.insert("code".into(), self.code.as_u64().into());
        m.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            m.insert("details".into(), self.details.clone().into());
        }
        crate::json::to_go_json(&m)
    }
}

/// Like libcni's `types.Error`: the message, then `"; " + details` when there
/// are details; plus the code.
impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        write!(f, " (code {})", self.code)
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_keep_unknown() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999, 0, 100, 12345] {
            assert_eq!(ErrorCode::from_u64(n).as_u64(), n);
        }
        assert_eq!(ErrorCode::from_u64(11), ErrorCode::TryAgainLater);
        assert_eq!(ErrorCode::from_u64(100), ErrorCode::Other(100));
    }

    #[test]
    fn parse_error_object() {
        let e = PluginError::from_output(
            br#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"more","x":1}"#,
        )
        .unwrap();
        assert_eq!(e.code(), ErrorCode::InvalidNetworkConfig);
        assert_eq!(e.to_string(), "bad; more (code 7)");
        assert!(PluginError::from_output(b"{}").is_none());
        assert!(PluginError::from_output(b"garbage").is_none());
        assert!(PluginError::from_output(b"null").is_none());
        let e = PluginError::from_output(br#"{"code":7,"msg":5}"#).unwrap();
        assert_eq!(e.code().as_u64(), 7);
        assert_eq!(e.msg(), "");
    }
}
