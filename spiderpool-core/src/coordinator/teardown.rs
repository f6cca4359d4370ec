//! The DEL planner (spec §4.6), extended so DEL removes every per-pod host entry ADD made.
//!
//! Upstream's DEL deletes the underlay host veth and rules `to <addr> lookup HT`, which ADD never
//! creates; the table-HT route and the permanent neighbour ADD made for each address stay until
//! the host veth disappears (in overlay mode: until the overlay CNI deletes its veth). Here DEL
//! also deletes those, so a DEL whose pod keeps running (e.g. a NIC removed by a runtime that
//! re-runs ADD) leaves no stale host entries. The host rule `from all lookup HT` (priority 1000)
//! is shared by every pod of the node and stays, as upstream.

use super::config::{CoordinatorConfig, Mode};
use super::entries::{Rule, host_net};
use super::plan::{DelPlan, Step};
use super::view::{DelRequest, HostView, LinkView, PodView, host_veth_name};
use crate::cni::Result100;

/// Plans a coordinator DEL. `pod` is `None` when the pod netns is already gone: then only the
/// underlay host veth (if present on the host) is deleted, which takes its routes and neighbours
/// with it. The veth is deleted by the DEL of the first NIC (the one whose ADD created it) or
/// whenever the pod netns is gone.
pub fn plan_del(
    cfg: &CoordinatorConfig,
    req: &DelRequest,
    pod: Option<&PodView>,
    host: &HostView,
) -> DelPlan {
    let mut plan = DelPlan::default();
    if cfg.mode == Mode::Disable {
        return plan;
    }
    let table = cfg.host_rule_table;
    let steps = &mut plan.host.steps;
    if let Some(cur) = pod.and_then(|p| p.link(&req.ifname)) {
        for ip in cur.usable_ips() {
            let dst = host_net(ip);
            // What upstream deletes (a rule from older versions; harmless when absent).
            steps.push(Step::DeleteRule(Rule {
                to: Some(dst),
                ..Rule::lookup(super::entries::Family::of(&ip), table)
            }));
            steps.push(Step::DeleteRoutesTo { table, dst });
            steps.push(Step::DeleteNeighbour { ip, dev: None });
        }
    }
    let veth = host_veth_name(&req.container_id);
    let owns_veth = pod.is_none() || req.ifname == cfg.pod_default_cni_nic;
    if owns_veth && host.link(&veth).is_some() {
        steps.push(Step::DeleteLink { name: veth });
    }
    plan
}

/// Plans a coordinator DEL from everything the runtime gives: the pod netns as read (`None`
/// when it is gone), and the ADD's result (`prevResult`, when the runtime passes one).
///
/// With the NIC still in the pod, this is [`plan_del`]. Without it (the netns is gone, or the
/// main plugin's DEL already removed the NIC), the NIC's addresses come from `prev`, so the
/// node's table-500 routes and neighbour entries for them still go; and with the netns gone
/// the underlay host veth is deleted whatever NIC this is (it belongs to nobody any more).
pub fn plan_del_from_prev(
    cfg: &CoordinatorConfig,
    req: &DelRequest,
    pod: Option<&PodView>,
    host: &HostView,
    prev: Option<&Result100>,
) -> DelPlan {
    if pod.is_some_and(|p| p.link(&req.ifname).is_some()) {
        return plan_del(cfg, req, pod, host);
    }
    let rebuilt = prev_nic(prev, &req.ifname).map(|nic| {
        let mut p = pod.cloned().unwrap_or_else(|| PodView::new(Vec::new()));
        p.links.push(nic);
        p
    });
    let mut plan = plan_del(cfg, req, rebuilt.as_ref().or(pod), host);
    if pod.is_none() {
        for step in plan_del(cfg, req, None, host).host.steps {
            if !plan.host.steps.contains(&step) {
                plan.host.steps.push(step);
            }
        }
    }
    plan
}

/// The NIC as `prev` describes it: its addresses (those pointing at an interface of that name,
/// and those pointing at none); `None` without any.
fn prev_nic(prev: Option<&Result100>, ifname: &str) -> Option<LinkView> {
    let prev = prev?;
    let addresses: Vec<_> = prev
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            Some(i) => prev.interfaces.get(i).is_some_and(|nic| nic.name == ifname),
            None => true,
        })
        .map(|ip| ip.address)
        .collect();
    if addresses.is_empty() {
        return None;
    }
    // Index 0 never clashes with a real link: only the name and addresses are read.
    Some(LinkView::ethernet(ifname, 0, None).with_addresses(addresses))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::cni::{Interface, IpConfig};
    use crate::coordinator::config::CoordinatorConfig;

    const CID: &str = "0123456789abcdef";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn req(ifname: &str) -> DelRequest {
        DelRequest {
            container_id: CID.into(),
            ifname: ifname.into(),
        }
    }

    /// A node with the underlay host veth of pod `CID`.
    fn node() -> HostView {
        HostView::new(vec![
            LinkView::ethernet("ens192", 2, None),
            LinkView::ethernet(host_veth_name(CID), 3, None),
        ])
    }

    /// eth0 with 10.6.212.145 and net1 with 10.7.0.5 (and an address for no interface).
    fn prev() -> Result100 {
        Result100 {
            interfaces: vec![Interface::new("eth0"), Interface::new("net1")],
            ips: vec![
                IpConfig::new("10.6.212.145/16".parse().unwrap()).with_interface(0),
                IpConfig::new("10.7.0.5/16".parse().unwrap()).with_interface(1),
                IpConfig::new("fd00::5/64".parse().unwrap()),
            ],
            ..Result100::default()
        }
    }

    /// The addresses whose node-side entries the plan deletes, and the links it deletes.
    fn summary(plan: &DelPlan) -> (Vec<IpAddr>, Vec<String>) {
        let mut ips = Vec::new();
        let mut links = Vec::new();
        for step in &plan.host.steps {
            match step {
                Step::DeleteNeighbour { ip, .. } => ips.push(*ip),
                Step::DeleteLink { name } => links.push(name.clone()),
                _ => {}
            }
        }
        (ips, links)
    }

    #[test]
    fn netns_gone_takes_the_nic_addresses_from_prev_result_and_deletes_the_veth() {
        let cfg = CoordinatorConfig::default();
        let plan = plan_del_from_prev(&cfg, &req("net1"), None, &node(), Some(&prev()));
        assert_eq!(
            summary(&plan),
            (
                vec![ip("10.7.0.5"), ip("fd00::5")],
                vec![host_veth_name(CID)]
            )
        );
        assert!(plan.host.steps.contains(&Step::DeleteRoutesTo {
            table: cfg.host_rule_table,
            dst: "10.7.0.5/32".parse().unwrap(),
        }));
    }

    #[test]
    fn netns_gone_without_prev_result_deletes_only_the_veth() {
        let cfg = CoordinatorConfig::default();
        let plan = plan_del_from_prev(&cfg, &req("net1"), None, &node(), None);
        assert_eq!(summary(&plan), (vec![], vec![host_veth_name(CID)]));
    }

    #[test]
    fn a_nic_already_removed_from_a_live_pod_uses_prev_result_and_keeps_the_veth() {
        let cfg = CoordinatorConfig::default();
        let pod = PodView::new(vec![
            LinkView::ethernet("eth0", 2, None)
                .with_addresses(["10.6.212.145/16".parse().unwrap()]),
        ]);
        let plan = plan_del_from_prev(&cfg, &req("net1"), Some(&pod), &node(), Some(&prev()));
        // net1 is not the first NIC: the veth stays for eth0.
        assert_eq!(
            summary(&plan),
            (vec![ip("10.7.0.5"), ip("fd00::5")], vec![])
        );
    }

    #[test]
    fn a_nic_still_in_the_pod_is_planned_from_its_live_addresses() {
        let cfg = CoordinatorConfig::default();
        let pod = PodView::new(vec![
            LinkView::ethernet("net1", 3, None).with_addresses(["10.7.0.9/16".parse().unwrap()]),
        ]);
        let plan = plan_del_from_prev(&cfg, &req("net1"), Some(&pod), &node(), Some(&prev()));
        assert_eq!(plan, plan_del(&cfg, &req("net1"), Some(&pod), &node()));
        assert_eq!(summary(&plan), (vec![ip("10.7.0.9")], vec![]));
    }

    #[test]
    fn prev_result_addresses_of_other_nics_or_bad_indexes_are_ignored() {
        let mut r = prev();
        r.ips
            .push(IpConfig::new("10.9.0.1/16".parse().unwrap()).with_interface(7));
        let nic = prev_nic(Some(&r), "eth0").unwrap();
        assert_eq!(nic.usable_ips(), [ip("10.6.212.145"), ip("fd00::5")]);
        let only_other = Result100 {
            interfaces: vec![Interface::new("net1")],
            ips: vec![IpConfig::new("10.7.0.5/16".parse().unwrap()).with_interface(0)],
            ..Result100::default()
        };
        assert_eq!(prev_nic(Some(&only_other), "eth0"), None);
    }
}
