//! The built `coordinator` binary on the seed's overlay topology (upstream-observed §1.1) in
//! real network namespaces, chained after Debian's macvlan plugin, against a fake agent:
//!
//! ```text
//!  router netns         node netns                              pod netns
//!  eth0 10.6.0.1/16 ── ens192 10.6.212.132/16 ── (macvlan) ──── net1 10.6.212.145/16
//!                       calitest (proxy ARP) ─────────────────── eth0 10.233.73.210/32
//! ```
//!
//! The tables are compared with upstream's captured ones (§1.3, §1.4) and the connectivity
//! matrix of §3 item 9 is checked with `ping`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_coordinator");

fn ready() -> bool {
    gate::ready(&[Need::Root, Need::Program("ping"), Need::File(MACVLAN)])
}

const POD_RULES: &str = "0:\tfrom all lookup local
32764:\tfrom 10.233.73.210 lookup 100
32765:\tfrom 10.6.212.145 lookup 101
32766:\tfrom all lookup main
32767:\tfrom all lookup default
";

const POD_MAIN: &str = "default via 169.254.1.1 dev eth0
10.6.0.0/16 dev net1 proto kernel scope link src 10.6.212.145
10.6.212.132 dev eth0 scope link src 10.233.73.210
10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210
10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210
169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210
169.254.1.1 dev eth0 scope link
";

const POD_101: &str = "default via 10.6.0.1 dev net1
10.6.0.0/16 dev net1 scope link src 10.6.212.145
10.6.212.132 dev eth0 scope link src 10.233.73.210
";

const NODE_RULES: &str = "0:\tfrom all lookup local
1000:\tfrom all lookup 500
32766:\tfrom all lookup main
32767:\tfrom all lookup default
";

fn mac_of(ns: &spiderpool_netlink::NetNs, dev: &str) -> String {
    let out = ip_in(ns, &["-br", "link", "show", dev]);
    out.split_whitespace().nth(2).unwrap().to_owned()
}

#[test]
#[ignore = "needs root"]
fn overlay_net1_matches_upstream_and_pings() {
    if !ready() {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("coordinator.log");
    let path = ns_path(&seed.pod);
    let cid = "cid-overlay-0001";

    let prev = add_net1(&seed, cid, "net1");
    // Before the coordinator: the node cannot reach the macvlan address (§1.6).
    assert!(!ping(&seed.node, None, "10.6.212.145"));

    let conf = coordinator_conf("0.3.1", &agent.socket, &log, "", Some(&prev));
    let add = Call::add(&path, cid, "net1");
    let run = run_plugin(BIN, Some(&seed.node), &add, &conf);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout, prev,
        "prevResult is printed unchanged, byte for byte"
    );

    // The agent request has upstream's shape (§3 item 5).
    let seen = agent.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].line, "GET /v1/coordinator/config HTTP/1.1");
    assert_eq!(
        seen[0].body,
        "{\"podName\":\"test-pod\",\"podNamespace\":\"default\"}\n"
    );

    // Upstream-observed §1.3, modulo MACs.
    let pod = &seed.pod;
    assert_eq!(ip_in(pod, &["rule"]), POD_RULES);
    assert_eq!(ip_in(pod, &["route"]), POD_MAIN);
    assert_eq!(table(pod, "100"), "default via 169.254.1.1 dev eth0\n");
    assert_eq!(table(pod, "101"), POD_101);
    assert_eq!(table(pod, "102"), "");
    assert_eq!(
        ip_in(pod, &["neigh", "show", "nud", "permanent"]),
        "10.6.212.132 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT\n"
    );
    let node = &seed.node;
    assert_eq!(ip_in(node, &["rule"]), NODE_RULES);
    assert_eq!(table(node, "500"), "10.6.212.145 dev calitest scope link\n");
    assert_eq!(
        ip_in(node, &["neigh", "show", "nud", "permanent"]),
        format!(
            "10.6.212.145 dev calitest lladdr {} PERMANENT\n",
            mac_of(pod, "eth0")
        )
    );
    // The plan is in the log as `ip` commands.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("ip rule add from 10.6.212.145 lookup 101 pref 32765"),
        "{text}"
    );

    // Connectivity (§3 item 9, overlay column).
    assert!(ping(pod, None, "10.6.212.132"), "pod → node via eth0");
    assert!(ip_in(pod, &["route", "get", "10.6.212.132"]).contains("dev eth0"));
    assert!(ping(pod, None, "10.6.0.1"), "pod → router via net1");
    assert!(ip_in(pod, &["route", "get", "10.6.0.1"]).contains("dev net1"));
    assert!(
        ping(&seed.router, None, "10.6.212.145"),
        "router → pod net1"
    );
    assert!(
        ping(node, None, "10.6.212.145"),
        "node → pod net1 via table 500"
    );
    assert!(ip_in(node, &["route", "get", "10.6.212.145"]).contains("table 500"));
    assert!(ping(node, None, "10.233.73.210"), "node → pod eth0");
    assert!(
        ping(pod, Some("10.6.212.145"), "10.6.212.132"),
        "from the net1 address to the node, by table 101"
    );

    // A repeated ADD changes nothing and succeeds.
    let run = run_plugin(BIN, Some(node), &add, &conf);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(ip_in(pod, &["rule"]), POD_RULES);
    assert_eq!(table(pod, "101"), POD_101);

    // CHECK (0.4.0+): no drift, then drift after someone removes a rule.
    let check_conf = coordinator_conf("0.4.0", &agent.socket, &log, "", Some(&prev));
    let run = run_plugin(BIN, Some(node), &add.with("CHECK"), &check_conf);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    ip_in(
        pod,
        &["rule", "del", "from", "10.6.212.145", "lookup", "101"],
    );
    let run = run_plugin(BIN, Some(node), &add.with("CHECK"), &check_conf);
    assert_eq!(run.cni_code(), Some(999), "{}", run.stdout);
    assert!(
        run.stdout.contains("from 10.6.212.145 lookup 101"),
        "{}",
        run.stdout
    );
    ip_in(
        pod,
        &[
            "rule",
            "add",
            "from",
            "10.6.212.145",
            "lookup",
            "101",
            "pref",
            "32765",
        ],
    );

    // DEL (upstream's config: no prevResult): the node entries for 10.6.212.145 go, the shared
    // rule stays; a second DEL is fine.
    let del_conf = coordinator_conf("0.3.1", &agent.socket, &log, "", None);
    let run = run_plugin(BIN, Some(node), &add.with("DEL"), &del_conf);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    assert_eq!(table(node, "500"), "");
    assert_eq!(ip_in(node, &["neigh", "show", "nud", "permanent"]), "");
    assert_eq!(ip_in(node, &["rule"]), NODE_RULES);
    let run = run_plugin(BIN, Some(node), &add.with("DEL"), &del_conf);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
#[ignore = "needs root"]
fn default_route_nic_net1_from_the_agent_matches_upstream() {
    if !ready() {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    agent.answer(
        200,
        &SEED_AGENT.replace(
            r#""podDefaultRouteNIC":"""#,
            r#""podDefaultRouteNIC":"net1""#,
        ),
    );
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("coordinator.log");
    let path = ns_path(&seed.pod);
    let cid = "cid-overlay-0002";
    let prev = add_net1(&seed, cid, "net1");
    let conf = coordinator_conf("0.3.1", &agent.socket, &log, "", Some(&prev));
    let add = Call::add(&path, cid, "net1");
    let run = run_plugin(BIN, Some(&seed.node), &add, &conf);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, prev);
    assert_default_route_nic_net1(&seed);

    // DEL with the pod netns gone: the addresses come from prevResult.
    let del_conf = coordinator_conf("0.3.1", &agent.socket, &log, "", Some(&prev));
    let gone = Call {
        netns: "/proc/self/ns/does-not-exist",
        ..add.with("DEL")
    };
    let run = run_plugin(BIN, Some(&seed.node), &gone, &del_conf);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    assert_eq!(table(&seed.node, "500"), "");
}

#[test]
#[ignore = "needs root"]
fn default_route_nic_net1_from_a_local_annotation() {
    if !ready() {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("coordinator.log");
    let path = ns_path(&seed.pod);
    let cid = "cid-overlay-0003";
    let prev = add_net1(&seed, cid, "net1");
    let extra = r#","args":{"cni":{"annotations":{"ipam.spidernet.io/default-route-nic":"net1"}}}"#;
    let conf = coordinator_conf("1.0.0", &agent.socket, &log, extra, Some(&prev));
    let run = run_plugin(BIN, Some(&seed.node), &Call::add(&path, cid, "net1"), &conf);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Printed in the configuration's version (1.0.0 layout: sorted keys, no ips[].version).
    assert!(
        run.stdout.starts_with("{\n    \"cniVersion\": \"1.0.0\""),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("\"version\""));
    assert_default_route_nic_net1(&seed);
}

/// Upstream-observed §1.4.
fn assert_default_route_nic_net1(seed: &Seed) {
    let pod = &seed.pod;
    assert_eq!(
        ip_in(pod, &["rule"]),
        "0:\tfrom all lookup local
32765:\tfrom 10.233.73.210 lookup 101
32766:\tfrom all lookup main
32767:\tfrom all lookup default
"
    );
    assert_eq!(
        ip_in(pod, &["route"]),
        "default via 10.6.0.1 dev net1
10.6.0.0/16 dev net1 proto kernel scope link src 10.6.212.145
10.6.212.132 dev eth0 scope link src 10.233.73.210
10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210
10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210
169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210
169.254.1.1 dev eth0 scope link
"
    );
    assert_eq!(table(pod, "100"), "");
    assert_eq!(
        table(pod, "101"),
        "default via 169.254.1.1 dev eth0
10.6.212.132 dev eth0 scope link src 10.233.73.210
10.233.0.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210
10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210
169.254.0.0/16 via 10.6.212.132 dev eth0 src 10.233.73.210
169.254.1.1 dev eth0 scope link
"
    );
    assert_eq!(
        table(&seed.node, "500"),
        "10.6.212.145 dev calitest scope link\n"
    );
    assert!(ping(pod, None, "10.6.212.132"), "pod → node via eth0");
    assert!(ping(pod, None, "10.6.0.1"), "pod → router via net1");
    assert!(ip_in(pod, &["route", "get", "1.1.1.1"]).contains("dev net1"));
    assert!(ping(&seed.router, None, "10.6.212.145"), "router → pod");
    assert!(ping(&seed.node, None, "10.6.212.145"), "node → pod net1");
    assert!(ping(&seed.node, None, "10.233.73.210"), "node → pod eth0");
}

#[test]
#[ignore = "needs root"]
fn pod_mac_prefix_sets_the_mac_and_announces_it() {
    if !ready() {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("coordinator.log");
    let path = ns_path(&seed.pod);
    let cid = "cid-overlay-0004";
    let prev = add_net1(&seed, cid, "net1");
    // The router learns net1's first MAC.
    assert!(ping(&seed.router, None, "10.6.212.145"));
    let old = mac_of(&seed.pod, "net1");
    // The pod must not tell the router by itself (an ARP request from the pod carries its MAC
    // and updates the router's entry too): its entry for the router is fixed.
    let router_mac = mac_of(&seed.router, "eth0");
    ip_in(
        &seed.pod,
        &[
            "neigh",
            "replace",
            "10.6.0.1",
            "lladdr",
            &router_mac,
            "nud",
            "permanent",
            "dev",
            "net1",
        ],
    );
    assert!(
        ip_in(&seed.router, &["neigh", "show", "10.6.212.145"]).contains(&old),
        "router has not cached {old}"
    );

    let conf = coordinator_conf(
        "0.3.1",
        &agent.socket,
        &log,
        r#","podMACPrefix":"0a:1b""#,
        Some(&prev),
    );
    let run = run_plugin(BIN, Some(&seed.node), &Call::add(&path, cid, "net1"), &conf);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // prefix + the address's 4 bytes (10.6.212.145 = 0a:06:d4:91), spec §4.4 step 11.
    let new = "0a:1b:0a:06:d4:91";
    assert_eq!(mac_of(&seed.pod, "net1"), new);
    // The gratuitous ARP told the router, before any new traffic between them.
    let neigh = ip_in(&seed.router, &["neigh", "show", "10.6.212.145"]);
    assert!(neigh.contains(new), "router still has {neigh:?}");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("not sent"));
    assert!(ping(&seed.router, None, "10.6.212.145"));
}

#[test]
#[ignore = "needs root"]
fn overlay_net2_gets_its_own_table_and_keeps_net1() {
    if !ready() {
        return;
    }
    let seed = Seed::build();
    let agent = FakeAgent::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("coordinator.log");
    let path = ns_path(&seed.pod);
    let cid = "cid-overlay-0005";
    let pod = &seed.pod;
    let node = &seed.node;

    // net1 as in the seed, coordinated.
    let prev1 = add_net1(&seed, cid, "net1");
    let conf1 = coordinator_conf("0.3.1", &agent.socket, &log, "", Some(&prev1));
    let run = run_plugin(BIN, Some(node), &Call::add(&path, cid, "net1"), &conf1);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // net2: a second macvlan on ens192 with the next address.
    let macvlan2 = MACVLAN_CONF.replace("10.6.212.145/16", "10.6.212.146/16");
    let run = run_plugin(
        MACVLAN,
        Some(node),
        &Call::add(&path, cid, "net2"),
        &macvlan2,
    );
    assert_eq!(run.code, 0, "macvlan net2: {} {}", run.stdout, run.stderr);
    let prev2 = run.stdout;
    let conf2 = coordinator_conf("0.3.1", &agent.socket, &log, "", Some(&prev2));
    let run = run_plugin(BIN, Some(node), &Call::add(&path, cid, "net2"), &conf2);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, prev2);

    // Spec §4.5 "overlay, next NIC": table 102, a rule for net2's address below net1's, the
    // host and hijack routes in 102 (not main), net2's default moved out of main.
    let rules = ip_in(pod, &["rule"]);
    assert!(
        rules.contains("32763:\tfrom 10.6.212.146 lookup 102"),
        "{rules}"
    );
    assert!(
        rules.contains("32764:\tfrom 10.233.73.210 lookup 100"),
        "{rules}"
    );
    assert!(
        rules.contains("32765:\tfrom 10.6.212.145 lookup 101"),
        "{rules}"
    );
    let t102 = table(pod, "102");
    for line in [
        "default via 10.6.0.1 dev net2",
        "10.6.0.0/16 dev net2 scope link src 10.6.212.146",
        "10.6.212.132 dev eth0 scope link src 10.233.73.210",
        "10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210",
    ] {
        assert!(
            t102.contains(line),
            "missing {line:?} in table 102:\n{t102}"
        );
    }
    let main = ip_in(pod, &["route"]);
    assert!(!main.contains("default via 10.6.0.1 dev net2"), "{main}");
    assert!(
        main.starts_with("default via 169.254.1.1 dev eth0"),
        "{main}"
    );
    // net1's paths are untouched.
    assert_eq!(table(pod, "101"), POD_101);
    let t500 = table(node, "500");
    assert!(
        t500.contains("10.6.212.145 dev calitest scope link"),
        "{t500}"
    );
    assert!(
        t500.contains("10.6.212.146 dev calitest scope link"),
        "{t500}"
    );

    // Replies leave by the NIC that owns the address.
    assert!(ping(&seed.router, None, "10.6.212.146"), "router → net2");
    assert!(ping(&seed.router, None, "10.6.212.145"), "router → net1");
    assert!(
        ping(node, None, "10.6.212.146"),
        "node → net2 via table 500"
    );
    assert!(
        ping(pod, Some("10.6.212.146"), "10.6.0.1"),
        "from net2's address"
    );
    assert!(ip_in(pod, &["route", "get", "10.6.0.1", "from", "10.6.212.146"]).contains("dev net2"));
    assert!(ping(pod, None, "10.6.212.132"), "pod → node still via eth0");
}
