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
use super::view::{DelRequest, HostView, PodView, host_veth_name};

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
