//! Comparing a plan with a live netns.

use std::fmt;

use spiderpool_core::coordinator::{NetnsPlan, PodView, Step, step_commands};

/// The sysctl keys `plan` writes, for [`crate::read`] before [`verify`] (a key that is not
/// read shows as missing).
pub fn sysctl_keys(plan: &NetnsPlan) -> Vec<&str> {
    let mut keys: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Sysctl { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// How the live state differs from what a step expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftKind {
    /// The step adds something the netns lacks.
    Missing,
    /// The step deletes something the netns still has.
    Unexpected,
    /// The object is there with other attributes (MAC, queue length, sysctl value...).
    Differs,
}

/// One difference between a plan and a live netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Index of the step in the plan.
    pub step: usize,
    /// What kind of difference.
    pub kind: DriftKind,
    /// The step as `ip` commands, plus what was found.
    pub what: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DriftKind::Missing => "missing",
            DriftKind::Unexpected => "still present",
            DriftKind::Differs => "differs",
        };
        write!(f, "step {}: {kind}: {}", self.step, self.what)
    }
}

/// Lists what `plan` expects but `live` lacks (or still has, for deletions). A step whose
/// effect a later step of the same plan undoes (a route added then deleted, a rule deleted
/// then re-added) is not checked. Announcements are not checkable and are skipped, and so are
/// reply-via-veth markings when `live.marks` was not read (empty).
pub fn verify(plan: &NetnsPlan, live: &PodView) -> Vec<Drift> {
    let mut out = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let later = &plan.steps[i + 1..];
        let cmd = || step_commands(step).join("; ");
        let mut push = |kind, extra: String| {
            out.push(Drift {
                step: i,
                kind,
                what: if extra.is_empty() {
                    cmd()
                } else {
                    format!("{} ({extra})", cmd())
                },
            })
        };
        match step {
            Step::SetLinkUp { dev } => match live.link(dev) {
                None => push(DriftKind::Missing, format!("no link {dev}")),
                Some(l) if !l.up => push(DriftKind::Differs, format!("{dev} is down")),
                _ => {}
            },
            Step::CreateVeth(v) => {
                let deleted = later
                    .iter()
                    .any(|s| matches!(s, Step::DeleteLink { name } if *name == v.name));
                match live.link(&v.name) {
                    None if !deleted => push(DriftKind::Missing, String::new()),
                    Some(l) if l.mac != Some(v.mac) || l.mtu.is_some_and(|m| m != v.mtu) => {
                        let found = l.mac.map(|m| m.to_string()).unwrap_or_default();
                        push(DriftKind::Differs, format!("found {found} mtu {:?}", l.mtu));
                    }
                    _ => {}
                }
            }
            Step::DeleteLink { name } if live.link(name).is_some() => {
                push(DriftKind::Unexpected, String::new());
            }
            Step::SetMac { dev, mac } => match live.link(dev) {
                None => push(DriftKind::Missing, format!("no link {dev}")),
                Some(l) if l.mac != Some(*mac) => push(
                    DriftKind::Differs,
                    format!("found {}", l.mac.map(|m| m.to_string()).unwrap_or_default()),
                ),
                _ => {}
            },
            Step::SetTxQueueLen { dev, len } => match live.link(dev) {
                None => push(DriftKind::Missing, format!("no link {dev}")),
                Some(l) if l.tx_queue_len.is_some_and(|q| q != *len) => {
                    push(DriftKind::Differs, format!("found {:?}", l.tx_queue_len))
                }
                _ => {}
            },
            Step::AddAddress { dev, addr }
                if !live.link(dev).is_some_and(|l| l.addresses.contains(addr)) =>
            {
                push(DriftKind::Missing, String::new());
            }
            Step::Sysctl { key, value } => match live.sysctls.get(key) {
                None => push(DriftKind::Missing, "not read".into()),
                Some(v) if v != value => push(DriftKind::Differs, format!("found {v}")),
                _ => {}
            },
            Step::AddNeighbour { ip, dev, lladdr } => {
                let undone = later.iter().any(|s| {
                    matches!(s, Step::DeleteNeighbour { ip: i2, dev: d2 }
                        if i2 == ip && d2.as_ref().is_none_or(|d| d == dev))
                });
                let found = live
                    .neighbours
                    .iter()
                    .any(|n| n.ip == *ip && n.dev == *dev && n.lladdr == Some(*lladdr));
                if !found && !undone {
                    push(DriftKind::Missing, String::new());
                }
            }
            Step::DeleteNeighbour { ip, dev } => {
                let readded = later
                    .iter()
                    .any(|s| matches!(s, Step::AddNeighbour { ip: i2, .. } if i2 == ip));
                let still = live
                    .neighbours
                    .iter()
                    .any(|n| n.ip == *ip && dev.as_ref().is_none_or(|d| *d == n.dev));
                if still && !readded {
                    push(DriftKind::Unexpected, String::new());
                }
            }
            Step::AddRule(r) => {
                let undone = later
                    .iter()
                    .any(|s| matches!(s, Step::DeleteRule(sel) if sel.selects(r)));
                let found = live.rules.iter().any(|l| {
                    l.same_selectors(r) && (r.priority.is_none() || r.priority == l.priority)
                });
                if !found && !undone {
                    push(DriftKind::Missing, String::new());
                }
            }
            Step::DeleteRule(sel) => {
                let readded = later
                    .iter()
                    .any(|s| matches!(s, Step::AddRule(r) if sel.selects(r)));
                if !readded && live.rules.iter().any(|l| sel.selects(l)) {
                    push(DriftKind::Unexpected, String::new());
                }
            }
            Step::AddRoute { route, .. } => {
                let undone = later.iter().any(|s| match s {
                    Step::DeleteRoute { route: sel } => sel.selects(route),
                    Step::DeleteRoutesTo { table, dst } => {
                        *table == route.table && dst.trunc() == route.dst.trunc()
                    }
                    _ => false,
                });
                if !undone && !live.routes.iter().any(|l| l.same_forwarding(route)) {
                    match live.routes.iter().find(|l| l.same_slot(route)) {
                        Some(other) => push(
                            DriftKind::Differs,
                            format!("table has {:?}", crate::route::describe(other)),
                        ),
                        None => push(DriftKind::Missing, String::new()),
                    }
                }
            }
            Step::DeleteRoute { route: sel } => {
                let readded = later
                    .iter()
                    .any(|s| matches!(s, Step::AddRoute { route, .. } if sel.selects(route)));
                if !readded && live.routes.iter().any(|l| sel.selects(l)) {
                    push(DriftKind::Unexpected, String::new());
                }
            }
            Step::DeleteRoutesTo { table, dst } => {
                let readded = later.iter().any(|s| {
                    matches!(s, Step::AddRoute { route, .. }
                        if route.table == *table && route.dst.trunc() == dst.trunc())
                });
                let still = live
                    .routes
                    .iter()
                    .any(|l| l.table == *table && l.dst.trunc() == dst.trunc());
                if still && !readded {
                    push(DriftKind::Unexpected, String::new());
                }
            }
            Step::ReplyViaVethMark(m) if !live.marks.is_empty() && !live.marks.contains(m) => {
                push(DriftKind::Missing, String::new());
            }
            _ => {}
        }
    }
    out
}
