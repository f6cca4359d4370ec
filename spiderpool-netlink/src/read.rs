//! Reading a live netns into the core's view types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use spiderpool_core::coordinator::{Family, HostView, PodView};

use crate::error::Result;
use crate::link::LinkNames;
use crate::msg::RouteNetlink;
use crate::sysctl::SysctlAccess;
use crate::{addr, neigh, route, rule};

/// Reads links (with addresses), routes of every table but `local`, rules, neighbours and the
/// given sysctl keys (keys that do not exist are left out). Reply-via-veth markings are not
/// read back (`marks` stays empty; see `docs/netlink.md`).
pub fn read(
    nl: &mut dyn RouteNetlink,
    sysctl: &mut dyn SysctlAccess,
    sysctl_keys: &[&str],
) -> Result<PodView> {
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
    let mut routes = route::dump(nl, &names, Family::V4, 0)?;
    routes.extend(route::dump(nl, &names, Family::V6, 0)?);
    let mut rules = rule::dump(nl, Family::V4)?;
    rules.extend(rule::dump(nl, Family::V6)?);
    let neighbours = neigh::dump(nl, &names)?
        .into_iter()
        .map(|(_, n)| n)
        .collect();
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
    Ok(view)
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
    let pod = read(nl, sysctl, sysctl_keys)?;
    let names = LinkNames::load(nl)?;
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
