//! Root tests in real network namespaces: every test makes its own anonymous namespaces (on
//! short-lived threads), so nothing leaks into the host and tests can run in parallel.
//! Marked `#[ignore = "needs root"]`: a plain `cargo test` lists them as ignored; `scripts/test.sh`
//! runs them, and there a missing need fails them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;

use ipnet::IpNet;
use spiderpool_core::coordinator::{
    DelPlan, Family, MacAddr, Neighbour, NetnsPlan, Route, RouteOrigin, Rule, Scope, Step, VethPair,
};
use spiderpool_netlink::link::{MacvlanOptions, VethOptions};
use spiderpool_netlink::sysctl::{ProcSys, SysctlAccess};
use spiderpool_netlink::{
    Error, LinkNames, NetNs, Target, addr, apply, link, neigh, read, route, rule, teardown, verify,
};

/// True when running as root; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1` (CI).
fn root() -> bool {
    spiderpool_test_kit::gate::ready(&[spiderpool_test_kit::gate::Need::Root])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// Runs `ip ARGS` inside `ns` and returns stdout.
fn ip_in(ns: &NetNs, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    ns.run(move || {
        let out = Command::new("ip").args(&args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap()
}

#[test]
#[ignore = "needs root"]
fn typed_operations_in_private_namespaces() {
    if !root() {
        return;
    }
    let pod = NetNs::create_anonymous().unwrap();
    let host = NetNs::create_anonymous().unwrap();
    let mut nl = pod.route_socket().unwrap();
    let mut hnl = host.route_socket().unwrap();

    // veth pair with the peer in the host netns.
    let opts = VethOptions {
        mac: Some(mac("0a:00:00:00:00:01")),
        peer_mac: Some(mac("0a:00:00:00:00:02")),
        mtu: Some(1400),
        peer_netns: Some(host.as_fd()),
    };
    link::create_veth(&mut nl, "veth0", "vethhost", &opts).unwrap();
    let err = link::create_veth(&mut nl, "veth0", "vethhost2", &opts).unwrap_err();
    assert!(err.is_exists(), "{err}");
    let veth0 = link::require(&mut nl, "veth0").unwrap();
    assert_eq!(veth0.mac, Some(mac("0a:00:00:00:00:01")));
    assert_eq!(veth0.mtu, Some(1400));
    assert_eq!(veth0.kind.as_deref(), Some("veth"));
    let peer = link::require(&mut hnl, "vethhost").unwrap();
    assert_eq!(peer.mac, Some(mac("0a:00:00:00:00:02")));
    assert!(link::get_by_name(&mut nl, "vethhost").unwrap().is_none());
    let lo = link::require(&mut nl, "lo").unwrap();
    link::set_up(&mut nl, lo.index, true).unwrap();
    link::set_up(&mut nl, veth0.index, true).unwrap();
    link::set_up(&mut hnl, peer.index, true).unwrap();
    link::set_tx_queue_len(&mut nl, veth0.index, 3000).unwrap();
    let veth0 = link::get_by_index(&mut nl, veth0.index).unwrap().unwrap();
    assert!(veth0.up);
    assert_eq!(veth0.tx_queue_len, Some(3000));

    // Addresses, v6 without DAD (usable at once).
    addr::add(
        &mut nl,
        veth0.index,
        &net("192.0.2.2/24"),
        &Default::default(),
    )
    .unwrap();
    let six = addr::AddrOptions { nodad: true };
    addr::add(&mut nl, veth0.index, &net("fd00::2/64"), &six).unwrap();
    let err = addr::add(
        &mut nl,
        veth0.index,
        &net("192.0.2.2/24"),
        &Default::default(),
    );
    assert!(err.unwrap_err().is_exists());
    let v6 = addr::require(&mut nl, veth0.index, &net("fd00::2/64")).unwrap();
    assert!(!v6.tentative, "NODAD address must not be tentative");
    assert!(ip_in(&pod, &["-6", "addr", "show", "dev", "veth0"]).contains("nodad"));

    // Routes in table 100 and 500 (500 only fits the RTA_TABLE attribute).
    let mut names = LinkNames::load(&mut nl).unwrap();
    let r100 = Route::new(net("0.0.0.0/0"), "veth0")
        .via(ip("192.0.2.1"))
        .in_table(100);
    let r500 = Route::new(net("10.9.0.0/16"), "veth0")
        .with_scope(Scope::Link)
        .with_src(Some(ip("192.0.2.2")))
        .in_table(500);
    let r6 = Route::new(net("fd01::/64"), "veth0")
        .via(ip("fd00::1"))
        .in_table(500);
    for r in [&r100, &r500, &r6] {
        route::add(&mut nl, &mut names, r, route::AddMode::Exclusive).unwrap();
    }
    let err = route::add(&mut nl, &mut names, &r500, route::AddMode::Exclusive).unwrap_err();
    assert!(err.is_exists(), "{err}");
    route::add(&mut nl, &mut names, &r500, route::AddMode::Replace).unwrap();
    assert_eq!(
        route::dump(&mut nl, &names, Family::V4, 100).unwrap(),
        vec![r100.clone()]
    );
    assert_eq!(
        route::dump(&mut nl, &names, Family::V4, 500).unwrap(),
        vec![r500.clone()]
    );
    assert_eq!(
        route::dump(&mut nl, &names, Family::V6, 500).unwrap(),
        vec![r6.clone()]
    );
    assert!(
        route::dump(&mut nl, &names, Family::V4, 777)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ip_in(&pod, &["route", "show", "table", "500"]),
        "10.9.0.0/16 dev veth0 scope link src 192.0.2.2 \n"
    );
    assert_eq!(
        ip_in(&pod, &["route", "show", "table", "100"]),
        "default via 192.0.2.1 dev veth0 \n"
    );

    // Rules: adding the same rule twice leaves one rule.
    let r = Rule::from_addr(ip("192.0.2.2"), 500).at(1000);
    let m = Rule {
        fwmark: Some(1),
        ..Rule::lookup(Family::V4, 100).at(1001)
    };
    assert!(rule::add(&mut nl, &r).unwrap());
    assert!(!rule::add(&mut nl, &r).unwrap(), "EEXIST = done");
    assert!(rule::add(&mut nl, &m).unwrap());
    let rules = rule::dump(&mut nl, Family::V4).unwrap();
    assert_eq!(rules.iter().filter(|x| **x == r).count(), 1, "{rules:?}");
    assert!(rules.contains(&m));
    let text = ip_in(&pod, &["-d", "rule"]);
    assert_eq!(
        text.matches("from 192.0.2.2 lookup 500").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("1001:\tfrom all fwmark 0x1 lookup 100"),
        "{text}"
    );
    rule::del(&mut nl, &r).unwrap();
    assert!(rule::del(&mut nl, &r).unwrap_err().is_not_found());

    // Neighbours.
    neigh::replace(
        &mut nl,
        veth0.index,
        ip("192.0.2.1"),
        mac("ee:ee:ee:ee:ee:ee"),
    )
    .unwrap();
    neigh::replace(
        &mut nl,
        veth0.index,
        ip("192.0.2.1"),
        mac("ee:ee:ee:ee:ee:ef"),
    )
    .unwrap();
    let err = neigh::add(
        &mut nl,
        veth0.index,
        ip("192.0.2.1"),
        mac("ee:ee:ee:ee:ee:ee"),
    );
    assert!(err.unwrap_err().is_exists());
    let all = neigh::dump(&mut nl, &names).unwrap();
    assert!(
        all.iter().any(|(_, n)| *n
            == Neighbour {
                ip: ip("192.0.2.1"),
                dev: "veth0".into(),
                lladdr: Some(mac("ee:ee:ee:ee:ee:ef")),
                state: Default::default(),
            }),
        "{all:?}"
    );
    neigh::del(&mut nl, veth0.index, ip("192.0.2.1")).unwrap();

    // Sysctl inside the pod netns only.
    let mut sys = ProcSys::in_netns(&pod);
    let before = sys.read("net.ipv4.conf.all.rp_filter").unwrap();
    sys.write("net.ipv4.conf.all.rp_filter", "2").unwrap();
    assert_eq!(sys.read("net.ipv4.conf.all.rp_filter").unwrap(), "2");
    assert_eq!(
        ProcSys::in_netns(&host)
            .read("net.ipv4.conf.all.rp_filter")
            .unwrap(),
        before,
        "the host netns is untouched"
    );

    // Files opened inside the pod by `handles` keep referring to the pod's netns when used
    // from this thread.
    let (_pod_nl, mut psys) = pod
        .handles(&[
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.all.mc_forwarding",
            "net.ipv4.conf.all.no_such_key",
        ])
        .unwrap();
    assert_eq!(psys.write("net.ipv4.conf.all.rp_filter", "1").unwrap(), "2");
    assert_eq!(sys.read("net.ipv4.conf.all.rp_filter").unwrap(), "1");
    assert_eq!(
        ProcSys::in_netns(&host)
            .read("net.ipv4.conf.all.rp_filter")
            .unwrap(),
        before,
        "the host netns is untouched"
    );
    // Read-only (0444) keys are opened read-only: readable, and an unchanged write is done.
    let mc = psys.read("net.ipv4.conf.all.mc_forwarding").unwrap();
    assert_eq!(
        psys.write("net.ipv4.conf.all.mc_forwarding", &mc).unwrap(),
        mc
    );
    assert!(
        psys.read("net.ipv4.conf.all.no_such_key")
            .unwrap_err()
            .is_not_found()
    );

    // A macvlan on a veth parent in the host, moved into the pod and renamed net1.
    link::create_veth(&mut hnl, "par0", "par1", &VethOptions::default()).unwrap();
    let par0 = link::require(&mut hnl, "par0").unwrap();
    link::create_macvlan(&mut hnl, "mv0", par0.index, &MacvlanOptions::default()).unwrap();
    let mv0 = link::require(&mut hnl, "mv0").unwrap();
    assert_eq!(mv0.kind.as_deref(), Some("macvlan"));
    link::set_netns(&mut hnl, mv0.index, pod.as_fd()).unwrap();
    assert!(link::get_by_name(&mut hnl, "mv0").unwrap().is_none());
    let moved = link::require(&mut nl, "mv0").unwrap();
    link::rename(&mut nl, moved.index, "net1").unwrap();
    link::set_mac(&mut nl, moved.index, mac("0a:1b:0a:06:d4:91")).unwrap();
    link::set_mtu(&mut nl, moved.index, 1300).unwrap();
    link::set_up(&mut nl, moved.index, true).unwrap();
    let net1 = link::require(&mut nl, "net1").unwrap();
    assert_eq!(net1.mac, Some(mac("0a:1b:0a:06:d4:91")));
    assert_eq!(net1.mtu, Some(1300));
    assert!(ip_in(&pod, &["-d", "link", "show", "net1"]).contains("macvlan mode bridge"));

    // Deleting the pod end removes the host peer too.
    link::delete(&mut nl, veth0.index).unwrap();
    assert!(link::get_by_name(&mut hnl, "vethhost").unwrap().is_none());
    assert!(
        link::delete(&mut nl, veth0.index)
            .unwrap_err()
            .is_not_found()
    );
}

fn small_plan() -> NetnsPlan {
    let v = VethPair {
        name: "veth0".into(),
        mac: mac("0a:00:00:00:01:01"),
        peer_name: "vethcid0001".into(),
        peer_mac: mac("0a:00:00:00:01:02"),
        mtu: 1500,
    };
    let host_route = Route::new(net("10.6.212.132/32"), "veth0").with_scope(Scope::Link);
    NetnsPlan {
        steps: vec![
            Step::SetLinkUp { dev: "lo".into() },
            Step::CreateVeth(v),
            Step::SetLinkUp {
                dev: "veth0".into(),
            },
            Step::AddAddress {
                dev: "veth0".into(),
                addr: net("10.6.212.145/16"),
            },
            Step::SetTxQueueLen {
                dev: "veth0".into(),
                len: 2000,
            },
            Step::Sysctl {
                key: "net.ipv4.conf.all.rp_filter".into(),
                value: "0".into(),
            },
            Step::AddRule(Rule::from_addr(ip("10.6.212.145"), 100).at(32765)),
            Step::AddRule(Rule {
                fwmark: Some(1),
                ..Rule::lookup(Family::V4, 500).at(1000)
            }),
            Step::AddRoute {
                route: host_route.clone().in_table(100),
                origin: RouteOrigin::New,
            },
            Step::AddRoute {
                route: Route::new(net("0.0.0.0/0"), "veth0")
                    .via(ip("10.6.212.132"))
                    .in_table(100),
                origin: RouteOrigin::New,
            },
            Step::AddRoute {
                route: host_route.clone().in_table(500),
                origin: RouteOrigin::New,
            },
            Step::AddNeighbour {
                ip: ip("10.6.212.132"),
                dev: "veth0".into(),
                lladdr: mac("0a:00:00:00:01:02"),
            },
        ],
    }
}

#[test]
#[ignore = "needs root"]
fn apply_read_verify_is_idempotent_and_rolls_back_on_failure() {
    if !root() {
        return;
    }
    let pod = NetNs::create_anonymous().unwrap();
    let host = NetNs::create_anonymous().unwrap();
    let mut nl = pod.route_socket().unwrap();
    let mut sys = ProcSys::in_netns(&pod);
    sys.write("net.ipv4.conf.all.rp_filter", "1").unwrap();
    let plan = small_plan();
    let keys = ["net.ipv4.conf.all.rp_filter"];

    // Before: everything drifts.
    let live = read(&mut nl, &mut sys, &keys).unwrap();
    assert!(
        verify(&plan, &live).len() >= 8,
        "{:?}",
        verify(&plan, &live)
    );

    let mut target = Target {
        netlink: &mut nl,
        sysctl: &mut sys,
        peer_netns: Some(host.as_fd()),
        marker: None,
        announcer: None,
    };
    let report = apply(&plan, &mut target).unwrap();
    assert_eq!(report.changed, plan.steps.len(), "{report:?}");
    let live = read(&mut nl, &mut sys, &keys).unwrap();
    assert_eq!(verify(&plan, &live), [], "{live:#?}");
    assert_eq!(
        ip_in(&pod, &["route", "show", "table", "100"]).replace(" linkdown", ""),
        "default via 10.6.212.132 dev veth0 \n10.6.212.132 dev veth0 scope link \n"
    );
    let mut hnl = host.route_socket().unwrap();
    assert!(
        link::get_by_name(&mut hnl, "vethcid0001")
            .unwrap()
            .is_some()
    );

    // Again: nothing changes, nothing is duplicated.
    let mut target = Target {
        netlink: &mut nl,
        sysctl: &mut sys,
        peer_netns: Some(host.as_fd()),
        marker: None,
        announcer: None,
    };
    let report = apply(&plan, &mut target).unwrap();
    assert_eq!(report.changed, 0, "{report:?}");
    let text = ip_in(&pod, &["rule"]);
    assert_eq!(text.matches("lookup 100").count(), 1, "{text}");

    // A plan failing at its last step leaves nothing of what it added.
    let mut bad = NetnsPlan {
        steps: vec![
            Step::AddRule(Rule::from_addr(ip("10.6.212.146"), 101).at(32764)),
            Step::AddRoute {
                route: Route::new(net("10.7.0.0/16"), "veth0").in_table(101),
                origin: RouteOrigin::New,
            },
            Step::Sysctl {
                key: "net.ipv4.conf.all.rp_filter".into(),
                value: "2".into(),
            },
        ],
    };
    bad.steps.push(Step::AddRoute {
        route: Route::new(net("10.8.0.0/16"), "nosuchdev").in_table(101),
        origin: RouteOrigin::New,
    });
    let mut target = Target {
        netlink: &mut nl,
        sysctl: &mut sys,
        peer_netns: None,
        marker: None,
        announcer: None,
    };
    let err = apply(&bad, &mut target).unwrap_err();
    match &err {
        Error::Step {
            index,
            rollback_errors,
            ..
        } => {
            assert_eq!(*index, 3, "{err}");
            assert!(rollback_errors.is_empty(), "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.is_not_found(), "{err}");
    let live = read(&mut nl, &mut sys, &keys).unwrap();
    assert!(
        !live.rules.iter().any(|r| r.table == 101),
        "{:?}",
        live.rules
    );
    assert!(!live.routes.iter().any(|r| r.table == 101));
    assert_eq!(live.sysctls["net.ipv4.conf.all.rp_filter"], "0");
    assert_eq!(verify(&plan, &live), [], "the good plan is intact");

    // DEL: best effort, "not found" is fine, and the drift check sees everything gone.
    let del = DelPlan {
        host: NetnsPlan {
            steps: vec![
                Step::DeleteRule(Rule::from_addr(ip("10.6.212.145"), 100)),
                Step::DeleteRoutesTo {
                    table: 500,
                    dst: net("10.6.212.132/32"),
                },
                Step::DeleteNeighbour {
                    ip: ip("10.6.212.132"),
                    dev: None,
                },
                Step::DeleteRule(Rule::from_addr(ip("10.99.0.1"), 100)),
                Step::DeleteLink {
                    name: "veth0".into(),
                },
                Step::DeleteLink {
                    name: "veth0".into(),
                },
            ],
        },
    };
    let mut target = Target {
        netlink: &mut nl,
        sysctl: &mut sys,
        peer_netns: None,
        marker: None,
        announcer: None,
    };
    teardown(&del, &mut target).unwrap();
    let live = read(&mut nl, &mut sys, &keys).unwrap();
    assert_eq!(verify(&del.host, &live), []);
    assert!(
        link::get_by_name(&mut hnl, "vethcid0001")
            .unwrap()
            .is_none()
    );
}
