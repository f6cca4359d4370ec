//! Applying a plan to views, without a kernel: the state a netns is in after the plan.
//!
//! Semantics follow the kernel closely enough for the tables to print as iproute2 prints them:
//! adding a route whose table already has one to the same prefix with the same metric does
//! nothing ("File exists", which the coordinator ignores); deleting a link removes its routes and
//! neighbours; neighbour adds replace.

use std::collections::BTreeMap;

use super::entries::{NeighState, Neighbour, Route, Rule};
use super::plan::{DelPlan, NetnsPlan, Plan, ReplyViaVethMark, Step, VethPair};
use super::view::{HostView, LinkView, PodView};

/// Mutable access to the parts of a view a step changes.
pub(crate) struct Ns<'a> {
    pub links: &'a mut Vec<LinkView>,
    pub routes: &'a mut Vec<Route>,
    pub rules: &'a mut Vec<Rule>,
    pub neighbours: &'a mut Vec<Neighbour>,
    pub sysctls: &'a mut BTreeMap<String, String>,
    pub marks: Option<&'a mut Vec<ReplyViaVethMark>>,
}

impl PodView {
    pub(crate) fn ns(&mut self) -> Ns<'_> {
        Ns {
            links: &mut self.links,
            routes: &mut self.routes,
            rules: &mut self.rules,
            neighbours: &mut self.neighbours,
            sysctls: &mut self.sysctls,
            marks: Some(&mut self.marks),
        }
    }

    /// The pod after `plan`'s pod steps (a veth peer is not tracked here; use [`Plan::apply`]).
    pub fn with_steps(&self, plan: &NetnsPlan) -> PodView {
        let mut out = self.clone();
        for s in &plan.steps {
            apply_step(&mut out.ns(), s, None);
        }
        out
    }
}

impl HostView {
    pub(crate) fn ns(&mut self) -> Ns<'_> {
        Ns {
            links: &mut self.links,
            routes: &mut self.routes,
            rules: &mut self.rules,
            neighbours: &mut self.neighbours,
            sysctls: &mut self.sysctls,
            marks: None,
        }
    }

    /// The host after `plan`'s steps.
    pub fn with_steps(&self, plan: &NetnsPlan) -> HostView {
        let mut out = self.clone();
        for s in &plan.steps {
            apply_step(&mut out.ns(), s, None);
        }
        out
    }
}

impl Plan {
    /// The pod and host after this plan: pod steps first (a veth's peer appears on the host),
    /// then host steps.
    pub fn apply(&self, pod: &PodView, host: &HostView) -> (PodView, HostView) {
        let mut pod = pod.clone();
        let mut host = host.clone();
        for s in &self.pod.steps {
            apply_step(&mut pod.ns(), s, Some(&mut host.links));
        }
        for s in &self.host.steps {
            apply_step(&mut host.ns(), s, None);
        }
        (pod, host)
    }
}

impl DelPlan {
    /// The host after this DEL.
    pub fn apply(&self, host: &HostView) -> HostView {
        host.with_steps(&self.host)
    }
}

fn next_index(links: &[LinkView]) -> u32 {
    links
        .iter()
        .map(|l| l.index)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

fn create_veth(links: &mut Vec<LinkView>, peer_links: Option<&mut Vec<LinkView>>, v: &VethPair) {
    let index = next_index(links);
    let mut pod_end = LinkView::ethernet(v.name.clone(), index, Some(v.mac));
    pod_end.up = false;
    pod_end.mtu = Some(v.mtu);
    if let Some(peer_links) = peer_links {
        let peer_index = next_index(peer_links);
        let mut host_end = LinkView::ethernet(v.peer_name.clone(), peer_index, Some(v.peer_mac));
        host_end.up = false;
        host_end.mtu = Some(v.mtu);
        host_end.peer_index = Some(index);
        pod_end.peer_index = Some(peer_index);
        peer_links.push(host_end);
    }
    links.push(pod_end);
}

/// Applies one step. `peer_links` are the host's links, for a veth created in the pod.
pub(crate) fn apply_step(ns: &mut Ns<'_>, step: &Step, peer_links: Option<&mut Vec<LinkView>>) {
    let link = |links: &mut Vec<LinkView>, dev: &str| -> Option<usize> {
        links.iter().position(|l| l.name == dev)
    };
    match step {
        Step::SetLinkUp { dev } => {
            if let Some(i) = link(ns.links, dev) {
                ns.links[i].up = true;
            }
        }
        Step::CreateVeth(v) => {
            if link(ns.links, &v.name).is_none() {
                create_veth(ns.links, peer_links, v);
            }
        }
        Step::DeleteLink { name } => {
            ns.links.retain(|l| &l.name != name);
            ns.routes.retain(|r| !r.uses_dev(name));
            ns.neighbours.retain(|n| &n.dev != name);
        }
        Step::SetMac { dev, mac } => {
            if let Some(i) = link(ns.links, dev) {
                ns.links[i].mac = Some(*mac);
            }
        }
        Step::SetTxQueueLen { dev, len } => {
            if let Some(i) = link(ns.links, dev) {
                ns.links[i].tx_queue_len = Some(*len);
            }
        }
        Step::AddAddress { dev, addr } => {
            if let Some(i) = link(ns.links, dev)
                && !ns.links[i].addresses.contains(addr)
            {
                ns.links[i].addresses.push(*addr);
            }
        }
        Step::Sysctl { key, value } => {
            ns.sysctls.insert(key.clone(), value.clone());
        }
        Step::AddNeighbour { ip, dev, lladdr } => {
            ns.neighbours.retain(|n| !(n.ip == *ip && &n.dev == dev));
            ns.neighbours.push(Neighbour {
                ip: *ip,
                dev: dev.clone(),
                lladdr: Some(*lladdr),
                state: NeighState::Permanent,
            });
        }
        Step::DeleteNeighbour { ip, dev } => {
            ns.neighbours
                .retain(|n| !(n.ip == *ip && dev.as_ref().is_none_or(|d| d == &n.dev)));
        }
        Step::AddRule(rule) => {
            if !ns.rules.iter().any(|r| r == rule) {
                ns.rules.push(rule.clone());
            }
        }
        Step::DeleteRule(sel) => {
            if let Some(i) = ns.rules.iter().position(|r| sel.selects(r)) {
                ns.rules.remove(i);
            }
        }
        Step::AddRoute { route, .. } => {
            if !ns.routes.iter().any(|r| r.same_slot(route)) {
                ns.routes.push(route.clone());
            }
        }
        Step::DeleteRoute { route } => {
            if let Some(i) = ns.routes.iter().position(|r| route.selects(r)) {
                ns.routes.remove(i);
            }
        }
        Step::DeleteRoutesTo { table, dst } => {
            ns.routes
                .retain(|r| !(r.table == *table && r.dst.trunc() == dst.trunc()));
        }
        Step::ReplyViaVethMark(m) => {
            if let Some(marks) = ns.marks.as_deref_mut()
                && !marks.contains(m)
            {
                marks.push(m.clone());
            }
        }
        Step::Announce { .. } => {}
    }
}
