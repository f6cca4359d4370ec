//! `spiderpoolctl render`.

use spiderpool_core::admission::Switches;
use spiderpool_core::manifest::SpiderObject;
use spiderpool_core::multus::render_nad;

use crate::input::admit_files;
use crate::{EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED, RenderArgs, output};

/// Admits every object of the files (so pools referenced by the SpiderMultusConfigs are
/// checked too), then prints the NAD of each SpiderMultusConfig. Returns the exit code.
pub fn run(args: &RenderArgs) -> u8 {
    let switches = Switches::from(&args.switches);
    let admitted = match admit_files(&args.files, args.cluster.as_deref(), &switches) {
        Ok(a) => a,
        Err(bad) => {
            note!("error: {}", bad.0);
            return EXIT_BAD_INPUT;
        }
    };
    if !admitted.rejected.is_empty() {
        for r in &admitted.rejected {
            for line in r.lines() {
                note!("{line}");
            }
        }
        return EXIT_REJECTED;
    }
    let mut nads = Vec::new();
    for obj in &admitted.accepted {
        if let SpiderObject::MultusConfig(smc) = obj {
            match render_nad(smc) {
                Ok(nad) => nads.push(nad),
                Err(e) => {
                    // Admission should have refused anything that cannot render.
                    note!("SpiderMultusConfig/{}: {e}", obj.name());
                    return EXIT_REJECTED;
                }
            }
        }
    }
    if nads.is_empty() {
        note!("error: no SpiderMultusConfig in the input");
        return EXIT_BAD_INPUT;
    }
    match output::render(&nads, args.output) {
        Ok(text) => output::emit_then(&text, EXIT_OK),
        Err(e) => {
            note!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}
