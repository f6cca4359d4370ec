//! Runs the main job, the quick-start example, as CI's root user: the seed topology is built,
//! every ping must pass, and everything must be cleaned up afterwards.

use std::process::Command;

use spiderpool_test_kit::gate::{self, Need};

mod support;

#[test]
#[ignore = "needs root"]
fn quickstart_runs_the_seed_end_to_end() {
    let needs = [
        Need::Root,
        Need::Program("ip"),
        Need::Program("ping"),
        Need::File("/usr/lib/cni/macvlan"),
    ];
    if !gate::ready(&needs) {
        return;
    }
    let bin = support::example("quickstart");
    // No CARGO: the example must not start a nested build (scripts/test.sh built everything).
    let out = Command::new(&bin)
        .env_remove("CARGO")
        .output()
        .expect("run quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        "nginx-4653bc4f24-rswak   net1       10-6-v4    10.6.212.100/16",
        "32765:\tfrom 10.6.212.100 lookup 101",
        "32764:\tfrom 10.233.73.210 lookup 100",
        "pod -> underlay gateway: ping 10.6.0.1 via net1: ok",
        "node -> pod underlay IP: ping 10.6.212.100 via calirswak0001: ok",
        "32765:\tfrom 10.233.73.211 lookup 101",
        "10.7.212.101 leaves by net1",
        "all checks passed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // Nothing left behind.
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("spq-"),
        "namespaces left behind"
    );
}
