//! Bad input and failures of the built binary: the CNI code and message, and (in namespaces,
//! as root) that nothing is left half-applied.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::Path;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_coordinator");

/// A prevResult as Debian's macvlan prints it (upstream-observed §1.3).
const PREV: &str = r#"{
    "cniVersion": "0.3.1",
    "interfaces": [
        {
            "name": "net1",
            "mac": "6a:1b:e7:ac:f8:a0",
            "sandbox": "/var/run/netns/sppod1"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 0,
            "address": "10.6.212.145/16",
            "gateway": "10.6.0.1"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        }
    ],
    "dns": {}
}"#;

/// A netns path that is never opened by these calls (they fail or stop before).
const NO_NETNS: &str = "/var/run/netns/never-opened";

fn run(socket: &Path, command: &str, version: &str, extra: &str, prev: Option<&str>) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let conf = coordinator_conf(version, socket, &logs.path().join("c.log"), extra, prev);
    let call = Call::add(NO_NETNS, "cid-1", "net1").with(command);
    run_plugin(BIN, None, &call, &conf)
}

#[test]
fn missing_prev_result_is_code_7() {
    let agent = FakeAgent::start();
    let r = run(&agent.socket, "ADD", "0.3.1", "", None);
    assert_eq!(r.code, 1);
    assert_eq!(r.cni_code(), Some(7), "{}", r.stdout);
    assert!(r.stdout.contains("missing prevResult"), "{}", r.stdout);
    assert!(agent.seen.lock().unwrap().is_empty());
}

#[test]
fn unknown_mode_is_code_7_before_the_agent_is_asked() {
    let agent = FakeAgent::start();
    let r = run(
        &agent.socket,
        "ADD",
        "0.3.1",
        r#","mode":"sideways""#,
        Some(PREV),
    );
    assert_eq!(r.cni_code(), Some(7), "{}", r.stdout);
    assert!(r.stdout.contains("sideways"), "{}", r.stdout);
    assert!(agent.seen.lock().unwrap().is_empty());
    // The same from the agent's side (SpiderCoordinator spec.mode) is also code 7.
    agent.answer(
        200,
        &SEED_AGENT.replace(r#""mode":"auto""#, r#""mode":"sideways""#),
    );
    let r = run(&agent.socket, "ADD", "0.3.1", r#","mode":"""#, Some(PREV));
    assert_eq!(r.cni_code(), Some(7), "{}", r.stdout);
    // A bad CIDR in the agent's answer names the key.
    agent.answer(200, &SEED_AGENT.replace("10.233.0.0/18", "10.233.0.0/33"));
    let r = run(&agent.socket, "ADD", "0.3.1", "", Some(PREV));
    assert_eq!(r.cni_code(), Some(7), "{}", r.stdout);
    assert!(r.stdout.contains("serviceCIDR"), "{}", r.stdout);
}

#[test]
fn agent_down_is_code_11_for_add_del_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    for (command, version) in [("ADD", "0.3.1"), ("DEL", "0.3.1"), ("CHECK", "1.0.0")] {
        let r = run(&socket, command, version, "", Some(PREV));
        assert_eq!(r.code, 1, "{command}");
        assert_eq!(r.cni_code(), Some(11), "{command}: {}", r.stdout);
        assert!(r.stdout.contains("absent.sock"), "{}", r.stdout);
        assert!(r.stdout.contains("try again later"), "{}", r.stdout);
    }
    // STATUS says the plugin is not available, with the reason.
    let r = run(&socket, "STATUS", "1.1.0", "", None);
    assert_eq!(r.cni_code(), Some(50), "{}", r.stdout);
    assert!(r.stdout.contains("absent.sock"), "{}", r.stdout);
}

#[test]
fn agent_refusal_is_code_999_with_its_message() {
    let agent = FakeAgent::start();
    agent.answer(500, r#""failed to get pod default/nope""#);
    let r = run(&agent.socket, "ADD", "0.3.1", "", Some(PREV));
    assert_eq!(r.cni_code(), Some(999), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("failed to GetCoordinatorConfig: failed to get pod default/nope"),
        "{}",
        r.stdout
    );
}

#[test]
fn disable_prints_prev_result_without_asking_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    for mode in ["disable", "disabled"] {
        let r = run(
            &socket,
            "ADD",
            "0.3.1",
            &format!(r#","mode":"{mode}""#),
            Some(PREV),
        );
        assert_eq!((r.code, r.stdout.as_str()), (0, PREV), "{}", r.stdout);
        let r = run(
            &socket,
            "DEL",
            "0.3.1",
            &format!(r#","mode":"{mode}""#),
            None,
        );
        assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    }
    // The agent can turn it off too.
    let agent = FakeAgent::start();
    agent.answer(200, r#"{"mode":"disable","tunePodRoutes":true}"#);
    let r = run(&agent.socket, "ADD", "0.3.1", r#","mode":"""#, Some(PREV));
    assert_eq!((r.code, r.stdout.as_str()), (0, PREV), "{}", r.stdout);
}

#[test]
fn version_gc_status() {
    let agent = FakeAgent::start();
    let r = run(&agent.socket, "VERSION", "1.1.0", "", None);
    assert_eq!(
        r.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
    let r = run(&agent.socket, "GC", "1.1.0", "", None);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let r = run(&agent.socket, "STATUS", "1.1.0", "", None);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stdout);
    let r = run(&agent.socket, "CHECK", "0.3.1", "", Some(PREV));
    assert_eq!(r.cni_code(), Some(1), "CHECK needs 0.4.0: {}", r.stdout);
}

/// Everything the coordinator could touch, as text.
fn snapshot(seed: &Seed) -> String {
    let mut s = String::new();
    for (name, ns) in [("pod", &seed.pod), ("node", &seed.node)] {
        s += &format!("## {name}\n");
        s += &ip_in(ns, &["rule"]);
        s += &ip_in(ns, &["route", "show", "table", "all"]);
        s += &ip_in(ns, &["neigh", "show", "nud", "permanent"]);
        s += &ip_in(ns, &["-br", "link"]);
    }
    s
}

#[test]
#[ignore = "needs root"]
fn default_route_nic_that_does_not_exist_changes_nothing() {
    if !gate::ready(&[Need::Root, Need::File(MACVLAN)]) {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    agent.answer(
        200,
        &SEED_AGENT.replace(
            r#""podDefaultRouteNIC":"""#,
            r#""podDefaultRouteNIC":"net7""#,
        ),
    );
    let path = ns_path(&seed.pod);
    let prev = add_net1(&seed, "cid-bad-1", "net1");
    let before = snapshot(&seed);
    let logs = tempfile::tempdir().unwrap();
    let conf = coordinator_conf(
        "0.3.1",
        &agent.socket,
        &logs.path().join("c.log"),
        "",
        Some(&prev),
    );
    let r = run_plugin(
        BIN,
        Some(&seed.node),
        &Call::add(&path, "cid-bad-1", "net1"),
        &conf,
    );
    assert_eq!(r.cni_code(), Some(999), "{}", r.stdout);
    assert!(r.stdout.contains("net7"), "{}", r.stdout);
    assert_eq!(snapshot(&seed), before);
}

#[test]
#[ignore = "needs root"]
fn node_plan_failure_rolls_the_pod_plan_back() {
    if !gate::ready(&[Need::Root, Need::File(MACVLAN)]) {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let path = ns_path(&seed.pod);
    let prev = add_net1(&seed, "cid-bad-2", "net1");
    // The kernel refuses a route through a link that is down ("Device for nexthop is not
    // up"): the node's table-500 route fails after the pod plan succeeded.
    ip_in(&seed.node, &["link", "set", "calitest", "down"]);
    // The pod's routes via eth0 are flagged `linkdown` a moment later: wait for it, or the
    // snapshot below races the kernel.
    for _ in 0..100 {
        if ip_in(&seed.pod, &["route"]).contains("linkdown") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = snapshot(&seed);
    let logs = tempfile::tempdir().unwrap();
    let conf = coordinator_conf(
        "0.3.1",
        &agent.socket,
        &logs.path().join("c.log"),
        "",
        Some(&prev),
    );
    let r = run_plugin(
        BIN,
        Some(&seed.node),
        &Call::add(&path, "cid-bad-2", "net1"),
        &conf,
    );
    assert_eq!(r.cni_code(), Some(999), "{}", r.stdout);
    assert!(r.stdout.contains("applying the node plan"), "{}", r.stdout);
    assert!(r.stdout.contains("table 500"), "{}", r.stdout);
    assert!(
        r.stdout.contains("the pod plan was rolled back"),
        "{}",
        r.stdout
    );
    assert_eq!(snapshot(&seed), before);
}

#[test]
fn a_netns_path_that_is_not_a_netns_is_code_8_for_add_and_check() {
    let agent = FakeAgent::start();
    let dir = tempfile::tempdir().unwrap();
    // What a netns mount point becomes once the netns is unmounted: an empty regular file.
    let leftover = dir.path().join("leftover");
    std::fs::write(&leftover, b"").unwrap();
    let leftover = leftover.to_str().unwrap();
    let logs = tempfile::tempdir().unwrap();
    for (command, version, what) in [
        ("ADD", "0.3.1", "a regular file"),
        ("CHECK", "1.0.0", "a regular file"),
        ("ADD", "0.3.1", "a directory"),
    ] {
        let path = if what == "a directory" {
            dir.path().to_str().unwrap()
        } else {
            leftover
        };
        let conf = coordinator_conf(
            version,
            &agent.socket,
            &logs.path().join("c.log"),
            "",
            Some(PREV),
        );
        let r = run_plugin(
            BIN,
            None,
            &Call::add(path, "cid-1", "net1").with(command),
            &conf,
        );
        assert_eq!(r.cni_code(), Some(8), "{command}: {}", r.stdout);
        assert!(
            r.stdout.contains(&format!(
                "CNI_NETNS {path} is not a network namespace but {what}"
            )),
            "{}",
            r.stdout
        );
    }
    assert!(agent.seen.lock().unwrap().is_empty());
}

#[test]
fn a_forged_pod_identity_is_code_4_before_the_agent_is_asked() {
    let agent = FakeAgent::start();
    let logs = tempfile::tempdir().unwrap();
    let conf = coordinator_conf(
        "0.3.1",
        &agent.socket,
        &logs.path().join("c.log"),
        "",
        Some(PREV),
    );
    for (args, key) in [
        (
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=a\nb",
            "K8S_POD_NAME",
        ),
        ("K8S_POD_NAMESPACE=a/b;K8S_POD_NAME=c", "K8S_POD_NAMESPACE"),
    ] {
        for command in ["ADD", "DEL"] {
            let call = Call {
                args,
                ..Call::add(NO_NETNS, "cid-1", "net1").with(command)
            };
            let r = run_plugin(BIN, None, &call, &conf);
            assert_eq!(r.cni_code(), Some(4), "{command} {args:?}: {}", r.stdout);
            assert!(
                r.stdout.contains(&format!("invalid {key} in CNI_ARGS")),
                "{}",
                r.stdout
            );
        }
    }
    assert!(agent.seen.lock().unwrap().is_empty());
    let log = std::fs::read_to_string(logs.path().join("c.log")).unwrap_or_default();
    assert!(!log.lines().any(|l| l == "b"), "a forged log line: {log}");
}

#[test]
#[ignore = "needs root"]
fn the_nodes_own_netns_is_refused_and_nothing_changes() {
    if !gate::ready(&[Need::Root, Need::File(MACVLAN)]) {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let prev = add_net1(&seed, "cid-own-1", "net1");
    let before = snapshot(&seed);
    let logs = tempfile::tempdir().unwrap();
    let node_path = ns_path(&seed.node);
    for (command, version) in [("ADD", "0.3.1"), ("CHECK", "0.4.0")] {
        let conf = coordinator_conf(
            version,
            &agent.socket,
            &logs.path().join("c.log"),
            "",
            Some(&prev),
        );
        // The plugin runs in the node: its own netns by /proc/self and by another path.
        for path in ["/proc/self/ns/net", node_path.as_str()] {
            let call = Call::add(path, "cid-own-1", "net1").with(command);
            let r = run_plugin(BIN, Some(&seed.node), &call, &conf);
            assert_eq!(r.cni_code(), Some(8), "{command} {path}: {}", r.stdout);
            assert!(
                r.stdout
                    .contains("plugin's netns and netns from CNI_NETNS should not be the same"),
                "{}",
                r.stdout
            );
        }
    }
    assert!(agent.seen.lock().unwrap().is_empty());
    assert_eq!(snapshot(&seed), before);
    // DEL with the node's own netns does the node-side teardown only and succeeds.
    let conf = coordinator_conf(
        "0.3.1",
        &agent.socket,
        &logs.path().join("c.log"),
        "",
        Some(&prev),
    );
    let call = Call::add("/proc/self/ns/net", "cid-own-1", "net1").with("DEL");
    let r = run_plugin(BIN, Some(&seed.node), &call, &conf);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(snapshot(&seed), before);
    let log = std::fs::read_to_string(logs.path().join("c.log")).unwrap();
    assert!(log.contains("is the node's own network namespace"), "{log}");
}

#[test]
#[ignore = "needs root"]
fn del_with_a_leftover_netns_file_tears_down_the_node_side_and_succeeds() {
    if !gate::ready(&[Need::Root, Need::File(MACVLAN)]) {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let path = ns_path(&seed.pod);
    let prev = add_net1(&seed, "cid-left-1", "net1");
    let logs = tempfile::tempdir().unwrap();
    let conf = coordinator_conf(
        "0.3.1",
        &agent.socket,
        &logs.path().join("c.log"),
        "",
        Some(&prev),
    );
    let r = run_plugin(
        BIN,
        Some(&seed.node),
        &Call::add(&path, "cid-left-1", "net1"),
        &conf,
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(table(&seed.node, "500").contains("10.6.212.145"));
    // The runtime's netns mount point, left behind as a plain file.
    let dir = tempfile::tempdir().unwrap();
    let leftover = dir.path().join("cni-1234");
    std::fs::write(&leftover, b"").unwrap();
    let call = Call::add(leftover.to_str().unwrap(), "cid-left-1", "net1").with("DEL");
    let r = run_plugin(BIN, Some(&seed.node), &call, &conf);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(table(&seed.node, "500"), "", "the node side is torn down");
    let log = std::fs::read_to_string(logs.path().join("c.log")).unwrap();
    assert!(
        log.contains("is not a network namespace but a regular file"),
        "{log}"
    );
}
