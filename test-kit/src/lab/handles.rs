//! Helpers over [`NetNs`] handles (anonymous namespaces held open by this process).

use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Output};

use spiderpool_netlink::NetNs;

use crate::cni::{self, Call, Run};

/// Runs `program ARGS` inside `ns` (a child forked from a thread inside `ns` starts there).
pub fn run_in(ns: &NetNs, program: &str, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let name = program.to_owned();
    ns.run(move || {
        Ok(Command::new(&name)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}")))
    })
    .unwrap_or_else(|e| panic!("cannot enter the netns to run {program}: {e}"))
}

/// `ip ARGS` inside `ns`; asserts success; stdout with trailing spaces trimmed per line
/// (iproute2 versions differ there).
pub fn ip_in(ns: &NetNs, args: &[&str]) -> String {
    let out = run_in(ns, "ip", args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    trim_lines(&out.stdout)
}

fn trim_lines(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

/// `ip route show table N` inside `ns`, empty when the table does not exist.
pub fn table(ns: &NetNs, n: &str) -> String {
    trim_lines(&run_in(ns, "ip", &["route", "show", "table", n]).stdout)
}

/// Several `ip` commands inside `ns`, one per line (arguments split on spaces).
pub fn ip_script(ns: &NetNs, script: &str) {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args: Vec<&str> = line.split_whitespace().collect();
        ip_in(ns, &args);
    }
}

/// `sysctl -w key=value` inside `ns`; asserts success.
pub fn sysctl(ns: &NetNs, key: &str, value: &str) {
    let out = run_in(ns, "sysctl", &["-qw", &format!("{key}={value}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ping -c 2 -W 1 [-I src] dst` inside `ns`: true when replies came back (the output is
/// printed when not).
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

/// A path other processes can open `ns` by (valid while this process holds the handle).
pub fn ns_path(ns: &NetNs) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_fd().as_raw_fd())
}

/// Runs the CNI plugin `program` for `call` with `stdin`, inside `ns` when given (as a
/// runtime in that namespace would).
pub fn run_plugin(program: &str, ns: Option<&NetNs>, call: &Call<'_>, stdin: &str) -> Run {
    let Some(ns) = ns else {
        return cni::run_plugin_here(program, call, stdin);
    };
    let cmd = call.command(program);
    let stdin = stdin.to_owned();
    let out = ns
        .run(move || Ok(cni::run_with_stdin(cmd, &stdin)))
        .unwrap_or_else(|e| panic!("cannot enter the netns to run {program}: {e}"))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Run::from_output(&out)
}
