//! Root tests of what a failed plan leaves behind: exactly what was there before. A neighbour
//! entry the plan replaced comes back with its old MAC and state, and a reply-via-veth marking
//! that was already in place before the plan stays in place.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{have, ip_in, ip_script, run_in};
use spiderpool_core::coordinator::{Family, NetnsPlan, ReplyViaVethMark, Route, RouteOrigin, Step};
use spiderpool_netlink::mark::{Marker, NftMarker};
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{Error, NetNs, Target, apply};

/// A last step that always fails: a route through a link that does not exist.
fn failing_step() -> Step {
    Step::AddRoute {
        route: Route::new("10.8.0.0/16".parse().unwrap(), "nosuchdev").in_table(101),
        origin: RouteOrigin::New,
    }
}

fn assert_step_failed(result: Result<spiderpool_netlink::ApplyReport, Error>, index: usize) {
    match result {
        Err(Error::Step {
            index: i,
            rollback_errors,
            ..
        }) => {
            assert_eq!(i, index);
            assert!(rollback_errors.is_empty(), "{rollback_errors:?}");
        }
        other => panic!("expected step {index} to fail, got {other:?}"),
    }
}

#[test]
#[ignore = "needs root"]
fn rollback_restores_a_replaced_neighbour_entry_with_its_mac_and_state() {
    if !common::root() {
        return;
    }
    let ns = NetNs::create_anonymous().unwrap();
    ip_script(
        &ns,
        "link add v0 type veth peer name peer0
         link set peer0 up
         link set v0 up
         addr add 10.6.0.2/16 dev v0
         neigh add 10.6.0.1 lladdr 02:00:00:00:00:01 dev v0 nud stale
         neigh add 10.6.0.3 lladdr 02:00:00:00:00:03 dev v0 nud permanent",
    );
    let before = ip_in(&ns, &["neigh", "show", "dev", "v0"]);
    let plan = NetnsPlan {
        steps: vec![
            Step::AddNeighbour {
                ip: "10.6.0.1".parse().unwrap(),
                dev: "v0".into(),
                lladdr: "0a:00:00:00:00:aa".parse().unwrap(),
            },
            Step::AddNeighbour {
                ip: "10.6.0.3".parse().unwrap(),
                dev: "v0".into(),
                lladdr: "0a:00:00:00:00:bb".parse().unwrap(),
            },
            failing_step(),
        ],
    };
    let mut nl = ns.route_socket().unwrap();
    let mut sys = ProcSys::in_netns(&ns);
    assert_step_failed(apply(&plan, &mut Target::new(&mut nl, &mut sys)), 2);
    assert_eq!(ip_in(&ns, &["neigh", "show", "dev", "v0"]), before);
}

fn nft_list(ns: &NetNs) -> String {
    let out = run_in(ns, "nft", &["list", "ruleset"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn veth0_mark(mark: u32) -> ReplyViaVethMark {
    ReplyViaVethMark {
        iface: "veth0".into(),
        mark,
        table: 100,
        families: vec![Family::V4],
    }
}

#[test]
#[ignore = "needs root"]
fn rollback_keeps_a_reply_via_veth_marking_that_was_there_before() {
    if !common::root() || !have("nft") {
        return;
    }
    let ns = NetNs::create_anonymous().unwrap();
    let mark = veth0_mark(1);
    // An earlier ADD installed the marking; this plan (a repeated ADD) fails later.
    NftMarker::in_netns(&ns).apply(&mark).unwrap();
    let before = nft_list(&ns);
    assert!(before.contains("ct mark set 0x00000001"), "{before}");
    let plan = NetnsPlan {
        steps: vec![Step::ReplyViaVethMark(mark), failing_step()],
    };
    let mut nl = ns.route_socket().unwrap();
    let mut sys = ProcSys::in_netns(&ns);
    let mut marker = NftMarker::in_netns(&ns);
    let mut target = Target::new(&mut nl, &mut sys).with_marker(&mut marker);
    assert_step_failed(apply(&plan, &mut target), 1);
    assert_eq!(nft_list(&ns), before);
}

#[test]
#[ignore = "needs root"]
fn rollback_puts_back_a_different_marking_and_removes_a_new_one() {
    if !common::root() || !have("nft") {
        return;
    }
    let ns = NetNs::create_anonymous().unwrap();
    NftMarker::in_netns(&ns).apply(&veth0_mark(7)).unwrap();
    let before = nft_list(&ns);
    let plan = NetnsPlan {
        steps: vec![Step::ReplyViaVethMark(veth0_mark(1)), failing_step()],
    };
    let mut nl = ns.route_socket().unwrap();
    let mut sys = ProcSys::in_netns(&ns);
    let mut marker = NftMarker::in_netns(&ns);
    let mut target = Target::new(&mut nl, &mut sys).with_marker(&mut marker);
    assert_step_failed(apply(&plan, &mut target), 1);
    assert_eq!(nft_list(&ns), before);

    // Without a marking before, the rollback removes the one the plan made.
    let other = NetNs::create_anonymous().unwrap();
    let mut nl = other.route_socket().unwrap();
    let mut sys = ProcSys::in_netns(&other);
    let mut marker = NftMarker::in_netns(&other);
    let mut target = Target::new(&mut nl, &mut sys).with_marker(&mut marker);
    assert_step_failed(apply(&plan, &mut target), 1);
    assert!(!nft_list(&other).contains("chain reply-veth0"));
}
