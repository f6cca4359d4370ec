//! Applying a plan (all or nothing) and the best-effort DEL teardown.

use std::os::fd::BorrowedFd;

use spiderpool_core::coordinator::{
    DelPlan, Family, MacAddr, NeighState, Neighbour, NetnsPlan, ReplyViaVethMark, Route, Rule,
    Step, step_commands,
};

use crate::addr::{self, AddrOptions};
use crate::error::{Error, Result};
use crate::link::{self, LinkNames, VethOptions};
use crate::mark::{Marked, Marker};
use crate::msg::RouteNetlink;
use crate::probe::Announcer;
use crate::sysctl::SysctlAccess;
use crate::{neigh, route, rule};

/// Where a plan is applied: a netlink transport bound in the target netns, its sysctls, the
/// netns that receives the peer of a created veth, and the reply-via-veth marker.
pub struct Target<'a> {
    /// Netlink in the target netns.
    pub netlink: &'a mut dyn RouteNetlink,
    /// Sysctls of the target netns.
    pub sysctl: &'a mut dyn SysctlAccess,
    /// Where [`Step::CreateVeth`] puts the peer (the host netns); `None` keeps it in the target.
    pub peer_netns: Option<BorrowedFd<'a>>,
    /// The reply-via-veth marking; a plan with [`Step::ReplyViaVethMark`] fails without one.
    pub marker: Option<&'a mut dyn Marker>,
    /// Sends [`Step::Announce`]'s gratuitous ARP / unsolicited NA; without one the step is
    /// only noted in [`ApplyReport::notes`].
    pub announcer: Option<&'a mut dyn Announcer>,
}

impl<'a> Target<'a> {
    /// A target with no peer netns and no marker.
    pub fn new(netlink: &'a mut dyn RouteNetlink, sysctl: &'a mut dyn SysctlAccess) -> Target<'a> {
        Target {
            netlink,
            sysctl,
            peer_netns: None,
            marker: None,
            announcer: None,
        }
    }

    /// The same target, creating veth peers in `netns`.
    pub fn with_peer_netns(mut self, netns: BorrowedFd<'a>) -> Target<'a> {
        self.peer_netns = Some(netns);
        self
    }

    /// The same target, with this reply-via-veth marker.
    pub fn with_marker(mut self, marker: &'a mut dyn Marker) -> Target<'a> {
        self.marker = Some(marker);
        self
    }

    /// The same target, with this announcer.
    pub fn with_announcer(mut self, announcer: &'a mut dyn Announcer) -> Target<'a> {
        self.announcer = Some(announcer);
        self
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Steps that changed something.
    pub changed: usize,
    /// Steps whose effect was already in place ("exists" = done).
    pub already: usize,
    /// Things only logged (e.g. announcements not sent).
    pub notes: Vec<String>,
}

/// How to undo one applied step.
enum Undo {
    DeleteLink(String),
    DelAddress(String, ipnet::IpNet),
    SetLinkUp(String, bool),
    SetMac(String, MacAddr),
    SetTxQueueLen(String, u32),
    Sysctl(String, String),
    DelNeighbour(String, std::net::IpAddr),
    /// Put back an entry a step deleted or replaced, with its MAC and state.
    RestoreNeighbour(Neighbour),
    DelRule(Rule),
    AddRule(Rule),
    DelRoute(Route),
    AddRoute(Route),
    Unmark(ReplyViaVethMark),
    /// Put back the marking a step replaced, as the marker described it.
    Remark(ReplyViaVethMark, String),
}

/// Applies `plan`'s steps in order. Adds are exclusive with "exists" treated as done; deletes
/// treat "not found" as done. If a step fails, what the earlier steps changed is undone in
/// reverse order and the error says which step failed: added entries are deleted; deleted
/// routes and rules are re-added; a deleted or replaced neighbour entry comes back with its MAC
/// and state; sysctls, MACs, queue lengths and up states get their old values; a marking is
/// removed if the plan added it, put back if the plan replaced it, and left alone if it was
/// already in place. Not undone: a deleted link (it cannot come back) and announcements.
pub fn apply(plan: &NetnsPlan, target: &mut Target<'_>) -> Result<ApplyReport> {
    apply_undoable(plan, target).map(|applied| applied.report)
}

/// A plan applied by [`apply_undoable`]: its report, and what it changed, so that
/// [`undo`] can take it back later (e.g. the pod's plan when the node's plan then fails).
pub struct Applied {
    /// What was done.
    pub report: ApplyReport,
    undo: Vec<Undo>,
}

/// [`apply`], keeping the record of what changed for a later [`undo`].
pub fn apply_undoable(plan: &NetnsPlan, target: &mut Target<'_>) -> Result<Applied> {
    let mut names = LinkNames::load(target.netlink)?;
    let mut undo: Vec<Undo> = Vec::new();
    let mut report = ApplyReport::default();
    for (index, step) in plan.steps.iter().enumerate() {
        match apply_step(step, target, &mut names, &mut undo, &mut report) {
            Ok(true) => report.changed += 1,
            Ok(false) => report.already += 1,
            Err(source) => {
                let rollback_errors = rollback(undo, target, &mut names);
                return Err(Error::Step {
                    index,
                    step: step_commands(step).join("; "),
                    source: Box::new(source),
                    rollback_errors,
                });
            }
        }
    }
    Ok(Applied { report, undo })
}

/// Takes back everything an applied plan changed, in reverse order, best effort (the same
/// undo [`apply`] runs when one of its own steps fails). Returns what could not be undone.
/// `target` must reach the same netns (and marker) the plan was applied with.
pub fn undo(applied: Applied, target: &mut Target<'_>) -> Vec<Error> {
    match LinkNames::load(target.netlink) {
        Ok(mut names) => rollback(applied.undo, target, &mut names),
        Err(e) => vec![e],
    }
}

fn link_state(names: &mut LinkNames, nl: &mut dyn RouteNetlink, dev: &str) -> Result<link::Link> {
    names.forget(dev);
    names.link(nl, dev).cloned()
}

/// Applies one step; `Ok(false)` when it was already in place.
fn apply_step(
    step: &Step,
    t: &mut Target<'_>,
    names: &mut LinkNames,
    undo: &mut Vec<Undo>,
    report: &mut ApplyReport,
) -> Result<bool> {
    let nl = &mut *t.netlink;
    match step {
        Step::SetLinkUp { dev } => {
            let l = link_state(names, nl, dev)?;
            if l.up {
                return Ok(false);
            }
            link::set_up(nl, l.index, true)?;
            undo.push(Undo::SetLinkUp(dev.clone(), false));
        }
        Step::CreateVeth(v) => {
            let opts = VethOptions {
                mac: Some(v.mac),
                peer_mac: Some(v.peer_mac),
                mtu: Some(v.mtu),
                peer_netns: t.peer_netns,
            };
            match link::create_veth(nl, &v.name, &v.peer_name, &opts) {
                Err(e) if e.is_exists() => return Ok(false),
                r => r?,
            }
            undo.push(Undo::DeleteLink(v.name.clone()));
        }
        Step::DeleteLink { name } => {
            let Some(l) = link::get_by_name(nl, name)? else {
                return Ok(false);
            };
            match link::delete(nl, l.index) {
                Err(e) if e.is_not_found() => return Ok(false),
                r => r?,
            }
            names.forget(name);
        }
        Step::SetMac { dev, mac } => {
            let l = link_state(names, nl, dev)?;
            if l.mac == Some(*mac) {
                return Ok(false);
            }
            link::set_mac(nl, l.index, *mac)?;
            if let Some(old) = l.mac {
                undo.push(Undo::SetMac(dev.clone(), old));
            }
        }
        Step::SetTxQueueLen { dev, len } => {
            let l = link_state(names, nl, dev)?;
            if l.tx_queue_len == Some(*len) {
                return Ok(false);
            }
            link::set_tx_queue_len(nl, l.index, *len)?;
            if let Some(old) = l.tx_queue_len {
                undo.push(Undo::SetTxQueueLen(dev.clone(), old));
            }
        }
        Step::AddAddress { dev, addr: a } => {
            let index = names.index(nl, dev)?;
            let opts = AddrOptions { nodad: true };
            match addr::add(nl, index, a, &opts) {
                Err(e) if e.is_exists() => return Ok(false),
                r => r?,
            }
            undo.push(Undo::DelAddress(dev.clone(), *a));
        }
        Step::Sysctl { key, value } => {
            let old = t.sysctl.write(key, value)?;
            if old == *value {
                return Ok(false);
            }
            undo.push(Undo::Sysctl(key.clone(), old));
        }
        Step::AddNeighbour { ip, dev, lladdr } => {
            let index = names.index(nl, dev)?;
            match neigh::add(nl, index, *ip, *lladdr) {
                Ok(()) => undo.push(Undo::DelNeighbour(dev.clone(), *ip)),
                // An entry exists (maybe learnt, maybe another MAC): replace it, and keep the
                // old one for the undo.
                Err(e) if e.is_exists() => {
                    let old = neigh::dump(nl, names)?
                        .into_iter()
                        .find(|(i, n)| *i == index && n.ip == *ip)
                        .map(|(_, n)| n);
                    let wanted = |n: &Neighbour| {
                        n.lladdr == Some(*lladdr) && n.state == NeighState::Permanent
                    };
                    if old.as_ref().is_some_and(wanted) {
                        return Ok(false);
                    }
                    neigh::replace(nl, index, *ip, *lladdr)?;
                    undo.push(match old {
                        Some(n) => Undo::RestoreNeighbour(n),
                        // Gone between the add and the dump: nothing to put back.
                        None => Undo::DelNeighbour(dev.clone(), *ip),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Step::DeleteNeighbour { ip, dev } => {
            let found: Vec<(u32, Neighbour)> = neigh::dump(nl, names)?
                .into_iter()
                .filter(|(_, n)| n.ip == *ip && dev.as_ref().is_none_or(|d| *d == n.dev))
                .collect();
            if found.is_empty() {
                return Ok(false);
            }
            for (index, n) in found {
                match neigh::del(nl, index, n.ip) {
                    Err(e) if e.is_not_found() => {}
                    r => r?,
                }
                if n.lladdr.is_some() {
                    undo.push(Undo::RestoreNeighbour(n));
                }
            }
        }
        Step::AddRule(r) => {
            if !rule::add(nl, r)? {
                return Ok(false);
            }
            undo.push(Undo::DelRule(r.clone()));
        }
        Step::DeleteRule(sel) => {
            let found: Vec<Rule> = rule::dump(nl, sel.family)?
                .into_iter()
                .filter(|r| sel.selects(r))
                .collect();
            if found.is_empty() {
                return Ok(false);
            }
            for r in found {
                match rule::del(nl, &r) {
                    Err(e) if e.is_not_found() => {}
                    res => res?,
                }
                undo.push(Undo::AddRule(r));
            }
        }
        Step::AddRoute { route: r, .. } => {
            match route::add(nl, names, r, route::AddMode::Exclusive) {
                Err(e) if e.is_exists() => return Ok(false),
                res => res?,
            }
            undo.push(Undo::DelRoute(r.clone()));
        }
        Step::DeleteRoute { route: sel } => {
            let found: Vec<Route> = route::dump(nl, names, sel.family(), sel.table)?
                .into_iter()
                .filter(|r| sel.selects(r))
                .collect();
            if !delete_routes(nl, names, found, undo)? {
                return Ok(false);
            }
        }
        Step::DeleteRoutesTo { table, dst } => {
            let found: Vec<Route> = route::dump(nl, names, Family::of_net(dst), *table)?
                .into_iter()
                .filter(|r| r.dst.trunc() == dst.trunc())
                .collect();
            if !delete_routes(nl, names, found, undo)? {
                return Ok(false);
            }
        }
        Step::ReplyViaVethMark(m) => {
            let marker = t.marker.as_deref_mut().ok_or_else(|| {
                Error::invalid("the plan needs reply-via-veth marking but no marker was given")
            })?;
            match marker.apply(m)? {
                Marked::Added => undo.push(Undo::Unmark(m.clone())),
                // Someone (e.g. an earlier ADD) relies on it: an undo must leave it in place.
                Marked::Unchanged => return Ok(false),
                Marked::Replaced(old) => undo.push(Undo::Remark(m.clone(), old)),
            }
        }
        Step::Announce { dev, addrs } => {
            let list = || {
                addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            // Failures are only logged (spec §4.4 step 11): neighbours still learn the new
            // MAC when their entries expire.
            let Some(announcer) = t.announcer.as_deref_mut() else {
                report.notes.push(format!(
                    "announce {} on {dev}: not sent (no announcer given)",
                    list()
                ));
                return Ok(false);
            };
            if let Err(e) = announcer.announce(dev, addrs) {
                report
                    .notes
                    .push(format!("announce {} on {dev} failed: {e}", list()));
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn delete_routes(
    nl: &mut dyn RouteNetlink,
    names: &mut LinkNames,
    found: Vec<Route>,
    undo: &mut Vec<Undo>,
) -> Result<bool> {
    let any = !found.is_empty();
    for r in found {
        match route::del(nl, names, &r) {
            Err(e) if e.is_not_found() => {}
            res => res?,
        }
        undo.push(Undo::AddRoute(r));
    }
    Ok(any)
}

fn run_undo(u: &Undo, t: &mut Target<'_>, names: &mut LinkNames) -> Result<()> {
    let nl = &mut *t.netlink;
    match u {
        Undo::DeleteLink(name) => {
            if let Some(l) = link::get_by_name(nl, name)? {
                link::delete(nl, l.index)?;
            }
            names.forget(name);
        }
        Undo::DelAddress(dev, a) => {
            let i = names.index(nl, dev)?;
            addr::del(nl, i, a)?
        }
        Undo::SetLinkUp(dev, up) => {
            let i = names.index(nl, dev)?;
            link::set_up(nl, i, *up)?
        }
        Undo::SetMac(dev, mac) => {
            let i = names.index(nl, dev)?;
            link::set_mac(nl, i, *mac)?
        }
        Undo::SetTxQueueLen(dev, len) => {
            let i = names.index(nl, dev)?;
            link::set_tx_queue_len(nl, i, *len)?
        }
        Undo::Sysctl(key, old) => {
            t.sysctl.write(key, old)?;
        }
        Undo::DelNeighbour(dev, ip) => {
            let i = names.index(nl, dev)?;
            neigh::del(nl, i, *ip)?
        }
        Undo::RestoreNeighbour(n) => {
            let i = names.index(nl, &n.dev)?;
            neigh::restore(nl, i, n)?
        }
        Undo::DelRule(r) => rule::del(nl, r)?,
        Undo::AddRule(r) => {
            rule::add(nl, r)?;
        }
        Undo::DelRoute(r) => route::del(nl, names, r)?,
        // Prepend, not exclusive: a same-slot route (two default routes of equal metric) must
        // not make the restore fail silently, and the restored route must come first again.
        Undo::AddRoute(r) => route::add(nl, names, r, route::AddMode::Prepend)?,
        Undo::Unmark(m) => {
            if let Some(marker) = t.marker.as_deref_mut() {
                marker.remove(m)?;
            }
        }
        Undo::Remark(m, old) => {
            if let Some(marker) = t.marker.as_deref_mut() {
                marker.restore(m, old)?;
            }
        }
    }
    Ok(())
}

/// Undoes in reverse order; "not found" while undoing an add counts as undone.
fn rollback(undo: Vec<Undo>, t: &mut Target<'_>, names: &mut LinkNames) -> Vec<Error> {
    let mut errors = Vec::new();
    for u in undo.iter().rev() {
        match run_undo(u, t, names) {
            Ok(()) => {}
            Err(e) if e.is_not_found() || e.is_exists() => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// Runs a DEL plan's host steps, best effort: every step is tried, "not found" counts as done,
/// and all failures are returned together as [`Error::Many`].
pub fn teardown(plan: &DelPlan, target: &mut Target<'_>) -> Result<()> {
    let mut names = match LinkNames::load(target.netlink) {
        Ok(n) => n,
        Err(e) => return Err(Error::Many(vec![e])),
    };
    let mut errors = Vec::new();
    let mut report = ApplyReport::default();
    for (index, step) in plan.host.steps.iter().enumerate() {
        let mut undo = Vec::new();
        match apply_step(step, target, &mut names, &mut undo, &mut report) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(source) => errors.push(Error::Step {
                index,
                step: step_commands(step).join("; "),
                source: Box::new(source),
                rollback_errors: Vec::new(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Many(errors))
    }
}
