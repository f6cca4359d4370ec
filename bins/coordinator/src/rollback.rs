//! Undoing an applied pod plan when the host plan fails afterwards.
//!
//! `spiderpool_netlink::apply` rolls back its own steps when one of them fails, but the pod plan
//! and the host plan are two applies in two namespaces: when the host's fails, the pod's has
//! already succeeded. The inverse is computed here from the plan and the pod as it was read
//! before planning, so only what the plan changed is undone (entries that were already there,
//! e.g. on a repeated ADD, stay). It is pure, so it is checked against
//! [`PodView::with_steps`] without a kernel.

use ipnet::IpNet;
use spiderpool_core::coordinator::{
    NetnsPlan, PodView, ReplyViaVethMark, RouteOrigin, Step, TABLE_MAIN,
};

/// What undoing a pod plan takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inverse {
    /// Steps to run best effort ("not found" counts as done), in order.
    pub steps: NetnsPlan,
    /// Links to set down again (they were down before the plan).
    pub set_down: Vec<String>,
    /// Addresses to remove (`dev`, address) that the plan added.
    pub del_addresses: Vec<(String, IpNet)>,
    /// Markings to remove.
    pub unmark: Vec<ReplyViaVethMark>,
}

impl Inverse {
    /// True when there is nothing to undo.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
            && self.set_down.is_empty()
            && self.del_addresses.is_empty()
            && self.unmark.is_empty()
    }
}

/// The inverse of `plan` applied to `before`. Sysctls are restored to `before.sysctls`, so read
/// the plan's keys into the view before calling this.
pub fn inverse(plan: &NetnsPlan, before: &PodView) -> Inverse {
    let mut inv = Inverse::default();
    // Undo runs last step first.
    let mut steps: Vec<Step> = Vec::new();
    for step in &plan.steps {
        match step {
            Step::SetLinkUp { dev } => {
                if before.link(dev).is_some_and(|l| !l.up) {
                    inv.set_down.push(dev.clone());
                }
            }
            Step::CreateVeth(v) => {
                if before.link(&v.name).is_none() {
                    // Deleting the pod end deletes the host end too.
                    steps.push(Step::DeleteLink {
                        name: v.name.clone(),
                    });
                }
            }
            Step::SetMac { dev, mac } => {
                if let Some(old) = before.link(dev).and_then(|l| l.mac).filter(|m| m != mac) {
                    steps.push(Step::SetMac {
                        dev: dev.clone(),
                        mac: old,
                    });
                }
            }
            Step::SetTxQueueLen { dev, len } => {
                if let Some(old) = before
                    .link(dev)
                    .and_then(|l| l.tx_queue_len)
                    .filter(|q| q != len)
                {
                    steps.push(Step::SetTxQueueLen {
                        dev: dev.clone(),
                        len: old,
                    });
                }
            }
            Step::AddAddress { dev, addr } => {
                if !before.link(dev).is_some_and(|l| l.addresses.contains(addr)) {
                    inv.del_addresses.push((dev.clone(), *addr));
                }
            }
            Step::Sysctl { key, value } => {
                if let Some(old) = before.sysctls.get(key).filter(|v| *v != value) {
                    steps.push(Step::Sysctl {
                        key: key.clone(),
                        value: old.clone(),
                    });
                }
            }
            Step::AddNeighbour { ip, dev, lladdr } => {
                match before
                    .neighbours
                    .iter()
                    .find(|n| n.ip == *ip && n.dev == *dev)
                {
                    None => steps.push(Step::DeleteNeighbour {
                        ip: *ip,
                        dev: Some(dev.clone()),
                    }),
                    Some(n) => {
                        if let Some(old) = n.lladdr.filter(|m| m != lladdr) {
                            steps.push(Step::AddNeighbour {
                                ip: *ip,
                                dev: dev.clone(),
                                lladdr: old,
                            });
                        }
                    }
                }
            }
            Step::DeleteNeighbour { ip, dev } => {
                for n in before.neighbours.iter().filter(|n| {
                    n.ip == *ip && dev.as_ref().is_none_or(|d| *d == n.dev) && n.lladdr.is_some()
                }) {
                    if let Some(lladdr) = n.lladdr {
                        steps.push(Step::AddNeighbour {
                            ip: n.ip,
                            dev: n.dev.clone(),
                            lladdr,
                        });
                    }
                }
            }
            Step::AddRule(r) => {
                if !before.rules.iter().any(|x| r.selects(x)) {
                    steps.push(Step::DeleteRule(r.clone()));
                }
            }
            Step::DeleteRule(sel) => {
                for r in before.rules.iter().filter(|r| sel.selects(r)) {
                    steps.push(Step::AddRule(r.clone()));
                }
            }
            Step::AddRoute { route, .. } => {
                if !before.routes.iter().any(|x| x.same_slot(route)) {
                    steps.push(Step::DeleteRoute {
                        route: route.clone(),
                    });
                }
            }
            Step::DeleteRoute { route: sel } => {
                for r in before.routes.iter().filter(|r| sel.selects(r)) {
                    steps.push(restore(r));
                }
            }
            Step::DeleteRoutesTo { table, dst } => {
                for r in before
                    .routes
                    .iter()
                    .filter(|r| r.table == *table && r.dst.trunc() == dst.trunc())
                {
                    steps.push(restore(r));
                }
            }
            Step::ReplyViaVethMark(m) => {
                if !before.marks.contains(m) {
                    inv.unmark.push(m.clone());
                }
            }
            // Nothing to take back: an announcement, or a deleted link (gone for good).
            Step::Announce { .. } | Step::DeleteLink { .. } => {}
        }
    }
    steps.reverse();
    inv.steps.steps = steps;
    inv
}

fn restore(r: &spiderpool_core::coordinator::Route) -> Step {
    Step::AddRoute {
        route: r.clone(),
        origin: if r.table == TABLE_MAIN {
            RouteOrigin::New
        } else {
            RouteOrigin::CopiedFrom(r.table)
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use spiderpool_core::coordinator::{
        AddRequest, AgentCoordinatorConfig, HostView, NadCoordinatorConf, merge, plan_add,
    };

    fn views() -> (PodView, HostView) {
        let v: serde_json::Value = serde_json::json!({
          "pod": {"links": [
            {"name": "lo", "index": 1, "up": true, "addresses": ["127.0.0.1/8"]},
            {"name": "eth0", "index": 2, "mac": "a2:40:ec:4f:ba:93", "up": true, "broadcast": true,
             "multicast": true, "addresses": ["10.233.73.210/32"], "peerIndex": 3},
            {"name": "net1", "index": 3, "mac": "6a:1b:e7:ac:f8:a0", "up": false, "broadcast": true,
             "multicast": true, "addresses": ["10.6.212.145/16"]}],
           "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.6.0.1", "dev": "net1"},
            {"dst": "0.0.0.0/0", "gw": "169.254.1.1", "dev": "eth0"},
            {"dst": "10.6.0.0/16", "dev": "net1", "proto": "kernel", "scope": "link", "src": "10.6.212.145"},
            {"dst": "169.254.1.1/32", "dev": "eth0", "scope": "link"}],
           "neighbours": [{"ip": "10.6.212.132", "dev": "eth0", "lladdr": "ee:ee:ee:ee:ee:01"}],
           "sysctls": {"net.ipv4.conf.all.rp_filter": "1"}},
          "host": {"links": [
            {"name": "ens192", "index": 2, "mac": "da:5b:0e:4e:d4:59", "addresses": ["10.6.212.132/16"]},
            {"name": "calitest", "index": 3, "mac": "ee:ee:ee:ee:ee:ee", "peerIndex": 2}],
           "routeSrc": {"10.233.73.210": "10.6.212.132", "10.6.212.145": "10.6.212.132"}}
        });
        (
            serde_json::from_value(v["pod"].clone()).unwrap(),
            serde_json::from_value(v["host"].clone()).unwrap(),
        )
    }

    /// The inverse applied as `live::undo_pod` does: route restores are not exclusive (a slot
    /// taken by another route does not block them), everything else as the core simulates it.
    fn undo(after: &PodView, inv: &Inverse) -> PodView {
        let mut out = after.clone();
        for step in &inv.steps.steps {
            match step {
                Step::AddRoute { route, .. } => {
                    if !out.routes.contains(route) {
                        out.routes.insert(0, route.clone());
                    }
                }
                other => {
                    out = out.with_steps(&NetnsPlan {
                        steps: vec![other.clone()],
                    })
                }
            }
        }
        for l in &mut out.links {
            if inv.set_down.contains(&l.name) {
                l.up = false;
            }
            l.addresses
                .retain(|a| !inv.del_addresses.contains(&(l.name.clone(), *a)));
        }
        out.marks.retain(|m| !inv.unmark.contains(m));
        out
    }

    fn check(pod: &PodView, host: &HostView, nad: &NadCoordinatorConf, ifname: &str) {
        let agent: AgentCoordinatorConfig = serde_json::from_str(
            r#"{"mode":"auto","overlayPodCIDR":["10.233.64.0/18"],"serviceCIDR":["10.233.0.0/18"],
                "hijackCIDR":["169.254.0.0/16"],"tunePodRoutes":true,"hostRuleTable":500,"podRPFilter":0}"#,
        )
        .unwrap();
        let cfg = merge(nad, &agent).unwrap();
        let plan = plan_add(&cfg, &AddRequest::new("cid-1", ifname), pod, host).unwrap();
        let after = pod.with_steps(&plan.pod);
        assert_ne!(&after, pod, "the plan changes the pod");
        let inv = inverse(&plan.pod, pod);
        let back = undo(&after, &inv);
        assert_eq!(back.rules, pod.rules);
        let mut got = back.routes.clone();
        let mut want = pod.routes.clone();
        let key = |r: &spiderpool_core::coordinator::Route| format!("{r:?}");
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want);
        assert_eq!(back.links, pod.links);
        assert_eq!(back.sysctls, pod.sysctls);
        // Neighbour entries come back (as permanent ones).
        for n in &pod.neighbours {
            assert!(
                back.neighbours
                    .iter()
                    .any(|b| b.ip == n.ip && b.dev == n.dev && b.lladdr == n.lladdr),
                "{n:?} in {:?}",
                back.neighbours
            );
        }
        assert_eq!(back.neighbours.len(), pod.neighbours.len());
        // Undoing on the untouched pod is a no-op.
        assert_eq!(undo(pod, &inverse(&NetnsPlan::default(), pod)), *pod);
    }

    #[test]
    fn overlay_plan_is_undone_exactly() {
        let (pod, host) = views();
        check(&pod, &host, &NadCoordinatorConf::default(), "net1");
        let nad = NadCoordinatorConf {
            pod_default_route_nic: Some("net1".into()),
            pod_mac_prefix: Some("0a:1b".into()),
            tx_queue_len: Some(3000),
            ..Default::default()
        };
        let mut pod = pod;
        pod.links[2].tx_queue_len = Some(1000);
        check(&pod, &host, &nad, "net1");
    }

    /// CHECK plans again on the state ADD left: that plan must already be satisfied.
    #[test]
    fn replanning_after_add_finds_no_drift() {
        let (pod, host) = views();
        let agent: AgentCoordinatorConfig = serde_json::from_str(
            r#"{"mode":"auto","overlayPodCIDR":["10.233.64.0/18"],"serviceCIDR":["10.233.0.0/18"],
                "hijackCIDR":["169.254.0.0/16"],"tunePodRoutes":true,"hostRuleTable":500,"podRPFilter":0}"#,
        )
        .unwrap();
        for nic in [None, Some("net1")] {
            let nad = NadCoordinatorConf {
                pod_default_route_nic: nic.map(Into::into),
                ..Default::default()
            };
            let cfg = merge(&nad, &agent).unwrap();
            let req = AddRequest::new("cid-1", "net1");
            let plan = plan_add(&cfg, &req, &pod, &host).unwrap();
            let (pod2, host2) = plan.apply(&pod, &host);
            let again = plan_add(&cfg, &req, &pod2, &host2).unwrap();
            let drift = spiderpool_netlink::verify(&again.pod, &pod2);
            assert_eq!(
                drift,
                [],
                "{nic:?}\n{}",
                spiderpool_core::coordinator::render_plan(&again)
            );
        }
    }

    #[test]
    fn underlay_first_nic_deletes_the_veth_and_the_marking() {
        let (mut pod, host) = views();
        pod.links.retain(|l| l.name != "eth0");
        pod.links[1].name = "eth0".into();
        pod.routes = vec![];
        pod.neighbours = vec![];
        let agent = AgentCoordinatorConfig::default();
        let cfg = merge(&NadCoordinatorConf::default(), &agent).unwrap();
        let plan = plan_add(&cfg, &AddRequest::new("cid-1", "eth0"), &pod, &host).unwrap();
        let inv = inverse(&plan.pod, &pod);
        assert!(inv.steps.steps.contains(&Step::DeleteLink {
            name: "veth0".into()
        }));
        assert_eq!(inv.unmark.len(), 1);
        assert_eq!(inv.set_down, ["eth0"]);
    }
}
