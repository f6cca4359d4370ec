//! Announcements and neighbour probes on real namespaces: a pod netns and a peer netns joined
//! by a veth pair (`eth0` on both sides).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{ip_script, ping, root};
use spiderpool_core::coordinator::{MacAddr, NetnsPlan, Step};
use spiderpool_netlink::link::{self, VethOptions};
use spiderpool_netlink::probe::{self, PacketAnnouncer};
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{LinkNames, NetNs, Target, apply, neigh};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pod and a peer joined by a veth; the peer owns 10.9.0.1/24 and fd09::1/64.
fn pair() -> (NetNs, NetNs) {
    let pod = NetNs::create_anonymous().unwrap();
    let peer = NetNs::create_anonymous().unwrap();
    let mut nl = pod.route_socket().unwrap();
    let opts = VethOptions {
        peer_netns: Some(peer.as_fd()),
        ..Default::default()
    };
    link::create_veth(&mut nl, "eth0", "eth0", &opts).unwrap();
    ip_script(
        &peer,
        "link set lo up
         addr add 10.9.0.1/24 dev eth0
         addr add fd09::1/64 dev eth0 nodad
         link set eth0 up",
    );
    (pod, peer)
}

fn mac_of(ns: &NetNs, dev: &str) -> MacAddr {
    let mut nl = ns.route_socket().unwrap();
    link::require(&mut nl, dev).unwrap().mac.unwrap()
}

/// The MAC `ns` has cached for `ip`.
fn cached(ns: &NetNs, ip: IpAddr) -> Option<MacAddr> {
    let mut nl = ns.route_socket().unwrap();
    let names = LinkNames::load(&mut nl).unwrap();
    neigh::dump(&mut nl, &names)
        .unwrap()
        .into_iter()
        .find(|(_, n)| n.ip == ip)
        .and_then(|(_, n)| n.lladdr)
}

/// Waits (bounded) for `ns` to cache `mac` for `ip`; the announcement is asynchronous.
fn wait_cached(ns: &NetNs, ip: IpAddr, mac: MacAddr) -> Option<MacAddr> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let now = cached(ns, ip);
        if now == Some(mac) || Instant::now() > end {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root"]
fn announce_after_a_mac_change_updates_the_neighbours_cache() {
    if !root() {
        return;
    }
    let (pod, peer) = pair();
    ip_script(
        &pod,
        "link set lo up
         addr add 10.9.0.2/24 dev eth0
         addr add fd09::2/64 dev eth0 nodad
         link set eth0 up",
    );
    // The peer learns the pod's current MAC.
    assert!(ping(&peer, None, "10.9.0.2"));
    assert!(ping(&peer, None, "fd09::2"));
    let old = mac_of(&pod, "eth0");
    assert_eq!(cached(&peer, ip("10.9.0.2")), Some(old));
    assert_eq!(cached(&peer, ip("fd09::2")), Some(old));

    // Changing the MAC alone tells nobody (arp_notify / ndisc_notify are off).
    let new: MacAddr = "0a:1b:0a:09:00:02".parse().unwrap();
    let mut nl = pod.route_socket().unwrap();
    let mut sys = ProcSys::in_netns(&pod);
    let set_mac = NetnsPlan {
        steps: vec![Step::SetMac {
            dev: "eth0".into(),
            mac: new,
        }],
    };
    apply(&set_mac, &mut Target::new(&mut nl, &mut sys)).unwrap();
    assert_eq!(mac_of(&pod, "eth0"), new);
    assert_eq!(cached(&peer, ip("10.9.0.2")), Some(old));
    assert_eq!(cached(&peer, ip("fd09::2")), Some(old));

    // The plan's announce step, sent from inside the pod.
    let announce = NetnsPlan {
        steps: vec![Step::Announce {
            dev: "eth0".into(),
            addrs: vec![ip("10.9.0.2"), ip("fd09::2")],
        }],
    };
    let mut announcer = PacketAnnouncer::in_netns(&pod);
    let report = apply(
        &announce,
        &mut Target::new(&mut nl, &mut sys).with_announcer(&mut announcer),
    )
    .unwrap();
    assert_eq!((report.changed, report.notes.len()), (1, 0), "{report:?}");
    assert_eq!(
        wait_cached(&peer, ip("10.9.0.2"), new),
        Some(new),
        "gratuitous ARP"
    );
    assert_eq!(
        wait_cached(&peer, ip("fd09::2"), new),
        Some(new),
        "unsolicited NA"
    );
    assert!(ping(&peer, None, "10.9.0.2"), "traffic follows the new MAC");
}

#[test]
#[ignore = "needs root"]
fn ip_conflict_probe_finds_the_owner_and_nothing_else() {
    if !root() {
        return;
    }
    let (pod, peer) = pair();
    // The pod's NIC has no address yet and is down: the probe sets it up (as the IPAM
    // plugin does before probing).
    let peer_mac = mac_of(&peer, "eth0");
    let t = Duration::from_millis(600);
    for owned in ["10.9.0.1", "fd09::1"] {
        assert_eq!(
            probe::probe_ip_conflict(&pod, "eth0", ip(owned), t).unwrap(),
            Some(peer_mac),
            "{owned} is the peer's"
        );
    }
    for free in ["10.9.0.77", "fd09::77"] {
        assert_eq!(
            probe::probe_ip_conflict(&pod, "eth0", ip(free), t).unwrap(),
            None,
            "{free} is free"
        );
    }
    let err = probe::probe_ip_conflict(&pod, "nosuch0", ip("10.9.0.1"), t).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
#[ignore = "needs root"]
fn gateway_probe_sees_a_present_gateway_and_not_an_absent_one() {
    if !root() {
        return;
    }
    let (pod, peer) = pair();
    let t = Duration::from_millis(600);
    // Without an address of its own (sender 0.0.0.0), then with one.
    assert!(probe::probe_gateway(&pod, "eth0", ip("10.9.0.1"), t).unwrap());
    ip_script(&pod, "addr add 10.9.0.2/24 dev eth0");
    assert!(probe::probe_gateway(&pod, "eth0", ip("10.9.0.1"), t).unwrap());
    assert!(probe::probe_gateway(&pod, "eth0", ip("fd09::1"), t).unwrap());
    assert!(!probe::probe_gateway(&pod, "eth0", ip("10.9.0.254"), t).unwrap());
    assert!(!probe::probe_gateway(&pod, "eth0", ip("fd09::254"), t).unwrap());
    // A gateway that is gone stops answering.
    ip_script(&peer, "link set eth0 down");
    assert!(!probe::probe_gateway(&pod, "eth0", ip("10.9.0.1"), t).unwrap());
}
