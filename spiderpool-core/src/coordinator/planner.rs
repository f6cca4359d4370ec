//! The ADD planner: spec §4.4 steps 3–22 as a pure function of the config and the two views.
//!
//! The planner keeps a working copy of both netns states and applies each step to it as the step
//! is planned, so later steps see earlier ones exactly as upstream sees the kernel (e.g. with
//! `default-route-nic: net1`, eth0's routes copied into table 101 include the hijack routes just
//! added to main). Rules get explicit priorities computed like the kernel's default (one below the
//! lowest non-zero priority), so a plan is deterministic.

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
use crate::Error;

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
fn next_priority(rules: &[Rule], family: Family) -> Result<u32, Error> {
    rules
        .iter()
        .filter(|r| r.family == family)
        .filter_map(|r| r.priority)
        .filter(|p| *p > 0)
        .min()
        .and_then(|p| p.checked_sub(1))
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::CoordinatorRulePriorityExhausted {
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
    fn rule_auto(&mut self, rule: Rule) -> Result<(), Error> {
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

fn missing(netns: &str, link: &str, reason: impl Into<String>) -> Error {
    Error::CoordinatorLinkInfoMissing {
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

/// Plans a coordinator ADD for `req.ifname` (spec §4.4). `disable` gives an empty plan.
pub fn plan_add(
    cfg: &CoordinatorConfig,
    req: &AddRequest,
    pod: &PodView,
    host: &HostView,
) -> Result<Plan, Error> {
    // Step 1: disabled → nothing at all (not even validation of the pod).
    if cfg.mode == super::config::Mode::Disable {
        return Ok(Plan::default());
    }
    let cur_name = req.ifname.as_str();
    let first = cfg.pod_default_cni_nic.as_str();
    let hijack = cfg.hijack_list();

    // Step 4: families of cur's usable addresses.
    let cur = pod
        .link(cur_name)
        .ok_or_else(|| Error::CoordinatorInterfaceMissing {
            ifname: cur_name.into(),
        })?;
    let cur_ips = cur.usable_ips();
    if cur_ips.is_empty() {
        return Err(Error::CoordinatorNoUsableIp {
            ifname: cur_name.into(),
        });
    }
    let families = Families::of(&cur_ips);

    // Step 6.
    let Some(res) = resolve_mode(cfg.mode, cur_name, first, pod)? else {
        return Ok(Plan::default());
    };
    let ModeResolution {
        mode,
        first_invoke,
        current_table: table,
    } = res;

    // Step 7: pod IPs of the families in use, every interface but lo.
    let all_pod_ips: Vec<IpAddr> = pod
        .links
        .iter()
        .filter(|l| l.name != "lo")
        .flat_map(|l| usable_of(&l.addresses, families))
        .collect();
    // Step 8.
    let host_ips = host_ips(host, &all_pod_ips, families);

    let mut b = Builder {
        pod: pod.clone(),
        host: host.clone(),
        plan: Plan {
            resolution: Some(res),
            ..Plan::default()
        },
    };

    // Step 5.
    b.step(
        Side::Pod,
        Step::SetLinkUp {
            dev: cur_name.into(),
        },
    );

    // Step 9: the veth ends.
    let ends = match mode {
        ResolvedMode::Underlay => {
            let host_name = host_veth_name(&req.container_id);
            if first_invoke {
                let macs = req
                    .veth_macs
                    .unwrap_or_else(|| VethMacs::derive(&req.container_id));
                b.step(
                    Side::Pod,
                    Step::CreateVeth(VethPair {
                        name: POD_VETH.into(),
                        mac: macs.pod,
                        peer_name: host_name.clone(),
                        peer_mac: macs.host,
                        mtu: cfg.veth_mtu,
                    }),
                );
                b.step(
                    Side::Pod,
                    Step::SetLinkUp {
                        dev: POD_VETH.into(),
                    },
                );
                if let (true, Some(addr)) = (families.v4, cfg.veth_link_address) {
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
            } else {
                let veth = pod
                    .link(POD_VETH)
                    .ok_or_else(|| missing("pod", POD_VETH, "does not exist"))?;
                let pod_mac = veth
                    .mac
                    .ok_or_else(|| missing("pod", POD_VETH, "has no MAC address in the view"))?;
                let host_link = host.link(&host_name).ok_or_else(|| {
                    missing(
                        "host",
                        &host_name,
                        "does not exist (the underlay veth made by the first NIC's ADD)",
                    )
                })?;
                VethEnds {
                    pod: POD_VETH.into(),
                    pod_mac,
                    host: host_name,
                    host_mac: host_link.mac,
                }
            }
        }
        ResolvedMode::Overlay => {
            let eth0 = pod
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
            let host_link = host.link_by_index(peer).ok_or_else(|| {
                missing(
                    "host",
                    &format!("with index {peer}"),
                    format!("does not exist (peer of the pod's {first})"),
                )
            })?;
            VethEnds {
                pod: first.into(),
                pod_mac,
                host: host_link.name.clone(),
                host_mac: host_link.mac,
            }
        }
    };

    // Step 11: MAC from the prefix and the first address of cur.
    if let (Some(prefix), Some(first_ip)) = (cfg.pod_mac_prefix, cur_ips.first()) {
        b.step(
            Side::Pod,
            Step::SetMac {
                dev: cur_name.into(),
                mac: prefix.mac_for(*first_ip),
            },
        );
        b.step(
            Side::Pod,
            Step::Announce {
                dev: cur_name.into(),
                addrs: cur_ips.clone(),
            },
        );
    }
    // Step 12, inside the pod (upstream ran it in the host netns by mistake).
    if let Some(len) = cfg.tx_queue_len {
        b.step(
            Side::Pod,
            Step::SetTxQueueLen {
                dev: cur_name.into(),
                len,
            },
        );
    }
    // Steps 13–14.
    if families.v6 {
        b.step(Side::Pod, sysctl("net.ipv6.conf.all.disable_ipv6", "0"));
    }
    if let Some(v) = cfg.pod_rp_filter {
        b.step(
            Side::Pod,
            sysctl("net.ipv4.conf.all.rp_filter", &v.to_string()),
        );
    }

    // Step 15: neighbours.
    for ip in &cur_ips {
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
    if first_invoke {
        let host_mac = ends
            .host_mac
            .ok_or_else(|| missing("host", &ends.host, "has no MAC address in the view"))?;
        for h in &host_ips {
            b.step(
                Side::Pod,
                Step::AddNeighbour {
                    ip: *h,
                    dev: ends.pod.clone(),
                    lladdr: host_mac,
                },
            );
        }
    }

    // Step 16: IPv4 source for routes; IPv6 routes get none.
    let src4 = pod
        .link(first)
        .and_then(|l| l.usable_ips().into_iter().find(IpAddr::is_ipv4));
    let src_for = |f: Family| if f == Family::V4 { src4 } else { None };

    // Step 17: host routes in the pod, the host rule and the host's route to each cur address.
    for h in &host_ips {
        let r = Route::new(host_net(*h), ends.pod.clone())
            .with_scope(Scope::Link)
            .with_src(src_for(Family::of(h)));
        b.route(Side::Pod, r.clone().in_table(table), RouteOrigin::New);
        if first_invoke {
            b.route(Side::Pod, r, RouteOrigin::New);
        }
    }
    for f in families.list() {
        b.rule_at(
            Side::Host,
            Rule::lookup(f, cfg.host_rule_table).at(RULE_PRIORITY_1000),
        );
    }
    for ip in &cur_ips {
        let dst = host_net(*ip);
        b.step(
            Side::Host,
            Step::DeleteRoutesTo {
                table: cfg.host_rule_table,
                dst,
            },
        );
        let r = Route::new(dst, ends.host.clone())
            .with_scope(Scope::Link)
            .in_table(cfg.host_rule_table);
        b.route(Side::Host, r, RouteOrigin::New);
    }

    // Steps 18–19: hijack routes via the first host IP of each family.
    let gw = |f: Family| host_ips.iter().copied().find(|h| Family::of(h) == f);
    let hijack_table = if first_invoke { TABLE_MAIN } else { table };
    for c in &hijack {
        let f = Family::of_net(c);
        match gw(f).filter(|_| families.has(f)) {
            Some(g) => {
                let r = Route::new(*c, ends.pod.clone())
                    .via(g)
                    .with_src(src_for(f))
                    .in_table(hijack_table);
                b.route(Side::Pod, r, RouteOrigin::New);
            }
            None => b.plan.warnings.push(format!(
                "hijack CIDR {c} skipped: no {} host IP to route it via",
                f.label()
            )),
        }
    }

    // Step 20: underlay first NIC, replies to connections that came in by veth0 leave by veth0.
    if mode == ResolvedMode::Underlay && first_invoke {
        b.step(
            Side::Pod,
            Step::ReplyViaVethMark(ReplyViaVethMark {
                iface: POD_VETH.into(),
                mark: 1,
                table: TABLE_FIRST_NIC,
                families: families.list(),
            }),
        );
        for f in families.list() {
            let rule = Rule {
                fwmark: Some(1),
                ..Rule::lookup(f, TABLE_FIRST_NIC).at(RULE_PRIORITY_1000)
            };
            b.rule_at(Side::Pod, rule);
        }
        for f in families.list() {
            if let Some(g) = gw(f) {
                let r = Route::new(default_net(f), POD_VETH)
                    .via(g)
                    .with_src(src_for(f))
                    .in_table(TABLE_FIRST_NIC);
                b.route(Side::Pod, r, RouteOrigin::New);
            }
        }
    }

    // Step 21: route tuning.
    if cfg.tune_pod_routes && (!first_invoke || mode == ResolvedMode::Overlay) {
        tune(&mut b, cfg, req, cur_name, &cur_ips, families, res)?;
    }

    // Step 22: policy routes via cur.
    let policy_table = if mode == ResolvedMode::Underlay && first_invoke {
        TABLE_MAIN
    } else {
        table
    };
    for p in cfg
        .policy_routes
        .iter()
        .filter(|p| families.has(Family::of_net(&p.dst)))
    {
        let r = Route::new(p.dst, cur_name).via(p.gw).in_table(policy_table);
        b.route(Side::Pod, r, RouteOrigin::New);
    }

    b.plan.host_veth = ends.host;
    Ok(b.plan)
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

/// Step 21 (spec §4.4).
fn tune(
    b: &mut Builder,
    cfg: &CoordinatorConfig,
    req: &AddRequest,
    cur: &str,
    cur_ips: &[IpAddr],
    families: Families,
    res: ModeResolution,
) -> Result<(), Error> {
    let table = res.current_table;
    let in_use = |r: &Route| families.has(r.family());
    let main_defaults = |b: &Builder, dev: &str| -> Vec<Route> {
        b.pod
            .routes
            .iter()
            .filter(|r| r.table == TABLE_MAIN && r.is_default() && in_use(r) && r.uses_dev(dev))
            .cloned()
            .collect()
    };

    // 21.1: the first other interface owning a default route in main.
    let dflt = b
        .pod
        .links
        .iter()
        .filter(|l| l.name != "lo" && l.name != cur)
        .find(|l| !main_defaults(b, &l.name).is_empty())
        .map(|l| l.name.clone());
    let Some(dflt) = dflt else {
        b.plan.warnings.push(format!(
            "no other interface has a default route in main; routes of {cur} not tuned"
        ));
        return Ok(());
    };

    // 21.2.
    let want = cfg
        .default_route_nic(req.default_route_nic_annotation.as_deref())
        .filter(|w| *w != dflt.as_str());
    let (want, move_if) = match want {
        None => (dflt.clone(), cur.to_string()),
        Some(w) => {
            if b.pod.link(w).is_none() {
                return Err(Error::CoordinatorDefaultRouteNicMissing { nic: w.into() });
            }
            (w.to_string(), dflt.clone())
        }
    };

    // 21.3: rules.
    let dflt_ips = b
        .pod
        .link(&dflt)
        .map(|l| usable_of(&l.addresses, families))
        .unwrap_or_default();
    if want == cur {
        for ip in &dflt_ips {
            b.rule_auto(Rule::from_addr(*ip, table))?;
        }
    } else {
        for ip in cur_ips {
            b.rule_auto(Rule::from_addr(*ip, table))?;
        }
        if res.mode == ResolvedMode::Overlay && res.first_invoke {
            for ip in &dflt_ips {
                b.rule_auto(Rule::from_addr(*ip, TABLE_FIRST_NIC))?;
            }
            for r in main_defaults(b, &dflt) {
                if let Some(copy) = default_via(&r, &dflt, TABLE_FIRST_NIC) {
                    b.route(Side::Pod, copy, RouteOrigin::CopiedFrom(TABLE_MAIN));
                }
            }
        }
    }

    // 21.4: move move_if's default route(s) from main to the table; copy its other routes.
    let snapshot: Vec<Route> = b
        .pod
        .routes
        .iter()
        .filter(|r| r.table == TABLE_MAIN && in_use(r) && r.uses_dev(&move_if))
        .cloned()
        .collect();
    for r in snapshot {
        if r.is_default() {
            let Some(moved) = default_via(&r, &move_if, table) else {
                continue;
            };
            b.route(Side::Pod, moved, RouteOrigin::MovedFrom(TABLE_MAIN));
            b.step(Side::Pod, Step::DeleteRoute { route: r.clone() });
            // A multipath default keeps its other nexthops in main.
            let rest: Vec<_> = r
                .nexthops
                .iter()
                .filter(|n| n.dev != move_if)
                .cloned()
                .collect();
            if !r.nexthops.is_empty() && !rest.is_empty() {
                let mut remainder = r.clone();
                if rest.len() == 1 {
                    remainder.dev = rest[0].dev.clone();
                    remainder.gw = rest[0].gw;
                    remainder.nexthops.clear();
                } else {
                    remainder.nexthops = rest;
                }
                b.route(Side::Pod, remainder, RouteOrigin::Remainder);
            }
        } else if !is_fe80_64(&r.dst) && r.nexthops.is_empty() {
            // A copy keeps dst, gw, scope and src only (proto and metric fall back to defaults).
            let mut copy = Route::new(r.dst, move_if.clone())
                .with_scope(r.scope)
                .with_src(r.src)
                .in_table(table);
            copy.gw = r.gw;
            b.route(Side::Pod, copy, RouteOrigin::CopiedFrom(TABLE_MAIN));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
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
