//! `spiderpoolctl crds`.

use spiderpool_core::objects::crd::custom_resource_definitions;

use crate::{EXIT_BAD_INPUT, EXIT_OK, Format, output};

/// Prints the CRDs of all six kinds as YAML documents.
pub fn run() -> u8 {
    match output::render(&custom_resource_definitions(), Format::Yaml) {
        Ok(text) => output::emit_then(&text, EXIT_OK),
        Err(e) => {
            note!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}
