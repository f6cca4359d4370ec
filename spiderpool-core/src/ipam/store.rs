//! The store contract: snapshots to plan on, compare-and-swap commits to persist.
//!
//! Planning ([`super::plan_allocation`], [`super::plan_release`]) is pure: it reads a
//! [`Snapshot`] and returns a [`ChangeSet`]. A store applies a change set only if every object
//! it writes still has the version the plan read ([`PoolChange::expected_version`],
//! [`EndpointChange`]'s expected version); otherwise it fails with [`CommitError::Conflict`] and
//! applies nothing, and the caller plans again on a fresh snapshot
//! ([`allocate_with_retry`]).
//!
//! **Granularity: one version per pool and one per endpoint.** Two pods allocating from
//! different pools never conflict; two pods drawing from one pool do, exactly when one could
//! otherwise hand out the other's address. Pools a plan only *read* (e.g. skipped because they
//! looked exhausted) are not checked: using a pool that has since freed an address is still
//! correct. SpiderReservedIP changes reach plans through the next snapshot (as upstream's
//! informer cache), and a store rebuilding pool states for them bumps those pools' versions.
//!
//! **Guarantee.** If a store applies each commit atomically (all of it or nothing, checks
//! and writes under one lock or transaction), no address is ever recorded for two holders: a
//! commit that allocates an address from pool P carries P's version at planning time, and any
//! other commit that touched P in between has bumped it.

use crate::ipam::{CommitError, IpamError, StoreError};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::pool_state::PoolState;
use crate::objects::{PoolIPAllocation, SpiderEndpoint};

/// A version of one stored object (pool or endpoint). Opaque to planners; stores bump it on
/// every write.
pub type Version = u64;

/// Namespace and name of a SpiderEndpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointKey {
    /// Namespace.
    pub namespace: String,
    /// Name (the pod's, or the VMI's for KubeVirt VM pods).
    pub name: String,
}

impl EndpointKey {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        EndpointKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A read-only view of the store at one instant: every pool (with its version) and the
/// endpoints asked for. Pool states are shared (`Arc`), so taking a snapshot is O(pools).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pools: BTreeMap<String, (Version, Arc<PoolState>)>,
    endpoints: BTreeMap<EndpointKey, (Version, Arc<SpiderEndpoint>)>,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pool at `version`.
    pub fn insert_pool(&mut self, version: Version, state: Arc<PoolState>) {
        self.pools.insert(state.name().to_owned(), (version, state));
    }

    /// Adds an endpoint at `version`.
    pub fn insert_endpoint(&mut self, version: Version, endpoint: Arc<SpiderEndpoint>) {
        let key = EndpointKey::new(
            endpoint.metadata.namespace.clone().unwrap_or_default(),
            endpoint.metadata.name.clone().unwrap_or_default(),
        );
        self.endpoints.insert(key, (version, endpoint));
    }

    /// The pool `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolState> {
        self.pools.get(name).map(|(_, p)| p.as_ref())
    }

    /// The version of pool `name`.
    pub fn pool_version(&self, name: &str) -> Option<Version> {
        self.pools.get(name).map(|(v, _)| *v)
    }

    /// Every pool, by name.
    pub fn pools(&self) -> impl Iterator<Item = &PoolState> {
        self.pools.values().map(|(_, p)| p.as_ref())
    }

    /// The endpoint `key`, if it exists, with its version.
    pub fn endpoint(&self, key: &EndpointKey) -> Option<(Version, &SpiderEndpoint)> {
        self.endpoints.get(key).map(|(v, e)| (*v, e.as_ref()))
    }
}

/// One change to a pool record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolOp {
    /// Record `ip` for `record`; the address must be free.
    Allocate {
        /// The address.
        ip: IpAddr,
        /// The new holder.
        record: PoolIPAllocation,
    },
    /// Replace the holder of `ip` (StatefulSet/KubeVirt re-adoption); the record must exist.
    Readopt {
        /// The address.
        ip: IpAddr,
        /// The new holder.
        record: PoolIPAllocation,
    },
    /// Remove the record of `ip` if its `podUid` is `uid` (upstream's release rule).
    Release {
        /// The address.
        ip: IpAddr,
        /// The pod UID the record must carry.
        uid: String,
    },
}

/// The changes to one pool, valid only at `expected_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolChange {
    /// The pool name.
    pub pool: String,
    /// The version the plan read.
    pub expected_version: Version,
    /// The record changes, applied in order.
    pub ops: Vec<PoolOp>,
}

/// A change to one SpiderEndpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointChange {
    /// Create or replace the endpoint. `expected_version` is `None` when it must not exist.
    Put {
        /// The endpoint.
        key: EndpointKey,
        /// The version the plan read (`None` = absent).
        expected_version: Option<Version>,
        /// The new object.
        endpoint: Box<SpiderEndpoint>,
    },
    /// Delete the endpoint (and remove its finalizer).
    Delete {
        /// The endpoint.
        key: EndpointKey,
        /// The version the plan read.
        expected_version: Version,
    },
}

impl EndpointChange {
    /// The endpoint changed.
    pub fn key(&self) -> &EndpointKey {
        match self {
            EndpointChange::Put { key, .. } | EndpointChange::Delete { key, .. } => key,
        }
    }

    /// The version the plan read (`None`: the endpoint must not exist).
    pub fn expected_version(&self) -> Option<Version> {
        match self {
            EndpointChange::Put {
                expected_version, ..
            } => *expected_version,
            EndpointChange::Delete {
                expected_version, ..
            } => Some(*expected_version),
        }
    }
}

/// Everything one plan wants written, committed all-or-nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeSet {
    /// Pool record changes, one entry per pool, in name order.
    pub pools: Vec<PoolChange>,
    /// Endpoint changes.
    pub endpoints: Vec<EndpointChange>,
}

impl ChangeSet {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.pools.iter().all(|p| p.ops.is_empty()) && self.endpoints.is_empty()
    }

    /// Appends `op` to the change of `pool` (created at `version` if needed).
    pub fn push_pool_op(&mut self, pool: &str, version: Version, op: PoolOp) {
        match self.pools.binary_search_by(|p| p.pool.as_str().cmp(pool)) {
            Ok(i) => self.pools[i].ops.push(op),
            Err(i) => self.pools.insert(
                i,
                PoolChange {
                    pool: pool.to_owned(),
                    expected_version: version,
                    ops: vec![op],
                },
            ),
        }
    }
}

/// What a successful commit produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// New version of every pool written.
    pub pools: BTreeMap<String, Version>,
    /// New version of every endpoint written (`None` = deleted).
    pub endpoints: BTreeMap<EndpointKey, Option<Version>>,
}

/// Persistence behind the pure IPAM: the Kubernetes store, the local store and
/// [`super::MemoryStore`] implement it. Synchronous and object-safe (`&dyn IpamStore`).
pub trait IpamStore: Send + Sync {
    /// A consistent view of every pool and of the endpoints in `endpoints` (missing ones are
    /// simply absent).
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError>;

    /// Applies `changes` atomically if every written object is still at its expected version;
    /// else fails with [`CommitError::Conflict`] and writes nothing. Any other failure is
    /// [`CommitError::Store`] (or [`CommitError::Rejected`] for a change set that does not apply).
    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError>;
}

/// Default bound on plan-and-commit attempts of the retry helpers.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

/// Runs `plan` on fresh snapshots and commits its change set until a commit succeeds, the
/// plan fails, or `max_attempts` commits conflicted ([`IpamError::RetriesExhausted`]). A plan
/// with nothing to write is returned without committing. Returns the plan's output.
pub fn commit_with_retry<S, T>(
    store: &S,
    endpoints: &[EndpointKey],
    max_attempts: u32,
    mut plan: impl FnMut(&Snapshot) -> Result<(T, ChangeSet), IpamError>,
) -> Result<T, IpamError>
where
    S: IpamStore + ?Sized,
{
    let mut last = None;
    for _ in 0..max_attempts.max(1) {
        let (out, changes) = {
            let snap = store.snapshot(endpoints)?;
            plan(&snap)?
            // The snapshot is dropped here, before the commit, so a store sharing pool
            // states with snapshots can update them in place.
        };
        if changes.is_empty() {
            return Ok(out);
        }
        match store.commit(&changes) {
            Ok(_) => return Ok(out),
            Err(e @ CommitError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(IpamError::RetriesExhausted {
        attempts: max_attempts.max(1),
        last: Box::new(
            last.unwrap_or_else(|| CommitError::store("no attempt made"))
                .into(),
        ),
    })
}

/// Allocates for `req` through `store`: plans on a snapshot holding the pod's endpoint and
/// commits, re-planning on conflict up to `max_attempts` times. A retried ADD whose addresses
/// are already recorded commits nothing.
pub fn allocate_with_retry<S: IpamStore + ?Sized>(
    store: &S,
    req: &super::AllocateRequest,
    max_attempts: u32,
) -> Result<super::AllocationDecision, IpamError> {
    let key = super::endpoint_key(req);
    commit_with_retry(store, std::slice::from_ref(&key), max_attempts, |snap| {
        let d = super::plan_allocation(req, snap)?;
        let changes = d.changes.clone();
        Ok((d, changes))
    })
}

/// Releases for `req` (CNI DEL) through `store`, re-planning on conflict.
pub fn release_with_retry<S: IpamStore + ?Sized>(
    store: &S,
    req: &super::ReleaseRequest,
    max_attempts: u32,
) -> Result<super::ReleaseDecision, IpamError> {
    commit_with_retry(
        store,
        std::slice::from_ref(&req.endpoint),
        max_attempts,
        |snap| {
            let d = super::plan_release(req, snap)?;
            let changes = d.changes.clone();
            Ok((d, changes))
        },
    )
}
