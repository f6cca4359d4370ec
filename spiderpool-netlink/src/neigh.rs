//! Neighbours (`ip neigh`): add or replace permanent entries, delete, dump.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use spiderpool_core::coordinator::{MacAddr, NeighState, Neighbour};

use crate::addr::family;
use crate::error::Result;
use crate::link::{LinkNames, mac_of};
use crate::msg::RouteNetlink;

fn base(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(&ip);
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    msg
}

/// `RTM_NEWNEIGH` for a permanent entry.
pub(crate) fn add_msg(index: u32, ip: IpAddr, lladdr: MacAddr) -> RouteNetlinkMessage {
    entry_msg(index, ip, lladdr, NeighbourState::Permanent)
}

/// `RTM_NEWNEIGH` for an entry in `state`.
fn entry_msg(
    index: u32,
    ip: IpAddr,
    lladdr: MacAddr,
    state: NeighbourState,
) -> RouteNetlinkMessage {
    let mut msg = base(index, ip);
    msg.header.state = state;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(lladdr.0.to_vec()));
    RouteNetlinkMessage::NewNeighbour(msg)
}

/// `RTM_DELNEIGH`.
pub(crate) fn del_msg(index: u32, ip: IpAddr) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelNeighbour(base(index, ip))
}

/// Adds a permanent entry exclusively ("exists" when there is an entry for `ip` on the link).
pub fn add(nl: &mut dyn RouteNetlink, index: u32, ip: IpAddr, lladdr: MacAddr) -> Result<()> {
    nl.request(add_msg(index, ip, lladdr), NLM_F_CREATE | NLM_F_EXCL)
        .map(drop)
        .map_err(|e| e.during(|| format!("add neighbour {ip} lladdr {lladdr} dev index {index}")))
}

/// Adds or replaces a permanent entry (`ip neigh replace ... nud permanent`).
pub fn replace(nl: &mut dyn RouteNetlink, index: u32, ip: IpAddr, lladdr: MacAddr) -> Result<()> {
    nl.request(add_msg(index, ip, lladdr), NLM_F_CREATE | NLM_F_REPLACE)
        .map(drop)
        .map_err(|e| {
            e.during(|| format!("replace neighbour {ip} lladdr {lladdr} dev index {index}"))
        })
}

/// Puts `entry` back on link `index` as it was dumped (MAC and state, e.g. a learnt `STALE`
/// entry stays learnt). An entry without a MAC (`INCOMPLETE`, `FAILED`) cannot be written:
/// the current entry is deleted instead, and the kernel resolves the address again.
pub fn restore(nl: &mut dyn RouteNetlink, index: u32, entry: &Neighbour) -> Result<()> {
    let Some(lladdr) = entry.lladdr else {
        return del(nl, index, entry.ip);
    };
    let ip = entry.ip;
    nl.request(
        entry_msg(index, ip, lladdr, state_to(entry.state)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .map(drop)
    .map_err(|e| e.during(|| format!("restore neighbour {ip} lladdr {lladdr} dev index {index}")))
}

/// Deletes the entry for `ip` on link `index`.
pub fn del(nl: &mut dyn RouteNetlink, index: u32, ip: IpAddr) -> Result<()> {
    nl.request(del_msg(index, ip), 0)
        .map(drop)
        .map_err(|e| e.during(|| format!("delete neighbour {ip} dev index {index}")))
}

fn state_from(s: NeighbourState) -> Option<NeighState> {
    Some(match s {
        NeighbourState::Permanent => NeighState::Permanent,
        NeighbourState::Reachable => NeighState::Reachable,
        NeighbourState::Stale => NeighState::Stale,
        NeighbourState::Delay => NeighState::Delay,
        NeighbourState::Probe => NeighState::Probe,
        NeighbourState::Failed => NeighState::Failed,
        NeighbourState::Incomplete => NeighState::Incomplete,
        NeighbourState::Noarp => NeighState::Noarp,
        _ => return None,
    })
}

fn state_to(s: NeighState) -> NeighbourState {
    match s {
        NeighState::Permanent => NeighbourState::Permanent,
        NeighState::Reachable => NeighbourState::Reachable,
        NeighState::Stale => NeighbourState::Stale,
        NeighState::Delay => NeighbourState::Delay,
        NeighState::Probe => NeighbourState::Probe,
        NeighState::Failed => NeighbourState::Failed,
        NeighState::Incomplete => NeighbourState::Incomplete,
        NeighState::Noarp => NeighbourState::Noarp,
    }
}

/// A dumped neighbour with its link index.
pub(crate) fn parse(msg: &NeighbourMessage, names: &LinkNames) -> Option<(u32, Neighbour)> {
    let ip = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })?;
    let lladdr = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => mac_of(b),
        _ => None,
    });
    let index = msg.header.ifindex;
    let dev = names
        .name_of(index)
        .map(str::to_string)
        .unwrap_or_else(|| format!("if{index}"));
    Some((
        index,
        Neighbour {
            ip,
            dev,
            lladdr,
            state: state_from(msg.header.state)?,
        },
    ))
}

/// Every IPv4 and IPv6 neighbour entry, with its link index: one `AF_UNSPEC` dump (the kernel
/// walks the ARP table, then the NDP table).
pub fn dump(nl: &mut dyn RouteNetlink, names: &LinkNames) -> Result<Vec<(u32, Neighbour)>> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetNeighbour(
            NeighbourMessage::default(),
        ))
        .map_err(|e| e.during(|| "dump neighbours".into()))?;
    Ok(replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewNeighbour(m) => parse(&m, names),
            _ => None,
        })
        .collect())
}
