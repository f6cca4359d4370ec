//! Unit tests of the typed operations against the recording fake: the exact messages sent.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourState};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use spiderpool_core::coordinator::{Family, MacAddr, Route, Rule, Scope};

use crate::fake::RecordingNetlink;
use crate::link::{Link, LinkNames, MacvlanOptions, VethOptions};
use crate::{Error, addr, link, neigh, route, rule};

pub(crate) const ADD_EXCL: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
pub(crate) const ADD_REPLACE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
pub(crate) const PLAIN: u16 = NLM_F_REQUEST | NLM_F_ACK;
pub(crate) const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

pub(crate) fn link_msg(index: u32, name: &str, up: bool) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if up {
        m.header.flags = LinkFlags::Up | LinkFlags::Broadcast | LinkFlags::Multicast;
    }
    m.attributes.push(LinkAttribute::IfName(name.into()));
    m.attributes
        .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, index as u8]));
    m.attributes.push(LinkAttribute::Mtu(1500));
    RouteNetlinkMessage::NewLink(m)
}

pub(crate) fn names(links: &[(u32, &str)]) -> LinkNames {
    LinkNames::from_links(links.iter().map(|(i, n)| Link {
        index: *i,
        name: n.to_string(),
        mac: None,
        mtu: None,
        tx_queue_len: None,
        up: true,
        broadcast: true,
        multicast: true,
        kind: None,
        link: None,
    }))
}

#[test]
fn dump_retries_when_interrupted_then_returns_the_clean_dump() {
    let mut nl = RecordingNetlink::new();
    nl.reply_interrupted(vec![link_msg(1, "lo", true)])
        .reply(vec![link_msg(1, "lo", true), link_msg(2, "eth0", true)]);
    let links = link::dump(&mut nl).unwrap();
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo", "eth0"]
    );
    assert_eq!(nl.sent.len(), 2);
    for s in &nl.sent {
        assert_eq!(s.flags, DUMP, "dumps carry no ACK flag");
        assert!(matches!(s.msg, RouteNetlinkMessage::GetLink(_)));
    }
    assert_eq!(links[1].mac, Some(mac("02:00:00:00:00:02")));
}

#[test]
fn dump_gives_up_after_five_interrupted_attempts() {
    let mut nl = RecordingNetlink::new();
    for _ in 0..6 {
        nl.reply_interrupted(vec![]);
    }
    let err = link::dump(&mut nl).unwrap_err();
    assert!(
        matches!(err, Error::DumpInterrupted { attempts: 5, ref op } if op == "dump links"),
        "{err}"
    );
    assert_eq!(nl.sent.len(), 5);
    assert_eq!(nl.pending(), 1);
}

#[test]
fn get_by_name_sends_ifname_and_maps_enodev_to_none() {
    let mut nl = RecordingNetlink::new();
    nl.fail(19);
    assert_eq!(link::get_by_name(&mut nl, "net1").unwrap(), None);
    let RouteNetlinkMessage::GetLink(m) = &nl.sent[0].msg else {
        panic!("{:?}", nl.sent[0]);
    };
    assert_eq!(m.header.index, 0);
    assert_eq!(m.attributes, [LinkAttribute::IfName("net1".into())]);
    assert_eq!(nl.sent[0].flags, PLAIN);
    assert!(link::get_by_name(&mut nl, "this-name-is-too-long").is_err());
}

#[test]
fn veth_pair_with_peer_in_another_netns() {
    let mut nl = RecordingNetlink::new();
    let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
    use std::os::fd::{AsFd, AsRawFd};
    let opts = VethOptions {
        mac: Some(mac("0a:00:00:00:00:01")),
        peer_mac: Some(mac("0a:00:00:00:00:02")),
        mtu: Some(1400),
        peer_netns: Some(ns.as_fd()),
    };
    link::create_veth(&mut nl, "veth0", "vethcid", &opts).unwrap();
    assert_eq!(nl.sent[0].flags, ADD_EXCL);
    let RouteNetlinkMessage::NewLink(m) = &nl.sent[0].msg else {
        panic!()
    };
    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName("vethcid".into()),
        LinkAttribute::Address(vec![0x0a, 0, 0, 0, 0, 2]),
        LinkAttribute::Mtu(1400),
        LinkAttribute::NetNsFd(ns.as_raw_fd()),
    ];
    assert_eq!(
        m.attributes,
        [
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Address(vec![0x0a, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1400),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ]
    );
}

#[test]
fn macvlan_bridge_mode_on_parent() {
    let mut nl = RecordingNetlink::new();
    link::create_macvlan(&mut nl, "mv0", 7, &MacvlanOptions::default()).unwrap();
    let RouteNetlinkMessage::NewLink(m) = &nl.sent[0].msg else {
        panic!()
    };
    assert_eq!(nl.sent[0].flags, ADD_EXCL);
    assert_eq!(
        m.attributes,
        [
            LinkAttribute::IfName("mv0".into()),
            LinkAttribute::Link(7),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    MacVlanMode::Bridge
                )])),
            ]),
        ]
    );
}

#[test]
fn link_setters_use_setlink_on_the_index() {
    let mut nl = RecordingNetlink::new();
    link::set_up(&mut nl, 3, true).unwrap();
    link::set_up(&mut nl, 3, false).unwrap();
    link::set_mtu(&mut nl, 3, 9000).unwrap();
    link::set_mac(&mut nl, 3, mac("0a:1b:0a:06:d4:91")).unwrap();
    link::set_tx_queue_len(&mut nl, 3, 3000).unwrap();
    link::rename(&mut nl, 3, "net1").unwrap();
    link::delete(&mut nl, 3).unwrap();
    let got: Vec<_> = nl.sent.iter().map(|s| (s.flags, s.msg.clone())).collect();
    let set = |attrs: Vec<LinkAttribute>, flags: LinkFlags| {
        let mut m = LinkMessage::default();
        m.header.index = 3;
        m.header.flags = flags;
        m.header.change_mask = if attrs.is_empty() {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        m.attributes = attrs;
        RouteNetlinkMessage::SetLink(m)
    };
    let mut del = LinkMessage::default();
    del.header.index = 3;
    assert_eq!(
        got,
        [
            (PLAIN, set(vec![], LinkFlags::Up)),
            (PLAIN, set(vec![], LinkFlags::empty())),
            (
                PLAIN,
                set(vec![LinkAttribute::Mtu(9000)], LinkFlags::empty())
            ),
            (
                PLAIN,
                set(
                    vec![LinkAttribute::Address(vec![
                        0x0a, 0x1b, 0x0a, 0x06, 0xd4, 0x91
                    ])],
                    LinkFlags::empty()
                )
            ),
            (
                PLAIN,
                set(vec![LinkAttribute::TxQueueLen(3000)], LinkFlags::empty())
            ),
            (
                PLAIN,
                set(
                    vec![LinkAttribute::IfName("net1".into())],
                    LinkFlags::empty()
                )
            ),
            (PLAIN, RouteNetlinkMessage::DelLink(del)),
        ]
    );
}

#[test]
fn addresses_v4_local_and_v6_nodad() {
    let mut nl = RecordingNetlink::new();
    addr::add(
        &mut nl,
        2,
        &"10.6.212.145/16".parse().unwrap(),
        &Default::default(),
    )
    .unwrap();
    addr::add(
        &mut nl,
        2,
        &"fd00::5/64".parse().unwrap(),
        &addr::AddrOptions { nodad: true },
    )
    .unwrap();
    addr::del(&mut nl, 2, &"fd00::5/64".parse().unwrap()).unwrap();
    let RouteNetlinkMessage::NewAddress(v4) = &nl.sent[0].msg else {
        panic!()
    };
    assert_eq!(nl.sent[0].flags, ADD_EXCL);
    assert_eq!(v4.header.family, AddressFamily::Inet);
    assert_eq!(v4.header.prefix_len, 16);
    assert_eq!(v4.header.index, 2);
    assert_eq!(
        v4.attributes,
        [
            AddressAttribute::Local(ip("10.6.212.145")),
            AddressAttribute::Address(ip("10.6.212.145"))
        ]
    );
    let RouteNetlinkMessage::NewAddress(v6) = &nl.sent[1].msg else {
        panic!()
    };
    assert_eq!(v6.header.family, AddressFamily::Inet6);
    assert_eq!(v6.header.flags, AddressHeaderFlags::Nodad);
    assert_eq!(
        v6.attributes,
        [
            AddressAttribute::Address(ip("fd00::5")),
            AddressAttribute::Flags(AddressFlags::Nodad)
        ]
    );
    assert!(matches!(nl.sent[2].msg, RouteNetlinkMessage::DelAddress(_)));
    assert_eq!(nl.sent[2].flags, PLAIN);
}

#[test]
fn routes_in_table_100_use_the_header_and_above_255_only_the_attribute() {
    let mut nl = RecordingNetlink::new();
    let mut names = names(&[(1, "lo"), (2, "eth0"), (3, "net1")]);
    let r100 = Route::new("0.0.0.0/0".parse().unwrap(), "eth0")
        .via(ip("169.254.1.1"))
        .in_table(100);
    let r500 = Route::new("10.6.212.145/32".parse().unwrap(), "net1")
        .with_scope(Scope::Link)
        .with_src(Some(ip("10.6.212.132")))
        .in_table(500);
    route::add(&mut nl, &mut names, &r100, route::AddMode::Exclusive).unwrap();
    route::add(&mut nl, &mut names, &r500, route::AddMode::Replace).unwrap();
    assert_eq!(nl.sent[0].flags, ADD_EXCL);
    assert_eq!(nl.sent[1].flags, ADD_REPLACE);
    let RouteNetlinkMessage::NewRoute(m) = &nl.sent[0].msg else {
        panic!()
    };
    assert_eq!(m.header.table, 100);
    assert_eq!(m.header.destination_prefix_length, 0);
    assert_eq!(m.header.protocol, RouteProtocol::Boot);
    assert_eq!(m.header.scope, RouteScope::Universe);
    assert_eq!(m.header.kind, RouteType::Unicast);
    assert_eq!(
        m.attributes,
        [
            RouteAttribute::Table(100),
            RouteAttribute::Gateway(RouteAddress::from(ip("169.254.1.1"))),
            RouteAttribute::Oif(2),
        ]
    );
    let RouteNetlinkMessage::NewRoute(m) = &nl.sent[1].msg else {
        panic!()
    };
    assert_eq!(
        m.header.table, 0,
        "RT_TABLE_UNSPEC: 500 does not fit the u8"
    );
    assert_eq!(m.header.scope, RouteScope::Link);
    assert_eq!(m.header.destination_prefix_length, 32);
    assert_eq!(
        m.attributes,
        [
            RouteAttribute::Table(500),
            RouteAttribute::Destination(RouteAddress::from(ip("10.6.212.145"))),
            RouteAttribute::Oif(3),
            RouteAttribute::PrefSource(RouteAddress::from(ip("10.6.212.132"))),
        ]
    );
    // What the kernel reports back parses to the same route.
    let back = route::parse(m, &names).unwrap();
    assert_eq!(back, r500);
}

#[test]
fn route_with_unknown_device_is_not_found_and_sends_a_lookup() {
    let mut nl = RecordingNetlink::new();
    let mut names = names(&[]);
    nl.fail(19);
    let r = Route::new("10.0.0.0/8".parse().unwrap(), "nope");
    let err = route::add(&mut nl, &mut names, &r, route::AddMode::Exclusive).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(nl.sent.len(), 1);
    assert!(matches!(nl.sent[0].msg, RouteNetlinkMessage::GetLink(_)));
}

#[test]
fn route_dump_of_a_missing_table_is_empty_and_filters_by_table() {
    let mut nl = RecordingNetlink::new();
    nl.fail(2);
    let names = names(&[(2, "eth0")]);
    assert!(
        route::dump(&mut nl, &names, Family::V4, 500)
            .unwrap()
            .is_empty()
    );
    let RouteNetlinkMessage::GetRoute(m) = &nl.sent[0].msg else {
        panic!()
    };
    assert_eq!(nl.sent[0].flags, DUMP);
    assert_eq!(m.header.table, 0);
    assert_eq!(m.attributes, [RouteAttribute::Table(500)]);
    // Multipath routes come back with their nexthops.
    let mut mp = RouteMessage::default();
    mp.header.address_family = AddressFamily::Inet;
    mp.header.table = 254;
    mp.header.kind = RouteType::Unicast;
    let mut hop = netlink_packet_route::route::RouteNextHop::default();
    hop.interface_index = 2;
    hop.attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(ip("10.0.0.1"))));
    mp.attributes.push(RouteAttribute::MultiPath(vec![hop]));
    nl.reply(vec![RouteNetlinkMessage::NewRoute(mp)]);
    let routes = route::dump(&mut nl, &names, Family::V4, 0).unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].nexthops[0].dev, "eth0");
    assert_eq!(routes[0].nexthops[0].gw, Some(ip("10.0.0.1")));
}

#[test]
fn route_get_sends_a_full_length_lookup_and_reads_the_source() {
    let mut nl = RecordingNetlink::new();
    let names = names(&[(2, "ens192")]);
    // What the kernel answers to `ip route get 10.6.212.145`: the resolved /32 with prefsrc.
    let mut reply = RouteMessage::default();
    reply.header.address_family = AddressFamily::Inet;
    reply.header.destination_prefix_length = 32;
    reply.header.table = 254;
    reply.header.kind = RouteType::Unicast;
    reply.attributes = vec![
        RouteAttribute::Table(254),
        RouteAttribute::Destination(RouteAddress::from(ip("10.6.212.145"))),
        RouteAttribute::Oif(2),
        RouteAttribute::PrefSource(RouteAddress::from(ip("10.6.212.132"))),
    ];
    nl.reply(vec![RouteNetlinkMessage::NewRoute(reply)]);
    let r = route::get(&mut nl, &names, ip("10.6.212.145")).unwrap();
    assert_eq!(r.dst, "10.6.212.145/32".parse::<ipnet::IpNet>().unwrap());
    assert_eq!(r.dev, "ens192");
    assert_eq!(r.src, Some(ip("10.6.212.132")));
    assert_eq!(r.table, 254);
    assert_eq!(nl.sent[0].flags, PLAIN, "not a dump");
    let RouteNetlinkMessage::GetRoute(m) = &nl.sent[0].msg else {
        panic!("{:?}", nl.sent[0]);
    };
    assert_eq!(m.header.address_family, AddressFamily::Inet);
    assert_eq!(m.header.destination_prefix_length, 32);
    assert_eq!(
        m.header.flags,
        netlink_packet_route::route::RouteFlags::LookupTable
    );
    // Strict checking refuses a get with any of these set.
    assert_eq!(
        (m.header.table, m.header.tos, m.header.source_prefix_length),
        (0, 0, 0)
    );
    assert_eq!(m.header.protocol, RouteProtocol::Unspec);
    assert_eq!(m.header.scope, RouteScope::Universe);
    assert_eq!(m.header.kind, RouteType::Unspec);
    assert_eq!(
        m.attributes,
        [RouteAttribute::Destination(RouteAddress::from(ip(
            "10.6.212.145"
        )))]
    );

    // v6: /128; no route: the kernel's errno, recognised as unreachable.
    nl.fail(101);
    let err = route::get(&mut nl, &names, ip("fd00::5")).unwrap_err();
    assert!(route::is_unreachable(&err), "{err}");
    assert!(
        err.to_string().starts_with("get route to fd00::5: "),
        "{err}"
    );
    let RouteNetlinkMessage::GetRoute(m) = &nl.sent[1].msg else {
        panic!()
    };
    assert_eq!(m.header.address_family, AddressFamily::Inet6);
    assert_eq!(m.header.destination_prefix_length, 128);
    assert!(m.header.flags.is_empty(), "IPv6 refuses RTM_F_LOOKUP_TABLE");
}

#[test]
fn read_dumps_each_part_once_for_both_families() {
    use crate::fake::FakeSysctl;
    use netlink_packet_route::neighbour::NeighbourMessage;
    use netlink_packet_route::rule::RuleMessage;
    let mut nl = RecordingNetlink::new();
    crate::read(&mut nl, &mut FakeSysctl::default(), &[]).unwrap();
    assert!(nl.sent.iter().all(|s| s.flags == DUMP));
    assert_eq!(
        nl.messages(),
        [
            &RouteNetlinkMessage::GetLink(LinkMessage::default()),
            &RouteNetlinkMessage::GetAddress(Default::default()),
            // AF_UNSPEC, no table: every table of both families in one dump.
            &RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            &RouteNetlinkMessage::GetRule(RuleMessage::default()),
            &RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        ]
    );
    // Reading for planning leaves the neighbour tables out.
    let mut nl = RecordingNetlink::new();
    crate::read_with(
        &mut nl,
        &mut FakeSysctl::default(),
        &[],
        crate::ReadOptions::PLANNING,
    )
    .unwrap();
    assert_eq!(nl.sent.len(), 4);
    assert!(
        !nl.messages()
            .iter()
            .any(|m| matches!(m, RouteNetlinkMessage::GetNeighbour(_)))
    );
}

#[test]
fn unspec_dumps_keep_v4_before_v6_and_drop_other_families() {
    use netlink_packet_route::rule::RuleMessage;
    let rule_msg = |family: AddressFamily, table: u8, prio: u32| {
        let mut m = RuleMessage::default();
        m.header.family = family;
        m.header.table = table;
        m.header.action = RuleAction::ToTable;
        m.attributes.push(RuleAttribute::Priority(prio));
        RouteNetlinkMessage::NewRule(m)
    };
    let mut nl = RecordingNetlink::new();
    // As the kernel answers: per family, and multicast routing's own rules (family 128).
    nl.reply(vec![
        rule_msg(AddressFamily::Inet, 255, 0),
        rule_msg(AddressFamily::Inet, 254, 32766),
        rule_msg(AddressFamily::Inet, 100, 1000),
        rule_msg(AddressFamily::Inet6, 254, 32766),
        rule_msg(AddressFamily::Inet6, 255, 0),
        rule_msg(AddressFamily::Other(128), 253, 32767),
    ]);
    let rules = rule::dump_all(&mut nl).unwrap();
    assert_eq!(
        rules,
        [
            Rule::lookup(Family::V4, 255).at(0),
            Rule::lookup(Family::V4, 100).at(1000),
            Rule::lookup(Family::V4, 254).at(32766),
            Rule::lookup(Family::V6, 255).at(0),
            Rule::lookup(Family::V6, 254).at(32766),
        ]
    );

    let route_msg = |family: AddressFamily, table: u8, kind: RouteType| {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        m.header.table = table;
        m.header.kind = kind;
        RouteNetlinkMessage::NewRoute(m)
    };
    let mut nl = RecordingNetlink::new();
    nl.reply(vec![
        route_msg(AddressFamily::Inet, 254, RouteType::Unicast),
        route_msg(AddressFamily::Inet, 255, RouteType::Local),
        route_msg(AddressFamily::Inet6, 254, RouteType::Unicast),
        route_msg(AddressFamily::Inet6, 255, RouteType::Unicast),
        route_msg(AddressFamily::Other(128), 254, RouteType::Unicast),
    ]);
    let names = names(&[]);
    let routes = route::dump_all(&mut nl, &names).unwrap();
    assert_eq!(
        routes
            .iter()
            .map(|r| (r.family(), r.table))
            .collect::<Vec<_>>(),
        [(Family::V4, 254), (Family::V6, 254)],
        "unicast only, table local left out, other families dropped"
    );
}

#[test]
fn read_host_fills_route_src_per_pod_ip_and_skips_unreachable_ones() {
    use crate::fake::FakeSysctl;
    let link = || vec![link_msg(1, "lo", true), link_msg(2, "ens192", true)];
    // How many requests `read` makes (links, addresses, routes, rules, neighbours).
    let mut counting = RecordingNetlink::new();
    counting.reply(link());
    crate::read(&mut counting, &mut FakeSysctl::default(), &[]).unwrap();
    let mut nl = RecordingNetlink::new();
    nl.reply(link());
    for _ in 1..counting.sent.len() {
        nl.ack();
    }
    // Then one get per pod IP (the link names of the read are reused).
    let mut reply = RouteMessage::default();
    reply.header.address_family = AddressFamily::Inet;
    reply.header.destination_prefix_length = 32;
    reply.header.kind = RouteType::Unicast;
    reply.attributes = vec![
        RouteAttribute::Destination(RouteAddress::from(ip("10.6.212.145"))),
        RouteAttribute::Oif(2),
        RouteAttribute::PrefSource(RouteAddress::from(ip("10.6.212.132"))),
    ];
    nl.reply(vec![RouteNetlinkMessage::NewRoute(reply)]);
    nl.fail(101);
    let host = crate::read_host(
        &mut nl,
        &mut FakeSysctl::default(),
        &[],
        &[ip("10.6.212.145"), ip("fd00::5")],
    )
    .unwrap();
    assert_eq!(nl.pending(), 0);
    assert_eq!(
        host.route_src.into_iter().collect::<Vec<_>>(),
        [(ip("10.6.212.145"), ip("10.6.212.132"))]
    );
    assert_eq!(host.links.len(), 2);
}

#[test]
fn rules_are_added_exclusively_and_exists_means_done() {
    let mut nl = RecordingNetlink::new();
    let r = Rule::from_addr(ip("10.6.212.145"), 101).at(32765);
    assert!(rule::add(&mut nl, &r).unwrap());
    nl.fail(17);
    assert!(!rule::add(&mut nl, &r).unwrap(), "EEXIST is done");
    for s in &nl.sent {
        assert_eq!(s.flags, ADD_EXCL, "never NLM_F_REPLACE for rules");
        let RouteNetlinkMessage::NewRule(m) = &s.msg else {
            panic!()
        };
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.src_len, 32);
        assert_eq!(m.header.table, 101);
        assert_eq!(m.header.action, RuleAction::ToTable);
        assert_eq!(
            m.attributes,
            [
                RuleAttribute::Table(101),
                RuleAttribute::Priority(32765),
                RuleAttribute::Source(ip("10.6.212.145")),
            ]
        );
    }
    let mark = Rule {
        fwmark: Some(1),
        ..Rule::lookup(Family::V6, 500).at(1000)
    };
    rule::del(&mut nl, &mark).unwrap();
    let RouteNetlinkMessage::DelRule(m) = &nl.sent[2].msg else {
        panic!()
    };
    assert_eq!(m.header.table, 0, "500 only in the attribute");
    assert_eq!(
        m.attributes,
        [
            RuleAttribute::Table(500),
            RuleAttribute::Priority(1000),
            RuleAttribute::FwMark(1),
            RuleAttribute::FwMask(u32::MAX),
        ]
    );
    assert_eq!(rule::parse(m, Family::V6), Some(mark));
    let bad = Rule::from_addr(ip("fd00::1"), 100);
    let bad = Rule {
        family: Family::V4,
        ..bad
    };
    assert!(rule::add(&mut nl, &bad).is_err());
}

#[test]
fn neighbours_permanent_replace_and_delete() {
    let mut nl = RecordingNetlink::new();
    neigh::replace(&mut nl, 4, ip("10.6.212.132"), mac("ee:ee:ee:ee:ee:ee")).unwrap();
    neigh::add(&mut nl, 4, ip("fd00::1"), mac("ee:ee:ee:ee:ee:ee")).unwrap();
    neigh::del(&mut nl, 4, ip("10.6.212.132")).unwrap();
    assert_eq!(nl.sent[0].flags, ADD_REPLACE);
    assert_eq!(nl.sent[1].flags, ADD_EXCL);
    assert_eq!(nl.sent[2].flags, PLAIN);
    let RouteNetlinkMessage::NewNeighbour(m) = &nl.sent[0].msg else {
        panic!()
    };
    assert_eq!(m.header.ifindex, 4);
    assert_eq!(m.header.state, NeighbourState::Permanent);
    assert_eq!(m.header.family, AddressFamily::Inet);
    assert_eq!(
        m.attributes[1],
        NeighbourAttribute::LinkLayerAddress(vec![0xee; 6])
    );
    let names = names(&[(4, "eth0")]);
    let (index, n) = neigh::parse(m, &names).unwrap();
    assert_eq!(index, 4);
    assert_eq!(n.dev, "eth0");
    assert_eq!(n.lladdr, Some(mac("ee:ee:ee:ee:ee:ee")));
}

#[test]
fn applying_a_plan_sends_exact_messages_and_rolls_back_what_it_added() {
    use crate::fake::FakeSysctl;
    use spiderpool_core::coordinator::{NetnsPlan, RouteOrigin, Step};

    let r = Rule::from_addr(ip("10.6.212.145"), 101).at(32765);
    let existing = Route::new("10.6.0.0/16".parse().unwrap(), "eth0").in_table(500);
    let failing = Route::new("0.0.0.0/0".parse().unwrap(), "eth0")
        .via(ip("10.6.0.1"))
        .in_table(101);
    let plan = NetnsPlan {
        steps: vec![
            Step::Sysctl {
                key: "net.ipv4.conf.all.rp_filter".into(),
                value: "0".into(),
            },
            Step::AddRule(r.clone()),
            Step::AddRoute {
                route: existing,
                origin: RouteOrigin::New,
            },
            Step::AddRoute {
                route: failing,
                origin: RouteOrigin::New,
            },
        ],
    };
    let mut nl = RecordingNetlink::new();
    nl.reply(vec![link_msg(1, "lo", true), link_msg(2, "eth0", true)]) // link dump
        .ack() // rule added
        .fail(17) // the table-500 route already exists: done, nothing to undo
        .fail(22); // the table-101 route fails
    let mut sys = FakeSysctl::default();
    sys.values
        .insert("net.ipv4.conf.all.rp_filter".into(), "1".into());
    let mut target = crate::Target {
        netlink: &mut nl,
        sysctl: &mut sys,
        peer_netns: None,
        marker: None,
        announcer: None,
    };
    let err = crate::apply(&plan, &mut target).unwrap_err();
    let Error::Step {
        index,
        step,
        rollback_errors,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*index, 3);
    assert_eq!(step, "ip route add default via 10.6.0.1 dev eth0 table 101");
    assert!(rollback_errors.is_empty());
    assert_eq!(err.errno(), Some(22));

    let kinds: Vec<(u16, &str)> = nl
        .sent
        .iter()
        .map(|s| {
            let k = match &s.msg {
                RouteNetlinkMessage::GetLink(_) => "GetLink",
                RouteNetlinkMessage::NewRule(_) => "NewRule",
                RouteNetlinkMessage::DelRule(_) => "DelRule",
                RouteNetlinkMessage::NewRoute(_) => "NewRoute",
                _ => "other",
            };
            (s.flags, k)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (DUMP, "GetLink"),
            (ADD_EXCL, "NewRule"),
            (ADD_EXCL, "NewRoute"),
            (ADD_EXCL, "NewRoute"),
            (PLAIN, "DelRule"), // rollback of the rule; the pre-existing route stays
        ]
    );
    assert_eq!(
        nl.sent[4].msg,
        RouteNetlinkMessage::DelRule(rule::rule_msg(&r))
    );
    // The sysctl was written and then restored.
    assert_eq!(
        sys.writes,
        [
            ("net.ipv4.conf.all.rp_filter".to_string(), "0".to_string()),
            ("net.ipv4.conf.all.rp_filter".to_string(), "1".to_string()),
        ]
    );
}

/// Records announcements; fails when told to.
struct FakeAnnouncer {
    sent: Vec<(String, Vec<IpAddr>)>,
    fail: bool,
}

impl crate::probe::Announcer for FakeAnnouncer {
    fn announce(&mut self, dev: &str, addrs: &[IpAddr]) -> crate::Result<()> {
        if self.fail {
            return Err(Error::invalid("no CAP_NET_RAW"));
        }
        self.sent.push((dev.to_string(), addrs.to_vec()));
        Ok(())
    }
}

#[test]
fn announce_steps_go_to_the_announcer_and_failures_are_only_noted() {
    use spiderpool_core::coordinator::{NetnsPlan, Step};
    let plan = NetnsPlan {
        steps: vec![Step::Announce {
            dev: "net1".into(),
            addrs: vec![ip("10.6.212.145"), ip("fd00::145")],
        }],
    };
    let mut sys = crate::fake::FakeSysctl::default();
    for fail in [false, true] {
        let mut nl = RecordingNetlink::new();
        let mut ann = FakeAnnouncer {
            sent: Vec::new(),
            fail,
        };
        let mut target = crate::Target::new(&mut nl, &mut sys).with_announcer(&mut ann);
        let report = crate::apply(&plan, &mut target).unwrap();
        if fail {
            assert_eq!(report.changed, 0);
            assert_eq!(
                report.notes,
                ["announce 10.6.212.145, fd00::145 on net1 failed: invalid input: no CAP_NET_RAW"]
            );
        } else {
            assert_eq!(report.changed, 1);
            assert!(report.notes.is_empty());
            assert_eq!(
                ann.sent,
                [(
                    "net1".to_string(),
                    vec![ip("10.6.212.145"), ip("fd00::145")]
                )]
            );
        }
    }
    let mut nl = RecordingNetlink::new();
    let report = crate::apply(&plan, &mut crate::Target::new(&mut nl, &mut sys)).unwrap();
    assert_eq!(report.notes.len(), 1, "{report:?}");
}

#[test]
fn rollback_puts_a_deleted_route_back_in_front_not_exclusively() {
    use crate::fake::FakeSysctl;
    use spiderpool_core::coordinator::{NetnsPlan, RouteOrigin, Step};

    // net1's default route is moved out of main (deleted there), then a later step fails.
    // Main also holds eth0's default of the same metric, so an exclusive re-add would fail
    // with "exists" and lose net1's route: the undo must prepend it.
    let moved = Route::new("0.0.0.0/0".parse().unwrap(), "net1").via(ip("10.6.0.1"));
    let failing = Route::new("0.0.0.0/0".parse().unwrap(), "net1")
        .via(ip("10.6.0.1"))
        .in_table(101);
    let plan = NetnsPlan {
        steps: vec![
            Step::DeleteRoute {
                route: moved.clone(),
            },
            Step::AddRoute {
                route: failing,
                origin: RouteOrigin::New,
            },
        ],
    };
    let mut nl = RecordingNetlink::new();
    let mut names = names(&[(2, "eth0"), (3, "net1")]);
    let dumped = route::route_msg(&mut nl, &mut names, &moved, false).unwrap();
    nl.sent.clear();
    nl.reply(vec![link_msg(2, "eth0", true), link_msg(3, "net1", true)]) // link dump
        .reply(vec![RouteNetlinkMessage::NewRoute(dumped)]) // route dump of main
        .ack() // net1's default deleted from main
        .fail(22) // the table-101 route fails
        .ack(); // the undo re-adds net1's default
    let mut sys = FakeSysctl::default();
    let mut target = crate::Target {
        netlink: &mut nl,
        sysctl: &mut sys,
        peer_netns: None,
        marker: None,
        announcer: None,
    };
    let err = crate::apply(&plan, &mut target).unwrap_err();
    let Error::Step {
        rollback_errors, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(rollback_errors.is_empty());
    let last = nl.sent.last().unwrap();
    assert!(matches!(last.msg, RouteNetlinkMessage::NewRoute(_)));
    assert_eq!(last.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
}

fn neigh_msg(index: u32, ip_: &str, lladdr: &str, state: NeighbourState) -> RouteNetlinkMessage {
    let RouteNetlinkMessage::NewNeighbour(mut m) = neigh::add_msg(index, ip(ip_), mac(lladdr))
    else {
        unreachable!()
    };
    m.header.state = state;
    RouteNetlinkMessage::NewNeighbour(m)
}

fn failing_route_step() -> spiderpool_core::coordinator::Step {
    spiderpool_core::coordinator::Step::AddRoute {
        route: Route::new("10.8.0.0/16".parse().unwrap(), "eth0").in_table(101),
        origin: spiderpool_core::coordinator::RouteOrigin::New,
    }
}

#[test]
fn rollback_restores_a_replaced_neighbour_with_its_mac_and_state() {
    use crate::fake::FakeSysctl;
    use spiderpool_core::coordinator::{NetnsPlan, Step};

    let plan = NetnsPlan {
        steps: vec![
            Step::AddNeighbour {
                ip: ip("10.6.0.1"),
                dev: "eth0".into(),
                lladdr: mac("0a:00:00:00:00:aa"),
            },
            failing_route_step(),
        ],
    };
    let mut nl = RecordingNetlink::new();
    nl.reply(vec![link_msg(2, "eth0", true)]) // link dump
        .fail(17) // a learnt entry exists
        .reply(vec![neigh_msg(
            2,
            "10.6.0.1",
            "02:00:00:00:00:01",
            NeighbourState::Stale,
        )])
        .ack() // replaced
        .fail(22) // the route fails
        .ack(); // the old entry is put back
    let mut sys = FakeSysctl::default();
    let err = crate::apply(&plan, &mut crate::Target::new(&mut nl, &mut sys)).unwrap_err();
    let Error::Step {
        index,
        rollback_errors,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*index, 1);
    assert!(rollback_errors.is_empty());
    assert_eq!(nl.pending(), 0, "the undo sent nothing");
    let last = nl.sent.last().unwrap();
    assert_eq!(last.flags, ADD_REPLACE);
    assert_eq!(
        last.msg,
        neigh_msg(2, "10.6.0.1", "02:00:00:00:00:01", NeighbourState::Stale)
    );
}

#[test]
fn an_identical_permanent_neighbour_is_done_and_left_alone_by_the_undo() {
    use crate::fake::FakeSysctl;
    use spiderpool_core::coordinator::{NetnsPlan, Step};

    let plan = NetnsPlan {
        steps: vec![
            Step::AddNeighbour {
                ip: ip("10.6.0.1"),
                dev: "eth0".into(),
                lladdr: mac("0a:00:00:00:00:aa"),
            },
            failing_route_step(),
        ],
    };
    let mut nl = RecordingNetlink::new();
    nl.reply(vec![link_msg(2, "eth0", true)])
        .fail(17)
        .reply(vec![neigh_msg(
            2,
            "10.6.0.1",
            "0a:00:00:00:00:aa",
            NeighbourState::Permanent,
        )])
        .fail(22);
    let mut sys = FakeSysctl::default();
    crate::apply(&plan, &mut crate::Target::new(&mut nl, &mut sys)).unwrap_err();
    // link dump, add, neighbour dump, the failing route: nothing replaced, nothing undone.
    assert_eq!(nl.sent.len(), 4);
}

/// Records marker calls; `apply` answers what it is told.
struct FakeMarker {
    answer: crate::mark::Marked,
    calls: Vec<String>,
}

impl crate::mark::Marker for FakeMarker {
    fn apply(
        &mut self,
        m: &spiderpool_core::coordinator::ReplyViaVethMark,
    ) -> crate::Result<crate::mark::Marked> {
        self.calls.push(format!("apply {}", m.iface));
        Ok(self.answer.clone())
    }

    fn remove(&mut self, m: &spiderpool_core::coordinator::ReplyViaVethMark) -> crate::Result<()> {
        self.calls.push(format!("remove {}", m.iface));
        Ok(())
    }

    fn restore(
        &mut self,
        m: &spiderpool_core::coordinator::ReplyViaVethMark,
        previous: &str,
    ) -> crate::Result<()> {
        self.calls.push(format!("restore {} {previous}", m.iface));
        Ok(())
    }
}

#[test]
fn rollback_undoes_only_a_marking_the_plan_added_or_replaced() {
    use crate::fake::FakeSysctl;
    use crate::mark::Marked;
    use spiderpool_core::coordinator::{NetnsPlan, ReplyViaVethMark, Step};

    let plan = NetnsPlan {
        steps: vec![
            Step::ReplyViaVethMark(ReplyViaVethMark {
                iface: "veth0".into(),
                mark: 1,
                table: 100,
                families: vec![Family::V4],
            }),
            failing_route_step(),
        ],
    };
    for (answer, undo) in [
        (Marked::Added, Some("remove veth0")),
        (Marked::Unchanged, None),
        (Marked::Replaced("old".into()), Some("restore veth0 old")),
    ] {
        let mut marker = FakeMarker {
            answer: answer.clone(),
            calls: Vec::new(),
        };
        let mut nl = RecordingNetlink::new();
        nl.reply(vec![link_msg(2, "eth0", true)]).fail(22);
        let mut sys = FakeSysctl::default();
        let mut target = crate::Target::new(&mut nl, &mut sys).with_marker(&mut marker);
        crate::apply(&plan, &mut target).unwrap_err();
        let mut want = vec!["apply veth0"];
        want.extend(undo);
        assert_eq!(marker.calls, want, "{answer:?}");
    }
}

#[test]
fn apply_plan_undoes_the_pod_plan_when_the_node_plan_fails() {
    use crate::fake::FakeSysctl;
    use crate::{PlanError, apply_plan};
    use spiderpool_core::coordinator::{NetnsPlan, Plan, Step};

    let pod_rule = Rule::from_addr(ip("10.6.212.145"), 101).at(32765);
    let plan = Plan {
        pod: NetnsPlan {
            steps: vec![Step::AddRule(pod_rule.clone())],
        },
        host: NetnsPlan {
            steps: vec![Step::AddRule(Rule::lookup(Family::V4, 500).at(1000))],
        },
        ..Plan::default()
    };
    let (mut pod_sys, mut node_sys) = (FakeSysctl::default(), FakeSysctl::default());

    // The node's rule fails: the pod's rule is deleted again.
    let (mut pod_nl, mut node_nl) = (RecordingNetlink::new(), RecordingNetlink::new());
    node_nl.ack().fail(1); // link dump, EPERM
    let err = apply_plan(
        &plan,
        &mut crate::Target::new(&mut pod_nl, &mut pod_sys),
        &mut crate::Target::new(&mut node_nl, &mut node_sys),
    )
    .unwrap_err();
    assert!(matches!(&err, PlanError::Node { pod_undo_errors, .. } if pod_undo_errors.is_empty()));
    assert!(
        err.to_string().starts_with(
            "applying the node plan (rolled back): step 0 (ip rule add from all lookup 500 pref 1000) failed"
        ),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("; the pod plan was rolled back"),
        "{err}"
    );
    let last = pod_nl.sent.last().unwrap();
    assert_eq!(
        last.msg,
        RouteNetlinkMessage::DelRule(rule::rule_msg(&pod_rule))
    );

    // The pod's rule fails: the node is not touched.
    let (mut pod_nl, mut node_nl) = (RecordingNetlink::new(), RecordingNetlink::new());
    pod_nl.ack().fail(1);
    let err = apply_plan(
        &plan,
        &mut crate::Target::new(&mut pod_nl, &mut pod_sys),
        &mut crate::Target::new(&mut node_nl, &mut node_sys),
    )
    .unwrap_err();
    assert!(
        matches!(err, PlanError::Pod(Error::Step { index: 0, .. })),
        "{err}"
    );
    assert!(node_nl.sent.is_empty());

    // Both apply: one report each.
    let (mut pod_nl, mut node_nl) = (RecordingNetlink::new(), RecordingNetlink::new());
    let report = apply_plan(
        &plan,
        &mut crate::Target::new(&mut pod_nl, &mut pod_sys),
        &mut crate::Target::new(&mut node_nl, &mut node_sys),
    )
    .unwrap();
    assert_eq!((report.pod.changed, report.node.changed), (1, 1));
}
