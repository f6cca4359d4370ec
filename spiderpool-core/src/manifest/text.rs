//! Manifest text (YAML and JSON) in and out: the `manifest` feature.

use crate::manifest::ManifestError;
use serde_json::Value;

use super::{Foreign, Pos, Sink, Source, SpiderObject, dispatch};

/// What a lenient read of a manifest found: the Spiderpool objects and the other objects
/// skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// Spiderpool objects, in order.
    pub objects: Vec<SpiderObject>,
    /// Objects of other API groups (Deployments, ConfigMaps...), in order.
    pub skipped: Vec<Foreign>,
}

/// Reads every Spiderpool object of a YAML or JSON manifest, in order.
///
/// Empty documents are skipped. The first problem stops reading and is returned with its
/// 1-based document number: bad syntax, a document that is not a mapping, a missing or
/// unknown `kind`, a wrong `apiVersion` (only `spiderpool.spidernet.io/v2beta1` is served),
/// or a field of the wrong type or unknown to the kind.
pub fn parse_documents(text: &str) -> Result<Vec<SpiderObject>, ManifestError> {
    let mut sink = Sink::strict();
    read(text, &mut sink)?;
    Ok(sink.objects)
}

/// Reads a manifest as `kubectl apply` would see it: like [`parse_documents`], but objects
/// whose `apiVersion` belongs to another API group (what `helm template` prints beside the
/// Spiderpool objects) are skipped and listed instead of refused. An unknown kind of the
/// Spiderpool group is still an error (a typo must not go unnoticed).
pub fn parse_manifest(text: &str) -> Result<Manifest, ManifestError> {
    let mut sink = Sink::lenient();
    read(text, &mut sink)?;
    Ok(Manifest {
        objects: sink.objects,
        skipped: sink.foreign.unwrap_or_default(),
    })
}

/// Reads JSON or YAML text into `sink`.
fn read(text: &str, sink: &mut Sink) -> Result<(), ManifestError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut json_sink = Sink {
            objects: Vec::new(),
            foreign: sink.foreign.as_ref().map(|_| Vec::new()),
        };
        return match parse_json_stream(text, &mut json_sink) {
            Ok(()) => {
                *sink = json_sink;
                Ok(())
            }
            // `{a: 1}` is YAML flow syntax, not JSON: retry as YAML, but if that fails too
            // the JSON error is the more useful one.
            Err(json_err @ ManifestError::Document { .. })
                if json_sink.objects.is_empty()
                    && json_sink.foreign.as_ref().is_none_or(Vec::is_empty) =>
            {
                parse_yaml_stream(text, sink).map_err(|_| json_err)
            }
            Err(e) => Err(e),
        };
    }
    parse_yaml_stream(text, sink)
}

/// Writes one object as YAML.
pub fn to_yaml(obj: &SpiderObject) -> Result<String, ManifestError> {
    serde_saphyr::to_string(obj).map_err(|e| obj.ser_error(e.to_string()))
}

/// Writes objects as one YAML stream, documents separated by `---`.
pub fn to_yaml_documents(objs: &[SpiderObject]) -> Result<String, ManifestError> {
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
fn parse_json_stream(text: &str, sink: &mut Sink) -> Result<(), ManifestError> {
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
        dispatch(value, &Source::Json(padded), pos, sink)?;
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

fn parse_yaml_stream(text: &str, sink: &mut Sink) -> Result<(), ManifestError> {
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
        dispatch(value, &Source::Yaml(chunk.text), pos, sink)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::API_VERSION;

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
        let ManifestError::Document {
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

    #[test]
    fn manifest_lenient_read_skips_other_api_groups_only() {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n---\n{POOL}---\n\
             apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: ConfigMap}}\n"
        );
        let m = parse_manifest(&text).unwrap();
        assert_eq!(m.objects.len(), 1);
        let skipped: Vec<(usize, Option<usize>, &str)> = m
            .skipped
            .iter()
            .map(|f| (f.document, f.item, f.kind.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [(1, None, "Deployment"), (3, Some(1), "ConfigMap")]
        );
        // The strict reader still refuses them.
        assert!(matches!(
            parse_documents(&text),
            Err(ManifestError::UnknownKind { document: 1, .. })
        ));
        // A misspelt kind of the Spiderpool group is never skipped.
        let typo = POOL.replace("kind: SpiderIPPool", "kind: SpiderIPPol");
        assert!(matches!(
            parse_manifest(&typo),
            Err(ManifestError::UnknownKind { .. })
        ));
        // Nor is a Spiderpool kind under a wrong version of the group.
        let version = POOL.replace("v2beta1", "v1");
        assert!(matches!(
            parse_manifest(&version),
            Err(ManifestError::BadApiVersion { .. })
        ));
    }
}
