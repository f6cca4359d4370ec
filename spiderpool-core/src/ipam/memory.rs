//! [`MemoryStore`]: the in-memory [`IpamStore`], for tests and for CNI authors who embed the
//! IPAM in one process.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::pool_state::PoolState;
use super::store::{
    ChangeSet, Committed, EndpointChange, EndpointKey, IpamStore, PoolOp, Snapshot, Version,
};
use crate::Error;
use crate::ip::{IpFamily, IpRangeSet};
use crate::objects::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

#[derive(Debug, Default)]
struct Inner {
    pools: BTreeMap<String, (Version, Arc<PoolState>, SpiderIPPool)>,
    reserved: BTreeMap<String, SpiderReservedIP>,
    reserved_sets: Vec<IpRangeSet>,
    endpoints: BTreeMap<EndpointKey, (Version, Arc<SpiderEndpoint>)>,
    // One counter for every object, so a deleted and re-created object never reuses a version.
    last_version: Version,
}

impl Inner {
    fn next(&mut self) -> Version {
        self.last_version += 1;
        self.last_version
    }
}

/// An [`IpamStore`] in memory behind one mutex (`Send + Sync`).
///
/// Snapshots share pool states (`Arc`) with the store; a commit updates a pool state in place
/// when no snapshot still holds it, else copies it first (copy-on-write), so a snapshot never
/// changes under a planner.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

fn conflict(object: String, expected: Option<Version>, found: Option<Version>) -> Error {
    let v = |x: Option<Version>| x.map_or_else(|| "none".to_owned(), |v| v.to_string());
    Error::IpamConflict {
        object,
        expected: v(expected),
        found: v(found),
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic cannot leave `Inner` half-updated (commits validate before they write), so a
    // poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds or updates a pool. A new pool takes its records from `status.allocatedIPs`; an
    /// existing pool keeps its current records and takes the new spec and metadata.
    pub fn put_pool(&self, pool: SpiderIPPool) -> Result<(), Error> {
        let mut inner = self.lock();
        let name = pool.metadata.name.clone().unwrap_or_default();
        let state = match inner.pools.get(&name) {
            Some((_, old, _)) => PoolState::new(
                &name,
                &pool.spec,
                &pool.metadata,
                &inner.reserved_sets,
                old.allocations().iter().map(|(ip, r)| (*ip, r.clone())),
            )?,
            None => PoolState::from_pool(&pool, &inner.reserved_sets)?,
        };
        let v = inner.next();
        inner.pools.insert(name, (v, Arc::new(state), pool));
        Ok(())
    }

    /// Removes a pool; returns whether it existed.
    pub fn remove_pool(&self, name: &str) -> bool {
        self.lock().pools.remove(name).is_some()
    }

    /// Adds or replaces a SpiderReservedIP (ignored while terminating, as upstream) and
    /// rebuilds the pools' free sets.
    pub fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), Error> {
        let mut inner = self.lock();
        let name = r.metadata.name.clone().unwrap_or_default();
        inner.reserved.insert(name, r);
        Self::rebuild_reserved(&mut inner)
    }

    /// Removes a SpiderReservedIP; returns whether it existed.
    pub fn remove_reserved_ip(&self, name: &str) -> Result<bool, Error> {
        let mut inner = self.lock();
        let existed = inner.reserved.remove(name).is_some();
        Self::rebuild_reserved(&mut inner)?;
        Ok(existed)
    }

    fn rebuild_reserved(inner: &mut Inner) -> Result<(), Error> {
        let mut sets = vec![IpRangeSet::new(IpFamily::V4), IpRangeSet::new(IpFamily::V6)];
        for r in inner.reserved.values() {
            if r.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ips = r.spec.ips.as_deref().unwrap_or_default();
            let family = match r.spec.ip_version.and_then(IpFamily::from_version) {
                Some(f) => f,
                None => match ips.first().map(|s| crate::ip::IpRange::parse(s)) {
                    Some(Ok(range)) => range.family(),
                    _ => continue,
                },
            };
            let set = IpRangeSet::parse(family, ips)?;
            let i = usize::from(family == IpFamily::V6);
            sets[i] = sets[i].union(&set)?;
        }
        let names: Vec<String> = inner.pools.keys().cloned().collect();
        for name in names {
            let v = inner.next();
            if let Some(entry) = inner.pools.get_mut(&name) {
                Arc::make_mut(&mut entry.1).set_reserved(&sets)?;
                entry.0 = v;
            }
        }
        inner.reserved_sets = sets;
        Ok(())
    }

    /// The pool `name` with its current status (`allocatedIPs`, counts).
    pub fn pool(&self, name: &str) -> Option<SpiderIPPool> {
        let inner = self.lock();
        let (_, state, pool) = inner.pools.get(name)?;
        let mut pool = pool.clone();
        pool.status = Some(state.to_status());
        Some(pool)
    }

    /// The state of pool `name`.
    pub fn pool_state(&self, name: &str) -> Option<Arc<PoolState>> {
        self.lock().pools.get(name).map(|(_, s, _)| Arc::clone(s))
    }

    /// The endpoint `key`.
    pub fn endpoint(&self, key: &EndpointKey) -> Option<SpiderEndpoint> {
        self.lock()
            .endpoints
            .get(key)
            .map(|(_, e)| e.as_ref().clone())
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Vec<SpiderEndpoint> {
        self.lock()
            .endpoints
            .values()
            .map(|(_, e)| e.as_ref().clone())
            .collect()
    }

    fn check(inner: &Inner, changes: &ChangeSet) -> Result<(), Error> {
        for pc in &changes.pools {
            let found = inner.pools.get(&pc.pool).map(|(v, _, _)| *v);
            if found != Some(pc.expected_version) {
                return Err(conflict(
                    format!("SpiderIPPool/{}", pc.pool),
                    Some(pc.expected_version),
                    found,
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for ec in &changes.endpoints {
            let (key, expected) = match ec {
                EndpointChange::Put {
                    key,
                    expected_version,
                    ..
                } => (key, *expected_version),
                EndpointChange::Delete {
                    key,
                    expected_version,
                } => (key, Some(*expected_version)),
            };
            if !seen.insert(key) {
                return Err(Error::IpamStore {
                    reason: format!("endpoint {key} changed twice in one commit"),
                });
            }
            let found = inner.endpoints.get(key).map(|(v, _)| *v);
            if found != expected {
                return Err(conflict(format!("SpiderEndpoint/{key}"), expected, found));
            }
        }
        // The versions match, so the plan saw these states; still refuse ops that would
        // break a pool (a buggy planner), before anything is written.
        for pc in &changes.pools {
            let Some((_, state, _)) = inner.pools.get(&pc.pool) else {
                continue;
            };
            let mut chosen: BTreeSet<IpAddr> = BTreeSet::new();
            for op in &pc.ops {
                match op {
                    PoolOp::Allocate { ip, .. } => {
                        if !state.is_free(*ip) || !chosen.insert(*ip) {
                            return Err(Error::IpamRecordMismatch {
                                pool: pc.pool.clone(),
                                ip: ip.to_string(),
                                reason: "allocating an address that is not free".to_owned(),
                            });
                        }
                    }
                    PoolOp::Readopt { ip, .. } => {
                        if state.record(*ip).is_none() {
                            return Err(Error::IpamRecordMismatch {
                                pool: pc.pool.clone(),
                                ip: ip.to_string(),
                                reason: "re-adopting an address without record".to_owned(),
                            });
                        }
                    }
                    PoolOp::Release { .. } => {}
                }
            }
        }
        Ok(())
    }
}

impl IpamStore for MemoryStore {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, Error> {
        let inner = self.lock();
        let mut snap = Snapshot::new();
        for (v, state, _) in inner.pools.values() {
            snap.insert_pool(*v, Arc::clone(state));
        }
        for key in endpoints {
            if let Some((v, ep)) = inner.endpoints.get(key) {
                snap.insert_endpoint(*v, Arc::clone(ep));
            }
        }
        Ok(snap)
    }

    fn commit(&self, changes: &ChangeSet) -> Result<Committed, Error> {
        let mut inner = self.lock();
        Self::check(&inner, changes)?;
        let mut out = Committed::default();
        for pc in &changes.pools {
            let v = inner.next();
            let Some(entry) = inner.pools.get_mut(&pc.pool) else {
                continue;
            };
            let state = Arc::make_mut(&mut entry.1);
            for op in &pc.ops {
                match op {
                    PoolOp::Allocate { ip, record } => state.allocate(*ip, record.clone())?,
                    PoolOp::Readopt { ip, record } => state.update_record(*ip, record.clone())?,
                    PoolOp::Release { ip, uid } => {
                        state.release(*ip, Some(uid));
                    }
                }
            }
            entry.0 = v;
            out.pools.insert(pc.pool.clone(), v);
        }
        for ec in &changes.endpoints {
            match ec {
                EndpointChange::Put { key, endpoint, .. } => {
                    let v = inner.next();
                    inner
                        .endpoints
                        .insert(key.clone(), (v, Arc::new(endpoint.as_ref().clone())));
                    out.endpoints.insert(key.clone(), Some(v));
                }
                EndpointChange::Delete { key, .. } => {
                    inner.endpoints.remove(key);
                    out.endpoints.insert(key.clone(), None);
                }
            }
        }
        Ok(out)
    }
}
