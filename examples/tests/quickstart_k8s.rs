//! Runs the second main job, the quick start on a real one-node cluster, as CI's root user:
//! our images on a real kubelet + containerd + Multus, installed by our chart; every check of
//! the example must pass, and the cluster must be gone afterwards.
//!
//! It provisions what it needs through the project's scripts (images, kubelet, containerd,
//! runc, Multus, Helm: cached after the first run); scripts/test.sh builds them beforehand so
//! their cost shows up as its own step.

use std::path::PathBuf;
use std::process::Command;

use spiderpool_test_kit::gate;

mod support;

#[test]
#[ignore = "needs root"]
fn quickstart_k8s_runs_the_seed_on_a_real_node() {
    if !gate::ready(&support::CLUSTER_NEEDS) {
        return;
    }
    let bin = support::example("quickstart-k8s");
    let out = Command::new(&bin)
        .env_remove("SPIDERPOOL_KEEP_CLUSTER")
        .output()
        .expect("run quickstart-k8s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        // The chart's pods ran under its ServiceAccounts.
        "spiderpool-agent-",
        "spiderpool-controller-",
        // The coordinator synced from kubeadm-config.
        "phase: Synced",
        "  - 10.233.64.0/18",
        // `kubectl get se` and the seed's tables.
        "   net1        10-6-v4    10.6.212.",
        "lookup 100",
        "default via 10.6.0.1 dev net1",
        "pod -> underlay gateway: ping 10.6.0.1 via net1: ok",
        "pod -> pod (Calico-like eth0): ping 10.233.73.",
        "scale to 0 -> every address released",
        // RBAC proven: nothing our ServiceAccounts asked for was refused.
        "nothing refused",
        "spiderpool-multus: ",
        // helm uninstall ran the pre-delete hook.
        "the pre-delete hook removed the Spiderpool CRDs and webhook configurations",
        "all checks passed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // Nothing left behind: the node's namespace, its link on the host, its daemons.
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("spk-node"),
        "the node's namespace was left behind"
    );
    let link = Command::new("ip")
        .args(["link", "show", "spk-ens192"])
        .output()
        .expect("ip");
    assert!(
        !link.status.success(),
        "the node's host link was left behind"
    );
    let daemons = Command::new("pgrep")
        .args(["-f", "/tmp/spiderpool-quickstart-k8s/"])
        .output()
        .expect("pgrep");
    assert!(
        daemons.stdout.is_empty(),
        "processes left behind: {}",
        String::from_utf8_lossy(&daemons.stdout)
    );
    assert!(!PathBuf::from("/tmp/spiderpool-quickstart-k8s").exists());
}
