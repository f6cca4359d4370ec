//! `route::get` (`ip route get`) and `read_host`'s `route_src` against a real kernel, compared
//! with what `ip route get` prints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::IpAddr;
use std::os::fd::AsFd;

use common::{ip_in, ip_script, root};
use spiderpool_netlink::link::{self, VethOptions};
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{LinkNames, NetNs, read_host, route};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs root"]
fn route_get_gives_device_source_and_table_like_ip_route_get() {
    if !root() {
        return;
    }
    let host = NetNs::create_anonymous().unwrap();
    let other = NetNs::create_anonymous().unwrap();
    let mut nl = host.route_socket().unwrap();
    let peer = VethOptions {
        peer_netns: Some(other.as_fd()),
        ..Default::default()
    };
    link::create_veth(&mut nl, "ens192", "eth0", &peer).unwrap();
    link::create_veth(&mut nl, "vethpod", "veth0", &peer).unwrap();
    ip_script(
        &host,
        "link set lo up
         link set ens192 up
         link set vethpod up
         addr add 10.6.212.132/16 dev ens192
         addr add 10.6.212.133/16 dev ens192
         addr add 172.31.0.1/32 dev lo
         addr add fd00::132/64 dev ens192 nodad
         route add default via 10.6.0.1 dev ens192
         route add 10.7.0.9/32 dev vethpod scope link src 172.31.0.1 table 500
         rule add from all lookup 500 pref 1000",
    );
    let names = LinkNames::load(&mut nl).unwrap();

    // Connected: the primary address of the subnet.
    let r = route::get(&mut nl, &names, ip("10.6.212.145")).unwrap();
    assert_eq!(
        (r.dev.as_str(), r.src, r.gw, r.table),
        ("ens192", Some(ip("10.6.212.132")), None, 254)
    );
    assert_eq!(r.dst, "10.6.212.145/32".parse().unwrap());
    // Through the policy rule: table 500 and its explicit src.
    let r = route::get(&mut nl, &names, ip("10.7.0.9")).unwrap();
    assert_eq!(
        (r.dev.as_str(), r.src, r.table),
        ("vethpod", Some(ip("172.31.0.1")), 500)
    );
    // Via the default gateway.
    let r = route::get(&mut nl, &names, ip("192.0.2.10")).unwrap();
    assert_eq!(
        (r.gw, r.src),
        (Some(ip("10.6.0.1")), Some(ip("10.6.212.132")))
    );
    // v6.
    let r = route::get(&mut nl, &names, ip("fd00::145")).unwrap();
    assert_eq!((r.dev.as_str(), r.src), ("ens192", Some(ip("fd00::132"))));
    // No route.
    let err = route::get(&mut nl, &names, ip("fd01::1")).unwrap_err();
    assert!(route::is_unreachable(&err), "{err}");

    // The same answers as iproute2's.
    for (dst, src) in [
        ("10.6.212.145", "10.6.212.132"),
        ("10.7.0.9", "172.31.0.1"),
        ("fd00::145", "fd00::132"),
    ] {
        let text = ip_in(&host, &["route", "get", dst]);
        assert!(text.contains(&format!(" src {src} ")), "{text}");
    }

    let mut sys = ProcSys::in_netns(&host);
    let view = read_host(
        &mut nl,
        &mut sys,
        &[],
        &[
            ip("10.6.212.145"),
            ip("10.7.0.9"),
            ip("fd00::145"),
            ip("fd01::1"),
        ],
    )
    .unwrap();
    assert_eq!(
        view.route_src.into_iter().collect::<Vec<_>>(),
        [
            (ip("10.6.212.145"), ip("10.6.212.132")),
            (ip("10.7.0.9"), ip("172.31.0.1")),
            (ip("fd00::145"), ip("fd00::132")),
        ]
    );
}
