//! Typed Spiderpool objects from JSON values and, with the `manifest` feature, from YAML / JSON
//! manifests.
//!
//! [`SpiderObject`] is any of the six kinds; [`SpiderObject::from_value`] reads one from a JSON
//! value (an AdmissionReview's `object`, an agent request), without a YAML parser.
//!
//! With the `manifest` feature, `parse_documents` accepts what users feed `kubectl`: YAML with
//! several `---` documents, one JSON object or a stream of them, and `kind: List` (kubectl
//! `get -o yaml|json` output) or `<Kind>List` (raw API output) in either format; `parse_manifest`
//! does the same but skips (and lists) objects of other API groups, as a `helm template` output
//! holds. YAML and JSON share one path: each document is first read into a `serde_json::Value`
//! (YAML scalars resolve as in Kubernetes' YAML reader, e.g. `yes` is a boolean), then
//! dispatched on `apiVersion` / `kind` and deserialized into the typed object. Errors name the
//! 1-based document (and list item), and for YAML/JSON text the line and column when they can
//! be found. The CNI plugins leave the feature off: they never read YAML.
//!
//! ```
//! # #[cfg(feature = "manifest")] {
//! use spiderpool_core::manifest::{SpiderObject, parse_documents};
//!
//! let objs = parse_documents(
//!     "apiVersion: spiderpool.spidernet.io/v2beta1\n\
//!      kind: SpiderIPPool\n\
//!      metadata: {name: 10-6-v4}\n\
//!      spec: {subnet: 10.6.0.0/16, ips: [10.6.212.100-10.6.212.200]}\n",
//! )?;
//! let SpiderObject::IPPool(pool) = &objs[0] else { unreachable!() };
//! assert_eq!(pool.spec.subnet, "10.6.0.0/16");
//! assert_eq!(objs[0].name(), "10-6-v4");
//! # }
//! # Ok::<(), spiderpool_core::Error>(())
//! ```

mod error;
#[cfg(feature = "manifest")]
mod text;

pub use error::ManifestError;
#[cfg(feature = "manifest")]
pub use text::{Manifest, parse_documents, parse_manifest, to_yaml, to_yaml_documents};

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::meta::ObjectMeta;
use crate::objects::{
    self, API_VERSION, KindInfo, SpiderCoordinator, SpiderEndpoint, SpiderIPPool,
    SpiderMultusConfig, SpiderReservedIP, SpiderResource, SpiderSubnet,
};

/// Any Spiderpool object.
///
/// Variants are not boxed: objects are handled one at a time or in short vectors, and plain
/// variants keep pattern matching simple for callers.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum SpiderObject {
    /// A SpiderIPPool.
    IPPool(SpiderIPPool),
    /// A SpiderSubnet.
    Subnet(SpiderSubnet),
    /// A SpiderReservedIP.
    ReservedIP(SpiderReservedIP),
    /// A SpiderEndpoint.
    Endpoint(SpiderEndpoint),
    /// A SpiderMultusConfig.
    MultusConfig(SpiderMultusConfig),
    /// A SpiderCoordinator.
    Coordinator(SpiderCoordinator),
}

/// Calls `$body` with `$o` bound to the inner object, whatever the variant.
macro_rules! each {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            SpiderObject::IPPool($o) => $body,
            SpiderObject::Subnet($o) => $body,
            SpiderObject::ReservedIP($o) => $body,
            SpiderObject::Endpoint($o) => $body,
            SpiderObject::MultusConfig($o) => $body,
            SpiderObject::Coordinator($o) => $body,
        }
    };
}

impl SpiderObject {
    /// Static facts about the object's kind.
    pub fn info(&self) -> &'static KindInfo {
        match self {
            Self::IPPool(_) => &objects::IPPOOL,
            Self::Subnet(_) => &objects::SUBNET,
            Self::ReservedIP(_) => &objects::RESERVEDIP,
            Self::Endpoint(_) => &objects::ENDPOINT,
            Self::MultusConfig(_) => &objects::MULTUSCONFIG,
            Self::Coordinator(_) => &objects::COORDINATOR,
        }
    }

    /// The kind name, e.g. `SpiderIPPool`.
    pub fn kind(&self) -> &'static str {
        self.info().kind
    }

    /// The object's name (`""` when unset).
    pub fn name(&self) -> &str {
        each!(self, o => o.name())
    }

    /// The object's namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        each!(self, o => o.namespace())
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    /// The object's metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => &mut o.metadata)
    }

    /// Reads one object from a JSON value (for example an AdmissionReview's `object`).
    /// Errors are reported as document 1.
    pub fn from_value(value: Value) -> Result<Self, ManifestError> {
        let mut sink = Sink::strict();
        dispatch(
            value,
            &Source::None,
            Pos {
                document: 1,
                item: None,
            },
            &mut sink,
        )?;
        let mut out = sink.objects;
        match (out.pop(), out.is_empty()) {
            (Some(obj), true) => Ok(obj),
            _ => Err(ManifestError::Document {
                document: 1,
                item: None,
                reason: "expected exactly one object, found a list or nothing".to_owned(),
            }),
        }
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Result<Value, ManifestError> {
        serde_json::to_value(self).map_err(|e| self.ser_error(e.to_string()))
    }

    fn ser_error(&self, reason: String) -> ManifestError {
        ManifestError::Serialize {
            kind: self.kind().to_owned(),
            reason,
        }
    }
}

impl Serialize for SpiderObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        each!(self, o => o.serialize(serializer))
    }
}

macro_rules! from_kind {
    ($($variant:ident($ty:ty)),+) => {$(
        impl From<$ty> for SpiderObject {
            fn from(o: $ty) -> Self {
                Self::$variant(o)
            }
        }
    )+};
}
from_kind!(
    IPPool(SpiderIPPool),
    Subnet(SpiderSubnet),
    ReservedIP(SpiderReservedIP),
    Endpoint(SpiderEndpoint),
    MultusConfig(SpiderMultusConfig),
    Coordinator(SpiderCoordinator)
);

/// Writes one object as pretty-printed JSON.
pub fn to_json(obj: &SpiderObject) -> Result<String, ManifestError> {
    serde_json::to_string_pretty(obj).map_err(|e| obj.ser_error(e.to_string()))
}

/// Where a document came from, so a typed error can be located in the text.
pub(crate) enum Source {
    /// YAML text, padded with newlines so line numbers are those of the whole input.
    #[cfg(feature = "manifest")]
    Yaml(String),
    /// JSON text, padded the same way.
    #[cfg(feature = "manifest")]
    Json(String),
    /// No text (list items, values given directly).
    None,
}

/// Position of a document (and list item) in the input, 1-based.
#[derive(Clone, Copy)]
pub(crate) struct Pos {
    pub(crate) document: usize,
    pub(crate) item: Option<usize>,
}

impl Pos {
    pub(crate) fn error(self, reason: impl Into<String>) -> ManifestError {
        ManifestError::Document {
            document: self.document,
            item: self.item,
            reason: reason.into(),
        }
    }
}

/// An object of another API group that a lenient read skipped (a Deployment, a ConfigMap...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// 1-based document number.
    pub document: usize,
    /// 1-based item number when the object was inside a list.
    pub item: Option<usize>,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
}

/// Where dispatched documents go.
pub(crate) struct Sink {
    /// The Spiderpool objects read, in order.
    pub(crate) objects: Vec<SpiderObject>,
    /// `Some` when objects of other API groups are skipped (and listed here) instead of
    /// refused as unknown kinds.
    pub(crate) foreign: Option<Vec<Foreign>>,
}

impl Sink {
    /// Refuses anything that is not a Spiderpool object.
    pub(crate) fn strict() -> Self {
        Self {
            objects: Vec::new(),
            foreign: None,
        }
    }

    /// Skips objects of other API groups.
    #[cfg(feature = "manifest")]
    pub(crate) fn lenient() -> Self {
        Self {
            objects: Vec::new(),
            foreign: Some(Vec::new()),
        }
    }
}

/// The API group of an `apiVersion` (`""` for the core group's `v1`).
fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Turns one parsed document into objects (several for a list).
pub(crate) fn dispatch(
    value: Value,
    source: &Source,
    pos: Pos,
    sink: &mut Sink,
) -> Result<(), ManifestError> {
    let map = match value {
        Value::Null => return Ok(()),
        Value::Object(map) => map,
        other => {
            return Err(pos.error(format!(
                "expected a mapping with apiVersion and kind, found {}",
                describe(&other)
            )));
        }
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(other) => {
            return Err(pos.error(format!(
                "`kind` must be a string, found {}",
                describe(other)
            )));
        }
        None => return Err(pos.error("missing `kind`")),
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(pos.error(format!(
                "`apiVersion` must be a string, found {}",
                describe(other)
            )));
        }
        None => return Err(pos.error(format!("missing `apiVersion` (kind {kind})"))),
    };

    // Lists: kubectl's `v1 List` and the API's typed `<Kind>List`.
    let typed_list = kind
        .strip_suffix("List")
        .is_some_and(|k| objects::kind_info(k).is_some());
    if kind == "List" || typed_list {
        if pos.item.is_some() {
            return Err(pos.error("a list inside a list is not supported"));
        }
        let expected = if typed_list { API_VERSION } else { "v1" };
        if api_version != expected {
            return Err(ManifestError::BadApiVersion {
                document: pos.document,
                item: None,
                kind,
                api_version,
            });
        }
        let items = match map.get("items") {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                return Err(pos.error(format!("`items` must be a list, found {}", describe(other))));
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let item_pos = Pos {
                document: pos.document,
                item: Some(i + 1),
            };
            if item.is_null() {
                return Err(item_pos.error("list item is null"));
            }
            dispatch(item, &Source::None, item_pos, sink)?;
        }
        return Ok(());
    }

    let Some(info) = objects::kind_info(&kind) else {
        // A misspelt kind of our own group is a mistake to report, never a skip.
        if let Some(foreign) = sink.foreign.as_mut()
            && group(&api_version) != group(API_VERSION)
        {
            foreign.push(Foreign {
                document: pos.document,
                item: pos.item,
                api_version,
                kind,
            });
            return Ok(());
        }
        return Err(ManifestError::UnknownKind {
            document: pos.document,
            item: pos.item,
            kind,
        });
    };
    if api_version != API_VERSION {
        return Err(ManifestError::BadApiVersion {
            document: pos.document,
            item: pos.item,
            kind,
            api_version,
        });
    }
    let value = Value::Object(map);
    let obj = match info.kind {
        "SpiderIPPool" => SpiderObject::IPPool(typed(value, source, pos)?),
        "SpiderSubnet" => SpiderObject::Subnet(typed(value, source, pos)?),
        "SpiderReservedIP" => SpiderObject::ReservedIP(typed(value, source, pos)?),
        "SpiderEndpoint" => SpiderObject::Endpoint(typed(value, source, pos)?),
        "SpiderMultusConfig" => SpiderObject::MultusConfig(typed(value, source, pos)?),
        _ => SpiderObject::Coordinator(typed(value, source, pos)?),
    };
    sink.objects.push(obj);
    Ok(())
}

/// Deserializes the typed object. The JSON value decides (it has Kubernetes' semantics:
/// `subnet: 4` is a number, not a string); when it fails, the same document is read again
/// straight from its text only to learn the line and column of the problem.
fn typed<T: DeserializeOwned>(value: Value, source: &Source, pos: Pos) -> Result<T, ManifestError> {
    serde_json::from_value(value).map_err(|e| {
        let location: Option<String> = match source {
            #[cfg(feature = "manifest")]
            Source::Yaml(text) => serde_saphyr::from_str::<T>(text)
                .err()
                .and_then(|e| e.location())
                .map(|l| format!(" (line {} column {})", l.line(), l.column())),
            #[cfg(feature = "manifest")]
            Source::Json(text) => serde_json::from_str::<T>(text)
                .err()
                .filter(|e| e.line() > 0)
                .map(|e| format!(" (line {} column {})", e.line(), e.column())),
            Source::None => None,
        };
        pos.error(format!("{e}{}", location.unwrap_or_default()))
    })
}

/// `a list`, `a string "x"`, ... for error messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}
