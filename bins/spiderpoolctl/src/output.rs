//! Printing objects as YAML documents or JSON, and writing stdout.

use std::io::{ErrorKind, Write};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{EXIT_BAD_INPUT, Format};

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

/// Writes `text` to stdout. When the reader went away (`spiderpoolctl crds | head`) the
/// output ends quietly, as Unix tools do: `print!` would panic on the broken pipe. Returns
/// `Err(exit code)` only for another write error, which is reported on stderr.
pub fn emit(text: &str) -> Result<(), u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            note!("error: cannot write to stdout: {e}");
            Err(EXIT_BAD_INPUT)
        }
    }
}

/// [`emit`], then `code` when it worked: the usual last step of a command.
pub fn emit_then(text: &str, code: u8) -> u8 {
    emit(text).err().unwrap_or(code)
}
