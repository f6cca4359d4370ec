//! The coordinator cases measured by `benches/coordinator.rs`, and the netlink messages an ADD
//! sends for each, counted through `spiderpool_netlink`'s recording fake.
//!
//! Cases (the topology the plugin reads after macvlan configured the NIC):
//!
//! * `overlay_net1`: the seed quick start, `examples/quickstart/topology-overlay.yaml` with
//!   `examples/quickstart/coordinator.yaml` (Calico `eth0` + macvlan `net1`, mode auto).
//! * `overlay_net1_default_route_nic`: the same pod annotated
//!   `ipam.spidernet.io/default-route-nic: net1`.
//! * `underlay_eth0`: the pod's first NIC is the macvlan itself (veth0 pair to the node,
//!   reply-via-veth marking), upstream-observed §1.5.
//!
//! [`count_add`] applies a plan the way the `coordinator` plugin does (read the pod, read the
//! node, apply the pod plan, apply the node plan), each netns through a [`ScriptedKernel`]: a
//! [`RecordingNetlink`] whose next reply is scripted, per request, from the views the case
//! describes (the link, address, route, rule and neighbour dumps the kernel would return).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use spiderpool_core::coordinator::{
    AddRequest, AgentCoordinatorConfig, CoordinatorConfig, Family, HostView, LinkView, MacAddr,
    NadCoordinatorConf, Plan, PodView, ReplyViaVethMark, Route, Rule, Step, merge,
};
use spiderpool_core::manifest::{SpiderObject, parse_documents};
use spiderpool_netlink::fake::{FakeSysctl, RecordingNetlink};
use spiderpool_netlink::link::Link;
use spiderpool_netlink::mark::{Marked, Marker};
use spiderpool_netlink::msg::core::NLM_F_DUMP;
use spiderpool_netlink::msg::route::link::{LinkAttribute, LinkFlags, LinkMessage};
use spiderpool_netlink::msg::{Exchange, RouteNetlink, RouteNetlinkMessage};
use spiderpool_netlink::{
    LinkNames, ReadOptions, Target, addr, apply, neigh, read_host_with, read_with, route, rule,
};

/// An error of this module: what went wrong, in words.
pub type CaseError = String;

/// One coordinator ADD to plan: the merged config, the request and the views it is planned on.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name (criterion id).
    pub name: &'static str,
    /// The merged coordinator config (NAD keys over the agent's answer).
    pub config: CoordinatorConfig,
    /// The request (container ID, ifname, default-route-NIC annotation).
    pub request: AddRequest,
    /// The pod as the plugin reads it before planning.
    pub pod: PodView,
    /// The node as the plugin reads it before planning.
    pub host: HostView,
}

/// The topology file format of `spiderpoolctl plan` (the fields the cases use).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Topology {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    #[serde(default)]
    default_route_nic: Option<String>,
    #[serde(default)]
    nad: NadCoordinatorConf,
    pod: PodView,
    host: HostView,
}

/// The underlay first-NIC pod of upstream-observed §1.5 (same format as the quick start's
/// topology file).
const UNDERLAY_TOPOLOGY: &str = r#"
containerID: 0123456789abcdef-underlay
ifname: eth0
pod:
  links:
  - {name: lo, index: 1, up: true, addresses: [127.0.0.1/8]}
  - {name: eth0, index: 2, mac: "ba:95:44:53:f2:c0", up: true, broadcast: true, multicast: true,
     addresses: [10.6.212.145/16]}
  routes:
  - {dst: 0.0.0.0/0, gw: 10.6.0.1, dev: eth0}
  - {dst: 10.6.0.0/16, dev: eth0, proto: kernel, scope: link, src: 10.6.212.145}
host:
  links:
  - {name: lo, index: 1, up: true, addresses: [127.0.0.1/8]}
  - {name: ens192, index: 2, mac: "da:5b:0e:4e:d4:59", up: true, broadcast: true,
     multicast: true, addresses: [10.6.212.132/16]}
  routes:
  - {dst: 0.0.0.0/0, gw: 10.6.0.1, dev: ens192}
  - {dst: 10.6.0.0/16, dev: ens192, proto: kernel, scope: link, src: 10.6.212.132}
  routeSrc: {10.6.212.145: 10.6.212.132}
"#;

/// `examples/quickstart` of this workspace.
pub fn quickstart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("quickstart")
}

fn read_text(path: &Path) -> Result<String, CaseError> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_topology(text: &str, what: &str) -> Result<Topology, CaseError> {
    serde_saphyr::from_str(text).map_err(|e| format!("{what}: {e}"))
}

/// The agent's answer for the SpiderCoordinator in `text`, with the pod's annotation.
fn agent_config(text: &str, annotation: Option<&str>) -> Result<AgentCoordinatorConfig, CaseError> {
    let coordinator = parse_documents(text)
        .map_err(|e| format!("coordinator.yaml: {e}"))?
        .into_iter()
        .find_map(|o| match o {
            SpiderObject::Coordinator(c) => Some(c),
            _ => None,
        })
        .ok_or("coordinator.yaml: no SpiderCoordinator")?;
    AgentCoordinatorConfig::from_spider_coordinator(&coordinator, annotation)
        .map_err(|e| format!("coordinator.yaml: {e}"))
}

fn case(
    name: &'static str,
    topo: Topology,
    coordinator_yaml: &str,
    annotation: Option<&str>,
) -> Result<Case, CaseError> {
    let annotation = annotation.or(topo.default_route_nic.as_deref());
    let agent = agent_config(coordinator_yaml, annotation)?;
    let config = merge(&topo.nad, &agent).map_err(|e| format!("{name}: merge: {e}"))?;
    let mut request = AddRequest::new(topo.container_id, topo.ifname);
    request.default_route_nic_annotation = annotation.map(str::to_owned);
    Ok(Case {
        name,
        config,
        request,
        pod: topo.pod,
        host: topo.host,
    })
}

/// The three cases, read from the quick start's files (overlay) and `UNDERLAY_TOPOLOGY`.
pub fn cases() -> Result<Vec<Case>, CaseError> {
    let dir = quickstart_dir();
    let overlay = read_text(&dir.join("topology-overlay.yaml"))?;
    let coordinator = read_text(&dir.join("coordinator.yaml"))?;
    Ok(vec![
        case(
            "overlay_net1",
            parse_topology(&overlay, "topology-overlay.yaml")?,
            &coordinator,
            None,
        )?,
        case(
            "overlay_net1_default_route_nic",
            parse_topology(&overlay, "topology-overlay.yaml")?,
            &coordinator,
            Some("net1"),
        )?,
        case(
            "underlay_eth0",
            parse_topology(UNDERLAY_TOPOLOGY, "underlay topology")?,
            &coordinator,
            None,
        )?,
    ])
}

/// What the kernel of one netns answers, built from a view: every reply is a message the real
/// kernel would send for that object.
#[derive(Debug, Default, Clone)]
pub struct KernelState {
    links: Vec<(Link, RouteNetlinkMessage)>,
    addresses: Vec<RouteNetlinkMessage>,
    routes: Vec<(Family, RouteNetlinkMessage)>,
    rules: Vec<(Family, RouteNetlinkMessage)>,
    neighbours: Vec<(Family, RouteNetlinkMessage)>,
    route_get: BTreeMap<IpAddr, RouteNetlinkMessage>,
}

fn to_link(l: &LinkView) -> Link {
    Link {
        index: l.index,
        name: l.name.clone(),
        mac: l.mac,
        mtu: l.mtu.or(Some(1500)),
        tx_queue_len: l.tx_queue_len,
        up: l.up,
        broadcast: l.broadcast,
        multicast: l.multicast,
        kind: None,
        link: l.peer_index,
    }
}

fn link_msg(l: &Link) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = l.index;
    let mut flags = LinkFlags::empty();
    if l.up {
        flags |= LinkFlags::Up;
    }
    if l.broadcast {
        flags |= LinkFlags::Broadcast;
    }
    if l.multicast {
        flags |= LinkFlags::Multicast;
    }
    m.header.flags = flags;
    m.attributes.push(LinkAttribute::IfName(l.name.clone()));
    if let Some(MacAddr(bytes)) = l.mac {
        m.attributes.push(LinkAttribute::Address(bytes.to_vec()));
    }
    if let Some(mtu) = l.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(q) = l.tx_queue_len {
        m.attributes.push(LinkAttribute::TxQueueLen(q));
    }
    RouteNetlinkMessage::NewLink(m)
}

/// The one message a typed operation sends, captured with a scratch recorder.
fn captured(
    op: impl FnOnce(&mut RecordingNetlink) -> spiderpool_netlink::Result<()>,
) -> Result<RouteNetlinkMessage, CaseError> {
    let mut scratch = RecordingNetlink::new();
    op(&mut scratch).map_err(|e| e.to_string())?;
    scratch
        .sent
        .pop()
        .map(|s| s.msg)
        .ok_or_else(|| "the operation sent nothing".to_owned())
}

impl KernelState {
    /// What a netns holding `links`, `routes`, `rules` and `neighbours` answers; `route_src`
    /// answers `ip route get`.
    pub fn new(
        links: &[LinkView],
        routes: &[Route],
        rules: &[Rule],
        neighbours: &[spiderpool_core::coordinator::Neighbour],
        route_src: &BTreeMap<IpAddr, IpAddr>,
    ) -> Result<KernelState, CaseError> {
        let kernel_links: Vec<Link> = links.iter().map(to_link).collect();
        let mut names = LinkNames::from_links(kernel_links.clone());
        let mut state = KernelState {
            links: kernel_links
                .iter()
                .map(|l| (l.clone(), link_msg(l)))
                .collect(),
            ..KernelState::default()
        };
        for l in links {
            for a in &l.addresses {
                let a: IpNet = *a;
                state.addresses.push(captured(|nl| {
                    addr::add(nl, l.index, &a, &addr::AddrOptions { nodad: false })
                })?);
            }
        }
        for r in routes {
            let msg = captured(|nl| route::add(nl, &mut names, r, route::AddMode::Exclusive))?;
            state.routes.push((r.family(), msg));
        }
        for r in rules {
            state
                .rules
                .push((r.family, captured(|nl| rule::add(nl, r).map(|_| ()))?));
        }
        for n in neighbours {
            if let Some(mac) = n.lladdr {
                let index = names.index(&mut RecordingNetlink::new(), &n.dev);
                if let Ok(index) = index {
                    let msg = captured(|nl| neigh::add(nl, index, n.ip, mac))?;
                    state.neighbours.push((Family::of(&n.ip), msg));
                }
            }
        }
        for (dst, src) in route_src {
            // `ip route get <pod IP>` on the node: a host route out of the first non-lo link.
            let Some(dev) = links.iter().find(|l| l.name != "lo") else {
                continue;
            };
            let prefix = if dst.is_ipv4() { 32 } else { 128 };
            let Ok(net) = IpNet::new(*dst, prefix) else {
                continue;
            };
            let r = Route::new(net, dev.name.clone()).with_src(Some(*src));
            let msg = captured(|nl| route::add(nl, &mut names, &r, route::AddMode::Exclusive))?;
            state.route_get.insert(*dst, msg);
        }
        Ok(state)
    }

    /// The pod side of a case.
    pub fn pod(view: &PodView) -> Result<KernelState, CaseError> {
        KernelState::new(
            &view.links,
            &view.routes,
            &view.rules,
            &view.neighbours,
            &BTreeMap::new(),
        )
    }

    /// The node side of a case.
    pub fn host(view: &HostView) -> Result<KernelState, CaseError> {
        KernelState::new(
            &view.links,
            &view.routes,
            &view.rules,
            &view.neighbours,
            &view.route_src,
        )
    }

    /// Links created by the plan (veth0 and its host peer) answer lookups too.
    pub fn add_links(&mut self, links: &[LinkView]) {
        for l in links {
            if self.links.iter().all(|(k, _)| k.name != l.name) {
                let k = to_link(l);
                let m = link_msg(&k);
                self.links.push((k, m));
            }
        }
    }

    fn link_lookup(&self, req: &LinkMessage) -> Option<RouteNetlinkMessage> {
        let by_name = req.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.as_str()),
            _ => None,
        });
        self.links
            .iter()
            .find(|(l, _)| match by_name {
                Some(n) => l.name == n,
                None => l.index == req.header.index,
            })
            .map(|(_, m)| m.clone())
    }

    /// Scripts `nl`'s answer to `msg` (sent with `flags`).
    fn script(&self, nl: &mut RecordingNetlink, msg: &RouteNetlinkMessage, flags: u16) {
        const ENODEV: i32 = 19;
        const ENETUNREACH: i32 = 101;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let of = |v: &[(Family, RouteNetlinkMessage)], f: Option<Family>| {
            v.iter()
                .filter(|(fam, _)| f.is_none_or(|f| *fam == f))
                .map(|(_, m)| m.clone())
                .collect::<Vec<_>>()
        };
        match msg {
            RouteNetlinkMessage::GetLink(_) if dump => {
                nl.reply(self.links.iter().map(|(_, m)| m.clone()).collect());
            }
            RouteNetlinkMessage::GetLink(m) => match self.link_lookup(m) {
                Some(l) => {
                    nl.reply(vec![l]);
                }
                None => {
                    nl.fail(ENODEV);
                }
            },
            RouteNetlinkMessage::GetAddress(_) if dump => {
                nl.reply(self.addresses.clone());
            }
            RouteNetlinkMessage::GetRoute(m) if dump => {
                nl.reply(of(
                    &self.routes,
                    family_of(u8::from(m.header.address_family)),
                ));
            }
            RouteNetlinkMessage::GetRoute(m) => {
                let dst = m.attributes.iter().find_map(|a| match a {
                    spiderpool_netlink::msg::route::route::RouteAttribute::Destination(d) => {
                        route_address_ip(d)
                    }
                    _ => None,
                });
                match dst.and_then(|d| self.route_get.get(&d)) {
                    Some(r) => {
                        nl.reply(vec![r.clone()]);
                    }
                    None => {
                        nl.fail(ENETUNREACH);
                    }
                }
            }
            RouteNetlinkMessage::GetRule(m) if dump => {
                nl.reply(of(&self.rules, family_of(u8::from(m.header.family))));
            }
            RouteNetlinkMessage::GetNeighbour(m) if dump => {
                nl.reply(of(&self.neighbours, family_of(u8::from(m.header.family))));
            }
            _ => {
                nl.ack();
            }
        }
    }
}

fn family_of(af: u8) -> Option<Family> {
    match af {
        2 => Some(Family::V4),
        10 => Some(Family::V6),
        _ => None,
    }
}

fn route_address_ip(a: &spiderpool_netlink::msg::route::route::RouteAddress) -> Option<IpAddr> {
    use spiderpool_netlink::msg::route::route::RouteAddress;
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A [`RecordingNetlink`] whose reply to each request is scripted, just before it is sent,
/// from a [`KernelState`].
#[derive(Debug)]
pub struct ScriptedKernel {
    /// The recorder: every request, in order.
    pub recorder: RecordingNetlink,
    /// What this netns answers.
    pub state: KernelState,
}

impl ScriptedKernel {
    /// A recorder answering from `state`.
    pub fn new(state: KernelState) -> ScriptedKernel {
        ScriptedKernel {
            recorder: RecordingNetlink::new(),
            state,
        }
    }

    /// Requests sent so far.
    pub fn count(&self) -> usize {
        self.recorder.sent.len()
    }
}

impl RouteNetlink for ScriptedKernel {
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> spiderpool_netlink::Result<Exchange> {
        self.state.script(&mut self.recorder, &msg, flags);
        self.recorder.exchange(msg, flags)
    }
}

/// A reply-via-veth marker that only counts (the real one runs `nft` once per call).
#[derive(Debug, Default)]
pub struct CountingMarker {
    /// Calls to [`Marker::apply`].
    pub applied: usize,
}

impl Marker for CountingMarker {
    fn apply(&mut self, _mark: &ReplyViaVethMark) -> spiderpool_netlink::Result<Marked> {
        self.applied += 1;
        Ok(Marked::Added)
    }

    fn remove(&mut self, _mark: &ReplyViaVethMark) -> spiderpool_netlink::Result<()> {
        Ok(())
    }

    fn restore(&mut self, _mark: &ReplyViaVethMark, _old: &str) -> spiderpool_netlink::Result<()> {
        Ok(())
    }
}

/// What one ADD costs in kernel requests, per netns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddCount {
    /// Netlink requests reading the pod netns for planning (one dump each of links, addresses,
    /// routes and rules; routes and rules of both families at once; no neighbours).
    pub pod_read: usize,
    /// Netlink requests reading the node netns (the same dumps plus `ip route get` per pod IP).
    pub node_read: usize,
    /// Netlink requests applying the pod plan.
    pub pod_apply: usize,
    /// Netlink requests applying the node plan.
    pub node_apply: usize,
    /// Steps of the pod plan.
    pub pod_steps: usize,
    /// Steps of the node plan.
    pub node_steps: usize,
    /// Sysctl writes (files under /proc/sys, not netlink) in the pod.
    pub pod_sysctl_writes: usize,
    /// Reply-via-veth markings (one `nft` run each).
    pub nft_runs: usize,
    /// Every request of the ADD as `(netns, message kind)`, in order.
    pub kinds: Vec<(&'static str, String)>,
}

impl AddCount {
    /// Netlink requests in the pod netns.
    pub fn pod_total(&self) -> usize {
        self.pod_read + self.pod_apply
    }

    /// Netlink requests in the node netns.
    pub fn node_total(&self) -> usize {
        self.node_read + self.node_apply
    }
}

fn kind(msg: &RouteNetlinkMessage) -> String {
    let dbg = format!("{msg:?}");
    dbg.split('(').next().unwrap_or_default().to_owned()
}

/// Pod IPs the plugin asks the node about (every usable address of a non-lo link).
fn pod_ips(pod: &PodView) -> Vec<IpAddr> {
    pod.links
        .iter()
        .filter(|l| l.name != "lo")
        .flat_map(LinkView::usable_ips)
        .collect()
}

/// Counts the netlink requests of one ADD of `plan` for `case`, as the plugin sends them: read
/// the pod, read the node, apply the pod plan, apply the node plan.
pub fn count_add(case: &Case, plan: &Plan) -> Result<AddCount, CaseError> {
    let (pod_after, host_after) = plan.apply(&case.pod, &case.host);
    let mut pod_state = KernelState::pod(&case.pod)?;
    pod_state.add_links(&pod_after.links);
    let mut host_state = KernelState::host(&case.host)?;
    host_state.add_links(&host_after.links);
    let mut pnl = ScriptedKernel::new(pod_state);
    let mut hnl = ScriptedKernel::new(host_state);

    let mut psys = FakeSysctl::default();
    let mut hsys = FakeSysctl::default();
    for step in plan.pod.steps.iter().chain(&plan.host.steps) {
        if let Step::Sysctl { key, .. } = step {
            // A fresh netns: the kernel default (rp_filter 2 on Debian, 0 in a new netns);
            // any value other than the plan's makes the step a write.
            psys.values.insert(key.clone(), "unset".into());
            hsys.values.insert(key.clone(), "unset".into());
        }
    }

    let mut count = AddCount::default();
    // As the plugin reads for planning: no neighbour dumps.
    read_with(&mut pnl, &mut psys, &[], ReadOptions::PLANNING)
        .map_err(|e| format!("read pod: {e}"))?;
    count.pod_read = pnl.count();
    read_host_with(
        &mut hnl,
        &mut hsys,
        &[],
        &pod_ips(&case.pod),
        ReadOptions::PLANNING,
    )
    .map_err(|e| format!("read node: {e}"))?;
    count.node_read = hnl.count();

    let mut marker = CountingMarker::default();
    {
        let mut target = Target {
            marker: Some(&mut marker),
            ..Target::new(&mut pnl, &mut psys)
        };
        apply(&plan.pod, &mut target).map_err(|e| format!("apply pod plan: {e}"))?;
    }
    count.pod_apply = pnl.count() - count.pod_read;
    apply(&plan.host, &mut Target::new(&mut hnl, &mut hsys))
        .map_err(|e| format!("apply node plan: {e}"))?;
    count.node_apply = hnl.count() - count.node_read;

    count.pod_steps = plan.pod.steps.len();
    count.node_steps = plan.host.steps.len();
    count.pod_sysctl_writes = psys.writes.len();
    count.nft_runs = marker.applied;
    count.kinds = pnl
        .recorder
        .sent
        .iter()
        .map(|s| ("pod", kind(&s.msg)))
        .chain(hnl.recorder.sent.iter().map(|s| ("node", kind(&s.msg))))
        .collect();
    Ok(count)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use spiderpool_core::coordinator::plan_add;

    #[test]
    fn every_case_plans_and_applies_through_the_fake() {
        for c in cases().unwrap() {
            let plan = plan_add(&c.config, &c.request, &c.pod, &c.host).unwrap();
            let n = count_add(&c, &plan).unwrap();
            assert!(n.pod_steps > 0, "{}", c.name);
            assert!(n.node_steps > 0, "{}", c.name);
            // At least one request per netlink step, plus the link dump before each plan.
            assert!(n.pod_apply > 0 && n.node_apply > 0, "{}: {n:?}", c.name);
            // The pod read: links, addresses, routes, rules (both families per dump).
            assert_eq!(n.pod_read, 4, "{}", c.name);
            // The node: the same and `ip route get` per pod IP.
            assert_eq!(n.node_read, 4 + pod_ips(&c.pod).len(), "{}", c.name);
        }
    }

    #[test]
    fn the_underlay_case_marks_replies_once() {
        let c = cases().unwrap().pop().unwrap();
        let plan = plan_add(&c.config, &c.request, &c.pod, &c.host).unwrap();
        assert_eq!(count_add(&c, &plan).unwrap().nft_runs, 1);
    }
}
