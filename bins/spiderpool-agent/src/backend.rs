//! What the agent needs of a store beyond [`IpamStore`]: loading the configured pools and
//! reserved IPs, and listing for `dump`. Implemented for [`MemoryStore`] and for the durable
//! [`LocalStore`] through their public methods.

use serde_json::Value;
use spiderpool_core::ipam::IpamError;
use spiderpool_core::ipam::{IpamStore, MemoryStore};

use crate::localstore::{LocalStore, StoreFailure};
use spiderpool_core::objects::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

/// A store the agent can run on.
pub trait AgentStore: IpamStore {
    /// Adds a pool, or updates the spec of an existing one keeping its records. `status` is
    /// ignored: the store owns the records.
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), IpamError>;
    /// Removes a pool and its records; returns whether it existed.
    fn remove_pool(&self, name: &str) -> Result<bool, IpamError>;
    /// Adds or replaces a SpiderReservedIP.
    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), IpamError>;
    /// Removes a SpiderReservedIP; returns whether it existed.
    fn remove_reserved_ip(&self, name: &str) -> Result<bool, IpamError>;
    /// Every pool with its status (records and counts).
    fn pools(&self) -> Result<Vec<SpiderIPPool>, IpamError>;
    /// Every endpoint.
    fn endpoints(&self) -> Result<Vec<SpiderEndpoint>, IpamError>;
    /// Pools whose records the store keeps without a definition, with their record counts.
    fn orphaned(&self) -> Vec<(String, usize)> {
        Vec::new()
    }
    /// The store's own view of its state, when it has one (files, sequence numbers...).
    fn inspect(&self) -> Option<Value> {
        None
    }
    /// Why the store takes no commit right now (e.g. its disk failed or is full), if so.
    fn failure(&self) -> Option<StoreFailure> {
        None
    }
}

impl AgentStore for MemoryStore {
    fn put_pool(&self, mut pool: SpiderIPPool) -> Result<(), IpamError> {
        // A new pool would take its records from `status.allocatedIPs`.
        pool.status = None;
        MemoryStore::put_pool(self, pool)
    }

    fn remove_pool(&self, name: &str) -> Result<bool, IpamError> {
        Ok(MemoryStore::remove_pool(self, name))
    }

    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), IpamError> {
        MemoryStore::put_reserved_ip(self, reserved)
    }

    fn remove_reserved_ip(&self, name: &str) -> Result<bool, IpamError> {
        MemoryStore::remove_reserved_ip(self, name)
    }

    fn pools(&self) -> Result<Vec<SpiderIPPool>, IpamError> {
        let snap = self.snapshot(&[])?;
        Ok(snap
            .pools()
            .filter_map(|p| MemoryStore::pool(self, p.name()))
            .collect())
    }

    fn endpoints(&self) -> Result<Vec<SpiderEndpoint>, IpamError> {
        Ok(MemoryStore::endpoints(self))
    }
}

impl AgentStore for LocalStore {
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), IpamError> {
        LocalStore::put_pool(self, pool)
    }

    fn remove_pool(&self, name: &str) -> Result<bool, IpamError> {
        Ok(LocalStore::remove_pool(self, name))
    }

    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), IpamError> {
        LocalStore::put_reserved_ip(self, reserved)
    }

    fn remove_reserved_ip(&self, name: &str) -> Result<bool, IpamError> {
        LocalStore::remove_reserved_ip(self, name)
    }

    fn pools(&self) -> Result<Vec<SpiderIPPool>, IpamError> {
        Ok(LocalStore::pools(self))
    }

    fn endpoints(&self) -> Result<Vec<SpiderEndpoint>, IpamError> {
        Ok(LocalStore::endpoints(self))
    }

    fn orphaned(&self) -> Vec<(String, usize)> {
        self.orphaned_pools()
            .into_iter()
            .map(|o| (o.name, o.allocations.len()))
            .collect()
    }

    fn inspect(&self) -> Option<Value> {
        Some(self.dump())
    }

    fn failure(&self) -> Option<StoreFailure> {
        LocalStore::failure(self)
    }
}
