//! Reading YAML / JSON manifests into typed Spiderpool objects, and writing them back.
//!
//! [`parse_documents`] accepts what users feed `kubectl`: YAML with several `---` documents,
//! one JSON object or a stream of them, and `kind: List` (kubectl `get -o yaml|json` output) or
//! `<Kind>List` (raw API output) in either format. YAML and JSON share one path: each document
//! is first read into a `serde_json::Value` (YAML scalars resolve as in Kubernetes' YAML
//! reader, e.g. `yes` is a boolean), then dispatched on `apiVersion` / `kind` and
//! deserialized into the typed object. Errors name the 1-based document (and list item), and
//! for YAML/JSON text the line and column when they can be found.
//!
//! ```
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
//! # Ok::<(), spiderpool_core::Error>(())
//! ```

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::Error;
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
    pub fn from_value(value: Value) -> Result<Self, Error> {
        let mut out = Vec::new();
        dispatch(
            value,
            &Source::None,
            Pos {
                document: 1,
                item: None,
            },
            &mut out,
        )?;
        match (out.pop(), out.is_empty()) {
            (Some(obj), true) => Ok(obj),
            _ => Err(Error::Manifest {
                document: 1,
                item: None,
                reason: "expected exactly one object, found a list or nothing".to_owned(),
            }),
        }
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Result<Value, Error> {
        serde_json::to_value(self).map_err(|e| self.ser_error(e.to_string()))
    }

    fn ser_error(&self, reason: String) -> Error {
        Error::Serialize {
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

/// Writes one object as YAML.
pub fn to_yaml(obj: &SpiderObject) -> Result<String, Error> {
    serde_saphyr::to_string(obj).map_err(|e| obj.ser_error(e.to_string()))
}

/// Writes objects as one YAML stream, documents separated by `---`.
pub fn to_yaml_documents(objs: &[SpiderObject]) -> Result<String, Error> {
    let mut out = String::new();
    for (i, o) in objs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(o)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Writes one object as pretty-printed JSON.
pub fn to_json(obj: &SpiderObject) -> Result<String, Error> {
    serde_json::to_string_pretty(obj).map_err(|e| obj.ser_error(e.to_string()))
}

/// Reads every Spiderpool object of a YAML or JSON manifest, in order.
///
/// Empty documents are skipped. The first problem stops reading and is returned with its
/// 1-based document number: bad syntax, a document that is not a mapping, a missing or
/// unknown `kind`, a wrong `apiVersion` (only `spiderpool.spidernet.io/v2beta1` is served),
/// or a field of the wrong type or unknown to the kind.
pub fn parse_documents(text: &str) -> Result<Vec<SpiderObject>, Error> {
    let mut out = Vec::new();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match parse_json_stream(text, &mut out) {
            Ok(()) => return Ok(out),
            // `{a: 1}` is YAML flow syntax, not JSON: retry as YAML, but if that fails too
            // the JSON error is the more useful one.
            Err(json_err @ Error::Manifest { .. }) if out.is_empty() => {
                let mut yaml_out = Vec::new();
                return match parse_yaml_stream(text, &mut yaml_out) {
                    Ok(()) => Ok(yaml_out),
                    Err(_) => Err(json_err),
                };
            }
            Err(e) => return Err(e),
        }
    }
    parse_yaml_stream(text, &mut out)?;
    Ok(out)
}

/// Where a document came from, so a typed error can be located in the text.
enum Source {
    /// YAML text, padded with newlines so line numbers are those of the whole input.
    Yaml(String),
    /// JSON text, padded the same way.
    Json(String),
    /// No text (list items, values given directly).
    None,
}

/// Position of a document (and list item) in the input, 1-based.
#[derive(Clone, Copy)]
struct Pos {
    document: usize,
    item: Option<usize>,
}

impl Pos {
    fn error(self, reason: impl Into<String>) -> Error {
        Error::Manifest {
            document: self.document,
            item: self.item,
            reason: reason.into(),
        }
    }
}

fn parse_json_stream(text: &str, out: &mut Vec<SpiderObject>) -> Result<(), Error> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut document = 0;
    let mut start = 0;
    loop {
        let next = stream.next();
        let Some(next) = next else { break };
        document += 1;
        let pos = Pos {
            document,
            item: None,
        };
        let value = next.map_err(|e| pos.error(e.to_string()))?;
        let end = stream.byte_offset();
        let padded = pad(text, start, end);
        start = end;
        dispatch(value, &Source::Json(padded), pos, out)?;
    }
    Ok(())
}

/// `text[start..end]` preceded by as many newlines as `text[..start]` holds, so parsers
/// report line numbers of the whole input.
fn pad(text: &str, start: usize, end: usize) -> String {
    let (before, doc) = (
        text.get(..start).unwrap_or_default(),
        text.get(start..end).unwrap_or_default(),
    );
    let mut s = "\n".repeat(before.matches('\n').count());
    s.push_str(doc);
    s
}

/// One YAML document cut out of a stream.
struct YamlChunk {
    /// Line (1-based) where the document starts.
    first_line: usize,
    /// The document text, padded so line numbers match the input.
    text: String,
    /// Whether a `---` marker opened this document.
    explicit: bool,
}

/// Splits a YAML stream at `---` / `...` markers in column 0. Inside any YAML scalar such
/// markers cannot appear at column 0 (block scalars are indented, and quoted scalars may not
/// contain document markers), so a line scan is exact enough and gives each document its
/// number and first line.
fn split_yaml(text: &str) -> Vec<YamlChunk> {
    let mut chunks = Vec::new();
    let mut cur = YamlChunk {
        first_line: 1,
        text: String::new(),
        explicit: false,
    };
    for (idx, raw) in text.split_inclusive('\n').enumerate() {
        let line_no = idx + 1;
        let line = raw.trim_end_matches(['\n', '\r']);
        let is_marker = |m: &str| {
            line == m
                || line
                    .strip_prefix(m)
                    .is_some_and(|r| r.starts_with([' ', '\t']))
        };
        if is_marker("---") {
            chunks.push(cur);
            // Keep what follows the marker (`--- {a: 1}`), with the marker blanked so
            // columns stay right.
            let rest = line.get(3..).unwrap_or_default();
            cur = YamlChunk {
                first_line: line_no,
                text: format!("{}   {rest}\n", "\n".repeat(line_no - 1)),
                explicit: true,
            };
        } else if is_marker("...") {
            chunks.push(cur);
            cur = YamlChunk {
                first_line: line_no + 1,
                text: "\n".repeat(line_no),
                explicit: false,
            };
        } else if line.starts_with('%') {
            // Directives (`%YAML 1.2`) only matter to the parser's version handling; dropping
            // them keeps the chunk before the first `---` empty.
            cur.text.push('\n');
        } else {
            cur.text.push_str(raw);
        }
    }
    chunks.push(cur);
    chunks
}

fn parse_yaml_stream(text: &str, out: &mut Vec<SpiderObject>) -> Result<(), Error> {
    let text = text.trim_start_matches('\u{feff}');
    let mut document = 0;
    for (i, chunk) in split_yaml(text).into_iter().enumerate() {
        let blank = chunk
            .text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        // The text before the first `---` is not a document when it holds nothing.
        if i == 0 && blank {
            continue;
        }
        document += 1;
        if blank && !chunk.explicit {
            continue;
        }
        let pos = Pos {
            document,
            item: None,
        };
        let value: Value = serde_saphyr::from_str(&chunk.text)
            .map_err(|e| pos.error(yaml_message(&e, chunk.first_line)))?;
        dispatch(value, &Source::Yaml(chunk.text), pos, out)?;
    }
    Ok(())
}

/// A one-line message for a YAML error: `line L column C: message`.
fn yaml_message(e: &serde_saphyr::Error, fallback_line: usize) -> String {
    let msg = e.without_snippet().to_string();
    let msg = msg.trim_start_matches("error: ").trim().to_owned();
    if e.location().is_some() || msg.contains("line ") {
        msg
    } else {
        format!("line {fallback_line}: {msg}")
    }
}

/// Turns one parsed document into objects (several for a list).
fn dispatch(
    value: Value,
    source: &Source,
    pos: Pos,
    out: &mut Vec<SpiderObject>,
) -> Result<(), Error> {
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
            return Err(Error::BadApiVersion {
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
            dispatch(item, &Source::None, item_pos, out)?;
        }
        return Ok(());
    }

    let Some(info) = objects::kind_info(&kind) else {
        return Err(Error::UnknownKind {
            document: pos.document,
            item: pos.item,
            kind,
        });
    };
    if api_version != API_VERSION {
        return Err(Error::BadApiVersion {
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
    out.push(obj);
    Ok(())
}

/// Deserializes the typed object. The JSON value decides (it has Kubernetes' semantics:
/// `subnet: 4` is a number, not a string); when it fails, the same document is read again
/// straight from its text only to learn the line and column of the problem.
fn typed<T: DeserializeOwned>(value: Value, source: &Source, pos: Pos) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| {
        let location = match source {
            Source::Yaml(text) => serde_saphyr::from_str::<T>(text)
                .err()
                .and_then(|e| e.location())
                .map(|l| format!(" (line {} column {})", l.line(), l.column())),
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
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\n\
                        metadata:\n  name: p\nspec:\n  subnet: 10.6.0.0/16\n";

    #[test]
    fn manifest_split_and_numbering() {
        let text = format!("---\n{POOL}---\n\n---\n# only a comment\n---\n{POOL}...\n");
        let objs = parse_documents(&text).unwrap();
        assert_eq!(objs.len(), 2);
        assert!(
            objs.iter()
                .all(|o| o.kind() == "SpiderIPPool" && o.name() == "p")
        );
    }

    #[test]
    fn manifest_error_document_number_and_line() {
        let bad = POOL.replace(
            "subnet: 10.6.0.0/16",
            "subnet: 10.6.0.0/16\n  ipVersion: four",
        );
        let text = format!("{POOL}---\n{bad}");
        let err = parse_documents(&text).unwrap_err();
        let Error::Manifest {
            document,
            item,
            reason,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*document, *item), (2, None));
        assert!(reason.contains("invalid type: string \"four\""), "{reason}");
        // Line 14 of the whole input: 6 lines of POOL, `---`, then line 8 of `bad`.
        assert!(reason.contains("(line 14 column"), "{reason}");
    }

    #[test]
    fn manifest_yaml_syntax_error_has_global_line() {
        let text = format!("{POOL}---\nkind: [unclosed\n");
        let err = parse_documents(&text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("document 2: "), "{msg}");
        assert!(msg.contains("line 8"), "{msg}");
    }

    #[test]
    fn manifest_json_stream_and_list() {
        let pool = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "SpiderIPPool",
            "metadata": {"name": "a"}, "spec": {"subnet": "10.6.0.0/16"}
        });
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [pool.clone(), pool.clone()]});
        let text = format!("{pool}\n{list}");
        assert_eq!(parse_documents(&text).unwrap().len(), 3);
        let typed = serde_json::json!({"apiVersion": API_VERSION, "kind": "SpiderIPPoolList", "items": [pool]});
        assert_eq!(parse_documents(&typed.to_string()).unwrap().len(), 1);
    }

    #[test]
    fn manifest_from_value() {
        let v = serde_json::json!({"apiVersion": API_VERSION, "kind": "SpiderReservedIP",
                                   "metadata": {"name": "r"}, "spec": {"ips": ["10.6.0.5"]}});
        let o = SpiderObject::from_value(v.clone()).unwrap();
        assert_eq!(o.kind(), "SpiderReservedIP");
        assert_eq!(o.to_value().unwrap(), v);
        assert!(
            SpiderObject::from_value(serde_json::json!({"apiVersion": "v1", "kind": "List"}))
                .is_err()
        );
    }

    #[test]
    fn manifest_yaml_flow_mapping_that_looks_like_json() {
        let text = "{apiVersion: spiderpool.spidernet.io/v2beta1, kind: SpiderReservedIP, metadata: {name: r}}";
        assert_eq!(parse_documents(text).unwrap().len(), 1);
    }
}
