//! `spiderpoolctl validate`.

use spiderpool_core::admission::Switches;

use crate::input::admit_files;
use crate::{EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED, ValidateArgs, output};

/// Runs the command and returns the exit code.
pub fn run(args: &ValidateArgs) -> u8 {
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
        note!("{}", admitted.summary());
        return EXIT_REJECTED;
    }
    if let Some(format) = args.output {
        match output::render(&admitted.accepted, format) {
            Ok(text) => {
                if let Err(code) = output::emit(&text) {
                    return code;
                }
            }
            Err(e) => {
                note!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        }
    }
    note!("{}", admitted.summary());
    EXIT_OK
}
