//! [`MemoryStore`]: the in-memory [`IpamStore`], for tests and for CNI authors who embed the
//! IPAM in one process.

use std::sync::{Arc, Mutex, MutexGuard};

use super::pool_state::PoolState;
use super::state::StoreState;
use super::store::{ChangeSet, Committed, EndpointKey, IpamStore, Snapshot};
use crate::ipam::{CommitError, IpamError, StoreError};
use crate::objects::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

/// An [`IpamStore`] in memory: a [`StoreState`] behind one mutex (`Send + Sync`).
///
/// Snapshots share pool states (`Arc`) with the store; a commit updates a pool state in place
/// when no snapshot still holds it, else copies it first (copy-on-write), so a snapshot never
/// changes under a planner.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<StoreState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic cannot leave the state half-updated (commits validate before they write), so a
    // poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, StoreState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds or updates a pool. A new pool takes its records from `status.allocatedIPs`; an
    /// existing pool keeps its current records and takes the new spec and metadata.
    pub fn put_pool(&self, pool: SpiderIPPool) -> Result<(), IpamError> {
        self.lock().put_pool(pool).map(drop)
    }

    /// Removes a pool; returns whether it existed.
    pub fn remove_pool(&self, name: &str) -> bool {
        self.lock().remove_pool(name).is_some()
    }

    /// Adds or replaces a SpiderReservedIP (ignored while terminating, as upstream) and
    /// rebuilds the pools' free sets. An invalid one changes nothing.
    pub fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), IpamError> {
        self.lock().put_reserved_ip(r)
    }

    /// Removes a SpiderReservedIP; returns whether it existed.
    pub fn remove_reserved_ip(&self, name: &str) -> Result<bool, IpamError> {
        self.lock().remove_reserved_ip(name)
    }

    /// The pool `name` with its current status (`allocatedIPs`, counts).
    pub fn pool(&self, name: &str) -> Option<SpiderIPPool> {
        self.lock().pool(name)
    }

    /// The state of pool `name`.
    pub fn pool_state(&self, name: &str) -> Option<Arc<PoolState>> {
        self.lock().pool_state(name).cloned()
    }

    /// The endpoint `key`.
    pub fn endpoint(&self, key: &EndpointKey) -> Option<SpiderEndpoint> {
        self.lock().endpoint(key).cloned()
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Vec<SpiderEndpoint> {
        self.lock().endpoints()
    }
}

impl IpamStore for MemoryStore {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError> {
        Ok(self.lock().snapshot(endpoints))
    }

    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        self.lock().commit(changes)
    }
}
