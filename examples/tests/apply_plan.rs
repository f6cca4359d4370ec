//! The `apply-plan` example (root): the plan applied to fresh namespaces verifies with no
//! drift, and the route changed by hand is reported; without root it says so and exits 0.

mod support;

use spiderpool_test_kit::gate::{self, Need};

#[test]
#[ignore = "needs root"]
fn apply_plan_verifies_clean_then_reports_the_route_changed_by_hand() {
    if !gate::ready(&[Need::Root, Need::Program("ip")]) {
        return;
    }
    let out = support::run("apply-plan", &[], &[], b"");
    let (stdout, stderr) = support::texts(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (before, after) = stdout
        .split_once("by hand, in the pod: ip route change default via 10.6.0.254")
        .unwrap_or_else(|| panic!("no change by hand in:\n{stdout}"));
    assert!(
        before.contains("ip rule add from 10.6.212.145 lookup 101 pref 32765"),
        "{before}"
    );
    assert!(before.contains("\nverify: no drift\n"), "{before}");
    let drift: Vec<&str> = after.lines().filter(|l| l.starts_with("pod: ")).collect();
    assert_eq!(drift.len(), 1, "{after}");
    assert!(
        drift[0].contains(": differs: ip route add default via 10.6.0.1 dev net1")
            && drift[0].contains("table 101")
            && drift[0].contains("via 10.6.0.254"),
        "{after}"
    );
}

#[test]
#[ignore = "needs root"]
fn apply_plan_without_root_says_so_and_exits_0() {
    // Root is needed to drop to another user.
    if !gate::ready(&[Need::Root, Need::Program("setpriv")]) {
        return;
    }
    let bin = support::example("apply-plan");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .output()
        .unwrap();
    let (stdout, stderr) = support::texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("apply-plan needs root:") && stdout.contains("Nothing was done."),
        "{stdout}"
    );
}
