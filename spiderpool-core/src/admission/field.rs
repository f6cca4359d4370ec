//! Field errors in the shape of Kubernetes' `field.Error`: a path, a reason and a message.

use std::fmt;

/// Why a field was refused; the same reasons the apiserver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Reason {
    /// The value is malformed or violates a rule.
    Invalid,
    /// The value is well formed but not allowed (immutable field, overlap, in use...).
    Forbidden,
    /// The value is not one of the supported values.
    NotSupported,
    /// An object with the same identity already exists.
    AlreadyExists,
    /// A required value is missing.
    Required,
    /// The value duplicates another entry of the same list.
    Duplicate,
}

impl Reason {
    /// The reason as printed: `Invalid`, `Forbidden`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Invalid => "Invalid",
            Reason::Forbidden => "Forbidden",
            Reason::NotSupported => "NotSupported",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Required => "Required",
            Reason::Duplicate => "Duplicate",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refused field: `spec.ips[0]: Invalid: ...`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Kubernetes-style field path, e.g. `spec.ips[0]` or `metadata.name`.
    pub path: String,
    /// Why it was refused.
    pub reason: Reason,
    /// What is wrong, for an operator.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(path: impl Into<String>, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason,
            message: message.into(),
        }
    }
    /// An `Invalid` error.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, Reason::Invalid, message)
    }
    /// A `Forbidden` error.
    pub fn forbidden(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, Reason::Forbidden, message)
    }
    /// A `Required` error.
    pub fn required(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, Reason::Required, message)
    }
    /// A `NotSupported` error listing the accepted values.
    pub fn not_supported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self::new(
            path,
            Reason::NotSupported,
            format!("{value:?}: supported values: {}", quoted.join(", ")),
        )
    }
    /// An `AlreadyExists` error.
    pub fn already_exists(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, Reason::AlreadyExists, message)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.reason, self.message)
    }
}
