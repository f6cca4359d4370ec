//! The underlay first-NIC plan applied to real namespaces, proven with `ping`:
//!
//! ```text
//!  router netns            host netns                           pod netns
//!  eth0 10.6.0.1/16 ── ens192 10.6.212.132/16 ─┬─ (macvlan) ──── eth0 10.6.212.145/16
//!                          lo 172.31.0.1/32    │
//!                          veth0123456789a ────┴─────────────── veth0 (made by the plan)
//! ```
//!
//! A macvlan cannot talk to its parent, so the host reaches the pod only through the veth. A
//! ping from the host's `172.31.0.1` (an address the pod has no route to, as for a client
//! reached through the node) gets its reply only thanks to the reply-via-veth marking: without
//! it the reply follows the pod's default route to the router, which drops it.

mod common;

use std::net::IpAddr;
use std::os::fd::AsFd;

use common::{have, ip_in, ip_script, ping, root};
use spiderpool_core::coordinator::{
    AddRequest, CoordinatorConfig, Mode, Step, plan_add, render_plan,
};
use spiderpool_netlink::link::{self, VethOptions};
use spiderpool_netlink::mark::{Marker, NftMarker};
use spiderpool_netlink::sysctl::{ProcSys, SysctlAccess};
use spiderpool_netlink::{NetNs, Target, apply, read, read_host, verify};

#[test]
#[ignore = "needs root"]
fn underlay_first_nic_replies_via_veth0_and_reaches_the_router() {
    if !root() || !have("nft") || !have("ping") {
        return;
    }
    let host = NetNs::create_anonymous().unwrap();
    let router = NetNs::create_anonymous().unwrap();
    let pod = NetNs::create_anonymous().unwrap();
    let mut hnl = host.route_socket().unwrap();
    let peer_in_router = VethOptions {
        peer_netns: Some(router.as_fd()),
        ..Default::default()
    };
    link::create_veth(&mut hnl, "ens192", "eth0", &peer_in_router).unwrap();
    ip_script(
        &router,
        "link set lo up
         addr add 10.6.0.1/16 dev eth0
         link set eth0 up",
    );
    ip_script(
        &host,
        "link set lo up
         addr add 172.31.0.1/32 dev lo
         addr add 10.6.212.132/16 dev ens192
         link set ens192 up
         route add default via 10.6.0.1 dev ens192
         link add mv0 link ens192 type macvlan mode bridge",
    );
    // What the macvlan CNI would have done: the NIC moved in as eth0 with its pool address.
    let mv0 = link::require(&mut hnl, "mv0").unwrap();
    link::set_netns(&mut hnl, mv0.index, pod.as_fd()).unwrap();
    // New links copy `default.rp_filter` from the node's settings; a strict value there would
    // drop the client's packets on veth0 before any marking (upstream only sets `all`).
    let mut psys = ProcSys::in_netns(&pod);
    psys.write("net.ipv4.conf.default.rp_filter", "0").unwrap();
    ip_script(
        &pod,
        "link set lo up
         link set mv0 name eth0
         addr add 10.6.212.145/16 dev eth0
         link set eth0 up
         route add default via 10.6.0.1 dev eth0",
    );

    // Plan from the live views, as the coordinator plugin does.
    let mut pnl = pod.route_socket().unwrap();
    let mut hsys = ProcSys::in_netns(&host);
    let pod_view = read(&mut pnl, &mut psys, &[]).unwrap();
    let pod_ips: Vec<IpAddr> = pod_view
        .links
        .iter()
        .filter(|l| l.name != "lo")
        .flat_map(|l| l.usable_ips())
        .collect();
    let host_view = read_host(&mut hnl, &mut hsys, &[], &pod_ips).unwrap();
    let pod_ip: IpAddr = "10.6.212.145".parse().unwrap();
    assert_eq!(
        host_view.route_src.get(&pod_ip),
        Some(&"10.6.212.132".parse().unwrap()),
        "ip route get 10.6.212.145 on the node says src 10.6.212.132"
    );
    let cfg = CoordinatorConfig {
        mode: Mode::Underlay,
        hijack_cidr: vec!["169.254.0.0/16".parse().unwrap()],
        ..CoordinatorConfig::default()
    };
    let req = AddRequest::new("0123456789abcdef-underlay", "eth0");
    let plan = plan_add(&cfg, &req, &pod_view, &host_view).unwrap();
    let mark = plan
        .pod
        .steps
        .iter()
        .find_map(|s| match s {
            Step::ReplyViaVethMark(m) => Some(m.clone()),
            _ => None,
        })
        .expect("the underlay first NIC plan marks veth0");

    let mut marker = NftMarker::in_netns(&pod);
    let mut target = Target {
        marker: Some(&mut marker),
        ..Target::new(&mut pnl, &mut psys).with_peer_netns(host.as_fd())
    };
    apply(&plan.pod, &mut target).unwrap();
    let mut target = Target::new(&mut hnl, &mut hsys);
    apply(&plan.host, &mut target).unwrap();

    let pod_keys = spiderpool_netlink::sysctl_keys(&plan.pod);
    let live = read(&mut pnl, &mut psys, &pod_keys).unwrap();
    assert_eq!(verify(&plan.pod, &live), [], "{}", render_plan(&plan));
    let live = read(&mut hnl, &mut hsys, &[]).unwrap();
    assert_eq!(verify(&plan.host, &live), []);
    let table100 = ip_in(&pod, &["route", "show", "table", "100"]);
    assert_eq!(
        table100,
        "default via 10.6.212.132 dev veth0 src 10.6.212.145\n"
    );

    // The connectivity matrix (upstream-observed §3 item 9, underlay column).
    assert!(ping(&pod, None, "10.6.0.1"), "pod → router via eth0");
    assert!(ping(&router, None, "10.6.212.145"), "router → pod");
    assert!(ping(&pod, None, "10.6.212.132"), "pod → node via veth0");
    assert!(
        ping(&host, Some("10.6.212.132"), "10.6.212.145"),
        "node → pod via table 500 and veth0"
    );
    // The mark path: only conntrack knows this reply belongs to veth0.
    assert!(
        ping(&host, Some("172.31.0.1"), "10.6.212.145"),
        "client behind the node → pod, reply via veth0"
    );
    let rules = run_nft_list(&pod);
    assert!(
        rules.contains("iifname \"veth0\" ct state new ct mark set"),
        "{rules}"
    );

    // Control: without the marking the reply leaves by eth0 and is lost.
    marker.remove(&mark).unwrap();
    assert!(!ping(&host, Some("172.31.0.1"), "10.6.212.145"));
    assert!(ping(&host, Some("10.6.212.132"), "10.6.212.145"));
    // Removing twice is fine; re-applying restores the path without duplicating rules.
    marker.remove(&mark).unwrap();
    marker.apply(&mark).unwrap();
    marker.apply(&mark).unwrap();
    assert_eq!(run_nft_list(&pod).matches("ct mark set").count(), 1);
    assert!(ping(&host, Some("172.31.0.1"), "10.6.212.145"));
}

fn run_nft_list(ns: &NetNs) -> String {
    let out = common::run_in(ns, "nft", &["list", "table", "inet", "spiderpool"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
