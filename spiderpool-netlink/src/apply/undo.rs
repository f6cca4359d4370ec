//! Undo records and the rollback that runs them.

use spiderpool_core::coordinator::{MacAddr, Neighbour, ReplyViaVethMark, Route, Rule};

use super::Target;
use crate::addr;
use crate::error::{Error, Result};
use crate::link::{self, LinkNames};
use crate::{neigh, route, rule};

/// How to undo one change.
pub(crate) enum Undo {
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

impl Undo {
    fn run(&self, t: &mut Target<'_>, names: &mut LinkNames) -> Result<()> {
        let nl = &mut *t.netlink;
        match self {
            Undo::DeleteLink(name) => {
                if let Some(l) = link::get_by_name(nl, name)? {
                    link::delete(nl, l.index)?;
                }
                names.forget(name);
                Ok(())
            }
            Undo::DelAddress(dev, a) => {
                let i = names.index(nl, dev)?;
                addr::del(nl, i, a)
            }
            Undo::SetLinkUp(dev, up) => {
                let i = names.index(nl, dev)?;
                link::set_up(nl, i, *up)
            }
            Undo::SetMac(dev, mac) => {
                let i = names.index(nl, dev)?;
                link::set_mac(nl, i, *mac)
            }
            Undo::SetTxQueueLen(dev, len) => {
                let i = names.index(nl, dev)?;
                link::set_tx_queue_len(nl, i, *len)
            }
            Undo::Sysctl(key, old) => t.sysctl.write(key, old).map(drop),
            Undo::DelNeighbour(dev, ip) => {
                let i = names.index(nl, dev)?;
                neigh::del(nl, i, *ip)
            }
            Undo::RestoreNeighbour(n) => {
                let i = names.index(nl, &n.dev)?;
                neigh::restore(nl, i, n)
            }
            Undo::DelRule(r) => rule::del(nl, r),
            Undo::AddRule(r) => rule::add(nl, r).map(drop),
            Undo::DelRoute(r) => route::del(nl, names, r),
            // Prepend, not exclusive: a same-slot route (two default routes of equal metric)
            // must not make the restore fail silently, and the restored route must come first
            // again.
            Undo::AddRoute(r) => route::add(nl, names, r, route::AddMode::Prepend),
            Undo::Unmark(m) => match t.marker.as_deref_mut() {
                Some(marker) => marker.remove(m),
                None => Ok(()),
            },
            Undo::Remark(m, old) => match t.marker.as_deref_mut() {
                Some(marker) => marker.restore(m, old),
                None => Ok(()),
            },
        }
    }
}

/// Undoes in reverse order, best effort; "not found" while undoing an add counts as undone.
/// Returns what could not be undone.
pub(crate) fn rollback(undo: Vec<Undo>, t: &mut Target<'_>, names: &mut LinkNames) -> Vec<Error> {
    let mut errors = Vec::new();
    for u in undo.iter().rev() {
        match u.run(t, names) {
            Ok(()) => {}
            Err(e) if e.is_not_found() || e.is_exists() => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}
