//! Reading a live netns into the core's view types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use spiderpool_core::coordinator::{Family, HostView, PodView};

use crate::error::Result;
use crate::link::LinkNames;
use crate::msg::RouteNetlink;
use crate::sysctl::SysctlAccess;
use crate::{addr, neigh, route, rule};

/// What [`read_with`] reads besides links, addresses, routes, rules and sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Dump the neighbour tables. The planner never looks at them (its neighbour steps are
    /// unconditional), so reads for planning leave them out; `verify` needs them.
    pub neighbours: bool,
}

impl ReadOptions {
    /// Everything: what `verify` compares against.
    pub const ALL: ReadOptions = ReadOptions { neighbours: true };
    /// What `plan_add` / `plan_del` look at: no neighbours.
    pub const PLANNING: ReadOptions = ReadOptions { neighbours: false };
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions::ALL
    }
}

/// Reads links (with addresses), routes of every table but `local`, rules, neighbours and the
/// given sysctl keys (keys that do not exist are left out). Reply-via-veth markings are not
/// read back (`marks` stays empty; see `docs/netlink.md`).
pub fn read(
    nl: &mut dyn RouteNetlink,
    sysctl: &mut dyn SysctlAccess,
    sysctl_keys: &[&str],
) -> Result<PodView> {
    read_with(nl, sysctl, sysctl_keys, ReadOptions::ALL)
}

/// [`read`] with a choice of parts. Five requests at most: one dump each of links, addresses,
/// routes, rules and (if asked) neighbours; the last three cover both families at once.
pub fn read_with(
    nl: &mut dyn RouteNetlink,
    sysctl: &mut dyn SysctlAccess,
    sysctl_keys: &[&str],
    opts: ReadOptions,
) -> Result<PodView> {
    Ok(read_names(nl, sysctl, sysctl_keys, opts)?.0)
}

fn read_names(
    nl: &mut dyn RouteNetlink,
    sysctl: &mut dyn SysctlAccess,
    sysctl_keys: &[&str],
    opts: ReadOptions,
) -> Result<(PodView, LinkNames)> {
    let names = LinkNames::load(nl)?;
    let mut links: Vec<_> = names.links().into_iter().map(|l| l.to_view()).collect();
    for a in addr::dump(nl)? {
        if let Some(l) = links.iter_mut().find(|l| l.index == a.index) {
            l.addresses.push(a.addr);
        }
    }
    for l in &mut links {
        // The kernel lists IPv4 before IPv6; keep that order whatever the dump order was.
        l.addresses.sort_by_key(Family::of_net);
    }
    let routes = route::dump_all(nl, &names)?;
    let rules = rule::dump_all(nl)?;
    let neighbours = if opts.neighbours {
        neigh::dump(nl, &names)?
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    } else {
        Vec::new()
    };
    let mut sysctls = BTreeMap::new();
    for key in sysctl_keys {
        match sysctl.read(key) {
            Ok(v) => {
                sysctls.insert((*key).to_string(), v);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let mut view = PodView::new(links);
    view.routes = routes;
    view.rules = rules;
    view.neighbours = neighbours;
    view.sysctls = sysctls;
    Ok((view, names))
}

/// [`read`] shaped as a host view, with `route_src` filled for `pod_ips`: for each, the
/// preferred source address of the route the host would use to reach it (`ip route get`,
/// [`route::get`]). Pod IPs the host has no route to, or whose route has no source, are left
/// out (the planner then relies on the host's interface addresses).
pub fn read_host(
    nl: &mut dyn RouteNetlink,
    sysctl: &mut dyn SysctlAccess,
    sysctl_keys: &[&str],
    pod_ips: &[IpAddr],
) -> Result<HostView> {
    read_host_with(nl, sysctl, sysctl_keys, pod_ips, ReadOptions::ALL)
}

/// [`read_host`] with a choice of parts.
pub fn read_host_with(
    nl: &mut dyn RouteNetlink,
    sysctl: &mut dyn SysctlAccess,
    sysctl_keys: &[&str],
    pod_ips: &[IpAddr],
    opts: ReadOptions,
) -> Result<HostView> {
    let (pod, names) = read_names(nl, sysctl, sysctl_keys, opts)?;
    let mut route_src = BTreeMap::new();
    for ip in pod_ips {
        match route::get(nl, &names, *ip) {
            Ok(r) => {
                if let Some(src) = r.src {
                    route_src.insert(*ip, src);
                }
            }
            Err(e) if route::is_unreachable(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let mut host = HostView::new(pod.links);
    host.route_src = route_src;
    host.routes = pod.routes;
    host.rules = pod.rules;
    host.neighbours = pod.neighbours;
    host.sysctls = pod.sysctls;
    Ok(host)
}
