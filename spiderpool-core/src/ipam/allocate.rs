//! The allocation decision (CNI ADD), as a pure function of a request and a snapshot.
//!
//! Order of the checks (§3.1 step 4, §3.11):
//! 1. The pod's SpiderEndpoint (named after the pod, or the VMI for KubeVirt VM pods).
//! 2. StatefulSet / KubeVirt pods: if this NIC is recorded and its pools are still candidates,
//!    re-adopt the recorded addresses (pool records move to the new pod UID); if its pools
//!    changed, release that NIC's addresses and allocate afresh.
//! 3. Other pods: same UID and NIC recorded → the recorded addresses (idempotent retry); an
//!    unnamed positional `ippools` entry is claimed by this NIC; a different UID means a
//!    previous pod of that name, which Kubernetes only allows once that pod is gone: its
//!    endpoint is replaced and its addresses are released in the same commit (upstream deletes
//!    the endpoint and its garbage collector then releases every record whose UID is not the
//!    pod's; the old sandbox's DEL finds another UID and releases nothing, so without this the
//!    addresses would leak where no collector runs). The new pod does not get them in this
//!    ADD: the snapshot still holds them.
//! 4. Otherwise ([`allocate_fresh`]): candidates → filters → order → lowest free address of the
//!    first pool that has one, per NIC and family; results with routes; the endpoint record.

use crate::ipam::IpamError;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::affinity::{FilterContext, PoolRejection, RejectReason};
use super::annotations::parse_routes;
use super::candidates::{Candidates, NicCandidates, filter_and_order, pool_candidates};
use super::pool_state::PoolState;
use super::request::{AllocateRequest, CORE_V1, KIND_POD};
use super::result::{AllocationResult, IpConfig};
use super::store::{ChangeSet, EndpointChange, EndpointKey, PoolOp, Snapshot, Version};
use crate::ip::{IpFamily, ip_to_u128, parse_ip};
use crate::meta::OwnerReference;
use crate::objects::keys::{ANNO_POD_ROUTES, SPIDER_FINALIZER};
use crate::objects::{
    IPAllocationDetail, PodIPAllocation, PoolIPAllocation, Route, SpiderEndpoint,
    SpiderEndpointStatus,
};

/// How the addresses of a decision were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// Already recorded for this pod UID and NIC (a retried ADD): nothing new allocated.
    Existing,
    /// StatefulSet / KubeVirt: the previous pod's addresses moved to this pod.
    Readopted,
    /// New addresses were chosen.
    Allocated,
}

/// The outcome of [`plan_allocation`]: the answer for the CNI plugin and the writes that make
/// it true.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationDecision {
    /// How the addresses were obtained.
    pub kind: DecisionKind,
    /// Every NIC of the pod (the plugin keeps [`AllocationResult::current`]).
    pub result: AllocationResult,
    /// Pool records and endpoint to write (empty for [`DecisionKind::Existing`] unless an
    /// unnamed entry was claimed).
    pub changes: ChangeSet,
    /// Things worth logging: custom routes that matched no address; addresses of a previous
    /// pod of the same name released.
    pub warnings: Vec<String>,
}

/// The endpoint of the request's pod: `ns/<pod>` or `ns/<vmi>` for KubeVirt VM pods.
pub fn endpoint_key(req: &AllocateRequest) -> EndpointKey {
    EndpointKey::new(req.pod.namespace.clone(), req.endpoint_name())
}

/// Decides the addresses of `req` against `snap` (see the module docs for the rules).
pub fn plan_allocation(
    req: &AllocateRequest,
    snap: &Snapshot,
) -> Result<AllocationDecision, IpamError> {
    let key = endpoint_key(req);
    let existing = snap.endpoint(&key);
    let ep_version = existing.map(|(v, _)| v);
    let fresh = match existing {
        None => Fresh::default(),
        Some((version, ep)) => {
            let retrieved = if req.is_static() {
                retrieve_static(req, snap, &key, version, ep)?
            } else {
                retrieve_stateless(req, snap, &key, version, ep)?
            };
            match retrieved {
                Retrieval::Done(decision) => return Ok(decision),
                Retrieval::Fresh(fresh) => *fresh,
            }
        }
    };
    let cands = pool_candidates(req, snap)?;
    let mut decision = allocate_fresh(
        req,
        snap,
        key,
        ep_version,
        fresh.base,
        &cands,
        fresh.changes,
    )?;
    decision.warnings.extend(fresh.warnings);
    Ok(decision)
}

/// What an existing endpoint leads to: the answer itself, or a fresh allocation on top of it.
enum Retrieval {
    Done(AllocationDecision),
    /// Boxed: an endpoint is much larger than a decision.
    Fresh(Box<Fresh>),
}

/// Where a fresh allocation starts: the endpoint to extend (`None`: a new one), the writes
/// already decided (releases), and what to log about them.
#[derive(Default)]
struct Fresh {
    base: Option<SpiderEndpoint>,
    changes: ChangeSet,
    warnings: Vec<String>,
}

/// Step 2 of the module docs (StatefulSet / KubeVirt pods).
fn retrieve_static(
    req: &AllocateRequest,
    snap: &Snapshot,
    key: &EndpointKey,
    version: Version,
    ep: &SpiderEndpoint,
) -> Result<Retrieval, IpamError> {
    let mut status = ep.status.clone().unwrap_or_default();
    let Some(idx) = nic_index(&status, &req.ifname) else {
        return Ok(Retrieval::Fresh(Box::new(Fresh {
            base: Some(ep.clone()),
            ..Fresh::default()
        })));
    };
    let cands = pool_candidates(req, snap)?;
    if pools_unchanged(&status.current.ips[idx], idx, &cands, &req.ifname) {
        return readopt(req, snap, key, version, ep, status).map(Retrieval::Done);
    }
    // The NIC's pools changed: give its addresses back and allocate afresh.
    let mut fresh = Fresh::default();
    let detail = status.current.ips.remove(idx);
    release_detail(snap, &detail, &status.current.uid, &mut fresh.changes)?;
    if !status.current.ips.is_empty() {
        let mut ep = ep.clone();
        ep.status = Some(status);
        fresh.base = Some(ep);
    }
    Ok(Retrieval::Fresh(Box::new(fresh)))
}

/// Step 3 of the module docs (every other pod).
fn retrieve_stateless(
    req: &AllocateRequest,
    snap: &Snapshot,
    key: &EndpointKey,
    version: Version,
    ep: &SpiderEndpoint,
) -> Result<Retrieval, IpamError> {
    let mut status = ep.status.clone().unwrap_or_default();
    if status.current.uid != req.pod.uid {
        // A previous pod of this name: its endpoint is replaced (`base` stays `None`; the
        // expected version is the one read) and its addresses released.
        let mut fresh = Fresh::default();
        for detail in &status.current.ips {
            release_detail(snap, detail, &status.current.uid, &mut fresh.changes)?;
        }
        fresh.warnings = replaced_warnings(req, &fresh.changes);
        return Ok(Retrieval::Fresh(Box::new(fresh)));
    }
    let existing = |changes: ChangeSet, status: &SpiderEndpointStatus| {
        Ok(Retrieval::Done(AllocationDecision {
            kind: DecisionKind::Existing,
            result: AllocationResult::from_status(&req.ifname, status)?,
            changes,
            warnings: Vec::new(),
        }))
    };
    if nic_index(&status, &req.ifname).is_some() {
        return existing(ChangeSet::default(), &status);
    }
    let Some(i) = nic_index(&status, "") else {
        return Ok(Retrieval::Fresh(Box::new(Fresh {
            base: Some(ep.clone()),
            ..Fresh::default()
        })));
    };
    // Positional `ippools` entry allocated by the first ADD: this NIC claims it.
    status.current.ips[i].interface = req.ifname.clone();
    let mut claimed = ep.clone();
    claimed.status = Some(status.clone());
    let mut changes = ChangeSet::default();
    changes.endpoints.push(EndpointChange::Put {
        key: key.clone(),
        expected_version: Some(version),
        endpoint: Box::new(claimed),
    });
    existing(changes, &status)
}

/// The position of the endpoint entry named `ifname` (`""`: the first unnamed one).
fn nic_index(status: &SpiderEndpointStatus, ifname: &str) -> Option<usize> {
    status
        .current
        .ips
        .iter()
        .position(|d| d.interface == ifname)
}

/// One line per address of a previous pod of the same name that `changes` releases.
fn replaced_warnings(req: &AllocateRequest, changes: &ChangeSet) -> Vec<String> {
    changes
        .pools
        .iter()
        .flat_map(|p| p.ops.iter().map(move |op| (p.pool.as_str(), op)))
        .filter_map(|(pool, op)| match op {
            PoolOp::Release { ip, uid } => Some(format!(
                "released {ip} (pool {pool}) of the previous pod {}/{} with UID {uid}, replaced \
                 by UID {}",
                req.pod.namespace, req.pod.name, req.pod.uid
            )),
            _ => None,
        })
        .collect()
}

/// Whether the pools recorded for the NIC at `idx` are still among its candidates.
fn pools_unchanged(
    detail: &IPAllocationDetail,
    idx: usize,
    cands: &Candidates,
    ifname: &str,
) -> bool {
    let nic = if cands.positional {
        cands.nics.get(idx)
    } else {
        cands.nics.iter().find(|n| n.nic == ifname)
    };
    let Some(nic) = nic else {
        return false;
    };
    let ok =
        |pool: &Option<String>, list: &[String]| pool.as_ref().is_none_or(|p| list.contains(p));
    ok(&detail.ipv4_pool, &nic.ipv4) && ok(&detail.ipv6_pool, &nic.ipv6)
}

/// The `(address, pool)` pairs of an endpoint NIC entry.
pub(crate) fn detail_addresses(d: &IPAllocationDetail) -> Result<Vec<(IpAddr, String)>, IpamError> {
    let mut out = Vec::with_capacity(2);
    for (addr, pool) in [(&d.ipv4, &d.ipv4_pool), (&d.ipv6, &d.ipv6_pool)] {
        if let (Some(a), Some(p)) = (addr, pool) {
            let ip = a.split_once('/').map_or(a.as_str(), |(ip, _)| ip);
            let ip = parse_ip(ip).map_err(|e| IpamError::RecordMismatch {
                pool: p.clone(),
                ip: a.clone(),
                reason: format!("endpoint address: {e}"),
            })?;
            out.push((ip, p.clone()));
        }
    }
    Ok(out)
}

/// Adds release operations for the addresses of `detail` held by `uid`.
pub(crate) fn release_detail(
    snap: &Snapshot,
    detail: &IPAllocationDetail,
    uid: &str,
    changes: &mut ChangeSet,
) -> Result<(), IpamError> {
    for (ip, pool) in detail_addresses(detail)? {
        if let (Some(state), Some(version)) = (snap.pool(&pool), snap.pool_version(&pool))
            && state.record(ip).is_some_and(|r| r.pod_uid == uid)
        {
            changes.push_pool_op(
                &pool,
                version,
                PoolOp::Release {
                    ip,
                    uid: uid.to_owned(),
                },
            );
        }
    }
    Ok(())
}

/// StatefulSet / KubeVirt: moves every recorded address of the endpoint to the new pod UID.
fn readopt(
    req: &AllocateRequest,
    snap: &Snapshot,
    key: &EndpointKey,
    version: Version,
    ep: &SpiderEndpoint,
    mut status: SpiderEndpointStatus,
) -> Result<AllocationDecision, IpamError> {
    let mut changes = ChangeSet::default();
    let holder = PoolIPAllocation {
        pod: key.to_string(),
        pod_uid: req.pod.uid.clone(),
    };
    for detail in &status.current.ips {
        for (ip, pool) in detail_addresses(detail)? {
            let (Some(state), Some(pv)) = (snap.pool(&pool), snap.pool_version(&pool)) else {
                return Err(IpamError::PoolNotFound {
                    pool,
                    nic: detail.interface.clone(),
                });
            };
            let op = match state.record(ip) {
                Some(r) if r.pod != holder.pod => {
                    return Err(IpamError::RecordMismatch {
                        pool,
                        ip: ip.to_string(),
                        reason: format!("held by {}, not {}", r.pod, holder.pod),
                    });
                }
                Some(r) if r.pod_uid == holder.pod_uid => continue,
                Some(_) => PoolOp::Readopt {
                    ip,
                    record: holder.clone(),
                },
                None if state.is_free(ip) => PoolOp::Allocate {
                    ip,
                    record: holder.clone(),
                },
                None => {
                    return Err(IpamError::RecordMismatch {
                        pool,
                        ip: ip.to_string(),
                        reason: "no record and no longer allocatable".to_owned(),
                    });
                }
            };
            changes.push_pool_op(&pool, pv, op);
        }
    }
    if status.current.uid != req.pod.uid || status.current.node != req.pod.node {
        status.current.uid = req.pod.uid.clone();
        status.current.node = req.pod.node.clone();
        let mut ep = ep.clone();
        ep.status = Some(status.clone());
        changes.endpoints.push(EndpointChange::Put {
            key: key.clone(),
            expected_version: Some(version),
            endpoint: Box::new(ep),
        });
    }
    Ok(AllocationDecision {
        kind: DecisionKind::Readopted,
        result: AllocationResult::from_status(&req.ifname, &status)?,
        changes,
        warnings: Vec::new(),
    })
}

/// An address chosen by this plan: which endpoint entry it went to, and its pool.
struct Chosen<'s> {
    detail_idx: usize,
    pool: &'s PoolState,
}

/// What [`allocate_fresh`] carries from step to step.
struct Picker<'r, 's> {
    req: &'r AllocateRequest,
    snap: &'s Snapshot,
    /// The pool record every new address gets.
    holder: PoolIPAllocation,
    /// Addresses already recorded in the endpoint, and those chosen by this plan, per pool.
    taken: BTreeMap<String, BTreeSet<u128>>,
    chosen: Vec<Chosen<'s>>,
    changes: ChangeSet,
}

/// Step 4 of the module docs, one helper per step: set up from the endpoint
/// ([`Picker::new`]); an entry per NIC not recorded yet ([`Picker::allocate_nic`]); routes
/// ([`attach_routes`]); this NIC's claim on a positional entry ([`claim_positional`]); the
/// endpoint write and the answer ([`finish`]).
fn allocate_fresh(
    req: &AllocateRequest,
    snap: &Snapshot,
    key: EndpointKey,
    ep_version: Option<Version>,
    base: Option<SpiderEndpoint>,
    cands: &Candidates,
    changes: ChangeSet,
) -> Result<AllocationDecision, IpamError> {
    let custom_routes = match req.pod.annotation(ANNO_POD_ROUTES) {
        Some(t) => parse_routes(t)?,
        None => Vec::new(),
    };
    let mut ep = base.unwrap_or_else(|| new_endpoint(req, &key));
    let mut status = ep.status.take().unwrap_or_default();
    let mut picker = Picker::new(req, snap, &key, &status, changes)?;
    for (pos, nc) in cands.nics.iter().enumerate() {
        let name = entry_name(cands, pos, nc);
        if !name.is_empty() && status.current.ips.iter().any(|d| d.interface == name) {
            continue; // allocated by an earlier ADD of the same pod
        }
        let detail = picker.allocate_nic(nc, name, status.current.ips.len())?;
        status.current.ips.push(detail);
    }
    let warnings = attach_routes(&mut status, &picker.chosen, custom_routes);
    claim_positional(&mut status, &req.ifname);
    ep.status = Some(status);
    finish(req, key, ep_version, ep, picker.changes, warnings)
}

impl<'r, 's> Picker<'r, 's> {
    /// The holder record for this pod and the addresses the endpoint already records.
    fn new(
        req: &'r AllocateRequest,
        snap: &'s Snapshot,
        key: &EndpointKey,
        status: &SpiderEndpointStatus,
        changes: ChangeSet,
    ) -> Result<Self, IpamError> {
        let mut taken: BTreeMap<String, BTreeSet<u128>> = BTreeMap::new();
        for d in &status.current.ips {
            for (ip, pool) in detail_addresses(d)? {
                taken.entry(pool).or_default().insert(ip_to_u128(ip));
            }
        }
        Ok(Picker {
            req,
            snap,
            holder: PoolIPAllocation {
                pod: key.to_string(),
                pod_uid: req.pod.uid.clone(),
            },
            taken,
            chosen: Vec::new(),
            changes,
        })
    }

    /// The endpoint entry `name` (at `detail_idx`) for the NIC `nc`: one address per family
    /// it has pools for, and `cleanGateway` when one of them has a gateway.
    fn allocate_nic(
        &mut self,
        nc: &NicCandidates,
        name: &str,
        detail_idx: usize,
    ) -> Result<IPAllocationDetail, IpamError> {
        let ctx = FilterContext::new(self.req, &nc.nic);
        let mut detail = IPAllocationDetail {
            interface: name.to_owned(),
            ..Default::default()
        };
        for family in [IpFamily::V4, IpFamily::V6] {
            let names = nc.of(family);
            if names.is_empty() {
                continue;
            }
            let (pool, ip) = self.pick(&ctx, &nc.nic, family, names)?;
            record_address(&mut detail, family, pool, ip);
            self.chosen.push(Chosen { detail_idx, pool });
        }
        if detail.ipv4_gateway.is_some() || detail.ipv6_gateway.is_some() {
            detail.clean_gateway = Some(nc.clean_gateway);
        }
        Ok(detail)
    }

    /// The first pool of `names` (filtered and ordered) with an address for this pod, and the
    /// address; the allocation is added to the changes. Every pool exhausted: an error that
    /// names each.
    fn pick(
        &mut self,
        ctx: &FilterContext<'_>,
        nic: &str,
        family: IpFamily,
        names: &[String],
    ) -> Result<(&'s PoolState, IpAddr), IpamError> {
        let mut rejections = Vec::new();
        for pool in filter_and_order(ctx, family, names, self.snap)? {
            match self.address_in(pool) {
                Some(ip) => return Ok((pool, ip)),
                None => rejections.push(PoolRejection {
                    pool: pool.name().to_owned(),
                    reason: RejectReason::Exhausted,
                }),
            }
        }
        Err(IpamError::AllocationFailed {
            nic: nic.to_owned(),
            family,
            rejections,
        })
    }

    /// This pod's address in `pool`: a record of its UID that no NIC holds (a crash between a
    /// pool write and the endpoint write in a non-atomic store; reused, as upstream does),
    /// else the lowest free address not taken by this plan (recorded as a new allocation).
    fn address_in(&mut self, pool: &'s PoolState) -> Option<IpAddr> {
        let taken = self.taken.entry(pool.name().to_owned()).or_default();
        let holder = &self.holder;
        let orphan = pool.addresses_of_uid(&self.req.pod.uid).find(|ip| {
            !taken.contains(&ip_to_u128(*ip))
                && pool.record(*ip).is_some_and(|r| r.pod == holder.pod)
        });
        let ip = match orphan {
            Some(ip) => ip,
            None => {
                let ip = pool.lowest_free_excluding(taken)?;
                if let Some(v) = self.snap.pool_version(pool.name()) {
                    let record = holder.clone();
                    self.changes
                        .push_pool_op(pool.name(), v, PoolOp::Allocate { ip, record });
                }
                ip
            }
        };
        taken.insert(ip_to_u128(ip));
        Some(ip)
    }
}

/// The endpoint entry name of candidate NIC `pos`: its name, or for positional `ippools`
/// items `eth0` for the first and unnamed (claimed by a later ADD) for the others.
fn entry_name<'c>(cands: &Candidates, pos: usize, nc: &'c NicCandidates) -> &'c str {
    match (cands.positional, pos) {
        (true, 0) => "eth0",
        (true, _) => "",
        (false, _) => nc.nic.as_str(),
    }
}

/// Writes `ip` of `pool` into the `family` fields of `detail`: address with the pool's prefix,
/// pool name, gateway.
fn record_address(detail: &mut IPAllocationDetail, family: IpFamily, pool: &PoolState, ip: IpAddr) {
    let config = IpConfig {
        address: ip,
        prefix_len: pool.prefix_len(),
        pool: pool.name().to_owned(),
        gateway: pool.gateway(),
    };
    let (addr, pname, gw) = (
        Some(config.cidr()),
        Some(pool.name().to_owned()),
        pool.gateway().map(|g| g.to_string()),
    );
    match family {
        IpFamily::V4 => (detail.ipv4, detail.ipv4_pool, detail.ipv4_gateway) = (addr, pname, gw),
        IpFamily::V6 => (detail.ipv6, detail.ipv6_pool, detail.ipv6_gateway) = (addr, pname, gw),
    }
}

/// Routes (§3.9): pool routes on the NIC of each chosen address, then each custom route on the
/// NIC of the first address whose subnet holds its gateway. Returns a warning per custom route
/// that matched no address (dropped).
fn attach_routes(
    status: &mut SpiderEndpointStatus,
    chosen: &[Chosen<'_>],
    custom_routes: Vec<Route>,
) -> Vec<String> {
    let mut routes: BTreeMap<usize, Vec<Route>> = BTreeMap::new();
    for c in chosen {
        routes
            .entry(c.detail_idx)
            .or_default()
            .extend(c.pool.routes().iter().cloned());
    }
    let mut warnings = Vec::new();
    for r in custom_routes {
        let gw = parse_ip(&r.gw).ok();
        match chosen
            .iter()
            .find(|c| gw.is_some_and(|g| c.pool.subnet().contains_ip(g)))
        {
            Some(c) => routes.entry(c.detail_idx).or_default().push(r),
            None => warnings.push(format!(
                "{ANNO_POD_ROUTES}: route {} via {} matches no allocated address, dropped",
                r.dst, r.gw
            )),
        }
    }
    for (idx, list) in routes {
        if let Some(d) = status.current.ips.get_mut(idx)
            && !list.is_empty()
        {
            d.routes = Some(list);
        }
    }
    warnings
}

/// This NIC claims the first positional entry if it is not named yet.
fn claim_positional(status: &mut SpiderEndpointStatus, ifname: &str) {
    if !status.current.ips.iter().any(|d| d.interface == ifname)
        && let Some(d) = status
            .current
            .ips
            .iter_mut()
            .find(|d| d.interface.is_empty())
    {
        d.interface = ifname.to_owned();
    }
}

/// The endpoint now belongs to this pod (UID, node); written with the version read (`None`:
/// must not exist); the answer for every NIC.
fn finish(
    req: &AllocateRequest,
    key: EndpointKey,
    ep_version: Option<Version>,
    mut ep: SpiderEndpoint,
    mut changes: ChangeSet,
    warnings: Vec<String>,
) -> Result<AllocationDecision, IpamError> {
    let mut status = ep.status.take().unwrap_or_default();
    status.current.uid = req.pod.uid.clone();
    status.current.node = req.pod.node.clone();
    let result = AllocationResult::from_status(&req.ifname, &status)?;
    ep.status = Some(status);
    changes.endpoints.push(EndpointChange::Put {
        key,
        expected_version: ep_version,
        endpoint: Box::new(ep),
    });
    Ok(AllocationDecision {
        kind: DecisionKind::Allocated,
        result,
        changes,
        warnings,
    })
}

/// A new endpoint for the request's pod (§1.3, §3.10): finalizer; owner reference to the pod
/// except for StatefulSet / KubeVirt pods, whose endpoint outlives the pod.
fn new_endpoint(req: &AllocateRequest, key: &EndpointKey) -> SpiderEndpoint {
    let status = SpiderEndpointStatus {
        current: PodIPAllocation {
            uid: req.pod.uid.clone(),
            node: req.pod.node.clone(),
            ips: Vec::new(),
        },
        owner_controller_type: req.pod.controller.kind.clone(),
        owner_controller_name: req.pod.controller.name.clone(),
    };
    let mut ep = SpiderEndpoint::new(key.namespace.clone(), key.name.clone(), Some(status));
    ep.metadata.add_finalizer(SPIDER_FINALIZER);
    if !req.is_static() {
        ep.metadata.owner_references = Some(vec![OwnerReference {
            api_version: CORE_V1.to_owned(),
            kind: KIND_POD.to_owned(),
            name: req.pod.name.clone(),
            uid: req.pod.uid.clone(),
            controller: None,
            block_owner_deletion: None,
            extra: serde_json::Map::new(),
        }]);
    }
    ep
}
