//! The agent's command line as a newcomer meets it (issue 9, usability and defect 12):
//! `--workers 0`, `dump --socket` with `--state-dir`, start-up errors, log levels in `--help`
//! and in the error, `dump | head`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};

use common::{AGENT, RunningAgent};

fn agent(args: &[&str]) -> Output {
    Command::new(AGENT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn workers_0_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = agent(&["--workers", "0", "--local-config", d, "--state-dir", d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--workers") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn dump_refuses_socket_with_state_dir_instead_of_ignoring_it() {
    let out = agent(&["dump", "--socket", "/tmp/x.sock", "--state-dir", "/tmp"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dump_asks_the_agent_on_the_given_socket() {
    let agent_proc = RunningAgent::start(&[], &["--store", "memory"]);
    let out = agent(&["dump", "--socket", agent_proc.socket.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node"], "test-node");
}

#[test]
fn a_start_up_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let out = agent(&[
        "--local-config",
        missing.to_str().unwrap(),
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.matches("not a directory").count(), 1, "{err}");
}

#[test]
fn help_and_the_error_list_the_same_log_levels() {
    let help = String::from_utf8(agent(&["--help"]).stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let err = stderr(&agent(&[
        "--log-level",
        "bogus",
        "--local-config",
        d,
        "--state-dir",
        d,
    ]));
    let listed = err
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(levels, _)| levels.to_owned())
        .unwrap_or_else(|| panic!("no level list in {err:?}"));
    let help_line = help
        .split("--log-level")
        .nth(1)
        .unwrap_or_default()
        .split("\n  -")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help_line.contains(&listed),
        "help: {help_line:?}; error lists {listed:?}"
    );
}

#[test]
fn dump_into_a_closed_pipe_ends_quietly() {
    let agent_proc = RunningAgent::start(&[], &["--store", "memory"]);
    let mut child = Command::new(AGENT)
        .args(["dump", "--socket", agent_proc.socket.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the agent's answer is printed, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}
