//! `spiderpoolctl render` (waiting for `spiderpool_core::multus::render_nad`).

use crate::{EXIT_BAD_INPUT, RenderArgs};

/// Runs the command and returns the exit code.
pub fn run(_args: &RenderArgs) -> u8 {
    eprintln!("error: render is not available yet");
    EXIT_BAD_INPUT
}
