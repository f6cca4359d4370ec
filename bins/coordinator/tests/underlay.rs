//! The built `coordinator` binary for an underlay first NIC (upstream-observed §1.5): the
//! pod's `eth0` is Debian's macvlan itself, and the plugin adds `veth0` to the node with the
//! reply-via-veth marking (`nft`).

mod common;

use common::*;
use spiderpool_netlink::NetNs;

const BIN: &str = env!("CARGO_BIN_EXE_coordinator");

#[test]
#[ignore = "needs root"]
fn underlay_first_nic_matches_upstream_and_pings() {
    if !gate::ready(&[
        Need::Root,
        Need::Program("ping"),
        Need::Program("nft"),
        Need::File(MACVLAN),
    ]) {
        return;
    }
    let seed = Seed::build();
    // An underlay pod: nothing but lo before the macvlan plugin.
    let pod = NetNs::create_anonymous().unwrap();
    ip_in(&pod, &["link", "set", "lo", "up"]);
    for key in ["all", "default"] {
        sysctl(&pod, &format!("net.ipv4.conf.{key}.rp_filter"), "0");
    }
    let path = ns_path(&pod);
    let cid = "0123456789abcdef-underlay";
    let add = Call::add(&path, cid, "eth0");
    let mv = run_plugin(MACVLAN, Some(&seed.node), &add, MACVLAN_CONF);
    assert_eq!(mv.code, 0, "{} {}", mv.stdout, mv.stderr);
    let prev = mv.stdout;

    let agent = FakeAgent::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("coordinator.log");
    let conf = coordinator_conf("0.3.1", &agent.socket, &log, "", Some(&prev));
    let run = run_plugin(BIN, Some(&seed.node), &add, &conf);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, prev);

    assert_eq!(
        ip_in(&pod, &["rule"]),
        "0:\tfrom all lookup local
1000:\tfrom all fwmark 0x1 lookup 100
32766:\tfrom all lookup main
32767:\tfrom all lookup default
"
    );
    assert_eq!(
        ip_in(&pod, &["route"]),
        "default via 10.6.0.1 dev eth0
10.6.0.0/16 dev eth0 proto kernel scope link src 10.6.212.145
10.6.212.132 dev veth0 scope link src 10.6.212.145
10.233.0.0/18 via 10.6.212.132 dev veth0 src 10.6.212.145
10.233.64.0/18 via 10.6.212.132 dev veth0 src 10.6.212.145
169.254.0.0/16 via 10.6.212.132 dev veth0 src 10.6.212.145
"
    );
    assert_eq!(
        table(&pod, "100"),
        "default via 10.6.212.132 dev veth0 src 10.6.212.145\n"
    );
    assert_eq!(
        table(&pod, "101"),
        "10.6.212.132 dev veth0 scope link src 10.6.212.145\n"
    );
    let node = &seed.node;
    assert!(ip_in(node, &["rule"]).contains("1000:\tfrom all lookup 500\n"));
    assert_eq!(
        table(node, "500"),
        "10.6.212.145 dev veth0123456789a scope link\n"
    );

    assert!(ping(&pod, None, "10.6.212.132"), "pod → node via veth0");
    assert!(ip_in(&pod, &["route", "get", "10.6.212.132"]).contains("dev veth0"));
    assert!(ping(&pod, None, "10.6.0.1"), "pod → router via eth0");
    assert!(ping(&seed.router, None, "10.6.212.145"), "router → pod");
    assert!(ping(node, None, "10.6.212.145"), "node → pod via table 500");

    // CHECK finds no drift.
    let check_conf = coordinator_conf("1.0.0", &agent.socket, &log, "", Some(&prev));
    let run = run_plugin(BIN, Some(node), &add.with("CHECK"), &check_conf);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);

    // DEL of the first NIC deletes the host veth (and with it table 500's route).
    let del_conf = coordinator_conf("0.3.1", &agent.socket, &log, "", None);
    let run = run_plugin(BIN, Some(node), &add.with("DEL"), &del_conf);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    assert!(!ip_in(node, &["-br", "link"]).contains("veth0123456789a"));
    assert_eq!(table(node, "500"), "");
    assert!(!ip_in(&pod, &["-br", "link"]).contains("veth0"));
}
