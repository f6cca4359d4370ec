//! What the example tests share: finding and running an example binary, and what a run on
//! the real cluster needs.

#![allow(dead_code)] // each test file uses part of it

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use spiderpool_test_kit::gate::Need;

/// What a run on the real one-node cluster (`hack/cluster.sh`) needs on this machine.
pub const CLUSTER_NEEDS: [Need<'static>; 5] = [
    Need::Root,
    Need::Program("ip"),
    Need::Program("nsenter"),
    Need::Program("go"),
    Need::File("/usr/lib/cni/ptp"),
];

/// `target/<profile>/examples/<name>`. `cargo test -p spiderpool-examples` builds the
/// examples beside the tests (a run filtered with `--test` alone does not: build them with
/// `cargo build -p spiderpool-examples --examples` first).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} missing: build it with `cargo build -p spiderpool-examples --examples`",
        bin.display()
    );
    bin
}

/// Runs example `name` with `args`, the environment `env` and `stdin`.
pub fn run(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(example(name))
        .args(args)
        .envs(env.iter().copied())
        // No CARGO: an example must not start a nested build.
        .env_remove("CARGO")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("run the example")
}

/// stdout and stderr, for assertion messages.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
