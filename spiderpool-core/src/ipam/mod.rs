//! The IPAM engine: which pools a NIC may use, which address it gets, what is recorded, what
//! a DEL or the garbage collector releases. Pure functions on data; persistence is behind the
//! compare-and-swap [`IpamStore`] trait (see `docs/ipam.md`).
//!
//! | step | item | spec |
//! |---|---|---|
//! | request | [`AllocateRequest`], [`PodInfo`], [`TopController`], [`IpamConfig`] | §3.1, §3.2 |
//! | annotations | [`parse_ippools`], [`parse_ippool`], [`parse_routes`], ... | §3.3, §3.19 |
//! | candidates | [`pool_candidates`] (sources, wildcards, family), [`filter_and_order`] | §3.3–§3.7 |
//! | filters | [`FilterContext::check`], [`RejectReason`], [`nic_network`] | §3.6 |
//! | IP choice | [`PoolState`] (interval free set, lowest first) | §3.8 |
//! | decision | [`plan_allocation`] → [`AllocationDecision`] ([`AllocationResult`] + [`ChangeSet`]) | §3.9–§3.11, §3.16 |
//! | release | [`plan_release`], [`plan_release_pod`], [`pod_is_alive`] | §3.14 |
//! | GC | [`gc_verdict`], [`gc_changes`] | §3.15 |
//! | store | [`IpamStore`], [`Snapshot`], [`MemoryStore`] (on [`StoreState`]), [`allocate_with_retry`] | — |
//!
//! ```
//! use spiderpool_core::ipam::{AllocateRequest, MemoryStore, allocate_with_retry};
//! use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};
//!
//! let store = MemoryStore::new();
//! store.put_pool(SpiderIPPool::new("pool1", SpiderIPPoolSpec {
//!     subnet: "10.6.0.0/16".into(),
//!     ips: Some(vec!["10.6.168.101-10.6.168.110".into()]),
//!     gateway: Some("10.6.0.1".into()),
//!     default: Some(true),
//!     ..Default::default()
//! }))?;
//! let mut req = AllocateRequest::default();
//! req.ifname = "net1".into();
//! (req.pod.namespace, req.pod.name, req.pod.uid) = ("ns".into(), "a".into(), "u1".into());
//! let d = allocate_with_retry(&store, &req, 16)?;
//! let nic = d.result.current().expect("net1 is recorded");
//! assert_eq!(nic.ipv4.as_ref().map(|c| c.cidr()), Some("10.6.168.101/16".to_owned()));
//! assert_eq!(nic.routes[0].dst, "0.0.0.0/0");
//! # Ok::<(), spiderpool_core::Error>(())
//! ```

mod affinity;
mod allocate;
mod annotations;
mod candidates;
mod error;
mod gc;
mod memory;
mod pool_state;
mod release;
mod request;
mod result;
mod state;
mod store;

#[cfg(test)]
mod tests;

pub use affinity::{
    FilterContext, PoolRejection, RejectReason, is_first_nic, nic_network, parse_multus_networks,
    priority_key, rejected_names, rejection_reasons,
};
pub use allocate::{AllocationDecision, DecisionKind, endpoint_key, plan_allocation};
pub use annotations::{
    IpNumber, MultiNicPools, NicPools, NicSubnets, PoolNames, glob_match, is_glob, parse_ip_number,
    parse_ippool, parse_ippools, parse_namespace_pools, parse_reclaim, parse_routes, parse_subnet,
    parse_subnets,
};
pub use candidates::{Candidates, NicCandidates, PoolSource, filter_and_order, pool_candidates};
pub use error::{CommitError, IpamError, StoreError};
pub use gc::{GcConfig, GcEndpoint, GcPod, GcVerdict, Lookup, gc_changes, gc_verdict};
pub use memory::MemoryStore;
pub use pool_state::{FreeSet, PoolState};
pub use release::{
    PodLifecycle, ReleaseDecision, ReleaseOutcome, ReleaseRequest, endpoint_addresses,
    is_static_owner, kubevirt_pod_valid, plan_release, plan_release_pod, pod_is_alive,
    statefulset_pod_valid,
};
pub use request::{
    APPS_V1, AllocateRequest, CORE_V1, IpamConfig, KIND_POD, KIND_STATEFULSET, KIND_VMI,
    KUBEVIRT_V1, PodInfo, TopController,
};
pub use result::{AllocationResult, IpConfig, NicResult};
pub use state::StoreState;
pub use store::{
    ChangeSet, Committed, DEFAULT_MAX_ATTEMPTS, EndpointChange, EndpointKey, IpamStore, PoolChange,
    PoolOp, Snapshot, Version, allocate_with_retry, commit_with_retry, release_with_retry,
};
