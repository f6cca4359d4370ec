//! Printing plans as `ip` commands, and views as iproute2 prints them.
//!
//! [`render_ip_rule`], [`render_ip_route`] and [`render_ip_neigh`] reproduce the text of
//! `ip rule`, `ip route show table N` and `ip neigh` (iproute2 6.x, non-detailed), including
//! iproute2's trailing space after IPv4 route and neighbour lines, so a plan's expected state can
//! be compared byte for byte with a live netns. An empty table prints as an empty string (iproute2
//! prints "Error: ipv4: FIB table does not exist." on stderr instead).

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::entries::{
    Family, Neighbour, Proto, Route, Rule, Scope, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN,
};
use super::plan::{DelPlan, NetnsPlan, Plan, Step};

fn table_name(t: u32) -> String {
    match t {
        TABLE_LOCAL => "local".into(),
        TABLE_MAIN => "main".into(),
        TABLE_DEFAULT => "default".into(),
        other => other.to_string(),
    }
}

/// A prefix as iproute2 prints it: `default`, a bare address for host prefixes, else `a/len`.
fn prefix(net: &IpNet) -> String {
    let net = net.trunc();
    if net.prefix_len() == 0 {
        "default".into()
    } else if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// Like [`prefix`] but never `default` (for `ip rule from`/`to` and command arguments).
fn selector(net: &IpNet) -> String {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn ip_cmd(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip -6",
    }
}

/// One line of `ip route show` (without the newline; IPv4 lines keep iproute2's trailing space).
pub fn route_line(r: &Route) -> String {
    let v6 = r.family() == Family::V6;
    let mut s = format!("{} ", prefix(&r.dst));
    if let Some(gw) = r.gw {
        let _ = write!(s, "via {gw} ");
    }
    if !r.dev.is_empty() {
        let _ = write!(s, "dev {} ", r.dev);
    }
    if r.proto != Proto::BOOT {
        let _ = write!(s, "proto {} ", r.proto);
    }
    // The kernel reports every IPv6 route with scope universe.
    if !v6 && r.scope != Scope::Global {
        let _ = write!(s, "scope {} ", r.scope.name());
    }
    if let Some(src) = r.src {
        let _ = write!(s, "src {src} ");
    }
    let metric = r.effective_metric();
    if v6 || metric != 0 {
        let _ = write!(s, "metric {metric} ");
    }
    for nh in &r.nexthops {
        s.push_str("\n\tnexthop ");
        if let Some(gw) = nh.gw {
            let _ = write!(s, "via {gw} ");
        }
        let _ = write!(s, "dev {} weight 1 ", nh.dev);
    }
    if v6 {
        s.push_str("pref medium");
    }
    s
}

/// The order the kernel dumps a table in. IPv4 (fib trie): by network address, then longer
/// prefix first, then metric. IPv6 (fib6 tree, post-order): a prefix after every prefix it
/// contains, otherwise by address, then metric.
fn kernel_order(a: &Route, b: &Route) -> Ordering {
    let (na, nb) = (a.dst.trunc(), b.dst.trunc());
    let key = |n: &IpNet| -> u128 {
        match n.addr() {
            IpAddr::V4(x) => u128::from(u32::from(x)),
            IpAddr::V6(x) => u128::from(x),
        }
    };
    let by_prefix = match a.family() {
        Family::V4 => key(&na)
            .cmp(&key(&nb))
            .then(nb.prefix_len().cmp(&na.prefix_len())),
        Family::V6 => {
            if na == nb {
                Ordering::Equal
            } else if na.contains(&nb) {
                Ordering::Greater
            } else if nb.contains(&na) {
                Ordering::Less
            } else {
                key(&na).cmp(&key(&nb))
            }
        }
    };
    by_prefix.then(a.effective_metric().cmp(&b.effective_metric()))
}

/// `ip route show table <table>` (`ip -6 route show table <table>` for IPv6): one line per route
/// of that table and family, in kernel order; routes with identical keys keep the view's order.
pub fn render_ip_route(routes: &[Route], table: u32, family: Family) -> String {
    let mut rs: Vec<&Route> = routes
        .iter()
        .filter(|r| r.table == table && r.family() == family)
        .collect();
    rs.sort_by(|a, b| kernel_order(a, b));
    rs.iter().map(|r| route_line(r) + "\n").collect()
}

/// `ip rule` (`ip -6 rule` for IPv6), e.g. `32765:\tfrom 10.6.212.145 lookup 101`.
pub fn render_ip_rule(rules: &[Rule], family: Family) -> String {
    let mut rs: Vec<&Rule> = rules.iter().filter(|r| r.family == family).collect();
    rs.sort_by_key(|r| r.priority.unwrap_or(0));
    let mut out = String::new();
    for r in rs {
        let _ = writeln!(out, "{}:\t{}", r.priority.unwrap_or(0), rule_selectors(r));
    }
    out
}

fn rule_selectors(r: &Rule) -> String {
    let mut s = match &r.from {
        Some(f) => format!("from {} ", selector(f)),
        None => "from all ".into(),
    };
    if let Some(t) = &r.to {
        let _ = write!(s, "to {} ", selector(t));
    }
    if let Some(m) = r.fwmark {
        let _ = write!(s, "fwmark {m:#x} ");
    }
    let _ = write!(s, "lookup {}", table_name(r.table));
    s
}

/// `ip neigh` lines for `family` (or both when `None`), in view order, e.g.
/// `10.6.212.132 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT `.
pub fn render_ip_neigh(neighbours: &[Neighbour], family: Option<Family>) -> String {
    let mut out = String::new();
    for n in neighbours
        .iter()
        .filter(|n| family.is_none_or(|f| f == Family::of(&n.ip)))
    {
        let _ = write!(out, "{} dev {} ", n.ip, n.dev);
        if let Some(mac) = n.lladdr {
            let _ = write!(out, "lladdr {mac} ");
        }
        let _ = writeln!(out, "{} ", n.state.name());
    }
    out
}

fn route_args(r: &Route) -> String {
    let mut s = prefix(&r.dst);
    if let Some(gw) = r.gw {
        let _ = write!(s, " via {gw}");
    }
    if !r.dev.is_empty() {
        let _ = write!(s, " dev {}", r.dev);
    }
    if r.proto != Proto::BOOT {
        let _ = write!(s, " proto {}", r.proto);
    }
    if r.scope != Scope::Global {
        let _ = write!(s, " scope {}", r.scope.name());
    }
    if let Some(src) = r.src {
        let _ = write!(s, " src {src}");
    }
    if let Some(m) = r.metric {
        let _ = write!(s, " metric {m}");
    }
    for nh in &r.nexthops {
        s.push_str(" nexthop");
        if let Some(gw) = nh.gw {
            let _ = write!(s, " via {gw}");
        }
        let _ = write!(s, " dev {}", nh.dev);
    }
    if r.table != TABLE_MAIN {
        let _ = write!(s, " table {}", table_name(r.table));
    }
    s
}

fn rule_args(r: &Rule) -> String {
    let mut s = rule_selectors(r);
    if let Some(p) = r.priority {
        let _ = write!(s, " pref {p}");
    }
    s
}

fn family_of_ip(ip: &IpAddr) -> Family {
    Family::of(ip)
}

/// The shell commands equivalent to one step (usually one line; the marking is three per family).
/// Commands run inside the netns the step belongs to; a veth's peer goes to `netns 1` (the netns
/// of PID 1, the host, when run with `ip netns exec` or `nsenter -n`).
pub fn step_commands(step: &Step) -> Vec<String> {
    match step {
        Step::SetLinkUp { dev } => vec![format!("ip link set dev {dev} up")],
        Step::CreateVeth(v) => vec![format!(
            "ip link add {} mtu {} address {} type veth peer name {} mtu {} address {} netns 1",
            v.name, v.mtu, v.mac, v.peer_name, v.mtu, v.peer_mac
        )],
        Step::DeleteLink { name } => vec![format!("ip link del {name}")],
        Step::SetMac { dev, mac } => vec![format!("ip link set dev {dev} address {mac}")],
        Step::SetTxQueueLen { dev, len } => vec![format!("ip link set dev {dev} txqueuelen {len}")],
        Step::AddAddress { dev, addr } => vec![format!("ip addr add {addr} dev {dev}")],
        Step::Sysctl { key, value } => vec![format!("sysctl -w {key}={value}")],
        Step::AddNeighbour { ip, dev, lladdr } => vec![format!(
            "{} neigh replace {ip} lladdr {lladdr} dev {dev} nud permanent",
            ip_cmd(family_of_ip(ip))
        )],
        Step::DeleteNeighbour { ip, dev } => {
            let cmd = ip_cmd(family_of_ip(ip));
            vec![match dev {
                Some(d) => format!("{cmd} neigh del {ip} dev {d}"),
                None => format!("{cmd} neigh flush to {ip} nud all"),
            }]
        }
        Step::AddRule(r) => vec![format!("{} rule add {}", ip_cmd(r.family), rule_args(r))],
        Step::DeleteRule(r) => vec![format!("{} rule del {}", ip_cmd(r.family), rule_args(r))],
        Step::AddRoute { route, .. } => vec![format!(
            "{} route add {}",
            ip_cmd(route.family()),
            route_args(route)
        )],
        Step::DeleteRoute { route } => vec![format!(
            "{} route del {}",
            ip_cmd(route.family()),
            route_args(route)
        )],
        Step::DeleteRoutesTo { table, dst } => vec![format!(
            "{} route flush table {} exact {}",
            ip_cmd(Family::of_net(dst)),
            table_name(*table),
            dst.trunc()
        )],
        Step::ReplyViaVethMark(m) => {
            let mut out = Vec::new();
            for f in &m.families {
                let t = match f {
                    Family::V4 => "iptables",
                    Family::V6 => "ip6tables",
                };
                let mark = format!("{:#x}", m.mark);
                out.push(format!(
                    "{t} -t mangle -A PREROUTING -i {} -m conntrack --ctstate NEW -j MARK --set-xmark {mark}/0xffffffff",
                    m.iface
                ));
                out.push(format!(
                    "{t} -t mangle -A PREROUTING -m mark --mark {mark} -j CONNMARK --save-mark"
                ));
                out.push(format!(
                    "{t} -t mangle -A OUTPUT -j CONNMARK --restore-mark"
                ));
            }
            out
        }
        Step::Announce { dev, addrs } => addrs
            .iter()
            .map(|a| match a {
                IpAddr::V4(_) => format!("arping -U -c 1 -I {dev} {a}"),
                IpAddr::V6(_) => {
                    format!("# unsolicited neighbour advertisement for {a} on {dev}")
                }
            })
            .collect(),
    }
}

/// Every command of one netns plan, in order.
pub fn render_commands(plan: &NetnsPlan) -> Vec<String> {
    plan.steps.iter().flat_map(step_commands).collect()
}

/// A whole ADD plan as a commented script: pod commands, then host commands, then warnings.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    match &plan.resolution {
        None => out.push_str("# coordinator disabled: nothing to do\n"),
        Some(r) => {
            let _ = writeln!(
                out,
                "# mode {:?}, first NIC configured by the coordinator: {}, policy table {}",
                r.mode, r.first_invoke, r.current_table
            );
            out.push_str("# in the pod netns\n");
            for c in render_commands(&plan.pod) {
                let _ = writeln!(out, "{c}");
            }
            out.push_str("# in the host netns\n");
            for c in render_commands(&plan.host) {
                let _ = writeln!(out, "{c}");
            }
        }
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "# warning: {w}");
    }
    out
}

/// A DEL plan as host commands.
pub fn render_del_plan(plan: &DelPlan) -> String {
    let mut out = String::from("# in the host netns\n");
    for c in render_commands(&plan.host) {
        let _ = writeln!(out, "{c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dst: &str, dev: &str) -> Route {
        Route::new(dst.parse().unwrap(), dev)
    }

    #[test]
    fn ipv4_route_lines_match_iproute2() {
        let kernel = r("10.6.0.0/16", "net1")
            .with_proto(Proto::KERNEL)
            .with_scope(Scope::Link)
            .with_src(Some("10.6.212.145".parse().unwrap()));
        assert_eq!(
            route_line(&kernel),
            "10.6.0.0/16 dev net1 proto kernel scope link src 10.6.212.145 "
        );
        let dflt = r("0.0.0.0/0", "eth0").via("169.254.1.1".parse().unwrap());
        assert_eq!(route_line(&dflt), "default via 169.254.1.1 dev eth0 ");
        let host = r("10.6.212.132/32", "eth0").with_scope(Scope::Link);
        assert_eq!(route_line(&host), "10.6.212.132 dev eth0 scope link ");
    }

    #[test]
    fn ipv6_route_lines_match_iproute2() {
        let k = r("fd00:6::/64", "net1").with_proto(Proto::KERNEL);
        let mut k = k;
        k.metric = Some(256);
        assert_eq!(
            route_line(&k),
            "fd00:6::/64 dev net1 proto kernel metric 256 pref medium"
        );
        let d = r("::/0", "net1").via("fd00:6::1".parse().unwrap());
        assert_eq!(
            route_line(&d),
            "default via fd00:6::1 dev net1 metric 1024 pref medium"
        );
    }

    #[test]
    fn kernel_order_v4_and_v6() {
        let routes = vec![
            r("169.254.1.1/32", "eth0"),
            r("10.0.0.0/8", "eth0"),
            r("0.0.0.0/0", "eth0"),
            r("10.0.0.0/16", "eth0"),
            r("::/0", "eth0"),
            r("fe80::/64", "eth0"),
            r("fd00::/64", "eth0"),
            r("fd00::5/128", "eth0"),
        ];
        let v4 = render_ip_route(&routes, TABLE_MAIN, Family::V4);
        assert_eq!(
            v4,
            "default dev eth0 \n10.0.0.0/16 dev eth0 \n10.0.0.0/8 dev eth0 \n169.254.1.1 dev eth0 \n"
        );
        let v6 = render_ip_route(&routes, TABLE_MAIN, Family::V6);
        let firsts: Vec<&str> = v6.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(firsts, ["fd00::5", "fd00::/64", "fe80::/64", "default"]);
    }

    #[test]
    fn rule_lines_and_commands() {
        let rules = vec![
            Rule::lookup(Family::V4, TABLE_MAIN).at(32766),
            Rule::lookup(Family::V4, TABLE_LOCAL).at(0),
            Rule {
                fwmark: Some(1),
                ..Rule::lookup(Family::V4, 100).at(1000)
            },
            Rule::from_addr("10.6.212.145".parse().unwrap(), 101).at(32765),
        ];
        assert_eq!(
            render_ip_rule(&rules, Family::V4),
            "0:\tfrom all lookup local\n1000:\tfrom all fwmark 0x1 lookup 100\n32765:\tfrom 10.6.212.145 lookup 101\n32766:\tfrom all lookup main\n"
        );
        assert_eq!(
            step_commands(&Step::AddRule(rules[3].clone())),
            ["ip rule add from 10.6.212.145 lookup 101 pref 32765"]
        );
        let route = r("10.6.212.132/32", "eth0")
            .with_scope(Scope::Link)
            .with_src(Some("10.233.73.210".parse().unwrap()))
            .in_table(101);
        assert_eq!(
            step_commands(&Step::AddRoute {
                route,
                origin: super::super::plan::RouteOrigin::New
            }),
            ["ip route add 10.6.212.132 dev eth0 scope link src 10.233.73.210 table 101"]
        );
    }
}
