//! Helpers shared by the root tests: the root check, running programs inside a netns.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test uses every helper

use std::process::{Command, Output};

use spiderpool_netlink::NetNs;
use spiderpool_test_kit::gate::{self, Need};

/// True when running as root; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1` (CI).
pub fn root() -> bool {
    gate::ready(&[Need::Root])
}

/// True when `program` is on PATH; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1`.
pub fn have(program: &str) -> bool {
    gate::ready(&[Need::Program(program)])
}

/// Runs `program ARGS` inside `ns` (the child inherits the netns of the thread that forks it).
pub fn run_in(ns: &NetNs, program: &str, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let program = program.to_string();
    ns.run(move || {
        Ok(Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}")))
    })
    .unwrap()
}

/// Runs `ip ARGS` inside `ns`, asserts success and returns stdout.
pub fn ip_in(ns: &NetNs, args: &[&str]) -> String {
    let out = run_in(ns, "ip", args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs several `ip` commands (one per line, arguments split on spaces) inside `ns`.
pub fn ip_script(ns: &NetNs, script: &str) {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args: Vec<&str> = line.split_whitespace().collect();
        ip_in(ns, &args);
    }
}

/// `ping -c 2 -W 1 [-I src] dst` inside `ns`: true when at least one reply came back.
pub fn ping(ns: &NetNs, src: Option<&str>, dst: &str) -> bool {
    let mut args = vec!["-n", "-c", "2", "-W", "1"];
    if let Some(src) = src {
        args.extend(["-I", src]);
    }
    args.push(dst);
    let out = run_in(ns, "ping", &args);
    if !out.status.success() {
        eprintln!(
            "ping {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}
