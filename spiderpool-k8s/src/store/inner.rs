//! The agent's local view of the shared state: every pool (with its blocks), reserved IPs,
//! the endpoint index, and the [`StoreState`] the IPAM engine plans on.
//!
//! The planner sees each pool *masked* to what this node may hand out: its own block (the
//! preferred addresses, used first) plus the pool's unclaimed addresses (taking one makes the
//! commit claim a block around it first). Other nodes' blocks are invisible, so the planner
//! can never pick an address another node may be handing out at the same moment.

use std::collections::BTreeMap;
use std::time::Instant;

use spiderpool_core::ip::IpRangeSet;
use spiderpool_core::ipam::{EndpointKey, StoreState};
use spiderpool_core::objects::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

use super::blocks::PoolBlocks;
use super::index::{EndpointIndex, HolderChange};

/// The last pool object seen and its blocks.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// `metadata.resourceVersion` as a number.
    pub version: u64,
    /// The object as the apiserver has it.
    pub object: SpiderIPPool,
    /// Its blocks.
    pub layout: PoolBlocks,
    /// This node's block, less what another block lists too ([`PoolBlocks::own`]).
    pub mine: IpRangeSet,
    /// What this node may hand out: its block and the unclaimed addresses.
    pub window: IpRangeSet,
    /// The planner's preference: this node's block, then its share of the unclaimed ones.
    pub tiers: Vec<IpRangeSet>,
}

/// The addresses of `set` from its `skip`-th address on.
pub(super) fn suffix_from(set: &IpRangeSet, skip: u128) -> IpRangeSet {
    let mut out = IpRangeSet::new(set.family());
    let mut left = skip;
    for r in set.ranges() {
        let len = r.len();
        if left >= len {
            left -= len;
            continue;
        }
        let start = spiderpool_core::ip::ip_to_u128(r.start()) + left;
        left = 0;
        if let Some(a) = spiderpool_core::ip::ip_from_u128(set.family(), start)
            && let Ok(sub) = spiderpool_core::ip::IpRange::new(a, r.end())
        {
            // Disjoint pieces of one set: cannot fail.
            let _ = out.insert_range(sub);
        }
    }
    out
}

/// Everything guarded by the store's lock.
#[derive(Debug)]
pub struct Inner {
    /// This node.
    pub node: String,
    /// What the planner plans on.
    pub state: StoreState,
    /// Pools by name.
    pub pools: BTreeMap<String, PoolEntry>,
    /// Pools whose view could not be built (bad spec or status), with why.
    pub broken: BTreeMap<String, String>,
    /// SpiderReservedIPs by name, with their versions.
    pub reserved: BTreeMap<String, (u64, SpiderReservedIP)>,
    /// Who holds what.
    pub index: EndpointIndex,
    /// Pools whose count this node should write, with when they became dirty.
    pub dirty: BTreeMap<String, Instant>,
    /// When this node last allocated or released in each pool (its counts are written once
    /// it has been quiet for a while, so a burst does not add status writes).
    pub touched: BTreeMap<String, Instant>,
}

impl Inner {
    /// An empty view for `node`.
    pub fn new(node: &str) -> Self {
        Inner {
            node: node.to_owned(),
            state: StoreState::new(),
            pools: BTreeMap::new(),
            broken: BTreeMap::new(),
            reserved: BTreeMap::new(),
            index: EndpointIndex::new(node),
            dirty: BTreeMap::new(),
            touched: BTreeMap::new(),
        }
    }

    /// This node's block of `pool`.
    pub fn my_block(&self, pool: &str) -> Option<IpRangeSet> {
        self.pools.get(pool).map(|e| e.mine.clone())
    }

    /// Puts a pool object seen at `version` (older versions than the one held are ignored)
    /// and rebuilds its view when its layout changed. Returns whether anything changed.
    pub fn put_pool(&mut self, version: u64, object: SpiderIPPool) -> bool {
        let name = object.metadata.name.clone().unwrap_or_default();
        if let Some(e) = self.pools.get(&name)
            && e.version >= version
        {
            return false;
        }
        let layout = match PoolBlocks::from_pool(&object) {
            Ok(l) => l,
            Err(e) => {
                // Unusable until fixed: no allocation from it, its records stay in the
                // endpoints.
                self.broken.insert(name.clone(), e.to_string());
                self.pools.remove(&name);
                self.state.remove_pool(&name);
                return true;
            }
        };
        self.broken.remove(&name);
        let mine = layout.own(&self.node);
        let unclaimed = layout.unclaimed();
        let window = match mine.union(&unclaimed) {
            Ok(w) => w,
            Err(e) => {
                self.broken.insert(name.clone(), e.to_string());
                return true;
            }
        };
        // Alone in the pool, a node takes the lowest unclaimed addresses (as upstream hands
        // out the lowest free one); with other nodes claiming too, it starts in a slice of
        // its own.
        let share = suffix_from(
            &unclaimed,
            super::sharing::slice_start(&layout, &self.node, unclaimed.len()),
        );
        let tiers = vec![mine.clone(), share];
        // Only the split of the window between "mine" and "unclaimed" changed (this node's
        // own claim or hand-back): the free addresses are the same, so the view keeps its
        // version and only the preference changes.
        let rebuild = match self.pools.get(&name) {
            Some(old) => {
                old.window != window
                    || old.layout.legacy() != layout.legacy()
                    || old.object.spec != object.spec
                    || old.object.metadata.labels != object.metadata.labels
                    || old.object.metadata.deletion_timestamp != object.metadata.deletion_timestamp
            }
            None => true,
        };
        self.pools.insert(
            name.clone(),
            PoolEntry {
                version,
                object,
                layout,
                mine,
                window,
                tiers: tiers.clone(),
            },
        );
        if rebuild || !self.state.set_preferred(&name, tiers) {
            self.rebuild(&name);
        }
        self.dirty.entry(name).or_insert_with(Instant::now);
        true
    }

    /// Removes pool `name` (deleted in the cluster) unless a newer version is held.
    pub fn remove_pool(&mut self, name: &str, version: Option<u64>) {
        if let (Some(v), Some(e)) = (version, self.pools.get(name))
            && e.version > v
        {
            return;
        }
        self.pools.remove(name);
        self.broken.remove(name);
        self.state.remove_pool(name);
    }

    /// Rebuilds the planner's view of `pool`: masked to this node's block and the unclaimed
    /// addresses, its block preferred, every held address recorded.
    pub fn rebuild(&mut self, pool: &str) {
        let Some(entry) = self.pools.get(pool) else {
            return;
        };
        let (tiers, window) = (entry.tiers.clone(), &entry.window);
        let mut masked = entry.object.clone();
        masked.spec.ips = Some(window.to_strings());
        masked.spec.exclude_ips = None;
        let records: Vec<_> = self.index.records(pool).collect();
        if let Err(e) = self.state.put_pool_view(masked, records, tiers) {
            self.broken.insert(pool.to_owned(), e.to_string());
            self.state.remove_pool(pool);
        }
    }

    /// Applies holder changes to the views, record by record. A pool's version is bumped only
    /// when the address is one this node may hand out (its block or the unclaimed ones):
    /// changes inside other nodes' blocks cannot invalidate a plan of this node, and bumping
    /// for them would make every agent re-plan on every allocation in the cluster.
    pub fn apply_holders(&mut self, changes: Vec<HolderChange>) {
        for c in changes {
            let Some(entry) = self.pools.get(&c.pool) else {
                continue;
            };
            let relevant = entry.window.contains(c.ip);
            if self.state.set_record(&c.pool, c.ip, c.holder, relevant) {
                self.dirty
                    .entry(c.pool.clone())
                    .or_insert_with(Instant::now);
            }
        }
    }

    /// Puts an endpoint seen at `version`.
    pub fn put_endpoint(&mut self, version: u64, ep: SpiderEndpoint) {
        let changes = self.index.put(version, ep);
        self.apply_holders(changes);
    }

    /// Removes an endpoint.
    pub fn remove_endpoint(&mut self, key: &EndpointKey, version: Option<u64>) {
        let changes = self.index.remove(key, version);
        self.apply_holders(changes);
    }

    /// Replaces the reserved IPs and rebuilds every view.
    pub fn set_reserved(&mut self) -> Result<(), spiderpool_core::ipam::IpamError> {
        let map = self
            .reserved
            .iter()
            .map(|(k, (_, r))| (k.clone(), r.clone()))
            .collect();
        self.state.set_reserved(map)
    }

    /// How many addresses of this node's block of `pool` are held.
    pub fn held_in_my_block(&self, pool: &str) -> i64 {
        let Some(e) = self.pools.get(pool) else {
            return 0;
        };
        let n = self
            .index
            .addresses(pool)
            .filter(|ip| e.mine.contains(*ip))
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The addresses of this node's block of `pool` that another block lists too and that no
    /// endpoint of this node holds: to give up (see [`PoolBlocks::contested`]).
    pub fn contested_unheld(&self, pool: &str) -> IpRangeSet {
        let Some(e) = self.pools.get(pool) else {
            return IpRangeSet::new(spiderpool_core::ip::IpFamily::V4);
        };
        let mut out = e.layout.contested(&self.node);
        for ip in self.index.addresses(pool) {
            out.remove(ip);
        }
        out
    }

    /// The free addresses of this node's block of `pool` (block minus held addresses).
    pub fn free_in_my_block(&self, pool: &str) -> Option<IpRangeSet> {
        let mine = self.my_block(pool)?;
        let mut free = mine.clone();
        for ip in self.index.addresses(pool) {
            if mine.contains(ip) {
                free.remove(ip);
            }
        }
        Some(free)
    }
}
