//! Garbage-collection verdicts (§3.15 "scan-all"): for one pool record, given what the
//! controller found about its pod and endpoint, whether to release the address, the
//! endpoint, both, or neither. Time comparisons are done by the caller (it passes
//! [`GcPod::deletion_deadline_passed`]) so the verdict is a pure function.

use std::net::IpAddr;

use super::store::{ChangeSet, EndpointChange, EndpointKey, PoolOp, Snapshot};
use crate::objects::PoolIPAllocation;

/// GC switches (`SPIDERPOOL_GC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// `..._STATELESS_TERMINATING_POD_ON_READY_NODE_ENABLED` (default true).
    pub terminating_on_ready_node: bool,
    /// `..._STATELESS_TERMINATING_POD_ON_NOT_READY_NODE_ENABLED` (default true).
    pub terminating_on_not_ready_node: bool,
    /// `..._ENABLE_STATELESS_RUNNING_POD_ON_EMPTY_POD_STATUS_IPS` (default false).
    pub running_pod_on_empty_pod_ips: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            terminating_on_ready_node: true,
            terminating_on_not_ready_node: true,
            running_pod_on_empty_pod_ips: false,
        }
    }
}

/// What the controller knows about the record's pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcPod {
    /// The pod's UID.
    pub uid: String,
    /// `status.phase`.
    pub phase: String,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// Now is past deletionTimestamp + grace period + the additional delay.
    pub deletion_deadline_passed: bool,
    /// `status.podIPs` is non-empty.
    pub has_pod_ips: bool,
    /// Controlled by a StatefulSet / KubeVirt VMI with the feature on.
    pub is_static: bool,
    /// For static pods: still a valid member (see `release::statefulset_pod_valid`).
    pub static_valid: bool,
    /// The pod's node is Ready.
    pub node_ready: bool,
}

/// The result of looking an object up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// It exists.
    Found(T),
    /// It does not exist.
    NotFound,
    /// The lookup failed (the record is skipped this round).
    Failed,
}

/// What the controller knows about the record's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcEndpoint {
    /// `status.current.uid`.
    pub uid: String,
    /// Its owner is a StatefulSet / VMI (feature on).
    pub is_static: bool,
    /// For a static owner: the pod is still a valid member.
    pub static_valid: bool,
}

/// What to do with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcVerdict {
    /// Remove the pool record (only if its UID still matches).
    pub release_ip: bool,
    /// Delete the endpoint (and remove its finalizer).
    pub release_endpoint: bool,
    /// Keep watching the pod (pod-tracing database).
    pub trace: bool,
    /// Which rule decided.
    pub rule: &'static str,
}

const fn verdict(
    release_ip: bool,
    release_endpoint: bool,
    trace: bool,
    rule: &'static str,
) -> GcVerdict {
    GcVerdict {
        release_ip,
        release_endpoint,
        trace,
        rule,
    }
}

/// The scan-all decision table of §3.15 for a record held by `record`.
pub fn gc_verdict(
    record: &PoolIPAllocation,
    pod: &Lookup<GcPod>,
    endpoint: &Lookup<GcEndpoint>,
    cfg: &GcConfig,
) -> GcVerdict {
    let pod = match pod {
        Lookup::Failed => return verdict(false, false, false, "pod lookup failed: skip"),
        Lookup::NotFound => {
            return match endpoint {
                Lookup::Failed => verdict(false, false, false, "endpoint lookup failed: skip"),
                Lookup::NotFound => verdict(true, false, false, "pod and endpoint gone"),
                Lookup::Found(e) if e.is_static && e.static_valid => {
                    verdict(false, false, false, "pod gone, static endpoint still valid")
                }
                Lookup::Found(_) => verdict(true, true, false, "pod gone"),
            };
        }
        Lookup::Found(p) => p,
    };
    if matches!(endpoint, Lookup::Failed) {
        return verdict(false, false, false, "endpoint lookup failed: skip");
    }
    let static_rule = |rule_keep, rule_release| {
        if pod.static_valid {
            verdict(false, false, true, rule_keep)
        } else {
            verdict(true, false, false, rule_release)
        }
    };
    // Record of a previous pod of the same name.
    let ip_verdict = if pod.uid != record.pod_uid {
        if pod.is_static {
            if pod.has_pod_ips {
                verdict(true, false, false, "static pod re-created with other IPs")
            } else {
                static_rule(
                    "static pod re-created, still valid",
                    "static pod no longer valid",
                )
            }
        } else {
            verdict(true, false, false, "record of a previous pod")
        }
    } else {
        status_verdict(pod, cfg)
    };
    let mut v = ip_verdict;
    if let Lookup::Found(e) = endpoint {
        if e.uid != pod.uid {
            if pod.is_static {
                if pod.has_pod_ips || !pod.static_valid {
                    v.release_endpoint = true;
                }
            } else {
                v.release_ip = true;
                v.release_endpoint = true;
            }
        } else {
            v.release_endpoint = v.release_ip;
        }
    }
    v
}

/// The pod-status rows of the table (record UID = pod UID).
fn status_verdict(pod: &GcPod, cfg: &GcConfig) -> GcVerdict {
    let node_allows = if pod.node_ready {
        cfg.terminating_on_ready_node
    } else {
        cfg.terminating_on_not_ready_node
    };
    let deletion_rule = || {
        if pod.deletion_deadline_passed {
            if node_allows {
                verdict(true, false, false, "terminating past its grace period")
            } else {
                verdict(false, false, true, "terminating, node flag forbids release")
            }
        } else if pod.has_pod_ips {
            verdict(false, false, true, "terminating within its grace period")
        } else {
            verdict(true, false, false, "terminating without pod IPs")
        }
    };
    let phase = pod.phase.as_str();
    match phase {
        "Pending" => verdict(false, false, false, "pending"),
        "Succeeded" | "Failed" => {
            if pod.is_static {
                if pod.static_valid {
                    verdict(false, false, true, "finished static pod, still valid")
                } else {
                    verdict(true, false, false, "finished static pod, no longer valid")
                }
            } else if pod.terminating {
                deletion_rule()
            } else {
                verdict(false, false, true, "finished, traced")
            }
        }
        _ if pod.terminating => deletion_rule(),
        _ if pod.has_pod_ips => verdict(false, false, false, "running with pod IPs"),
        _ if pod.is_static => {
            if pod.static_valid {
                verdict(
                    false,
                    false,
                    false,
                    "static pod without pod IPs, still valid",
                )
            } else {
                verdict(
                    true,
                    false,
                    false,
                    "static pod without pod IPs, no longer valid",
                )
            }
        }
        "Running" => {
            if cfg.running_pod_on_empty_pod_ips {
                verdict(
                    true,
                    false,
                    false,
                    "running without pod IPs (release enabled)",
                )
            } else {
                verdict(false, false, false, "running without pod IPs")
            }
        }
        _ => verdict(true, false, false, "unknown phase without pod IPs"),
    }
}

/// The writes of a verdict for the record of `ip` in `pool`: the record removal (if it still
/// carries `record.pod_uid`) and the endpoint deletion.
pub fn gc_changes(
    pool: &str,
    ip: IpAddr,
    record: &PoolIPAllocation,
    endpoint: Option<&EndpointKey>,
    v: &GcVerdict,
    snap: &Snapshot,
) -> ChangeSet {
    let mut changes = ChangeSet::default();
    if v.release_ip
        && let (Some(state), Some(version)) = (snap.pool(pool), snap.pool_version(pool))
        && state
            .record(ip)
            .is_some_and(|r| r.pod_uid == record.pod_uid)
    {
        changes.push_pool_op(
            pool,
            version,
            PoolOp::Release {
                ip,
                uid: record.pod_uid.clone(),
            },
        );
    }
    if v.release_endpoint
        && let Some(key) = endpoint
        && let Some((version, _)) = snap.endpoint(key)
    {
        changes.endpoints.push(EndpointChange::Delete {
            key: key.clone(),
            expected_version: version,
        });
    }
    changes
}
