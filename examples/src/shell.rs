//! Running commands from an example that cleans up after itself.
//!
//! The Ctrl-C handler only sets [`INTERRUPTED`]; every step goes through [`run`] or
//! [`check_interrupt`], so an interrupted run unwinds and the cleanup guards' `Drop` runs.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the Ctrl-C handler.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Fails with "interrupted" once Ctrl-C was pressed.
pub fn check_interrupt() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted (Ctrl-C): cleaning up".into())
    } else {
        Ok(())
    }
}

/// Runs a command, failing with its stderr. Prints it first when `show` is set.
pub fn run(args: &[&str], show: bool) -> Result<String, String> {
    let (program, rest) = args.split_first().ok_or("run: no command given")?;
    run_with(Command::new(program).args(rest), show)
}

/// Runs a prepared command (environment, directory...), failing with its stderr.
pub fn run_with(cmd: &mut Command, show: bool) -> Result<String, String> {
    check_interrupt()?;
    let shown = describe(cmd);
    if show {
        println!("  $ {shown}");
    }
    let out = cmd.output().map_err(|e| format!("`{shown}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            if stderr.trim().is_empty() {
                stdout.trim()
            } else {
                stderr.trim()
            }
        ))
    }
}

/// The command line as a user would type it.
fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_and_reports_failures_with_stderr() {
        assert_eq!(run(&["sh", "-c", "echo hi"], false), Ok("hi\n".into()));
        let err = run(&["sh", "-c", "echo oops >&2; exit 3"], false).unwrap_err();
        assert!(
            err.contains("oops") && err.contains("exit status: 3"),
            "{err}"
        );
        assert!(run(&[], false).is_err());
        assert!(run(&["/nonexistent/program"], false).is_err());
    }
}
