//! The CNI error reply: what a plugin prints on stdout (with a non-zero exit) when it fails.
//!
//! This is not the crate's [`crate::Error`]: it is a protocol message with a numeric code from the
//! CNI specification. Crate errors convert into it (code 999 unless they wrap a `CniError`), and
//! it converts into the crate error as [`crate::Error::Cni`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::convert::to_go_json;
use super::version::SpecVersion;

/// A CNI error code (the spec's "well-known error codes"; 100 and above are plugin-defined).
pub type ErrorCode = u32;

/// 1: the plugin does not support the configuration's `cniVersion` (or it does not allow the
/// command).
pub const ERR_INCOMPATIBLE_VERSION: ErrorCode = 1;
/// 2: a field of the network configuration is not supported; `details` names it.
pub const ERR_UNSUPPORTED_FIELD: ErrorCode = 2;
/// 3: the container is unknown or does not exist (also: an empty container ID).
pub const ERR_UNKNOWN_CONTAINER: ErrorCode = 3;
/// 4: a `CNI_*` environment variable is missing or invalid; `details` names it when useful.
pub const ERR_INVALID_ENV: ErrorCode = 4;
/// 5: an I/O failure, e.g. reading stdin.
pub const ERR_IO: ErrorCode = 5;
/// 6: the network configuration (or another JSON input) could not be decoded.
pub const ERR_DECODE: ErrorCode = 6;
/// 7: the network configuration decodes but is not valid.
pub const ERR_INVALID_CONFIG: ErrorCode = 7;
/// 8: the network namespace is invalid (e.g. it is the plugin's own).
pub const ERR_INVALID_NETNS: ErrorCode = 8;
/// 11: a transient failure; the runtime should retry the operation later.
pub const ERR_TRY_AGAIN_LATER: ErrorCode = 11;
/// 50: STATUS: the plugin cannot serve ADD requests at all right now.
pub const ERR_PLUGIN_NOT_AVAILABLE: ErrorCode = 50;
/// 51: STATUS: the plugin can serve ADD requests but with limited connectivity.
pub const ERR_LIMITED_CONNECTIVITY: ErrorCode = 51;
/// 999: any other (internal) failure.
pub const ERR_INTERNAL: ErrorCode = 999;

/// A CNI error reply: `{"cniVersion", "code", "msg", "details"?}`.
///
/// `cni_version` is optional: the specification puts the configuration's version there, but Go's
/// `libcni` plugins print no `cniVersion` at all (the observed upstream replies are
/// `{"code": 999, "msg": "..."}`). The constructors leave it unset; a plugin that already knows
/// the configuration's version adds it with [`CniError::with_version`].
///
/// ```
/// use spiderpool_core::cni::{CniError, ERR_TRY_AGAIN_LATER, SpecVersion};
///
/// let e = CniError::new(ERR_TRY_AGAIN_LATER, "spiderpool-agent is unreachable")
///     .with_details("connect /var/run/spidernet/spiderpool.sock: connection refused")
///     .with_version(SpecVersion::V0_3_1);
/// assert_eq!(
///     e.to_json(),
///     r#"{"cniVersion":"0.3.1","code":11,"msg":"spiderpool-agent is unreachable","details":"connect /var/run/spidernet/spiderpool.sock: connection refused"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    /// The configuration's `cniVersion`, when known.
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_version: Option<SpecVersion>,
    /// The error code (see the `ERR_*` constants).
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// Longer details; omitted from the JSON when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with a code and a message, no details and no version.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            cni_version: None,
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with `details` set.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The same error with `cniVersion` set.
    #[must_use]
    pub fn with_version(mut self, version: SpecVersion) -> Self {
        self.cni_version = Some(version);
        self
    }

    /// Code 1, [`ERR_INCOMPATIBLE_VERSION`].
    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(ERR_INCOMPATIBLE_VERSION, msg)
    }

    /// Code 4, [`ERR_INVALID_ENV`].
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(ERR_INVALID_ENV, msg)
    }

    /// Code 6, [`ERR_DECODE`].
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(ERR_DECODE, msg)
    }

    /// Code 7, [`ERR_INVALID_CONFIG`].
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(ERR_INVALID_CONFIG, msg)
    }

    /// Code 11, [`ERR_TRY_AGAIN_LATER`].
    pub fn try_again_later(msg: impl Into<String>) -> Self {
        Self::new(ERR_TRY_AGAIN_LATER, msg)
    }

    /// Code 999, [`ERR_INTERNAL`].
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ERR_INTERNAL, msg)
    }

    /// The reply as compact JSON (Go `encoding/json` escaping).
    pub fn to_json(&self) -> String {
        to_go_json(self, false).unwrap_or_else(|_| self.fallback_json())
    }

    /// The reply as Go's plugins print it on stdout: indented by four spaces, no final newline.
    pub fn to_json_pretty(&self) -> String {
        to_go_json(self, true).unwrap_or_else(|_| self.fallback_json())
    }

    /// Parses a reply, e.g. the stdout of a delegated plugin that failed.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CniError> {
        serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode(format!("error decoding CNI error reply: {e}")))
    }

    // Serializing plain strings and integers cannot fail; this keeps the API infallible anyway.
    fn fallback_json(&self) -> String {
        format!(r#"{{"code":{},"msg":"internal error"}}"#, self.code)
    }
}

impl fmt::Display for CniError {
    /// `msg`, then `; details` when there are details (as Go's `types.Error` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

impl From<CniError> for crate::Error {
    fn from(e: CniError) -> Self {
        crate::Error::Cni(Box::new(e))
    }
}

impl From<crate::Error> for CniError {
    /// A wrapped [`CniError`] comes back unchanged; every other crate error becomes code 999
    /// with its message. Plugins that know better (an exhausted pool is not "internal") map
    /// those errors themselves.
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Cni(inner) => *inner,
            other => CniError::internal(other.to_string()),
        }
    }
}

/// A module error becomes code 999 with its message, as through [`crate::Error`].
macro_rules! internal_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for CniError {
            fn from(e: $ty) -> Self {
                CniError::internal(e.to_string())
            }
        }
    )*};
}

internal_from!(
    crate::ip::IpError,
    crate::manifest::ManifestError,
    crate::multus::RenderError,
    crate::coordinator::CoordinatorError,
    crate::ipam::IpamError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_error_json_shapes() {
        let e = CniError::internal("boom");
        assert_eq!(e.to_json(), r#"{"code":999,"msg":"boom"}"#);
        assert_eq!(
            e.to_json_pretty(),
            "{\n    \"code\": 999,\n    \"msg\": \"boom\"\n}"
        );
        let e = CniError::invalid_config("bad")
            .with_details("x")
            .with_version(SpecVersion::V1_1_0);
        assert_eq!(
            e.to_json(),
            r#"{"cniVersion":"1.1.0","code":7,"msg":"bad","details":"x"}"#
        );
        assert_eq!(e.to_string(), "bad; x");
        assert_eq!(CniError::from_json(e.to_json().as_bytes()).unwrap(), e);
    }

    #[test]
    fn cni_error_codes_are_the_spec_codes() {
        let codes = [
            ERR_INCOMPATIBLE_VERSION,
            ERR_UNSUPPORTED_FIELD,
            ERR_UNKNOWN_CONTAINER,
            ERR_INVALID_ENV,
            ERR_IO,
            ERR_DECODE,
            ERR_INVALID_CONFIG,
            ERR_INVALID_NETNS,
            ERR_TRY_AGAIN_LATER,
            ERR_PLUGIN_NOT_AVAILABLE,
            ERR_LIMITED_CONNECTIVITY,
            ERR_INTERNAL,
        ];
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999]);
    }

    #[test]
    fn cni_error_crate_error_round_trip() {
        let e = CniError::try_again_later("agent down");
        let crate_err: crate::Error = e.clone().into();
        assert_eq!(CniError::from(crate_err), e);
        let other: crate::Error =
            crate::coordinator::CoordinatorError::UnknownMode { mode: "x".into() }.into();
        let c = CniError::from(other);
        assert_eq!(c.code, ERR_INTERNAL);
        assert!(c.msg.contains("unknown mode"));
    }

    #[test]
    fn cni_error_go_reply_without_version_parses() {
        let go = b"{\n    \"code\": 999,\n    \"msg\": \"spiderpool IP allocation error: all IP addresses used out\"\n}";
        let e = CniError::from_json(go).unwrap();
        assert_eq!(e.code, ERR_INTERNAL);
        assert_eq!(e.cni_version, None);
        assert_eq!(e.to_json_pretty().as_bytes(), go);
    }
}
