//! Routes (`ip route`): add (exclusive, "exists" = done), replace, delete, dump per table.
//!
//! Tables are `u32`: the header's table field is a `u8`, so the table always also goes in the
//! `RTA_TABLE` attribute (what the kernel reads when present), and the header carries it only
//! when it fits (`RT_TABLE_UNSPEC` otherwise).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use spiderpool_core::coordinator::{Family, NextHop, Proto, Route, Scope, TABLE_LOCAL};

use crate::error::{Error, Result};
use crate::link::LinkNames;
use crate::msg::RouteNetlink;

pub(crate) fn af(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

pub(crate) fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn scope_of(scope: Scope) -> RouteScope {
    match scope {
        Scope::Global => RouteScope::Universe,
        Scope::Site => RouteScope::Site,
        Scope::Link => RouteScope::Link,
        Scope::Host => RouteScope::Host,
        Scope::Nowhere => RouteScope::NoWhere,
    }
}

fn scope_from(scope: RouteScope) -> Scope {
    match scope {
        RouteScope::Site => Scope::Site,
        RouteScope::Link => Scope::Link,
        RouteScope::Host => Scope::Host,
        RouteScope::NoWhere => Scope::Nowhere,
        _ => Scope::Global,
    }
}

/// Builds the route message; device names are resolved through `names`.
pub(crate) fn route_msg(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    route: &Route,
    selector: bool,
) -> Result<RouteMessage> {
    let mut msg = RouteMessage::default();
    let family = route.family();
    msg.header.address_family = af(family);
    msg.header.destination_prefix_length = route.dst.prefix_len();
    msg.header.table = header_table(route.table);
    if selector {
        // RTM_DELROUTE: unset fields match anything; scope NOWHERE matches any scope.
        msg.header.scope = RouteScope::NoWhere;
    } else {
        msg.header.protocol = RouteProtocol::from(route.proto.0);
        msg.header.scope = scope_of(route.scope);
        msg.header.kind = RouteType::Unicast;
    }
    msg.attributes.push(RouteAttribute::Table(route.table));
    if route.dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                route.dst.trunc().addr(),
            )));
    }
    if let Some(gw) = route.gw {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if !route.dev.is_empty() {
        let index = names.index(nl, &route.dev)?;
        msg.attributes.push(RouteAttribute::Oif(index));
    }
    if let Some(src) = route.src {
        msg.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(metric) = route.metric {
        msg.attributes.push(RouteAttribute::Priority(metric));
    }
    if !route.nexthops.is_empty() {
        let mut hops = Vec::new();
        for nh in &route.nexthops {
            let mut hop = RouteNextHop::default();
            hop.interface_index = names.index(nl, &nh.dev)?;
            if let Some(gw) = nh.gw {
                hop.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
            }
            hops.push(hop);
        }
        msg.attributes.push(RouteAttribute::MultiPath(hops));
    }
    Ok(msg)
}

/// How to add a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMode {
    /// `NLM_F_CREATE | NLM_F_EXCL`: fails with "exists" if the slot is taken.
    Exclusive,
    /// `NLM_F_CREATE | NLM_F_REPLACE`: overwrites the route in the same slot.
    Replace,
    /// `NLM_F_CREATE` alone (`ip route prepend`): goes in front of routes in the same slot
    /// instead of failing or overwriting them. Used to put back a route that was deleted, so
    /// it wins again over a same-slot route that was there beside it.
    Prepend,
}

/// Adds a route. With [`AddMode::Exclusive`] an existing route in the same slot (table,
/// destination, metric) gives an error with [`Error::is_exists`].
pub fn add(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    route: &Route,
    mode: AddMode,
) -> Result<()> {
    let what = || format!("add route {}", describe(route));
    check(route)?;
    let msg = route_msg(nl, names, route, false).map_err(|e| e.during(what))?;
    let flags = match mode {
        AddMode::Exclusive => NLM_F_CREATE | NLM_F_EXCL,
        AddMode::Replace => NLM_F_CREATE | NLM_F_REPLACE,
        AddMode::Prepend => NLM_F_CREATE,
    };
    nl.request(RouteNetlinkMessage::NewRoute(msg), flags)
        .map(drop)
        .map_err(|e| e.during(what))
}

/// Deletes the route `route` (as a selector: unset gateway/device/metric match anything).
pub fn del(nl: &mut dyn RouteNetlink, names: &mut LinkNames, route: &Route) -> Result<()> {
    let what = || format!("delete route {}", describe(route));
    let msg = route_msg(nl, names, route, true).map_err(|e| e.during(what))?;
    nl.request(RouteNetlinkMessage::DelRoute(msg), 0)
        .map(drop)
        .map_err(|e| e.during(what))
}

/// `RTM_GETROUTE` dump request for one family and table (0 = every table).
pub(crate) fn dump_msg(family: Family, table: u32) -> RouteNetlinkMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = af(family);
    if table != 0 {
        msg.header.table = header_table(table);
        msg.attributes.push(RouteAttribute::Table(table));
    }
    RouteNetlinkMessage::GetRoute(msg)
}

/// The unicast routes of `family` in `table` (0 = every table but `local`).
pub fn dump(
    nl: &mut dyn RouteNetlink,
    names: &LinkNames,
    family: Family,
    table: u32,
) -> Result<Vec<Route>> {
    let replies = match nl.dump(dump_msg(family, table)) {
        Ok(r) => r,
        // The kernel answers ENOENT for a table that does not exist (yet).
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            return Err(e.during(|| format!("dump {} routes of table {table}", family.label())));
        }
    };
    Ok(replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewRoute(m) => parse(&m, names),
            _ => None,
        })
        .filter(|r| table != 0 || r.table != TABLE_LOCAL)
        .filter(|r| table == 0 || r.table == table)
        .collect())
}

/// The unicast routes of both families in every table but `local`, from one `AF_UNSPEC` dump
/// (the kernel answers it family by family: IPv4 first, then IPv6, as two dumps would).
pub fn dump_all(nl: &mut dyn RouteNetlink, names: &LinkNames) -> Result<Vec<Route>> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))
        .map_err(|e| e.during(|| "dump routes of every table".into()))?;
    // Other families (multicast routing caches) are left out by `parse`.
    Ok(replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewRoute(m) => parse(&m, names),
            _ => None,
        })
        .filter(|r| r.table != TABLE_LOCAL)
        .collect())
}

/// `RTM_GETROUTE` without `NLM_F_DUMP` for one destination, as `ip route get <dst>` sends it:
/// a full-length destination; for IPv4 also `RTM_F_LOOKUP_TABLE`, so the reply names the table
/// the route was found in (without it IPv4 always says `main`; IPv6 always names the real
/// table and refuses the flag with EINVAL). Strict checking wants every other header field zero.
pub(crate) fn get_msg(dst: IpAddr) -> RouteNetlinkMessage {
    let mut msg = RouteMessage::default();
    let family = Family::of(&dst);
    msg.header.address_family = af(family);
    match family {
        Family::V4 => {
            msg.header.destination_prefix_length = 32;
            msg.header.flags = RouteFlags::LookupTable;
        }
        Family::V6 => msg.header.destination_prefix_length = 128,
    }
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    RouteNetlinkMessage::GetRoute(msg)
}

/// The route the kernel would use to reach `dst` (`ip route get <dst>`), resolved through the
/// rules: destination `dst/32` (`/128`), gateway, device, the preferred source address (`src`,
/// what the coordinator's host IPs are made of) and the table it was found in. A local
/// destination gives its `local` table entry. No route: an error with the kernel's errno
/// (`ENETUNREACH`, `EHOSTUNREACH`; see [`is_unreachable`]).
pub fn get(nl: &mut dyn RouteNetlink, names: &LinkNames, dst: IpAddr) -> Result<Route> {
    let what = || format!("get route to {dst}");
    let replies = nl.request(get_msg(dst), 0).map_err(|e| e.during(what))?;
    replies
        .iter()
        .find_map(|r| match r {
            RouteNetlinkMessage::NewRoute(m) => parse_any(m, names),
            _ => None,
        })
        .ok_or_else(|| Error::protocol("no route in the reply").during(what))
}

/// True for the errors [`get`] gives when the kernel has no route (`ENETUNREACH`,
/// `EHOSTUNREACH`, and `EACCES`/`EINVAL` of `prohibit`/`blackhole`-style routes).
pub fn is_unreachable(e: &Error) -> bool {
    const EACCES: i32 = 13;
    const EINVAL: i32 = 22;
    const ENETUNREACH: i32 = 101;
    const EHOSTUNREACH: i32 = 113;
    matches!(
        e.errno(),
        Some(ENETUNREACH | EHOSTUNREACH | EACCES | EINVAL)
    )
}

/// Turns a route message into a core [`Route`]; `None` for non-unicast routes (local,
/// broadcast, multicast...) and for ones this model cannot describe.
pub(crate) fn parse(msg: &RouteMessage, names: &LinkNames) -> Option<Route> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    parse_any(msg, names)
}

/// [`parse`] for any route type (a `route get` of a local address answers with type local).
fn parse_any(msg: &RouteMessage, names: &LinkNames) -> Option<Route> {
    let family = match msg.header.address_family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    let mut table = u32::from(msg.header.table);
    let mut dst_ip: Option<IpAddr> = None;
    let mut gw = None;
    let mut dev = String::new();
    let mut src = None;
    let mut metric = None;
    let mut nexthops = Vec::new();
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let dev_name = |index: u32| {
        names
            .name_of(index)
            .map(str::to_string)
            .unwrap_or_else(|| format!("if{index}"))
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst_ip = ip(a),
            RouteAttribute::Gateway(a) => gw = ip(a),
            RouteAttribute::Oif(i) => dev = dev_name(*i),
            RouteAttribute::PrefSource(a) => src = ip(a),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    let gw = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(a) => ip(a),
                        _ => None,
                    });
                    nexthops.push(NextHop {
                        gw,
                        dev: dev_name(hop.interface_index),
                    });
                }
            }
            _ => {}
        }
    }
    let dst_ip = dst_ip.unwrap_or(match family {
        Family::V4 => IpAddr::from([0u8; 4]),
        Family::V6 => IpAddr::from([0u16; 8]),
    });
    let dst = IpNet::new(dst_ip, msg.header.destination_prefix_length).ok()?;
    let default_metric = match family {
        Family::V4 => 0,
        Family::V6 => 1024,
    };
    Some(Route {
        table,
        dst,
        gw,
        dev,
        scope: scope_from(msg.header.scope),
        src,
        proto: Proto(u8::from(msg.header.protocol)),
        metric: metric.filter(|m| *m != default_metric),
        nexthops,
    })
}

/// `ip route`-style text for error messages.
pub fn describe(r: &Route) -> String {
    let mut s = r.dst.trunc().to_string();
    if let Some(gw) = r.gw {
        s.push_str(&format!(" via {gw}"));
    }
    if !r.dev.is_empty() {
        s.push_str(&format!(" dev {}", r.dev));
    }
    for nh in &r.nexthops {
        s.push_str(" nexthop");
        if let Some(gw) = nh.gw {
            s.push_str(&format!(" via {gw}"));
        }
        s.push_str(&format!(" dev {}", nh.dev));
    }
    if let Some(src) = r.src {
        s.push_str(&format!(" src {src}"));
    }
    if let Some(m) = r.metric {
        s.push_str(&format!(" metric {m}"));
    }
    s.push_str(&format!(" table {}", r.table));
    s
}

/// Fails unless `route` is valid on its own (e.g. a gateway of the destination's family).
pub(crate) fn check(route: &Route) -> Result<()> {
    let fam = route.family();
    let bad = route.gw.is_some_and(|g| Family::of(&g) != fam)
        || route.src.is_some_and(|s| Family::of(&s) != fam);
    if bad {
        return Err(Error::invalid(format!(
            "mixed families in route {}",
            describe(route)
        )));
    }
    Ok(())
}
