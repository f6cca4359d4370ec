//! Release on CNI DEL (§3.14) and the batch release of a pod's addresses (`DELETE
//! /v1/ipam/ips`), as pure decisions.

use std::net::IpAddr;

use super::allocate::{detail_addresses, release_detail};
use super::request::{IpamConfig, KIND_STATEFULSET, KIND_VMI};
use super::store::{ChangeSet, EndpointChange, EndpointKey, Snapshot};
use crate::ipam::IpamError;

/// Phase and deletion facts of a pod, from which [`pod_is_alive`] decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodLifecycle {
    /// `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    pub phase: String,
    /// `status.reason` (e.g. `Evicted`).
    pub reason: String,
    /// `spec.restartPolicy` (`Always`, `OnFailure`, `Never`).
    pub restart_policy: String,
    /// Whether `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

/// Upstream's "pod alive" (§3.14 step 1): exists (the caller checks), not terminating, not
/// (Succeeded and restartPolicy ≠ Always), not (Failed and restartPolicy = Never), not Failed
/// with reason `Evicted`.
pub fn pod_is_alive(p: &PodLifecycle) -> bool {
    !(p.terminating
        || (p.phase == "Succeeded" && p.restart_policy != "Always")
        || (p.phase == "Failed" && p.restart_policy == "Never")
        || (p.phase == "Failed" && p.reason == "Evicted"))
}

/// Upstream's "valid StatefulSet pod": the pod name is `<sts>-<ordinal>`, the StatefulSet
/// exists (`replicas` is `Some`), and the ordinal lies in `[start, start + replicas)`.
pub fn statefulset_pod_valid(
    pod_name: &str,
    sts_name: &str,
    ordinals_start: u64,
    replicas: Option<u64>,
) -> bool {
    let Some(replicas) = replicas else {
        return false;
    };
    let Some(ordinal) = pod_name
        .strip_prefix(sts_name)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|o| o.parse::<u64>().ok())
    else {
        return false;
    };
    ordinal >= ordinals_start && ordinal - ordinals_start < replicas
}

/// Upstream's "valid KubeVirt VM pod": the VMI exists and is not terminating, or it is
/// missing/terminating but a VM controls it that exists and is not terminating.
pub fn kubevirt_pod_valid(vmi_alive: bool, vm_alive: bool) -> bool {
    vmi_alive || vm_alive
}

/// A CNI DEL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseRequest {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The pod's endpoint (`ns/<pod>`, or `ns/<vmi>` for KubeVirt VM pods).
    pub endpoint: EndpointKey,
    /// UID of the pod (from the pod, else `K8S_POD_UID`); `None`: skip, GC will handle it.
    pub pod_uid: Option<String>,
    /// Whether the pod still exists and is alive ([`pod_is_alive`]): then nothing is released
    /// (a sandbox re-creation keeps its addresses).
    pub pod_alive: bool,
    /// For StatefulSet / KubeVirt endpoints: whether the pod is still a valid member
    /// ([`statefulset_pod_valid`], [`kubevirt_pod_valid`]); its addresses are then kept.
    pub static_pod_valid: bool,
    /// Cluster switches (`enableStatefulSet`, `enableKubevirtStaticIP`).
    pub config: IpamConfig,
}

/// Why a release did or did not free addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The pod is alive: nothing released.
    PodAlive,
    /// No pod UID known: nothing released (left to GC).
    NoUid,
    /// No endpoint: nothing to release.
    NoEndpoint,
    /// A valid StatefulSet / KubeVirt pod: addresses kept for its next incarnation.
    StaticKept,
    /// The endpoint belongs to another pod UID, or does not record this NIC: nothing released
    /// (a StatefulSet / KubeVirt endpoint that is no longer valid is still deleted).
    NotOwner,
    /// Every address of the endpoint released and the endpoint deleted.
    Released,
}

/// The outcome of [`plan_release`] and [`plan_release_pod`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseDecision {
    /// Why.
    pub outcome: ReleaseOutcome,
    /// `(pool, address)` records removed.
    pub released: Vec<(String, IpAddr)>,
    /// The writes.
    pub changes: ChangeSet,
}

impl ReleaseDecision {
    fn nothing(outcome: ReleaseOutcome) -> Self {
        ReleaseDecision {
            outcome,
            released: Vec::new(),
            changes: ChangeSet::default(),
        }
    }
}

/// Whether an endpoint's owner type makes it static under `config`.
pub fn is_static_owner(owner_type: &str, config: &IpamConfig) -> bool {
    (config.enable_statefulset && owner_type == KIND_STATEFULSET)
        || (config.enable_kubevirt_static_ip && owner_type == KIND_VMI)
}

/// Decides a CNI DEL (§3.14): all addresses of all NICs of the endpoint are released
/// together (records removed only where `podUid` matches) and the endpoint deleted.
pub fn plan_release(req: &ReleaseRequest, snap: &Snapshot) -> Result<ReleaseDecision, IpamError> {
    if req.pod_alive {
        return Ok(ReleaseDecision::nothing(ReleaseOutcome::PodAlive));
    }
    let Some(uid) = req.pod_uid.as_deref() else {
        return Ok(ReleaseDecision::nothing(ReleaseOutcome::NoUid));
    };
    let Some((version, ep)) = snap.endpoint(&req.endpoint) else {
        return Ok(ReleaseDecision::nothing(ReleaseOutcome::NoEndpoint));
    };
    let status = ep.status.clone().unwrap_or_default();
    let mut decision = ReleaseDecision::nothing(ReleaseOutcome::NotOwner);
    let delete = EndpointChange::Delete {
        key: req.endpoint.clone(),
        expected_version: version,
    };
    if is_static_owner(&status.owner_controller_type, &req.config) {
        if req.static_pod_valid {
            return Ok(ReleaseDecision::nothing(ReleaseOutcome::StaticKept));
        }
        decision.changes.endpoints.push(delete.clone());
    }
    let recorded = status.current.ips.iter().any(|d| d.interface == req.ifname);
    if status.current.uid != uid || !recorded {
        return Ok(decision);
    }
    for d in &status.current.ips {
        release_detail(snap, d, uid, &mut decision.changes)?;
    }
    decision.released = released_of(&decision.changes);
    if decision.changes.endpoints.is_empty() {
        decision.changes.endpoints.push(delete);
    }
    decision.outcome = ReleaseOutcome::Released;
    Ok(decision)
}

/// Decides the batch release of `DELETE /v1/ipam/ips` (after an IP conflict): every address
/// of the endpoint is released and the endpoint keeps no NIC. Requires the endpoint's UID to
/// be `uid`.
pub fn plan_release_pod(
    endpoint: &EndpointKey,
    uid: &str,
    snap: &Snapshot,
) -> Result<ReleaseDecision, IpamError> {
    let Some((version, ep)) = snap.endpoint(endpoint) else {
        return Ok(ReleaseDecision::nothing(ReleaseOutcome::NoEndpoint));
    };
    let mut status = ep.status.clone().unwrap_or_default();
    if status.current.uid != uid {
        return Ok(ReleaseDecision::nothing(ReleaseOutcome::NotOwner));
    }
    let mut decision = ReleaseDecision::nothing(ReleaseOutcome::Released);
    for d in &status.current.ips {
        release_detail(snap, d, uid, &mut decision.changes)?;
    }
    decision.released = released_of(&decision.changes);
    status.current.ips.clear();
    let mut ep = ep.clone();
    ep.status = Some(status);
    decision.changes.endpoints.push(EndpointChange::Put {
        key: endpoint.clone(),
        expected_version: Some(version),
        endpoint: Box::new(ep),
    });
    Ok(decision)
}

fn released_of(changes: &ChangeSet) -> Vec<(String, IpAddr)> {
    changes
        .pools
        .iter()
        .flat_map(|p| {
            p.ops.iter().filter_map(|op| match op {
                super::store::PoolOp::Release { ip, .. } => Some((p.pool.clone(), *ip)),
                _ => None,
            })
        })
        .collect()
}

/// Every `(address, pool)` recorded in an endpoint (all NICs).
pub fn endpoint_addresses(
    ep: &crate::objects::SpiderEndpoint,
) -> Result<Vec<(IpAddr, String)>, IpamError> {
    let mut out = Vec::new();
    for d in ep.status.iter().flat_map(|s| s.current.ips.iter()) {
        out.extend(detail_addresses(d)?);
    }
    Ok(out)
}
