//! Who holds which address: a compact index of every SpiderEndpoint in the cluster, fed by a
//! watch. The SpiderEndpoints are the per-address truth of the Kubernetes store; this index
//! is how an agent knows which addresses of its blocks are free.
//!
//! Memory: full objects are kept only for endpoints of this node (the ones its ADDs and DELs
//! read); for the others, the pod key, UID and addresses (about 150 bytes per address).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use spiderpool_core::ipam::EndpointKey;
use spiderpool_core::objects::{PoolIPAllocation, SpiderEndpoint};

/// A change of who holds an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderChange {
    /// The pool.
    pub pool: String,
    /// The address.
    pub ip: IpAddr,
    /// The new holder (`None`: free).
    pub holder: Option<PoolIPAllocation>,
}

/// One endpoint as the index keeps it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `metadata.resourceVersion` as a number (the store's endpoint version).
    pub version: u64,
    /// `status.current.uid`.
    pub uid: String,
    /// `status.current.node`.
    pub node: String,
    /// `(pool, address)` of every NIC.
    pub addresses: Vec<(String, IpAddr)>,
    /// The object, for endpoints of this node.
    pub object: Option<Arc<SpiderEndpoint>>,
}

/// Every endpoint's addresses, by key and by pool.
#[derive(Debug, Default)]
pub struct EndpointIndex {
    node: String,
    by_key: HashMap<EndpointKey, Entry>,
    by_pool: HashMap<String, BTreeMap<IpAddr, EndpointKey>>,
}

/// `(pool, address)` of every NIC of `ep` (addresses without a pool, or unparsable, are
/// skipped: they cannot be in any of our pools).
pub fn addresses_of(ep: &SpiderEndpoint) -> Vec<(String, IpAddr)> {
    let Some(status) = &ep.status else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for nic in &status.current.ips {
        for (addr, pool) in [(&nic.ipv4, &nic.ipv4_pool), (&nic.ipv6, &nic.ipv6_pool)] {
            let (Some(addr), Some(pool)) = (addr, pool) else {
                continue;
            };
            let ip = addr.split('/').next().unwrap_or_default();
            if let Ok(ip) = ip.parse::<IpAddr>() {
                out.push((pool.clone(), ip));
            }
        }
    }
    out
}

/// Brings an endpoint read from the apiserver to the form the engine writes: the CRD's
/// schema defaults `vlan` to 0 on every NIC, which the engine leaves unset (0 means "no
/// VLAN" either way), so a stored endpoint compares equal to the one planned.
pub fn normalize(ep: &mut SpiderEndpoint) {
    if let Some(st) = ep.status.as_mut() {
        for nic in &mut st.current.ips {
            if nic.vlan == Some(0) {
                nic.vlan = None;
            }
        }
    }
}

/// The key of `ep`.
pub fn key_of(ep: &SpiderEndpoint) -> EndpointKey {
    EndpointKey::new(
        ep.metadata.namespace.clone().unwrap_or_default(),
        ep.metadata.name.clone().unwrap_or_default(),
    )
}

impl EndpointIndex {
    /// An empty index for an agent on `node`.
    pub fn new(node: impl Into<String>) -> Self {
        EndpointIndex {
            node: node.into(),
            ..Self::default()
        }
    }

    /// Adds or replaces `ep` at `version`, unless the index already has a newer version of
    /// it. Returns the holder changes it made.
    pub fn put(&mut self, version: u64, mut ep: SpiderEndpoint) -> Vec<HolderChange> {
        normalize(&mut ep);
        let key = key_of(&ep);
        if self.by_key.get(&key).is_some_and(|e| e.version >= version) {
            return Vec::new();
        }
        let mut changes = self.unlink(&key);
        let (uid, node) = ep
            .status
            .as_ref()
            .map(|s| (s.current.uid.clone(), s.current.node.clone()))
            .unwrap_or_default();
        let addresses = addresses_of(&ep);
        for (pool, ip) in &addresses {
            self.by_pool
                .entry(pool.clone())
                .or_default()
                .insert(*ip, key.clone());
            // A re-put of the same holder cancels its unlink above.
            changes.retain(|c| !(c.pool == *pool && c.ip == *ip));
            changes.push(HolderChange {
                pool: pool.clone(),
                ip: *ip,
                holder: Some(PoolIPAllocation {
                    pod: key.to_string(),
                    pod_uid: uid.clone(),
                }),
            });
        }
        let object = (node == self.node).then(|| Arc::new(ep));
        self.by_key.insert(
            key,
            Entry {
                version,
                uid,
                node,
                addresses,
                object,
            },
        );
        changes
    }

    /// Removes `key` (unless the index has a version newer than `version`). Returns the
    /// holder changes it made.
    pub fn remove(&mut self, key: &EndpointKey, version: Option<u64>) -> Vec<HolderChange> {
        if let (Some(v), Some(e)) = (version, self.by_key.get(key))
            && e.version > v
        {
            return Vec::new();
        }
        let changes = self.unlink(key);
        self.by_key.remove(key);
        changes
    }

    fn unlink(&mut self, key: &EndpointKey) -> Vec<HolderChange> {
        let Some(old) = self.by_key.get(key) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        for (pool, ip) in &old.addresses {
            if let Some(m) = self.by_pool.get_mut(pool)
                && m.get(ip) == Some(key)
            {
                m.remove(ip);
                changes.push(HolderChange {
                    pool: pool.clone(),
                    ip: *ip,
                    holder: None,
                });
            }
        }
        changes
    }

    /// Replaces the whole index (a watch restarted with a fresh list).
    pub fn reset(&mut self, endpoints: impl IntoIterator<Item = (u64, SpiderEndpoint)>) {
        self.by_key.clear();
        self.by_pool.clear();
        for (v, ep) in endpoints {
            self.put(v, ep);
        }
    }

    /// The entry of `key`.
    pub fn get(&self, key: &EndpointKey) -> Option<&Entry> {
        self.by_key.get(key)
    }

    /// The holder of `ip` in `pool`.
    pub fn holder(&self, pool: &str, ip: IpAddr) -> Option<&EndpointKey> {
        self.by_pool.get(pool).and_then(|m| m.get(&ip))
    }

    /// Every held address of `pool` as a pool record (`ns/name`, pod UID).
    pub fn records(&self, pool: &str) -> impl Iterator<Item = (IpAddr, PoolIPAllocation)> + '_ {
        self.by_pool
            .get(pool)
            .into_iter()
            .flatten()
            .filter_map(|(ip, key)| {
                self.by_key.get(key).map(|e| {
                    (
                        *ip,
                        PoolIPAllocation {
                            pod: key.to_string(),
                            pod_uid: e.uid.clone(),
                        },
                    )
                })
            })
    }

    /// The addresses of `pool` some endpoint holds ([`Self::records`] without building the
    /// records: callers that only count or subtract addresses run on every commit).
    pub fn addresses(&self, pool: &str) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_pool
            .get(pool)
            .into_iter()
            .flatten()
            .filter(|(_, key)| self.by_key.contains_key(*key))
            .map(|(ip, _)| *ip)
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

impl EndpointIndex {
    /// Keys not in `listed` (as `ns/name`) whose version is at most `newest`: endpoints a
    /// fresh list no longer shows.
    pub fn keys_not_in(
        &self,
        listed: &std::collections::BTreeSet<String>,
        newest: u64,
    ) -> Vec<EndpointKey> {
        self.by_key
            .iter()
            .filter(|(k, e)| e.version <= newest && !listed.contains(&k.to_string()))
            .map(|(k, _)| k.clone())
            .collect()
    }
}
