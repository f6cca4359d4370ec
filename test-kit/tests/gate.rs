//! The gate end to end: this test binary re-runs its own `#[ignore]`d child tests in a
//! changed environment (a `PATH` without `ip`, a non-root UID) and checks that a missing need
//! skips without `SPIDERPOOL_REQUIRE_ROOT`, fails with it, and that without
//! `--include-ignored` the gated tests are reported as ignored, never as passed.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use spiderpool_test_kit::gate::{self, Need, REQUIRE_ENV};

/// The UID the non-root runs use (`nobody`).
const NOBODY: u32 = 65534;

#[test]
#[ignore = "needs the program ip; also run as a child by the tests below"]
fn child_needs_ip() {
    if !gate::ready(&[Need::Program("ip")]) {
        return;
    }
    assert!(gate::on_path("ip", std::env::var_os("PATH").as_deref()));
}

#[test]
#[ignore = "needs root; also run as a child by the tests below"]
fn child_needs_root() {
    if !gate::ready(&[Need::Root]) {
        return;
    }
    assert!(nix::unistd::geteuid().is_root());
}

/// Runs this binary's test `name` (exactly), with `extra` libtest arguments; `env` is applied
/// on top of the inherited environment, `require` sets or removes the gate variable.
fn child(
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    require: bool,
    uid: Option<u32>,
) -> Output {
    let own = std::env::current_exe().expect("own test binary");
    let exe = match uid {
        Some(_) => world_executable_copy(&own),
        None => own.clone(),
    };
    let mut cmd = Command::new(&exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .args(extra)
        .envs(env.iter().copied());
    if require {
        cmd.env(REQUIRE_ENV, "1");
    } else {
        cmd.env_remove(REQUIRE_ENV);
    }
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("run the child test");
    if exe != own {
        let _ = std::fs::remove_dir_all(exe.parent().expect("the copy's dir"));
    }
    out
}

/// A copy of `exe` that another UID can run (the target dir may sit where only root can
/// enter, e.g. under `/root`), in a directory of its own: the caller removes it.
fn world_executable_copy(exe: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("test-kit-gate-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the copy's dir");
    let copy = dir.join("gate");
    std::fs::copy(exe, &copy).expect("copy the test binary");
    for p in [&dir, &copy] {
        let perms = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(p, perms).expect("make the copy executable by all");
    }
    copy
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An empty directory to use as `PATH` (left in the temp dir: empty, one per process).
fn empty_path() -> String {
    let dir = std::env::temp_dir().join(format!("test-kit-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create an empty PATH dir");
    dir.display().to_string()
}

#[test]
fn a_missing_tool_fails_the_test_when_skipping_is_forbidden() {
    let path = empty_path();
    let out = child(
        "child_needs_ip",
        &["--include-ignored"],
        &[("PATH", &path)],
        true,
        None,
    );
    let text = text(&out);
    assert!(!out.status.success(), "must fail:\n{text}");
    assert!(text.contains("the program `ip` is not on PATH"), "{text}");
    assert!(
        text.contains("SPIDERPOOL_REQUIRE_ROOT=1 forbids skipping"),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
}

#[test]
fn a_missing_tool_skips_the_test_when_skipping_is_allowed() {
    let path = empty_path();
    let out = child(
        "child_needs_ip",
        &["--include-ignored"],
        &[("PATH", &path)],
        false,
        None,
    );
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("SKIPPED: the program `ip` is not on PATH"),
        "{text}"
    );
}

/// Which UID to drop to for a non-root run: only root can switch; a non-root caller already
/// is the case under test.
fn non_root() -> Option<u32> {
    nix::unistd::geteuid().is_root().then_some(NOBODY)
}

#[test]
fn without_root_the_test_fails_when_skipping_is_forbidden() {
    let out = child(
        "child_needs_root",
        &["--include-ignored"],
        &[],
        true,
        non_root(),
    );
    let text = text(&out);
    assert!(!out.status.success(), "must fail:\n{text}");
    assert!(text.contains("needs root"), "{text}");
    assert!(text.contains("forbids skipping"), "{text}");
}

#[test]
fn without_include_ignored_a_non_root_run_reports_ignored_not_passed() {
    let out = child("child_needs_root", &[], &[], true, non_root());
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("child_needs_root ... ignored, needs root"),
        "{text}"
    );
    assert!(
        text.contains("0 passed") && text.contains("1 ignored"),
        "{text}"
    );
}
