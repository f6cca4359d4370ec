//! Applying a plan (all or nothing), an ADD's pod and node plans together, and the
//! best-effort DEL teardown.

mod steps;
mod undo;

use std::os::fd::BorrowedFd;

#[cfg(doc)]
use spiderpool_core::coordinator::Step;
use spiderpool_core::coordinator::{DelPlan, NetnsPlan, Plan, step_commands};

use crate::error::{Error, PlanError, Result};
use crate::link::LinkNames;
use crate::mark::Marker;
use crate::msg::RouteNetlink;
use crate::probe::Announcer;
use crate::sysctl::SysctlAccess;
use steps::{Done, apply_step};
use undo::{Undo, rollback};

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
        match apply_step(step, target, &mut names, &mut report.notes) {
            Ok(Done::Already) => report.already += 1,
            Ok(Done::Changed(records)) => {
                report.changed += 1;
                undo.extend(records);
            }
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

/// What [`apply_plan`] did in each netns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanReport {
    /// The pod's steps.
    pub pod: ApplyReport,
    /// The node's steps.
    pub node: ApplyReport,
}

/// Applies an ADD plan: the pod's steps (they create the node end of an underlay veth), then
/// the node's. All or nothing across both: if a node step fails, the node steps before it are
/// undone and then the whole pod plan, with the record of what it changed; if a pod step
/// fails, the node is not touched. `pod` and `node` reach the pod's and node's netns.
pub fn apply_plan(
    plan: &Plan,
    pod: &mut Target<'_>,
    node: &mut Target<'_>,
) -> Result<PlanReport, PlanError> {
    let pod_applied = apply_undoable(&plan.pod, pod).map_err(PlanError::Pod)?;
    match apply(&plan.host, node) {
        Ok(node_report) => Ok(PlanReport {
            pod: pod_applied.report,
            node: node_report,
        }),
        Err(node_error) => Err(PlanError::Node {
            pod_undo_errors: undo(pod_applied, pod),
            source: node_error,
        }),
    }
}

/// Runs a DEL plan's host steps, best effort: every step is tried, "not found" counts as done,
/// and all failures are returned together as [`Error::Many`].
pub fn teardown(plan: &DelPlan, target: &mut Target<'_>) -> Result<()> {
    let mut names = match LinkNames::load(target.netlink) {
        Ok(n) => n,
        Err(e) => return Err(Error::Many(vec![e])),
    };
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for (index, step) in plan.host.steps.iter().enumerate() {
        match apply_step(step, target, &mut names, &mut notes) {
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
