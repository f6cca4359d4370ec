//! The root/tool gate of the tests that build network namespaces or run system tools.
//!
//! Such tests are marked `#[ignore = "needs root"]`, so a plain `cargo test` as a developer
//! reports them as *ignored* (never as passed), and `scripts/test.sh` runs them with
//! `-- --include-ignored`. Inside, a test first calls [`ready`] with what it needs:
//!
//! ```no_run
//! use spiderpool_test_kit::gate::{self, Need};
//!
//! #[test]
//! #[ignore = "needs root"]
//! fn pings_through_the_lab() {
//!     if !gate::ready(&[Need::Root, Need::Program("ping"), Need::File("/usr/lib/cni/macvlan")]) {
//!         return;
//!     }
//!     // ... the test proper
//! }
//! ```
//!
//! When something is missing, [`ready`] either prints `SKIPPED: <why>` and returns `false`
//! (a developer running `--include-ignored` without root), or, when the environment variable
//! [`REQUIRE_ENV`] (`SPIDERPOOL_REQUIRE_ROOT`) is `1` — CI and `scripts/test.sh` set it —
//! panics with the same reason, so the test **fails** instead of passing vacuously.

use std::ffi::OsStr;
use std::path::Path;

/// The environment variable that turns a skip into a failure when set to `1`.
pub const REQUIRE_ENV: &str = "SPIDERPOOL_REQUIRE_ROOT";

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// An effective UID of 0 (network namespaces, veth pairs, raw sockets).
    Root,
    /// An executable of this name on `PATH` (e.g. `ip`, `nft`, `ping`).
    Program(&'a str),
    /// A file at this path (e.g. `/usr/lib/cni/macvlan`).
    File(&'a str),
    /// A non-empty environment variable (e.g. `KUBECONFIG` for the apiserver tests).
    Env(&'a str),
}

/// Whether `needs` are met. When one is not: fails the test (panics) if [`required`], else
/// prints `SKIPPED: <reason>` on stderr and returns `false`, and the caller returns early.
///
/// # Panics
///
/// When a need is unmet and `SPIDERPOOL_REQUIRE_ROOT=1`: that is the point of the gate.
#[track_caller]
pub fn ready(needs: &[Need<'_>]) -> bool {
    let verdict = decide(unmet(needs), required());
    match verdict {
        Verdict::Run => true,
        Verdict::Skip(why) => {
            eprintln!("SKIPPED: {why} (CI sets {REQUIRE_ENV}=1 and fails instead)");
            false
        }
        Verdict::Fail(why) => panic!(
            "{why}, and {REQUIRE_ENV}=1 forbids skipping: this test must run here \
             (install the tool or run as root; `.ci/run` installs what the tests need)"
        ),
    }
}

/// What the gate does with a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything needed is there: run the test.
    Run,
    /// Something is missing and skipping is allowed: return early (the reason is printed).
    Skip(String),
    /// Something is missing and [`REQUIRE_ENV`] forbids skipping: fail the test.
    Fail(String),
}

/// The gate's rule, without I/O: nothing missing runs; a missing need skips, or fails when
/// `required`.
pub fn decide(missing: Option<String>, required: bool) -> Verdict {
    match missing {
        None => Verdict::Run,
        Some(why) if required => Verdict::Fail(why),
        Some(why) => Verdict::Skip(why),
    }
}

/// Whether skipping is forbidden: `SPIDERPOOL_REQUIRE_ROOT` is `1` (or `true`).
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1" || v == "true")
}

/// The first unmet need, said plainly, or `None` when all are met.
pub fn unmet(needs: &[Need<'_>]) -> Option<String> {
    needs.iter().find_map(|need| match *need {
        Need::Root => (!nix::unistd::geteuid().is_root())
            .then(|| "needs root (network namespaces, veth pairs, raw sockets)".to_owned()),
        Need::Program(p) => (!on_path(p, std::env::var_os("PATH").as_deref()))
            .then(|| format!("the program `{p}` is not on PATH")),
        Need::File(f) => (!Path::new(f).exists()).then(|| format!("{f} is missing")),
        Need::Env(v) => std::env::var_os(v)
            .is_none_or(|x| x.is_empty())
            .then(|| format!("the environment variable {v} is not set")),
    })
}

/// Whether `program` is an executable file in one of the directories of `path` (a `PATH`
/// value), or, when it contains a `/`, whether it is one itself.
pub fn on_path(program: &str, path: Option<&OsStr>) -> bool {
    if program.contains('/') {
        return is_executable(Path::new(program));
    }
    path.map(std::env::split_paths)
        .into_iter()
        .flatten()
        .any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs_whatever_the_env_says() {
        assert_eq!(decide(None, false), Verdict::Run);
        assert_eq!(decide(None, true), Verdict::Run);
    }

    #[test]
    fn a_missing_need_skips_only_when_skipping_is_allowed() {
        let why = || Some("the program `ip` is not on PATH".to_owned());
        assert_eq!(decide(why(), false), Verdict::Skip(why().unwrap()));
        assert_eq!(decide(why(), true), Verdict::Fail(why().unwrap()));
    }

    #[test]
    fn on_path_finds_executables_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("test-kit-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let plain = dir.join("data");
        std::fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.as_path()]).unwrap();
        assert!(on_path("tool", Some(&path)));
        assert!(!on_path("data", Some(&path)), "not executable");
        assert!(!on_path("absent", Some(&path)));
        assert!(!on_path("tool", None));
        assert!(
            on_path(exe.to_str().unwrap(), None),
            "a path is checked as is"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unmet_names_the_first_missing_need() {
        assert_eq!(unmet(&[]), None);
        assert_eq!(
            unmet(&[Need::File("/nonexistent/macvlan")]),
            Some("/nonexistent/macvlan is missing".to_owned())
        );
        assert_eq!(
            unmet(&[
                Need::Program("no-such-tool-xyz"),
                Need::File("/nonexistent")
            ]),
            Some("the program `no-such-tool-xyz` is not on PATH".to_owned())
        );
        assert_eq!(
            unmet(&[Need::Env("TEST_KIT_SURELY_UNSET_VARIABLE")]),
            Some("the environment variable TEST_KIT_SURELY_UNSET_VARIABLE is not set".to_owned())
        );
        assert_eq!(unmet(&[Need::Env("PATH")]), None);
    }
}
