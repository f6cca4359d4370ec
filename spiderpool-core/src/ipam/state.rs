//! [`StoreState`]: the in-memory state and compare-and-swap logic an [`IpamStore`] keeps,
//! shared by [`MemoryStore`](super::MemoryStore) and the agent's durable local store.
//!
//! [`IpamStore`]: super::IpamStore

use crate::ipam::{CommitError, IpamError};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::pool_state::PoolState;
use super::store::{ChangeSet, Committed, EndpointChange, EndpointKey, PoolOp, Snapshot, Version};
use crate::ip::{IpFamily, IpRange, IpRangeSet};
use crate::objects::{PoolIPAllocation, SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

/// Pools (version, state, definition), endpoints (version, object) and reserved IPs, with the
/// version counter, the commit check and the commit itself. Not synchronised: a store wraps
/// it in a mutex.
///
/// Snapshots share pool states (`Arc`) with the state; [`StoreState::apply`] updates a pool
/// state in place when no snapshot still holds it, else copies it first (copy-on-write), so a
/// snapshot never changes under a planner.
///
/// A commit is [`StoreState::check`], then [`StoreState::assign_versions`], then
/// [`StoreState::apply`] ([`StoreState::commit`] does all three). A durable store persists the
/// change set between the last two, so nothing is applied in memory before it is on disk.
#[derive(Debug, Default)]
pub struct StoreState {
    pools: BTreeMap<String, (Version, Arc<PoolState>, SpiderIPPool)>,
    reserved: BTreeMap<String, SpiderReservedIP>,
    reserved_sets: Vec<IpRangeSet>,
    endpoints: BTreeMap<EndpointKey, (Version, Arc<SpiderEndpoint>)>,
    // One counter for every object, so a deleted and re-created object never reuses a version.
    last_version: Version,
}

/// The reserved ranges per family (`[v4, v6]`) of `reserved`.
fn reserved_sets(
    reserved: &BTreeMap<String, SpiderReservedIP>,
) -> Result<Vec<IpRangeSet>, IpamError> {
    let mut sets = vec![IpRangeSet::new(IpFamily::V4), IpRangeSet::new(IpFamily::V6)];
    for r in reserved.values() {
        // Terminating SpiderReservedIPs no longer reserve anything (as upstream).
        if r.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ips = r.spec.ips.as_deref().unwrap_or_default();
        let family = match r.spec.ip_version.and_then(IpFamily::from_version) {
            Some(f) => f,
            None => match ips.first().map(|s| IpRange::parse(s)) {
                Some(Ok(range)) => range.family(),
                _ => continue,
            },
        };
        let set = IpRangeSet::parse(family, ips)?;
        let i = usize::from(family == IpFamily::V6);
        sets[i] = sets[i].union(&set)?;
    }
    Ok(sets)
}

impl StoreState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state without pools holding `endpoints` (key, version, object) and continuing the
    /// version counter after `last_version`: what a durable store loads from disk.
    pub fn restore(
        last_version: Version,
        endpoints: impl IntoIterator<Item = (EndpointKey, Version, SpiderEndpoint)>,
    ) -> Self {
        let endpoints: BTreeMap<_, _> = endpoints
            .into_iter()
            .map(|(k, v, e)| (k, (v, Arc::new(e))))
            .collect();
        // A counter behind a stored version would hand that version out again.
        let max = endpoints
            .values()
            .map(|(v, _)| *v)
            .max()
            .unwrap_or_default();
        StoreState {
            endpoints,
            last_version: last_version.max(max),
            ..Self::default()
        }
    }

    /// The last version handed out.
    pub fn last_version(&self) -> Version {
        self.last_version
    }

    fn next(&mut self) -> Version {
        self.last_version += 1;
        self.last_version
    }

    /// Adds or updates a pool. A new pool takes its records from `status.allocatedIPs`; an
    /// existing pool keeps its current records and takes the new spec and metadata. Returns
    /// the pool's new version.
    pub fn put_pool(&mut self, pool: SpiderIPPool) -> Result<Version, IpamError> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        match self.pools.get(&name) {
            Some((_, old, _)) => {
                let records = old.allocations().clone();
                self.put_pool_with_records(pool, records)
            }
            None => {
                let state = PoolState::from_pool(&pool, &self.reserved_sets)?;
                Ok(self.insert_pool(state, pool))
            }
        }
    }

    /// Adds or replaces a pool built from its spec and metadata plus `records` (its status is
    /// ignored, and kept as given). Returns the pool's new version; on error nothing changes.
    pub fn put_pool_with_records(
        &mut self,
        pool: SpiderIPPool,
        records: impl IntoIterator<Item = (IpAddr, PoolIPAllocation)>,
    ) -> Result<Version, IpamError> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let state = PoolState::new(
            &name,
            &pool.spec,
            &pool.metadata,
            &self.reserved_sets,
            records,
        )?;
        Ok(self.insert_pool(state, pool))
    }

    /// As [`StoreState::put_pool_with_records`], with `preferred` addresses handed out first
    /// (see [`PoolState::set_preferred`]): how a Kubernetes agent views a pool it shares.
    pub fn put_pool_view(
        &mut self,
        pool: SpiderIPPool,
        records: impl IntoIterator<Item = (IpAddr, PoolIPAllocation)>,
        preferred: Vec<IpRangeSet>,
    ) -> Result<Version, IpamError> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let mut state = PoolState::new(
            &name,
            &pool.spec,
            &pool.metadata,
            &self.reserved_sets,
            records,
        )?;
        state.set_preferred(preferred);
        Ok(self.insert_pool(state, pool))
    }

    /// Sets the holder of `ip` in pool `name` from an outside source of truth (see
    /// [`PoolState::set_record`]). The pool's version is bumped only when `bump` is set: a
    /// caller that knows no plan can have used `ip` (a Kubernetes agent, for addresses in
    /// other nodes' blocks) keeps plans made meanwhile valid. Returns whether the record
    /// changed.
    pub fn set_record(
        &mut self,
        name: &str,
        ip: IpAddr,
        rec: Option<PoolIPAllocation>,
        bump: bool,
    ) -> bool {
        let next = self.last_version + 1;
        let Some((v, state, _)) = self.pools.get_mut(name) else {
            return false;
        };
        let changed = Arc::make_mut(state).set_record(ip, rec);
        if changed && bump {
            *v = next;
            self.last_version = next;
        }
        changed
    }

    /// Changes which addresses of pool `name` are handed out first, keeping its version: the
    /// free addresses are the same, so plans made on earlier snapshots stay valid. Returns
    /// whether the pool exists.
    pub fn set_preferred(&mut self, name: &str, preferred: Vec<IpRangeSet>) -> bool {
        match self.pools.get_mut(name) {
            Some((_, state, _)) => {
                Arc::make_mut(state).set_preferred(preferred);
                true
            }
            None => false,
        }
    }

    fn insert_pool(&mut self, state: PoolState, pool: SpiderIPPool) -> Version {
        let v = self.next();
        let name = pool.metadata.name.clone().unwrap_or_default();
        self.pools.insert(name, (v, Arc::new(state), pool));
        v
    }

    /// Removes pool `name`; returns its state if it existed (records and all).
    pub fn remove_pool(&mut self, name: &str) -> Option<Arc<PoolState>> {
        self.pools.remove(name).map(|(_, state, _)| state)
    }

    /// Removes every pool and makes `reserved` the whole set of SpiderReservedIPs (keyed by
    /// name): a full reconfiguration, after which the caller puts the new pools. Returns the
    /// removed pools' states by name. Fails, changing nothing, if a reserved IP is invalid.
    pub fn reset_pools(
        &mut self,
        reserved: BTreeMap<String, SpiderReservedIP>,
    ) -> Result<BTreeMap<String, Arc<PoolState>>, IpamError> {
        let sets = reserved_sets(&reserved)?;
        let old = std::mem::take(&mut self.pools)
            .into_iter()
            .map(|(name, (_, state, _))| (name, state))
            .collect();
        self.reserved = reserved;
        self.reserved_sets = sets;
        Ok(old)
    }

    /// Makes `reserved` the whole set of SpiderReservedIPs (keyed by name; terminating ones
    /// are ignored, as upstream) and rebuilds every pool's free set, bumping its version.
    /// Fails, changing nothing, if a reserved IP is invalid.
    pub fn set_reserved(
        &mut self,
        reserved: BTreeMap<String, SpiderReservedIP>,
    ) -> Result<(), IpamError> {
        let sets = reserved_sets(&reserved)?;
        for (v, state, _) in self.pools.values_mut() {
            self.last_version += 1;
            Arc::make_mut(state).set_reserved(&sets)?;
            *v = self.last_version;
        }
        self.reserved = reserved;
        self.reserved_sets = sets;
        Ok(())
    }

    /// Adds or replaces a SpiderReservedIP (see [`StoreState::set_reserved`]).
    pub fn put_reserved_ip(&mut self, r: SpiderReservedIP) -> Result<(), IpamError> {
        let mut reserved = self.reserved.clone();
        reserved.insert(r.metadata.name.clone().unwrap_or_default(), r);
        self.set_reserved(reserved)
    }

    /// Removes a SpiderReservedIP (see [`StoreState::set_reserved`]); returns whether it
    /// existed.
    pub fn remove_reserved_ip(&mut self, name: &str) -> Result<bool, IpamError> {
        let mut reserved = self.reserved.clone();
        let existed = reserved.remove(name).is_some();
        self.set_reserved(reserved)?;
        Ok(existed)
    }

    /// Whether pool `name` exists.
    pub fn has_pool(&self, name: &str) -> bool {
        self.pools.contains_key(name)
    }

    /// The pool `name` with its current status (`allocatedIPs`, counts).
    pub fn pool(&self, name: &str) -> Option<SpiderIPPool> {
        let (_, state, pool) = self.pools.get(name)?;
        Some(with_status(state, pool))
    }

    /// Every pool with its current status, by name.
    pub fn pools(&self) -> Vec<SpiderIPPool> {
        self.pools
            .values()
            .map(|(_, state, pool)| with_status(state, pool))
            .collect()
    }

    /// The state of pool `name`.
    pub fn pool_state(&self, name: &str) -> Option<&Arc<PoolState>> {
        self.pools.get(name).map(|(_, s, _)| s)
    }

    /// Every pool as (name, version, state, definition), by name.
    pub fn pool_entries(
        &self,
    ) -> impl Iterator<Item = (&str, Version, &Arc<PoolState>, &SpiderIPPool)> {
        self.pools
            .iter()
            .map(|(name, (v, state, pool))| (name.as_str(), *v, state, pool))
    }

    /// The endpoint `key`.
    pub fn endpoint(&self, key: &EndpointKey) -> Option<&SpiderEndpoint> {
        self.endpoints.get(key).map(|(_, e)| e.as_ref())
    }

    /// Every endpoint, by key.
    pub fn endpoints(&self) -> Vec<SpiderEndpoint> {
        self.endpoints
            .values()
            .map(|(_, e)| e.as_ref().clone())
            .collect()
    }

    /// Every endpoint as (key, version, object), by key.
    pub fn endpoint_entries(
        &self,
    ) -> impl Iterator<Item = (&EndpointKey, Version, &SpiderEndpoint)> {
        self.endpoints.iter().map(|(k, (v, e))| (k, *v, e.as_ref()))
    }

    /// Every pool and the endpoints `endpoints` that exist, sharing their states.
    pub fn snapshot(&self, endpoints: &[EndpointKey]) -> Snapshot {
        let mut snap = Snapshot::new();
        for (v, state, _) in self.pools.values() {
            snap.insert_pool(*v, Arc::clone(state));
        }
        for key in endpoints {
            if let Some((v, ep)) = self.endpoints.get(key) {
                snap.insert_endpoint(*v, Arc::clone(ep));
            }
        }
        snap
    }

    /// Whether `changes` may be committed: every pool and endpoint it writes is at its
    /// expected version (else [`CommitError::Conflict`]), no endpoint is changed twice, and
    /// every op applies cleanly (allocated addresses free, re-adopted ones recorded). Changes
    /// nothing.
    pub fn check(&self, changes: &ChangeSet) -> Result<(), CommitError> {
        for pc in &changes.pools {
            let found = self.pools.get(&pc.pool).map(|(v, _, _)| *v);
            if found != Some(pc.expected_version) {
                return Err(CommitError::conflict(
                    format!("SpiderIPPool/{}", pc.pool),
                    Some(pc.expected_version),
                    found,
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for ec in &changes.endpoints {
            let (key, expected) = (ec.key(), ec.expected_version());
            if !seen.insert(key) {
                return Err(CommitError::store(format!(
                    "endpoint {key} changed twice in one commit"
                )));
            }
            let found = self.endpoints.get(key).map(|(v, _)| *v);
            if found != expected {
                return Err(CommitError::conflict(
                    format!("SpiderEndpoint/{key}"),
                    expected,
                    found,
                ));
            }
        }
        // The versions match, so the plan saw these states; still refuse ops that would
        // break a pool (a buggy planner) before anything is written, so that `apply` (and a
        // durable store's journal) only ever sees ops that apply cleanly.
        for pc in &changes.pools {
            let Some((_, state, _)) = self.pools.get(&pc.pool) else {
                continue;
            };
            let mut chosen: BTreeSet<IpAddr> = BTreeSet::new();
            for op in &pc.ops {
                match op {
                    PoolOp::Allocate { ip, .. } => {
                        if !state.is_free(*ip) || !chosen.insert(*ip) {
                            return Err(CommitError::Rejected(Box::new(
                                IpamError::RecordMismatch {
                                    pool: pc.pool.clone(),
                                    ip: ip.to_string(),
                                    reason: "allocating an address that is not free".to_owned(),
                                },
                            )));
                        }
                    }
                    PoolOp::Readopt { ip, .. } => {
                        if state.record(*ip).is_none() {
                            return Err(CommitError::Rejected(Box::new(
                                IpamError::RecordMismatch {
                                    pool: pc.pool.clone(),
                                    ip: ip.to_string(),
                                    reason: "re-adopting an address without record".to_owned(),
                                },
                            )));
                        }
                    }
                    PoolOp::Release { .. } => {}
                }
            }
        }
        Ok(())
    }

    /// Hands out the new versions of a checked `changes` (each written pool, then each put
    /// endpoint, in order) without applying anything, so a durable store can journal them
    /// before [`StoreState::apply`].
    pub fn assign_versions(&mut self, changes: &ChangeSet) -> Committed {
        let mut out = Committed::default();
        for pc in &changes.pools {
            let v = self.next();
            out.pools.insert(pc.pool.clone(), v);
        }
        for ec in &changes.endpoints {
            match ec {
                EndpointChange::Put { key, .. } => {
                    let v = self.next();
                    out.endpoints.insert(key.clone(), Some(v));
                }
                EndpointChange::Delete { key, .. } => {
                    out.endpoints.insert(key.clone(), None);
                }
            }
        }
        out
    }

    /// Applies `changes` with the versions `assign_versions` gave it. Call it right after
    /// [`StoreState::check`] and [`StoreState::assign_versions`] on the same state: the check
    /// makes it infallible; an error here (a broken invariant) may leave it half applied.
    pub fn apply(&mut self, changes: &ChangeSet, versions: &Committed) -> Result<(), CommitError> {
        let rejected = |e: IpamError| CommitError::Rejected(Box::new(e));
        for pc in &changes.pools {
            let v = versions.pools.get(&pc.pool).copied().unwrap_or_default();
            let Some(entry) = self.pools.get_mut(&pc.pool) else {
                continue;
            };
            let state = Arc::make_mut(&mut entry.1);
            for op in &pc.ops {
                state.apply_op(op).map_err(rejected)?;
            }
            entry.0 = v;
        }
        for ec in &changes.endpoints {
            match ec {
                EndpointChange::Put { key, endpoint, .. } => {
                    let v = versions
                        .endpoints
                        .get(key)
                        .copied()
                        .flatten()
                        .unwrap_or_default();
                    self.endpoints
                        .insert(key.clone(), (v, Arc::new(endpoint.as_ref().clone())));
                }
                EndpointChange::Delete { key, .. } => {
                    self.endpoints.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Check, assign versions, apply: the whole commit of an in-memory store.
    pub fn commit(&mut self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        self.check(changes)?;
        let out = self.assign_versions(changes);
        self.apply(changes, &out)?;
        Ok(out)
    }
}

fn with_status(state: &PoolState, pool: &SpiderIPPool) -> SpiderIPPool {
    let mut pool = pool.clone();
    pool.status = Some(state.to_status());
    pool
}
