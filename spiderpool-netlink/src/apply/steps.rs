//! One function per [`Step`]: each applies its step and returns how to undo what it changed.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnet::IpNet;
use spiderpool_core::coordinator::{
    Family, MacAddr, NeighState, Neighbour, ReplyViaVethMark, Route, Rule, Step, VethPair,
};

use super::Target;
use super::undo::Undo;
use crate::addr::{self, AddrOptions};
use crate::error::{Error, Result};
use crate::link::{self, LinkNames, VethOptions};
use crate::mark::{Marked, Marker};
use crate::msg::RouteNetlink;
use crate::probe::Announcer;
use crate::sysctl::SysctlAccess;
use crate::{neigh, route, rule};

/// What one step did.
pub(super) enum Done {
    /// Its effect was already in place: nothing changed, nothing to undo.
    Already,
    /// It changed something; these records undo it (in reverse order).
    Changed(Vec<Undo>),
}

impl Done {
    fn undo(u: Undo) -> Done {
        Done::Changed(vec![u])
    }

    /// Changed, with nothing that can be undone (a deleted link, a sent announcement).
    fn for_good() -> Done {
        Done::Changed(Vec::new())
    }
}

/// Applies one step; `notes` collects what is only logged.
pub(super) fn apply_step(
    step: &Step,
    t: &mut Target<'_>,
    names: &mut LinkNames,
    notes: &mut Vec<String>,
) -> Result<Done> {
    let nl = &mut *t.netlink;
    match step {
        Step::SetLinkUp { dev } => set_link_up(nl, names, dev),
        Step::CreateVeth(v) => create_veth(nl, v, t.peer_netns),
        Step::DeleteLink { name } => delete_link(nl, names, name),
        Step::SetMac { dev, mac } => set_mac(nl, names, dev, *mac),
        Step::SetTxQueueLen { dev, len } => set_tx_queue_len(nl, names, dev, *len),
        Step::AddAddress { dev, addr } => add_address(nl, names, dev, addr),
        Step::Sysctl { key, value } => write_sysctl(&mut *t.sysctl, key, value),
        Step::AddNeighbour { ip, dev, lladdr } => add_neighbour(nl, names, dev, *ip, *lladdr),
        Step::DeleteNeighbour { ip, dev } => delete_neighbours(nl, names, *ip, dev.as_deref()),
        Step::AddRule(r) => add_rule(nl, r),
        Step::DeleteRule(sel) => delete_rules(nl, sel),
        Step::AddRoute { route, .. } => add_route(nl, names, route),
        Step::DeleteRoute { route: sel } => {
            let found = route::dump(nl, names, sel.family(), sel.table)?
                .into_iter()
                .filter(|r| sel.selects(r))
                .collect();
            delete_routes(nl, names, found)
        }
        Step::DeleteRoutesTo { table, dst } => {
            let found = route::dump(nl, names, Family::of_net(dst), *table)?
                .into_iter()
                .filter(|r| r.dst.trunc() == dst.trunc())
                .collect();
            delete_routes(nl, names, found)
        }
        Step::ReplyViaVethMark(m) => mark(t.marker.as_deref_mut(), m),
        Step::Announce { dev, addrs } => announce(t.announcer.as_deref_mut(), dev, addrs, notes),
    }
}

/// The link as the kernel has it now (the cache may predate an earlier step).
fn link_state(names: &mut LinkNames, nl: &mut dyn RouteNetlink, dev: &str) -> Result<link::Link> {
    names.forget(dev);
    names.link(nl, dev).cloned()
}

fn set_link_up(nl: &mut dyn RouteNetlink, names: &mut LinkNames, dev: &str) -> Result<Done> {
    let l = link_state(names, nl, dev)?;
    if l.up {
        return Ok(Done::Already);
    }
    link::set_up(nl, l.index, true)?;
    Ok(Done::undo(Undo::SetLinkUp(dev.into(), false)))
}

fn create_veth(
    nl: &mut dyn RouteNetlink,
    v: &VethPair,
    peer_netns: Option<BorrowedFd<'_>>,
) -> Result<Done> {
    let opts = VethOptions {
        mac: Some(v.mac),
        peer_mac: Some(v.peer_mac),
        mtu: Some(v.mtu),
        peer_netns,
    };
    match link::create_veth(nl, &v.name, &v.peer_name, &opts) {
        Err(e) if e.is_exists() => Ok(Done::Already),
        Err(e) => Err(e),
        Ok(()) => Ok(Done::undo(Undo::DeleteLink(v.name.clone()))),
    }
}

fn delete_link(nl: &mut dyn RouteNetlink, names: &mut LinkNames, name: &str) -> Result<Done> {
    let Some(l) = link::get_by_name(nl, name)? else {
        return Ok(Done::Already);
    };
    match link::delete(nl, l.index) {
        Err(e) if e.is_not_found() => return Ok(Done::Already),
        r => r?,
    }
    names.forget(name);
    Ok(Done::for_good())
}

fn set_mac(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    dev: &str,
    mac: MacAddr,
) -> Result<Done> {
    let l = link_state(names, nl, dev)?;
    if l.mac == Some(mac) {
        return Ok(Done::Already);
    }
    link::set_mac(nl, l.index, mac)?;
    Ok(Done::Changed(
        l.mac
            .map(|old| Undo::SetMac(dev.into(), old))
            .into_iter()
            .collect(),
    ))
}

fn set_tx_queue_len(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    dev: &str,
    len: u32,
) -> Result<Done> {
    let l = link_state(names, nl, dev)?;
    if l.tx_queue_len == Some(len) {
        return Ok(Done::Already);
    }
    link::set_tx_queue_len(nl, l.index, len)?;
    Ok(Done::Changed(
        l.tx_queue_len
            .map(|old| Undo::SetTxQueueLen(dev.into(), old))
            .into_iter()
            .collect(),
    ))
}

fn add_address(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    dev: &str,
    a: &IpNet,
) -> Result<Done> {
    let index = names.index(nl, dev)?;
    match addr::add(nl, index, a, &AddrOptions { nodad: true }) {
        Err(e) if e.is_exists() => Ok(Done::Already),
        Err(e) => Err(e),
        Ok(()) => Ok(Done::undo(Undo::DelAddress(dev.into(), *a))),
    }
}

fn write_sysctl(sysctl: &mut dyn SysctlAccess, key: &str, value: &str) -> Result<Done> {
    let old = sysctl.write(key, value)?;
    if old == value {
        return Ok(Done::Already);
    }
    Ok(Done::undo(Undo::Sysctl(key.into(), old)))
}

/// Adds a permanent entry; an existing entry (learnt, or another MAC) is replaced and kept for
/// the undo.
fn add_neighbour(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    dev: &str,
    ip: IpAddr,
    lladdr: MacAddr,
) -> Result<Done> {
    let index = names.index(nl, dev)?;
    match neigh::add(nl, index, ip, lladdr) {
        Ok(()) => return Ok(Done::undo(Undo::DelNeighbour(dev.into(), ip))),
        Err(e) if e.is_exists() => {}
        Err(e) => return Err(e),
    }
    let old = neigh::dump(nl, names)?
        .into_iter()
        .find(|(i, n)| *i == index && n.ip == ip)
        .map(|(_, n)| n);
    let wanted = |n: &Neighbour| n.lladdr == Some(lladdr) && n.state == NeighState::Permanent;
    if old.as_ref().is_some_and(wanted) {
        return Ok(Done::Already);
    }
    neigh::replace(nl, index, ip, lladdr)?;
    Ok(Done::undo(match old {
        Some(n) => Undo::RestoreNeighbour(n),
        // Gone between the add and the dump: nothing to put back.
        None => Undo::DelNeighbour(dev.into(), ip),
    }))
}

/// Deletes the entries for `ip` (on `dev`, or every link); the undo puts back those with a MAC.
fn delete_neighbours(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    ip: IpAddr,
    dev: Option<&str>,
) -> Result<Done> {
    let found: Vec<(u32, Neighbour)> = neigh::dump(nl, names)?
        .into_iter()
        .filter(|(_, n)| n.ip == ip && dev.is_none_or(|d| d == n.dev))
        .collect();
    if found.is_empty() {
        return Ok(Done::Already);
    }
    let mut undo = Vec::new();
    for (index, n) in found {
        match neigh::del(nl, index, n.ip) {
            Err(e) if e.is_not_found() => {}
            r => r?,
        }
        if n.lladdr.is_some() {
            undo.push(Undo::RestoreNeighbour(n));
        }
    }
    Ok(Done::Changed(undo))
}

fn add_rule(nl: &mut dyn RouteNetlink, r: &Rule) -> Result<Done> {
    if !rule::add(nl, r)? {
        return Ok(Done::Already);
    }
    Ok(Done::undo(Undo::DelRule(r.clone())))
}

fn delete_rules(nl: &mut dyn RouteNetlink, sel: &Rule) -> Result<Done> {
    let found: Vec<Rule> = rule::dump(nl, sel.family)?
        .into_iter()
        .filter(|r| sel.selects(r))
        .collect();
    if found.is_empty() {
        return Ok(Done::Already);
    }
    let mut undo = Vec::new();
    for r in found {
        match rule::del(nl, &r) {
            Err(e) if e.is_not_found() => {}
            res => res?,
        }
        undo.push(Undo::AddRule(r));
    }
    Ok(Done::Changed(undo))
}

fn add_route(nl: &mut dyn RouteNetlink, names: &mut LinkNames, r: &Route) -> Result<Done> {
    match route::add(nl, names, r, route::AddMode::Exclusive) {
        Err(e) if e.is_exists() => Ok(Done::Already),
        Err(e) => Err(e),
        Ok(()) => Ok(Done::undo(Undo::DelRoute(r.clone()))),
    }
}

fn delete_routes(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    found: Vec<Route>,
) -> Result<Done> {
    if found.is_empty() {
        return Ok(Done::Already);
    }
    let mut undo = Vec::new();
    for r in found {
        match route::del(nl, names, &r) {
            Err(e) if e.is_not_found() => {}
            res => res?,
        }
        undo.push(Undo::AddRoute(r));
    }
    Ok(Done::Changed(undo))
}

fn mark(marker: Option<&mut (dyn Marker + '_)>, m: &ReplyViaVethMark) -> Result<Done> {
    let marker = marker.ok_or_else(|| {
        Error::invalid("the plan needs reply-via-veth marking but no marker was given")
    })?;
    Ok(match marker.apply(m)? {
        Marked::Added => Done::undo(Undo::Unmark(m.clone())),
        // Someone (e.g. an earlier ADD) relies on it: an undo must leave it in place.
        Marked::Unchanged => Done::Already,
        Marked::Replaced(old) => Done::undo(Undo::Remark(m.clone(), old)),
    })
}

/// Failures are only noted: neighbours still learn the new MAC when their entries expire.
fn announce(
    announcer: Option<&mut (dyn Announcer + '_)>,
    dev: &str,
    addrs: &[IpAddr],
    notes: &mut Vec<String>,
) -> Result<Done> {
    let list = || {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(announcer) = announcer else {
        notes.push(format!(
            "announce {} on {dev}: not sent (no announcer given)",
            list()
        ));
        return Ok(Done::Already);
    };
    if let Err(e) = announcer.announce(dev, addrs) {
        notes.push(format!("announce {} on {dev} failed: {e}", list()));
        return Ok(Done::Already);
    }
    Ok(Done::for_good())
}
