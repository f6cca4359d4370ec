//! Printing objects as YAML documents or JSON.

use serde::Serialize;
use serde_json::{Value, json};

use crate::Format;

/// Serializes values for stdout: YAML documents separated by `---`, or JSON (a single
/// object as is, several as a `v1` `List`, as kubectl prints them).
pub fn render<T: Serialize>(items: &[T], format: Format) -> Result<String, String> {
    let values: Vec<Value> = items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot serialize: {e}"))?;
    match format {
        Format::Json => {
            let doc = match values.as_slice() {
                [one] => one.clone(),
                _ => json!({"apiVersion": "v1", "kind": "List", "items": values}),
            };
            serde_json::to_string_pretty(&doc)
                .map(|s| s + "\n")
                .map_err(|e| format!("cannot serialize: {e}"))
        }
        Format::Yaml => {
            let mut out = String::new();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                let doc =
                    serde_saphyr::to_string(v).map_err(|e| format!("cannot serialize: {e}"))?;
                out.push_str(&doc);
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            Ok(out)
        }
    }
}
