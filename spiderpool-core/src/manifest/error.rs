//! The errors of [`crate::manifest`] and [`crate::objects`]: documents that cannot be read,
//! kinds and versions that are not Spiderpool's, fields outside their sets.

use thiserror::Error;

/// Why a manifest or an object could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A manifest document could not be read: bad YAML/JSON, wrong shape or wrong field types.
    #[error("document {document}{}: {reason}", item.map(|i| format!(", item {i}")).unwrap_or_default())]
    Document {
        /// 1-based number of the document in the input.
        document: usize,
        /// 1-based position inside a `kind: List` document, if the problem is in an item.
        item: Option<usize>,
        /// What is wrong (with line/column or field when known).
        reason: String,
    },
    /// A manifest document has a `kind` that is not one of the six Spiderpool kinds.
    #[error(
        "document {document}{}: unknown kind {kind}; supported: {}",
        item.map(|i| format!(", item {i}")).unwrap_or_default(),
        crate::objects::KINDS.join(", ")
    )]
    UnknownKind {
        /// 1-based number of the document in the input.
        document: usize,
        /// 1-based position inside a `kind: List` document, if any.
        item: Option<usize>,
        /// The kind as written.
        kind: String,
    },
    /// A Spiderpool kind was given with an `apiVersion` other than `spiderpool.spidernet.io/v2beta1`.
    #[error(
        "document {document}{}: unsupported apiVersion {api_version} for kind {kind}; supported: {}",
        item.map(|i| format!(", item {i}")).unwrap_or_default(),
        crate::objects::API_VERSION
    )]
    BadApiVersion {
        /// 1-based number of the document in the input.
        document: usize,
        /// 1-based position inside a `kind: List` document, if any.
        item: Option<usize>,
        /// The kind of the object.
        kind: String,
        /// The apiVersion as written.
        api_version: String,
    },
    /// A status field holding a JSON document as a string (`allocatedIPs`,
    /// `controlledIPPools`) does not hold valid JSON of the expected shape.
    #[error("invalid JSON in {field}: {reason}")]
    BadStatusJson {
        /// The field, e.g. `status.allocatedIPs`.
        field: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// An object could not be written as YAML or JSON.
    #[error("cannot serialize {kind}: {reason}")]
    Serialize {
        /// The kind of the object.
        kind: String,
        /// The serializer's message.
        reason: String,
    },
    /// An enumerated field (cniType, mode, ...) holds a value outside its set.
    #[error("{field}: unsupported value {value:?}: supported values: {}", supported.join(", "))]
    UnsupportedValue {
        /// The field, e.g. `spec.cniType`.
        field: &'static str,
        /// The value as written.
        value: String,
        /// Every accepted value.
        supported: &'static [&'static str],
    },
}
