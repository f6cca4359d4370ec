//! The ADD planner: spec §4.4 steps 3–22 as a pure function of the config and the two views.
//!
//! The planner keeps a working copy of both netns states and applies each step to it as the step
//! is planned, so later steps see earlier ones exactly as upstream sees the kernel (e.g. with
//! `default-route-nic: net1`, eth0's routes copied into table 101 include the hijack routes just
//! added to main). Rules get explicit priorities computed like the kernel's default (one below the
//! lowest non-zero priority), so a plan is deterministic.

use crate::coordinator::CoordinatorError;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::config::CoordinatorConfig;
use super::entries::{
    Families, Family, MacAddr, Route, Rule, Scope, TABLE_MAIN, host_net, is_usable,
};
use super::mode::{
    ModeResolution, POD_VETH, RULE_PRIORITY_1000, ResolvedMode, TABLE_FIRST_NIC, resolve_mode,
};
use super::plan::{Plan, ReplyViaVethMark, RouteOrigin, Step, VethPair};
use super::render::route_line;
use super::state::apply_step;
use super::view::{AddRequest, HostView, PodView, VethMacs, host_veth_name};

/// Host interfaces whose addresses are never used as host IPs (upstream's regexes
/// `^docker.*`, `^cbr.*`, `^dummy.*`, `^virbr.*`, `^lxcbr.*`, `^veth.*`, `^cali.*`,
/// `^flannel.*`, `^kube-ipvs.*`, `^cni.*`, `^vx-submariner`, `^cilium*`, plus `^lo$`).
/// `^cilium*` means "cili" then any number of "m", i.e. every name starting with "cili".
const HOST_IFACE_EXCLUDED_PREFIXES: &[&str] = &[
    "docker",
    "cbr",
    "dummy",
    "virbr",
    "lxcbr",
    "veth",
    "cali",
    "flannel",
    "kube-ipvs",
    "cni",
    "vx-submariner",
    "cili",
];

/// True if upstream ignores this host interface's addresses when listing host IPs.
pub fn host_iface_excluded(name: &str) -> bool {
    name == "lo"
        || HOST_IFACE_EXCLUDED_PREFIXES
            .iter()
            .any(|p| name.starts_with(p))
}

/// The host IPs the pod must reach through its veth (spec §4.4 step 8), ordered and
/// de-duplicated: first the host's preferred source to each pod IP, then every address of the
/// families in use on host interfaces not excluded by [`host_iface_excluded`].
pub fn host_ips(host: &HostView, pod_ips: &[IpAddr], families: Families) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |ip: IpAddr| {
        if families.has(Family::of(&ip)) && is_usable(&ip) && !out.contains(&ip) {
            out.push(ip);
        }
    };
    for ip in pod_ips {
        if let Some(src) = host.route_src.get(ip) {
            push(*src);
        }
    }
    for link in host.links.iter().filter(|l| !host_iface_excluded(&l.name)) {
        for a in &link.addresses {
            push(a.addr());
        }
    }
    out
}

/// One below the lowest non-zero priority of `family` (what the kernel assigns to a rule added
/// without priority).
fn next_priority(rules: &[Rule], family: Family) -> Result<u32, CoordinatorError> {
    rules
        .iter()
        .filter(|r| r.family == family)
        .filter_map(|r| r.priority)
        .filter(|p| *p > 0)
        .min()
        .and_then(|p| p.checked_sub(1))
        .filter(|p| *p > 0)
        .ok_or_else(|| CoordinatorError::RulePriorityExhausted {
            family: family.label().into(),
        })
}

#[derive(Clone, Copy)]
enum Side {
    Pod,
    Host,
}

struct Builder {
    pod: PodView,
    host: HostView,
    plan: Plan,
}

impl Builder {
    fn step(&mut self, side: Side, step: Step) {
        match side {
            Side::Pod => {
                apply_step(&mut self.pod.ns(), &step, Some(&mut self.host.links));
                self.plan.pod.steps.push(step);
            }
            Side::Host => {
                apply_step(&mut self.host.ns(), &step, None);
                self.plan.host.steps.push(step);
            }
        }
    }

    fn routes(&self, side: Side) -> &[Route] {
        match side {
            Side::Pod => &self.pod.routes,
            Side::Host => &self.host.routes,
        }
    }

    fn rules(&self, side: Side) -> &[Rule] {
        match side {
            Side::Pod => &self.pod.rules,
            Side::Host => &self.host.rules,
        }
    }

    /// Adds a route unless its slot is taken: an identical route is already done; a different
    /// one would make the kernel answer "File exists", which upstream ignores, so it is skipped
    /// with a warning rather than planned to fail.
    fn route(&mut self, side: Side, route: Route, origin: RouteOrigin) {
        if let Some(existing) = self.routes(side).iter().find(|r| r.same_slot(&route)) {
            if !existing.same_forwarding(&route) {
                let table = route.table;
                let msg = format!(
                    "table {table}: keeping existing route \"{}\"; not adding \"{}\"",
                    route_line(existing).trim_end(),
                    route_line(&route).trim_end()
                );
                self.plan.warnings.push(msg);
            }
            return;
        }
        self.step(side, Step::AddRoute { route, origin });
    }

    /// Adds a rule at a fixed priority unless it already exists.
    fn rule_at(&mut self, side: Side, rule: Rule) {
        if !self.rules(side).contains(&rule) {
            self.step(side, Step::AddRule(rule));
        }
    }

    /// Adds a pod rule at the kernel's default priority unless one with the same selectors exists.
    fn rule_auto(&mut self, rule: Rule) -> Result<(), CoordinatorError> {
        if self.pod.rules.iter().any(|r| r.same_selectors(&rule)) {
            return Ok(());
        }
        let priority = next_priority(&self.pod.rules, rule.family)?;
        self.step(Side::Pod, Step::AddRule(rule.at(priority)));
        Ok(())
    }
}

fn usable_of(addrs: &[IpNet], families: Families) -> Vec<IpAddr> {
    addrs
        .iter()
        .map(|n| n.addr())
        .filter(|a| is_usable(a) && families.has(Family::of(a)))
        .collect()
}

fn missing(netns: &str, link: &str, reason: impl Into<String>) -> CoordinatorError {
    CoordinatorError::LinkInfoMissing {
        netns: netns.into(),
        link: link.into(),
        reason: reason.into(),
    }
}

/// The two ends of the pod's path to the host and their MACs.
struct VethEnds {
    pod: String,
    pod_mac: MacAddr,
    host: String,
    host_mac: Option<MacAddr>,
}

/// What every step of one ADD needs to know, worked out before the first step is planned.
struct Add<'a> {
    cfg: &'a CoordinatorConfig,
    req: &'a AddRequest,
    /// The NIC being configured (`CNI_IFNAME`).
    cur: &'a str,
    /// The pod's first NIC (`podDefaultCNINIC`, `eth0`).
    first: &'a str,
    /// cur's usable addresses, and their families.
    cur_ips: Vec<IpAddr>,
    families: Families,
    res: ModeResolution,
    /// The host IPs the pod must reach through its veth.
    host_ips: Vec<IpAddr>,
    /// The IPv4 source for the pod's new routes: the first NIC's (IPv6 routes get none).
    src4: Option<IpAddr>,
}

impl Add<'_> {
    fn src_for(&self, f: Family) -> Option<IpAddr> {
        if f == Family::V4 { self.src4 } else { None }
    }

    /// The first host IP of `f`: the gateway of the hijack and reply-via-veth routes.
    fn gw(&self, f: Family) -> Option<IpAddr> {
        self.host_ips.iter().copied().find(|h| Family::of(h) == f)
    }

    fn underlay_first(&self) -> bool {
        self.res.mode == ResolvedMode::Underlay && self.res.first_invoke
    }
}

/// Plans a coordinator ADD for `req.ifname` (spec §4.4), one helper per step of the algorithm.
/// `disable` gives an empty plan.
pub fn plan_add(
    cfg: &CoordinatorConfig,
    req: &AddRequest,
    pod: &PodView,
    host: &HostView,
) -> Result<Plan, CoordinatorError> {
    // Step 1: disabled → nothing at all (not even validation of the pod).
    if cfg.mode == super::config::Mode::Disable {
        return Ok(Plan::default());
    }
    let Some(a) = facts(cfg, req, pod, host)? else {
        return Ok(Plan::default());
    };
    let mut b = Builder {
        pod: pod.clone(),
        host: host.clone(),
        plan: Plan {
            resolution: Some(a.res),
            ..Plan::default()
        },
    };
    // Step 5.
    b.step(Side::Pod, Step::SetLinkUp { dev: a.cur.into() });
    let ends = veth_ends(&mut b, &a)?;
    link_settings(&mut b, &a);
    neighbours(&mut b, &a, &ends)?;
    host_routes(&mut b, &a, &ends);
    hijack_routes(&mut b, &a, &ends);
    reply_via_veth(&mut b, &a);
    // Step 21: route tuning.
    if cfg.tune_pod_routes && (!a.res.first_invoke || a.res.mode == ResolvedMode::Overlay) {
        tune(&mut b, &a)?;
    }
    policy_routes(&mut b, &a);
    b.plan.host_veth = ends.host;
    Ok(b.plan)
}

/// Steps 4 and 6–8 (and 16's source address): cur's addresses and families, the mode (`None`
/// when the coordinator does not run for cur), the pod's and the host's IPs.
fn facts<'a>(
    cfg: &'a CoordinatorConfig,
    req: &'a AddRequest,
    pod: &PodView,
    host: &HostView,
) -> Result<Option<Add<'a>>, CoordinatorError> {
    let cur = req.ifname.as_str();
    let first = cfg.pod_default_cni_nic.as_str();
    // Step 4: families of cur's usable addresses.
    let cur_link = pod
        .link(cur)
        .ok_or_else(|| CoordinatorError::InterfaceMissing { ifname: cur.into() })?;
    let cur_ips = cur_link.usable_ips();
    if cur_ips.is_empty() {
        return Err(CoordinatorError::NoUsableIp { ifname: cur.into() });
    }
    let families = Families::of(&cur_ips);
    // Step 6.
    let Some(res) = resolve_mode(cfg.mode, cur, first, pod)? else {
        return Ok(None);
    };
    // Step 7: pod IPs of the families in use, every interface but lo.
    let all_pod_ips: Vec<IpAddr> = pod
        .links
        .iter()
        .filter(|l| l.name != "lo")
        .flat_map(|l| usable_of(&l.addresses, families))
        .collect();
    // Step 16: IPv4 source for routes.
    let src4 = pod
        .link(first)
        .and_then(|l| l.usable_ips().into_iter().find(IpAddr::is_ipv4));
    Ok(Some(Add {
        cfg,
        req,
        cur,
        first,
        cur_ips,
        families,
        res,
        // Step 8.
        host_ips: host_ips(host, &all_pod_ips, families),
        src4,
    }))
}

/// Step 9: the veth ends, created by the underlay first NIC.
fn veth_ends(b: &mut Builder, a: &Add<'_>) -> Result<VethEnds, CoordinatorError> {
    match (a.res.mode, a.res.first_invoke) {
        (ResolvedMode::Underlay, true) => Ok(create_underlay_veth(b, a)),
        (ResolvedMode::Underlay, false) => existing_underlay_veth(b, a),
        (ResolvedMode::Overlay, _) => overlay_veth(b, a),
    }
}

fn create_underlay_veth(b: &mut Builder, a: &Add<'_>) -> VethEnds {
    let host_name = host_veth_name(&a.req.container_id);
    let macs = a
        .req
        .veth_macs
        .unwrap_or_else(|| VethMacs::derive(&a.req.container_id));
    b.step(
        Side::Pod,
        Step::CreateVeth(VethPair {
            name: POD_VETH.into(),
            mac: macs.pod,
            peer_name: host_name.clone(),
            peer_mac: macs.host,
            mtu: a.cfg.veth_mtu,
        }),
    );
    b.step(
        Side::Pod,
        Step::SetLinkUp {
            dev: POD_VETH.into(),
        },
    );
    if let (true, Some(addr)) = (a.families.v4, a.cfg.veth_link_address) {
        b.step(
            Side::Pod,
            Step::AddAddress {
                dev: POD_VETH.into(),
                addr: IpNet::from(IpAddr::V4(addr)),
            },
        );
    }
    b.step(
        Side::Host,
        Step::SetLinkUp {
            dev: host_name.clone(),
        },
    );
    VethEnds {
        pod: POD_VETH.into(),
        pod_mac: macs.pod,
        host: host_name,
        host_mac: Some(macs.host),
    }
}

/// The veth the first NIC's ADD made (underlay, later NICs).
fn existing_underlay_veth(b: &Builder, a: &Add<'_>) -> Result<VethEnds, CoordinatorError> {
    let host_name = host_veth_name(&a.req.container_id);
    let veth = b
        .pod
        .link(POD_VETH)
        .ok_or_else(|| missing("pod", POD_VETH, "does not exist"))?;
    let pod_mac = veth
        .mac
        .ok_or_else(|| missing("pod", POD_VETH, "has no MAC address in the view"))?;
    let host_link = b.host.link(&host_name).ok_or_else(|| {
        missing(
            "host",
            &host_name,
            "does not exist (the underlay veth made by the first NIC's ADD)",
        )
    })?;
    Ok(VethEnds {
        pod: POD_VETH.into(),
        pod_mac,
        host_mac: host_link.mac,
        host: host_name,
    })
}

/// The overlay CNI's veth: the pod's first NIC and its peer on the host.
fn overlay_veth(b: &Builder, a: &Add<'_>) -> Result<VethEnds, CoordinatorError> {
    let first = a.first;
    let eth0 = b
        .pod
        .link(first)
        .ok_or_else(|| missing("pod", first, "the first NIC does not exist"))?;
    let pod_mac = eth0
        .mac
        .ok_or_else(|| missing("pod", first, "has no MAC address in the view"))?;
    let peer = eth0.peer_index.ok_or_else(|| {
        missing(
            "pod",
            first,
            "has no veth peer index, so its host side cannot be found",
        )
    })?;
    let host_link = b.host.link_by_index(peer).ok_or_else(|| {
        missing(
            "host",
            &format!("with index {peer}"),
            format!("does not exist (peer of the pod's {first})"),
        )
    })?;
    Ok(VethEnds {
        pod: first.into(),
        pod_mac,
        host: host_link.name.clone(),
        host_mac: host_link.mac,
    })
}

/// Steps 11–14: cur's MAC (from the prefix and its first address) and its announcement,
/// txqueuelen (inside the pod: upstream ran it in the host netns by mistake), sysctls.
fn link_settings(b: &mut Builder, a: &Add<'_>) {
    let cur = a.cur;
    if let (Some(prefix), Some(first_ip)) = (a.cfg.pod_mac_prefix, a.cur_ips.first()) {
        let mac = prefix.mac_for(*first_ip);
        b.step(
            Side::Pod,
            Step::SetMac {
                dev: cur.into(),
                mac,
            },
        );
        b.step(
            Side::Pod,
            Step::Announce {
                dev: cur.into(),
                addrs: a.cur_ips.clone(),
            },
        );
    }
    if let Some(len) = a.cfg.tx_queue_len {
        b.step(
            Side::Pod,
            Step::SetTxQueueLen {
                dev: cur.into(),
                len,
            },
        );
    }
    if a.families.v6 {
        b.step(Side::Pod, sysctl("net.ipv6.conf.all.disable_ipv6", "0"));
    }
    if let Some(v) = a.cfg.pod_rp_filter {
        b.step(
            Side::Pod,
            sysctl("net.ipv4.conf.all.rp_filter", &v.to_string()),
        );
    }
}

/// Step 15: permanent neighbours. Host: cur's addresses → the pod veth's MAC on the host veth
/// (after deleting old entries); pod, first NIC only: host IPs → the host veth's MAC.
fn neighbours(b: &mut Builder, a: &Add<'_>, ends: &VethEnds) -> Result<(), CoordinatorError> {
    for ip in &a.cur_ips {
        b.step(Side::Host, Step::DeleteNeighbour { ip: *ip, dev: None });
        b.step(
            Side::Host,
            Step::AddNeighbour {
                ip: *ip,
                dev: ends.host.clone(),
                lladdr: ends.pod_mac,
            },
        );
    }
    if !a.res.first_invoke {
        return Ok(());
    }
    let host_mac = ends
        .host_mac
        .ok_or_else(|| missing("host", &ends.host, "has no MAC address in the view"))?;
    for h in &a.host_ips {
        b.step(
            Side::Pod,
            Step::AddNeighbour {
                ip: *h,
                dev: ends.pod.clone(),
                lladdr: host_mac,
            },
        );
    }
    Ok(())
}

/// Step 17: host routes in the pod (table N, and main for the first NIC), the host rule and
/// the host's route to each cur address.
fn host_routes(b: &mut Builder, a: &Add<'_>, ends: &VethEnds) {
    for h in &a.host_ips {
        let r = Route::new(host_net(*h), ends.pod.clone())
            .with_scope(Scope::Link)
            .with_src(a.src_for(Family::of(h)));
        b.route(
            Side::Pod,
            r.clone().in_table(a.res.current_table),
            RouteOrigin::New,
        );
        if a.res.first_invoke {
            b.route(Side::Pod, r, RouteOrigin::New);
        }
    }
    let host_table = a.cfg.host_rule_table;
    for f in a.families.list() {
        b.rule_at(
            Side::Host,
            Rule::lookup(f, host_table).at(RULE_PRIORITY_1000),
        );
    }
    for ip in &a.cur_ips {
        let dst = host_net(*ip);
        b.step(
            Side::Host,
            Step::DeleteRoutesTo {
                table: host_table,
                dst,
            },
        );
        let r = Route::new(dst, ends.host.clone())
            .with_scope(Scope::Link)
            .in_table(host_table);
        b.route(Side::Host, r, RouteOrigin::New);
    }
}

/// Steps 18–19: hijack routes (pod CIDRs, service CIDRs, hijackCIDR) via the first host IP of
/// each family.
fn hijack_routes(b: &mut Builder, a: &Add<'_>, ends: &VethEnds) {
    let table = if a.res.first_invoke {
        TABLE_MAIN
    } else {
        a.res.current_table
    };
    for c in &a.cfg.hijack_list() {
        let f = Family::of_net(c);
        match a.gw(f).filter(|_| a.families.has(f)) {
            Some(g) => {
                let r = Route::new(*c, ends.pod.clone())
                    .via(g)
                    .with_src(a.src_for(f))
                    .in_table(table);
                b.route(Side::Pod, r, RouteOrigin::New);
            }
            None => b.plan.warnings.push(format!(
                "hijack CIDR {c} skipped: no {} host IP to route it via",
                f.label()
            )),
        }
    }
}

/// Step 20: underlay first NIC, replies to connections that came in by veth0 leave by veth0.
fn reply_via_veth(b: &mut Builder, a: &Add<'_>) {
    if !a.underlay_first() {
        return;
    }
    let families = a.families.list();
    b.step(
        Side::Pod,
        Step::ReplyViaVethMark(ReplyViaVethMark {
            iface: POD_VETH.into(),
            mark: 1,
            table: TABLE_FIRST_NIC,
            families: families.clone(),
        }),
    );
    for f in &families {
        let rule = Rule {
            fwmark: Some(1),
            ..Rule::lookup(*f, TABLE_FIRST_NIC).at(RULE_PRIORITY_1000)
        };
        b.rule_at(Side::Pod, rule);
    }
    for f in families {
        if let Some(g) = a.gw(f) {
            let r = Route::new(default_net(f), POD_VETH)
                .via(g)
                .with_src(a.src_for(f))
                .in_table(TABLE_FIRST_NIC);
            b.route(Side::Pod, r, RouteOrigin::New);
        }
    }
}

/// Step 22: policy routes via cur.
fn policy_routes(b: &mut Builder, a: &Add<'_>) {
    let table = if a.underlay_first() {
        TABLE_MAIN
    } else {
        a.res.current_table
    };
    for p in a
        .cfg
        .policy_routes
        .iter()
        .filter(|p| a.families.has(Family::of_net(&p.dst)))
    {
        let r = Route::new(p.dst, a.cur).via(p.gw).in_table(table);
        b.route(Side::Pod, r, RouteOrigin::New);
    }
}

fn sysctl(key: &str, value: &str) -> Step {
    Step::Sysctl {
        key: key.into(),
        value: value.into(),
    }
}

fn default_net(f: Family) -> IpNet {
    match f {
        Family::V4 => IpNet::V4(Ipv4Net::default()),
        Family::V6 => IpNet::V6(Ipv6Net::default()),
    }
}

/// `fe80::/64`, the one route of an interface that is never copied.
fn is_fe80_64(net: &IpNet) -> bool {
    match net {
        IpNet::V6(n) => n.prefix_len() == 64 && n.network().segments()[..4] == [0xfe80, 0, 0, 0],
        IpNet::V4(_) => false,
    }
}

/// The nexthop of a (possibly multipath) default route that leaves by `dev`, as a plain route.
fn default_via(route: &Route, dev: &str, table: u32) -> Option<Route> {
    if route.nexthops.is_empty() {
        return (route.dev == dev).then(|| route.clone().in_table(table));
    }
    let nh = route.nexthops.iter().find(|n| n.dev == dev)?;
    let mut r = Route::new(route.dst, dev)
        .in_table(table)
        .with_proto(route.proto);
    r.gw = nh.gw;
    r.metric = route.metric;
    Some(r)
}

/// The routes of main that are default routes of a family in use and leave by `dev`.
fn main_defaults(b: &Builder, a: &Add<'_>, dev: &str) -> Vec<Route> {
    b.pod
        .routes
        .iter()
        .filter(|r| {
            r.table == TABLE_MAIN && r.is_default() && a.families.has(r.family()) && r.uses_dev(dev)
        })
        .cloned()
        .collect()
}

/// Step 21: rules so each NIC's addresses use its table, and the default route of the NIC
/// that is not the pod's default moved out of main.
fn tune(b: &mut Builder, a: &Add<'_>) -> Result<(), CoordinatorError> {
    let cur = a.cur;
    // 21.1: the first other interface owning a default route in main.
    let dflt = b
        .pod
        .links
        .iter()
        .filter(|l| l.name != "lo" && l.name != cur)
        .find(|l| !main_defaults(b, a, &l.name).is_empty())
        .map(|l| l.name.clone());
    let Some(dflt) = dflt else {
        b.plan.warnings.push(format!(
            "no other interface has a default route in main; routes of {cur} not tuned"
        ));
        return Ok(());
    };
    // 21.2: the NIC that keeps main's default (`want`) and the one whose routes move.
    let want = a
        .cfg
        .default_route_nic(a.req.default_route_nic_annotation.as_deref())
        .filter(|w| *w != dflt.as_str());
    let (want, move_if) = match want {
        None => (dflt.clone(), cur.to_string()),
        Some(w) => {
            if b.pod.link(w).is_none() {
                return Err(CoordinatorError::DefaultRouteNicMissing { nic: w.into() });
            }
            (w.to_string(), dflt.clone())
        }
    };
    tune_rules(b, a, &dflt, want == cur)?;
    move_routes(b, a, &move_if);
    Ok(())
}

/// 21.3: `from <addr> lookup N` rules for the NIC that leaves main (dflt's addresses when cur
/// keeps the default, else cur's); an overlay first NIC also gets eth0's rules and default
/// route in table 100.
fn tune_rules(
    b: &mut Builder,
    a: &Add<'_>,
    dflt: &str,
    cur_keeps_default: bool,
) -> Result<(), CoordinatorError> {
    let table = a.res.current_table;
    let dflt_ips = b
        .pod
        .link(dflt)
        .map(|l| usable_of(&l.addresses, a.families))
        .unwrap_or_default();
    if cur_keeps_default {
        for ip in &dflt_ips {
            b.rule_auto(Rule::from_addr(*ip, table))?;
        }
        return Ok(());
    }
    for ip in &a.cur_ips {
        b.rule_auto(Rule::from_addr(*ip, table))?;
    }
    if a.res.mode == ResolvedMode::Overlay && a.res.first_invoke {
        for ip in &dflt_ips {
            b.rule_auto(Rule::from_addr(*ip, TABLE_FIRST_NIC))?;
        }
        for r in main_defaults(b, a, dflt) {
            if let Some(copy) = default_via(&r, dflt, TABLE_FIRST_NIC) {
                b.route(Side::Pod, copy, RouteOrigin::CopiedFrom(TABLE_MAIN));
            }
        }
    }
    Ok(())
}

/// 21.4: move `move_if`'s default route(s) from main to the NIC's table; copy its other routes.
fn move_routes(b: &mut Builder, a: &Add<'_>, move_if: &str) {
    let table = a.res.current_table;
    let snapshot: Vec<Route> = b
        .pod
        .routes
        .iter()
        .filter(|r| r.table == TABLE_MAIN && a.families.has(r.family()) && r.uses_dev(move_if))
        .cloned()
        .collect();
    for r in snapshot {
        if r.is_default() {
            move_default(b, &r, move_if, table);
        } else if !is_fe80_64(&r.dst) && r.nexthops.is_empty() {
            // A copy keeps dst, gw, scope and src only (proto and metric fall back to defaults).
            let mut copy = Route::new(r.dst, move_if)
                .with_scope(r.scope)
                .with_src(r.src)
                .in_table(table);
            copy.gw = r.gw;
            b.route(Side::Pod, copy, RouteOrigin::CopiedFrom(TABLE_MAIN));
        }
    }
}

/// Moves `move_if`'s nexthop of default route `r` to `table`; a multipath default keeps its
/// other nexthops in main.
fn move_default(b: &mut Builder, r: &Route, move_if: &str, table: u32) {
    let Some(moved) = default_via(r, move_if, table) else {
        return;
    };
    b.route(Side::Pod, moved, RouteOrigin::MovedFrom(TABLE_MAIN));
    b.step(Side::Pod, Step::DeleteRoute { route: r.clone() });
    let rest: Vec<_> = r
        .nexthops
        .iter()
        .filter(|n| n.dev != move_if)
        .cloned()
        .collect();
    if r.nexthops.is_empty() || rest.is_empty() {
        return;
    }
    let mut remainder = r.clone();
    if let [only] = rest.as_slice() {
        remainder.dev = only.dev.clone();
        remainder.gw = only.gw;
        remainder.nexthops.clear();
    } else {
        remainder.nexthops = rest;
    }
    b.route(Side::Pod, remainder, RouteOrigin::Remainder);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_interface_filter() {
        for name in [
            "lo",
            "docker0",
            "cbr0",
            "dummy1",
            "virbr0",
            "lxcbr0",
            "veth1234",
            "cali12ab",
            "flannel.1",
            "kube-ipvs0",
            "cni0",
            "vx-submariner",
            "cilium_host",
            "cilium_net",
        ] {
            assert!(host_iface_excluded(name), "{name}");
        }
        for name in ["ens192", "eth0", "bond0", "lo0", "vxlan.calico", "tunl0"] {
            assert!(!host_iface_excluded(name), "{name}");
        }
    }

    #[test]
    fn priorities_follow_the_kernel_default() {
        let rules = Rule::kernel_defaults();
        assert_eq!(next_priority(&rules, Family::V4), Ok(32765));
        assert_eq!(next_priority(&rules, Family::V6), Ok(32765));
        let mut rules = rules;
        rules.push(Rule::lookup(Family::V4, 100).at(1000));
        assert_eq!(next_priority(&rules, Family::V4), Ok(999));
        assert_eq!(next_priority(&rules, Family::V6), Ok(32765));
        let only_local = vec![
            Rule::lookup(Family::V4, 255).at(0),
            Rule::lookup(Family::V4, 254).at(1),
        ];
        assert!(next_priority(&only_local, Family::V4).is_err());
    }
}
