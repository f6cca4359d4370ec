//! Property tests of coordinator plans on generated pods: 1–3 NICs after the first one (overlay)
//! or 1–3 underlay NICs, IPv4, IPv6 or dual stack, random addresses.
//!
//! NICs are added one at a time the way Multus does it: the main plugin adds the link, its
//! address and routes (a default route via the NIC's gateway and the connected route), then the
//! coordinator plans on the state left by the previous NIC and the plan is applied. A tiny
//! policy-routing simulator (rules in priority order, longest-prefix match per table) then checks
//! where packets go.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;
use spiderpool_core::coordinator::*;

const CALICO_GW4: &str = "169.254.1.1";
const CALICO_GW6: &str = "fe80::ecee:eeff:feee:eeee";

#[derive(Debug, Clone)]
struct Topology {
    underlay: bool,
    v4: bool,
    v6: bool,
    /// Host part of each NIC's address (index 0 is eth0 in both modes).
    hosts: Vec<u16>,
    node_host: u16,
    remote: u32,
}

fn topology() -> impl Strategy<Value = Topology> {
    (
        any::<bool>(),
        0..3u8,
        prop::collection::vec(2..0xfff0u16, 2..=4),
        2..0xfff0u16,
        any::<u32>(),
    )
        .prop_map(|(underlay, fam, hosts, node_host, remote)| Topology {
            underlay,
            v4: fam != 1,
            v6: fam != 0,
            hosts,
            node_host,
            remote,
        })
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn v4(a: u8, b: u8, host: u16) -> Ipv4Addr {
    let [h1, h2] = host.to_be_bytes();
    Ipv4Addr::new(a, b, h1, h2)
}

fn v6(group: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, group, 0, 0, 0, 0, 0, host)
}

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

/// NIC `i` (1-based among the extra NICs, 0 = eth0 in underlay): subnet 10.(10+i).0.0/16 and
/// fd00:(10+i)::/64, gateway .1 / ::1.
fn nic_addrs(t: &Topology, i: usize) -> (Vec<IpNet>, Vec<(IpAddr, Family)>) {
    let g = 10 + i as u8;
    let mut addrs = Vec::new();
    let mut gws = Vec::new();
    if t.v4 {
        addrs.push(IpNet::new(IpAddr::V4(v4(10, g, t.hosts[i])), 16).unwrap());
        gws.push((IpAddr::V4(v4(10, g, 1)), Family::V4));
    }
    if t.v6 {
        addrs.push(IpNet::new(IpAddr::V6(v6(u16::from(g), t.hosts[i])), 64).unwrap());
        gws.push((IpAddr::V6(v6(u16::from(g), 1)), Family::V6));
    }
    (addrs, gws)
}

fn config(t: &Topology) -> CoordinatorConfig {
    let mut agent = AgentCoordinatorConfig {
        mode: Some("auto".into()),
        hijack_cidr: Some(vec!["169.254.0.0/16".into()]),
        tune_pod_routes: Some(true),
        ..Default::default()
    };
    let mut pods = Vec::new();
    let mut svcs = Vec::new();
    if t.v4 {
        pods.push("10.233.64.0/18".to_string());
        svcs.push("10.233.0.0/18".to_string());
    }
    if t.v6 {
        pods.push("fd00:233::/64".to_string());
        svcs.push("fd00:96::/112".to_string());
    }
    agent.overlay_pod_cidr = Some(pods);
    agent.service_cidr = Some(svcs);
    merge(&NadCoordinatorConf::default(), &agent).unwrap()
}

/// Adds a route the way the main plugin does. A new IPv4 route prints before older ones of the
/// same prefix; an IPv6 gateway route joins an existing default of the same metric as a nexthop
/// (the kernel's IPv6 ECMP merge).
fn cni_add_route(pod: &mut PodView, r: Route) {
    if r.family() == Family::V6
        && r.is_default()
        && r.gw.is_some()
        && let Some(existing) = pod.routes.iter_mut().find(|e| {
            e.table == TABLE_MAIN
                && e.is_default()
                && e.family() == Family::V6
                && (e.gw.is_some() || !e.nexthops.is_empty())
        })
    {
        if existing.nexthops.is_empty() {
            existing.nexthops.push(NextHop {
                gw: existing.gw.take(),
                dev: std::mem::take(&mut existing.dev),
            });
        }
        existing.nexthops.push(NextHop {
            gw: r.gw,
            dev: r.dev,
        });
        return;
    }
    pod.routes.insert(0, r);
}

/// The main plugin adding NIC `name` with `addrs` and a default route via each gateway.
fn cni_add_nic(pod: &mut PodView, name: &str, addrs: &[IpNet], gws: &[(IpAddr, Family)]) {
    let index = pod.links.iter().map(|l| l.index).max().unwrap() + 1;
    pod.links.push(
        LinkView::ethernet(name, index, Some(mac(1000 + index))).with_addresses(addrs.to_vec()),
    );
    for a in addrs {
        let mut connected = Route::new(a.trunc(), name).with_proto(Proto::KERNEL);
        if a.addr().is_ipv4() {
            connected = connected.with_scope(Scope::Link).with_src(Some(a.addr()));
        } else {
            connected.metric = Some(256);
        }
        pod.routes.push(connected);
    }
    for (gw, f) in gws {
        let dst = match f {
            Family::V4 => net("0.0.0.0/0"),
            Family::V6 => net("::/0"),
        };
        cni_add_route(pod, Route::new(dst, name).via(*gw));
    }
}

fn node_ips(t: &Topology) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if t.v4 {
        out.push(IpAddr::V4(v4(10, 6, t.node_host)));
    }
    if t.v6 {
        out.push(IpAddr::V6(v6(6, t.node_host)));
    }
    out
}

fn host(t: &Topology) -> HostView {
    let mut addrs: Vec<IpNet> = node_ips(t)
        .into_iter()
        .map(|a| IpNet::new(a, if a.is_ipv4() { 16 } else { 64 }).unwrap())
        .collect();
    addrs.push(net("fe80::1/64"));
    let mut links = vec![
        LinkView::loopback(),
        LinkView::ethernet("ens192", 2, Some(mac(2))).with_addresses(addrs),
        // Noise the host-IP filter must ignore.
        LinkView::ethernet("docker0", 3, Some(mac(3))).with_addresses([net("172.17.0.1/16")]),
    ];
    if !t.underlay {
        links.push(LinkView::ethernet("calitest", 4, Some(mac(4))).with_peer(2));
    }
    let mut host = HostView::new(links);
    if !t.underlay {
        // Calico's route to the pod's eth0 addresses.
        for l in initial_pod(t).links.iter().filter(|l| l.name == "eth0") {
            for a in l.usable_ips() {
                host.routes
                    .push(Route::new(host_net(a), "calitest").with_scope(Scope::Link));
            }
        }
    }
    host
}

fn ensure_route_src(host: &mut HostView, t: &Topology, pod: &PodView) {
    for l in &pod.links {
        for a in l.usable_ips() {
            let src = node_ips(t)
                .into_iter()
                .find(|n| n.is_ipv4() == a.is_ipv4())
                .unwrap();
            host.route_src.insert(a, src);
        }
    }
}

/// The pod before any coordinator: overlay has Calico's eth0, underlay an empty netns.
fn initial_pod(t: &Topology) -> PodView {
    let mut pod = PodView::new(vec![LinkView::loopback()]);
    if !t.underlay {
        let mut addrs = Vec::new();
        if t.v4 {
            addrs.push(IpNet::from(IpAddr::V4(v4(
                10,
                233,
                64 * 256 + t.hosts[0] % 0x3fff,
            ))));
        }
        if t.v6 {
            addrs.push(IpNet::from(IpAddr::V6(Ipv6Addr::new(
                0xfd00, 0x233, 0, 0, 0, 0, 0, t.hosts[0],
            ))));
        }
        pod.links.push(
            LinkView::ethernet("eth0", 2, Some(mac(20)))
                .with_addresses(addrs)
                .with_peer(4),
        );
        if t.v4 {
            pod.routes
                .push(Route::new(net("169.254.1.1/32"), "eth0").with_scope(Scope::Link));
            pod.routes
                .push(Route::new(net("0.0.0.0/0"), "eth0").via(CALICO_GW4.parse().unwrap()));
        }
        if t.v6 {
            pod.routes
                .push(Route::new(net("::/0"), "eth0").via(CALICO_GW6.parse().unwrap()));
        }
    }
    pod
}

/// One step of the whole sequence: the NIC's name, the plan, and the states before and after.
struct Applied {
    nic: String,
    plan: Plan,
    pod_before: PodView,
    pod_after: PodView,
}

fn run_adds(t: &Topology) -> (Vec<Applied>, PodView, HostView, HostView) {
    let cfg = config(t);
    let host0 = host(t);
    let mut pod = initial_pod(t);
    let mut host = host0.clone();
    let mut out = Vec::new();
    let names: Vec<String> = if t.underlay {
        (0..t.hosts.len() - 1)
            .map(|i| {
                if i == 0 {
                    "eth0".into()
                } else {
                    format!("net{i}")
                }
            })
            .collect()
    } else {
        (1..t.hosts.len()).map(|i| format!("net{i}")).collect()
    };
    for (i, name) in names.iter().enumerate() {
        let nic_no = if t.underlay { i } else { i + 1 };
        let (addrs, gws) = nic_addrs(t, nic_no);
        cni_add_nic(&mut pod, name, &addrs, &gws);
        ensure_route_src(&mut host, t, &pod);
        let mut req = AddRequest::new("0123456789abcdef", name.clone());
        req.veth_macs = Some(VethMacs {
            pod: mac(70),
            host: mac(71),
        });
        let plan = plan_add(&cfg, &req, &pod, &host).unwrap();
        let (p, h) = plan.apply(&pod, &host);
        out.push(Applied {
            nic: name.clone(),
            plan,
            pod_before: pod.clone(),
            pod_after: p.clone(),
        });
        pod = p;
        host = h;
    }
    (out, pod, host, host0)
}

/// Longest-prefix match in one table; ties go to the lower metric, then the first listed.
fn table_lookup(routes: &[Route], table: u32, dst: IpAddr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| r.table == table && r.dst.contains(&dst))
        .min_by_key(|r| (std::cmp::Reverse(r.dst.prefix_len()), r.effective_metric()))
}

/// The output device(s) for a packet from `src` to `dst` with firewall mark `mark`.
fn lookup(rules: &[Rule], routes: &[Route], src: IpAddr, dst: IpAddr, mark: u32) -> Vec<String> {
    let family = Family::of(&dst);
    let mut rs: Vec<&Rule> = rules.iter().filter(|r| r.family == family).collect();
    rs.sort_by_key(|r| r.priority);
    for r in rs {
        let matches = r.from.is_none_or(|f| f.contains(&src))
            && r.to.is_none_or(|t| t.contains(&dst))
            && r.fwmark.is_none_or(|m| m == mark);
        if !matches {
            continue;
        }
        if let Some(route) = table_lookup(routes, r.table, dst) {
            if route.nexthops.is_empty() {
                return vec![route.dev.clone()];
            }
            return route.nexthops.iter().map(|n| n.dev.clone()).collect();
        }
    }
    Vec::new()
}

fn remote(t: &Topology, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(0x0800_0000 | (t.remote & 0x00ff_ffff))),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x4860,
            0,
            0,
            0,
            0,
            (t.remote >> 16) as u16,
            t.remote as u16,
        )),
    }
}

fn priorities_unique(rules: &[Rule]) -> Result<(), String> {
    let mut seen: BTreeMap<(Family, u32), &Rule> = BTreeMap::new();
    for r in rules {
        let p = r
            .priority
            .ok_or_else(|| format!("rule without priority: {r:?}"))?;
        if let Some(other) = seen.insert((r.family, p), r) {
            return Err(format!("priority {p} used twice: {other:?} and {r:?}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Replies leave by the NIC that owns the source address, and the node reaches every pod
    /// address through the pod's veth.
    #[test]
    fn replies_leave_by_the_owning_nic(t in topology()) {
        let (steps, pod, host, _) = run_adds(&t);
        for l in pod.links.iter().filter(|l| l.name != "lo" && l.name != POD_VETH) {
            for a in l.usable_ips() {
                let dst = remote(&t, Family::of(&a));
                let out = lookup(&pod.rules, &pod.routes, a, dst, 0);
                prop_assert_eq!(&out, &vec![l.name.clone()], "src {} dst {}", a, dst);
                if t.underlay && l.name == "eth0" {
                    // Connections that came in by veth0 are answered by veth0. (Later NICs'
                    // `from` rules sit above the fwmark rule, as upstream's do; their tables
                    // route the node and cluster CIDRs by veth0 anyway, checked below.)
                    let out = lookup(&pod.rules, &pod.routes, a, dst, 1);
                    prop_assert_eq!(&out, &vec![POD_VETH.to_string()], "marked src {}", a);
                }
                // Whatever the source, the node is reached by the pod's veth; so are services
                // from eth0's addresses. (Upstream puts hijack routes in main for the first NIC
                // it configures, so from an overlay net1 address a service goes by net1's table.)
                let veth = if t.underlay { POD_VETH } else { "eth0" };
                let node = node_ips(&t).into_iter().find(|n| n.is_ipv4() == a.is_ipv4()).unwrap();
                let service: IpAddr =
                    if a.is_ipv4() { "10.233.1.1" } else { "fd00:96::1" }.parse().unwrap();
                let dsts = if l.name == "eth0" { vec![node, service] } else { vec![node] };
                for dst in dsts {
                    let out = lookup(&pod.rules, &pod.routes, a, dst, 0);
                    prop_assert_eq!(&out, &vec![veth.to_string()], "src {} to {}", a, dst);
                }
                // The node → pod path: host rule 1000 → table 500 → the pod's veth (or
                // Calico's own route for eth0's address in overlay).
                let out = lookup(&host.rules, &host.routes, node, a, 0);
                let want = steps[0].plan.host_veth.clone();
                prop_assert_eq!(&out, &vec![want], "node to {}", a);
            }
        }
    }

    /// Every plan gives its rules explicit priorities, unique per family in the resulting pod.
    #[test]
    fn rule_priorities_are_unique(t in topology()) {
        let (steps, pod, host, _) = run_adds(&t);
        for s in &steps {
            for r in s.plan.pod.added_rules().chain(s.plan.host.added_rules()) {
                prop_assert!(r.priority.is_some(), "{:?}", r);
            }
            if let Err(e) = priorities_unique(&s.pod_after.rules) {
                prop_assert!(false, "after {}: {}", s.nic, e);
            }
        }
        prop_assert!(priorities_unique(&pod.rules).is_ok());
        prop_assert!(priorities_unique(&host.rules).is_ok());
    }

    /// Planning NIC k+1 keeps NIC k's paths: its rules stay and the tables they point to are
    /// unchanged.
    #[test]
    fn later_nics_keep_earlier_paths(t in topology()) {
        let (steps, _, _, _) = run_adds(&t);
        for pair in steps.windows(2) {
            let (k, next) = (&pair[0], &pair[1]);
            for rule in &k.pod_after.rules {
                prop_assert!(next.pod_after.rules.contains(rule), "{} dropped {:?}", next.nic, rule);
                if [TABLE_LOCAL, TABLE_MAIN, TABLE_DEFAULT].contains(&rule.table) {
                    continue;
                }
                let table = |p: &PodView| {
                    let mut v: Vec<Route> = p.routes.iter().filter(|r| r.table == rule.table).cloned().collect();
                    v.sort_by_key(|r| format!("{r:?}"));
                    v
                };
                prop_assert_eq!(table(&next.pod_before), table(&k.pod_after));
                prop_assert_eq!(table(&next.pod_after), table(&k.pod_after), "{} changed table {}", next.nic, rule.table);
            }
        }
    }

    /// DEL of every NIC (in reverse order, as Multus does) removes every host entry the ADDs
    /// made; only the shared `from all lookup 500` rule stays.
    #[test]
    fn del_removes_every_host_entry_add_made(t in topology()) {
        let (steps, pod, host, host0) = run_adds(&t);
        let cfg = config(&t);
        let mut h = host.clone();
        for s in steps.iter().rev() {
            let req = DelRequest { container_id: "0123456789abcdef".into(), ifname: s.nic.clone() };
            h = plan_del(&cfg, &req, Some(&pod), &h).apply(&h);
        }
        prop_assert_eq!(&h.links, &host0.links);
        prop_assert_eq!(&h.routes, &host0.routes);
        prop_assert_eq!(&h.neighbours, &host0.neighbours);
        let mut rules = host0.rules.clone();
        for f in [Family::V4, Family::V6] {
            if (f == Family::V4 && t.v4) || (f == Family::V6 && t.v6) {
                rules.push(Rule::lookup(f, 500).at(1000));
            }
        }
        let key = |r: &Rule| format!("{r:?}");
        let mut got = h.rules.clone();
        got.sort_by_key(key);
        rules.sort_by_key(key);
        prop_assert_eq!(got, rules);

        // With the pod netns gone, the underlay veth still goes, and with it its entries.
        if t.underlay {
            let req = DelRequest { container_id: "0123456789abcdef".into(), ifname: "eth0".into() };
            let gone = plan_del(&cfg, &req, None, &host).apply(&host);
            prop_assert_eq!(&gone.links, &host0.links);
            prop_assert_eq!(&gone.routes, &host0.routes);
            prop_assert_eq!(&gone.neighbours, &host0.neighbours);
        }
    }
}
