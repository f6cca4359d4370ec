//! The Kubernetes store of the IPAM engine: [`KubeStore`] implements core's
//! [`IpamStore`] compare-and-swap contract on SpiderIPPools and SpiderEndpoints.
//!
//! Design (docs/k8s-store.md has the whole argument and its invariants):
//! * **Per-address truth is the SpiderEndpoint.** An address is allocated exactly when a
//!   SpiderEndpoint lists it; creating the endpoint *is* the allocation, one write.
//! * **Per-node blocks decide who may allocate what.** `status.blocks` of a pool gives each
//!   node a set of addresses; only that node's agent allocates them. Blocks are claimed,
//!   given and given up with JSON patches of the pool status that test only the fields they
//!   change (rare: claims grow with the node's use), so agents on different nodes do not
//!   contend for the pool object; an address two concurrent claims list is nobody's until
//!   the second claimer gives it up.
//! * **Counts are written behind.** `allocatedIPCount` (sum of the blocks' counts) is
//!   written by each agent for its block every `count_interval` when it changed, off the ADD
//!   path.
//! * **Exhaustion is cooperative.** A node that finds no address in its block and none
//!   unclaimed while other blocks have free ones sets `waiting` on its entry; the others
//!   hand back their free addresses; it waits at most `exhaustion_wait`.

mod blocks;
mod index;
mod inner;
mod sharing;
mod watch;
mod writes;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::Client;
use spiderpool_core::ipam::{
    AllocateRequest, AllocationDecision, ChangeSet, Committed, DEFAULT_MAX_ATTEMPTS,
    EndpointChange, EndpointKey, IpamStore, PoolOp, RejectReason, Snapshot, allocate_with_retry,
};
use spiderpool_core::ipam::{CommitError, IpamError, StoreError};
use spiderpool_core::objects::{SpiderEndpoint, SpiderIPPool};

pub use blocks::{BlockError, PoolBlocks};
pub use index::{EndpointIndex, Entry, addresses_of};
use inner::Inner;
pub use writes::{Purpose, Stats};
use writes::{WriteError, Writer, load};

use crate::error::{Error, Result};

/// Tuning of a [`KubeStore`].
#[derive(Debug, Clone)]
pub struct KubeStoreOptions {
    /// This agent's node.
    pub node: String,
    /// Addresses claimed at once (fewer when the pool is nearly exhausted).
    pub block_size: u32,
    /// How often block counts are written (when they changed).
    pub count_interval: Duration,
    /// How long an allocation waits for other nodes to hand back free addresses before it
    /// reports the pool exhausted.
    pub exhaustion_wait: Duration,
    /// How long an allocation waits for the subnet controller to create the auto-created pool
    /// of the pod's application (upstream's agent: `SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES` ×
    /// `SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND`, 25 × 2 s).
    pub auto_pool_wait: Duration,
    /// Field manager of the writes.
    pub field_manager: String,
}

impl KubeStoreOptions {
    /// Defaults for an agent on `node`: blocks of 16, counts every 500 ms, 2 s exhaustion
    /// wait.
    pub fn new(node: impl Into<String>) -> Self {
        KubeStoreOptions {
            node: node.into(),
            block_size: 16,
            count_interval: Duration::from_millis(500),
            exhaustion_wait: Duration::from_secs(2),
            auto_pool_wait: Duration::from_secs(50),
            field_manager: "spiderpool-agent".to_owned(),
        }
    }
}

struct Shared {
    inner: Mutex<Inner>,
    // Signalled after every applied batch of watch events (waiters re-plan).
    changed: Condvar,
    synced: Mutex<bool>,
    synced_cv: Condvar,
    stats: Stats,
    // When this node last found each pool exhausted for it (its waiting flag is cleared a
    // while after).
    starved: Mutex<BTreeMap<String, Instant>>,
    // How many ADDs are waiting for addresses in each pool right now (such a node gives
    // nothing away there).
    hungry: Mutex<BTreeMap<String, usize>>,
    // When this node last asked for addresses in each pool, and how large its block was then.
    asked: Mutex<BTreeMap<String, (Instant, u128)>>,
    // Pools where a claim ahead of need is in flight ([`KubeStore::claim_ahead`]); signalled
    // on `ahead_done` when one lands.
    ahead: Mutex<BTreeSet<String>>,
    ahead_done: Condvar,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // The view is rebuilt from the watches; a panic mid-update cannot lose cluster state.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A node that has not allocated in a pool for this long gives all its free addresses there
/// to waiting nodes (a busy node keeps a share).
const IDLE_GIVER: Duration = Duration::from_millis(200);

/// A waiting node asks again when nothing came for this long since its last ask.
const REASK: Duration = Duration::from_millis(150);

thread_local! {
    /// Set while this thread runs [`KubeStore::allocate`] (see [`KubeStore::snapshot`]).
    static ADDING: Cell<bool> = const { Cell::new(false) };
}

/// The pools an ADD is waiting in, counted in [`Shared::hungry`] until it ends.
struct Hungry<'a> {
    shared: &'a Shared,
    pools: Vec<String>,
}

impl Hungry<'_> {
    fn add(&mut self, pool: &str) {
        *self
            .shared
            .hungry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(pool.to_owned())
            .or_insert(0) += 1;
        self.pools.push(pool.to_owned());
    }
}

impl Drop for Hungry<'_> {
    fn drop(&mut self) {
        let mut h = self
            .shared
            .hungry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for p in &self.pools {
            if let Some(n) = h.get_mut(p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    h.remove(p);
                }
            }
        }
    }
}

/// Sets [`ADDING`] for its lifetime (also when the allocation unwinds).
struct Adding(bool);

impl Adding {
    fn start() -> Self {
        Adding(ADDING.with(|a| a.replace(true)))
    }
}

impl Drop for Adding {
    fn drop(&mut self) {
        ADDING.with(|a| a.set(self.0));
    }
}

/// The IPAM store of a Kubernetes agent. Synchronous like every [`IpamStore`]: call it from
/// plain threads (the agent's workers), not from async code; it drives its own requests on
/// the runtime handle it was started with.
pub struct KubeStore {
    rt: tokio::runtime::Handle,
    writer: Writer,
    opts: KubeStoreOptions,
    shared: Arc<Shared>,
}

impl KubeStore {
    /// Starts the watches and the maintenance thread, and waits (up to `timeout`) until the
    /// first lists of pools, reserved IPs and endpoints are in.
    pub fn start(
        rt: tokio::runtime::Handle,
        client: Client,
        opts: KubeStoreOptions,
        timeout: Duration,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::new(&opts.node)),
            changed: Condvar::new(),
            synced: Mutex::new(false),
            synced_cv: Condvar::new(),
            stats: Stats::default(),
            starved: Mutex::new(BTreeMap::new()),
            hungry: Mutex::new(BTreeMap::new()),
            asked: Mutex::new(BTreeMap::new()),
            ahead: Mutex::new(BTreeSet::new()),
            ahead_done: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel();
        watch::spawn(&rt, &client, &opts.node, tx);
        let store = KubeStore {
            rt,
            writer: Writer::new(client, &opts.field_manager),
            opts,
            shared,
        };
        store.spawn_maintenance(rx)?;
        let synced = store
            .shared
            .synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (synced, wait) = store
            .shared
            .synced_cv
            .wait_timeout_while(synced, timeout, |s| !*s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if wait.timed_out() && !*synced {
            return Err(Error::Timeout(format!(
                "SpiderIPPool/SpiderReservedIP/SpiderEndpoint lists not in after {timeout:?}"
            )));
        }
        drop(synced);
        Ok(store)
    }

    fn spawn_maintenance(&self, rx: mpsc::Receiver<watch::FeedEvent>) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let this = KubeStoreHandle {
            rt: self.rt.clone(),
            writer: self.writer.clone(),
            opts: self.opts.clone(),
            shared: Arc::downgrade(&self.shared),
        };
        std::thread::Builder::new()
            .name("kube-store".to_owned())
            .spawn(move || {
                drop(shared);
                this.run(rx);
            })
            .map_err(|e| Error::Config(format!("cannot start the store thread: {e}")))?;
        Ok(())
    }

    /// The store's apiserver traffic counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// `(writes, conflicts, reads)` so far.
    pub fn traffic(&self) -> (u64, u64, u64) {
        let s = &self.shared.stats;
        (load(&s.writes), load(&s.conflicts), load(&s.reads))
    }

    /// The pools as last seen (with their status), by name.
    pub fn pools(&self) -> Vec<SpiderIPPool> {
        lock(&self.shared.inner)
            .pools
            .values()
            .map(|e| e.object.clone())
            .collect()
    }

    /// Pools that cannot be used, with why.
    pub fn broken_pools(&self) -> BTreeMap<String, String> {
        lock(&self.shared.inner).broken.clone()
    }

    /// Number of endpoints the index holds.
    pub fn endpoint_count(&self) -> usize {
        lock(&self.shared.inner).index.len()
    }

    /// The endpoint `key` as this agent knows it (its own node's endpoints; others are read
    /// from the apiserver).
    pub fn endpoint(&self, key: &EndpointKey) -> Result<Option<SpiderEndpoint>> {
        {
            let inner = lock(&self.shared.inner);
            if let Some(o) = inner.index.get(key).and_then(|e| e.object.as_ref()) {
                return Ok(Some(o.as_ref().clone()));
            }
        }
        Ok(self
            .rt
            .block_on(self.writer.get_endpoint(key, &self.shared.stats))?
            .map(|(_, e)| e))
    }

    /// Allocates for `req`: the engine's plan-and-commit loop, and when a pool is exhausted
    /// for this node while other nodes' blocks still have free addresses, asks them to hand
    /// those back and tries again until `exhaustion_wait` has passed.
    pub fn allocate(&self, req: &AllocateRequest) -> Result<AllocationDecision, IpamError> {
        // The exhaustion wait starts when this node first finds a pool exhausted for it (an
        // ADD may have spent a while re-planning through conflicts before), and starts again
        // whenever other nodes hand addresses over (they are being shared out, only others
        // were faster): an ADD fails for exhaustion only when nothing came for
        // `exhaustion_wait`, never merely because other nodes were allocating.
        let _adding = Adding::start();
        let mut hungry = Hungry {
            shared: &self.shared,
            pools: Vec::new(),
        };
        let mut deadline: Option<Instant> = None;
        let mut last_mine: u128 = 0;
        let contention_deadline = Instant::now() + Duration::from_secs(30);
        let auto_pool_deadline = Instant::now() + self.opts.auto_pool_wait;
        let mut fetched: Vec<String> = Vec::new();
        let mut waiting: Vec<String> = Vec::new();
        let out = loop {
            let res = allocate_with_retry(self, req, DEFAULT_MAX_ATTEMPTS);
            // A pool created a moment ago may not have reached the watch yet: read it.
            if let Err(IpamError::PoolNotFound { pool, .. }) = &res
                && !fetched.contains(pool)
            {
                fetched.push(pool.clone());
                if let Ok((v, p)) = self
                    .rt
                    .block_on(self.writer.get_pool(pool, &self.shared.stats))
                {
                    lock(&self.shared.inner).put_pool(v, p);
                    continue;
                }
            }
            // The subnet controller creates the application's pool (and sizes it) moments
            // after the application appears: wait for it as upstream's agent does.
            if matches!(res, Err(IpamError::AutoPoolNotReady { .. }))
                && Instant::now() < auto_pool_deadline
            {
                self.wait_for_change(auto_pool_deadline);
                continue;
            }
            // Conflicts with other agents are not a reason to fail an ADD: keep re-planning
            // (with a short pause) until the deadline.
            if matches!(res, Err(IpamError::RetriesExhausted { .. }))
                && Instant::now() < contention_deadline
            {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let starved = match &res {
                Err(IpamError::AllocationFailed { rejections, .. }) => {
                    self.starved_pools(rejections.iter().filter_map(|r| {
                        matches!(r.reason, RejectReason::Exhausted).then_some(r.pool.as_str())
                    }))
                }
                _ => Vec::new(),
            };
            let mine: u128 = starved.iter().map(|p| self.my_block_len(p)).sum();
            let now = Instant::now();
            if deadline.is_none() || mine > last_mine {
                deadline = Some(now + self.opts.exhaustion_wait);
            }
            last_mine = mine;
            let deadline = deadline.unwrap_or(now).min(contention_deadline);
            if starved.is_empty() || now >= deadline {
                break res;
            }
            for pool in starved {
                // Still starving now: the maintenance thread clears a waiting flag only a
                // while after the last starvation, so it must not see a stale (or, the first
                // time, no) record while this ADD waits.
                self.shared
                    .starved
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(pool.clone(), now);
                let flagged = lock(&self.shared.inner)
                    .pools
                    .get(&pool)
                    .is_some_and(|e| e.layout.waiting().contains(&self.opts.node));
                // Ask when the pool's status does not show the flag (the first time, or a write
                // that failed, or a flag cleared meanwhile would leave nobody to hand addresses
                // over), again when addresses were given since this node's last ask (by this ADD
                // or an earlier one) and are used up, and again when nothing came for
                // `REASK`: each node with free addresses answers each ask once, and a node
                // that was busy (or waiting itself) when it saw the last one gave nothing then.
                let mine_now = self.my_block_len(&pool);
                let last = self
                    .shared
                    .asked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&pool)
                    .copied();
                let served = last.is_some_and(|(_, len)| mine_now > len);
                let due = last.is_none_or(|(t, _)| t.elapsed() >= REASK);
                if due || (flagged && served) {
                    self.ask(&pool);
                    let len = self.my_block_len(&pool);
                    self.shared
                        .asked
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(pool.clone(), (Instant::now(), len));
                }
                if !waiting.contains(&pool) {
                    hungry.add(&pool);
                    waiting.push(pool);
                }
            }
            self.wait_for_change(deadline);
        };
        // A pool the cluster has but this agent cannot use (its spec or status does not
        // parse) would otherwise read as "not found": say what is wrong with it.
        let out = out.map_err(|e| match e {
            IpamError::PoolNotFound { pool, nic } => {
                match lock(&self.shared.inner).broken.get(&pool) {
                    Some(reason) => IpamError::InvalidPool {
                        pool,
                        reason: reason.clone(),
                    },
                    None => IpamError::PoolNotFound { pool, nic },
                }
            }
            other => other,
        });
        if !waiting.is_empty() {
            // Cleared by the maintenance thread once this node has not starved for a while:
            // clearing it after every allocation would cost two writes per starving ADD.
            let mut starved = self
                .shared
                .starved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for pool in waiting {
                starved.insert(pool, Instant::now());
            }
        }
        out
    }

    /// How many addresses this node's block of `pool` has.
    fn my_block_len(&self, pool: &str) -> u128 {
        lock(&self.shared.inner)
            .my_block(pool)
            .map_or(0, |b| b.len())
    }

    /// Of `pools`, those where other nodes' blocks hold free addresses.
    fn starved_pools<'a>(&self, pools: impl Iterator<Item = &'a str>) -> Vec<String> {
        let inner = lock(&self.shared.inner);
        pools
            .filter(|p| {
                inner
                    .pools
                    .get(*p)
                    .is_some_and(|e| e.layout.free_elsewhere(&self.opts.node) > 0)
            })
            .map(str::to_owned)
            .collect()
    }

    fn wait_for_change(&self, deadline: Instant) {
        let inner = lock(&self.shared.inner);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let _unused = self.shared.changed.wait_timeout(inner, left);
    }

    /// Sets this node's waiting flag in `pool` and counts one more ask.
    fn ask(&self, pool: &str) {
        let node = self.opts.node.clone();
        let inner = lock(&self.shared.inner);
        let Some(entry) = inner.pools.get(pool) else {
            return;
        };
        let object = entry.object.clone();
        // A node without an entry asks by appending one: under the lock, like a claim, so
        // this agent never has two appends in flight (two entries for one node). Otherwise
        // the lock is not held: the ask would wait behind every commit.
        let appends = !entry.layout.blocks().any(|(n, _)| n == node);
        let mut held = if appends {
            Some(inner)
        } else {
            drop(inner);
            None
        };
        let res = self.rt.block_on(self.writer.edit_pool_status(
            object,
            Purpose::Waiting,
            writes::STATUS_ATTEMPTS,
            &self.shared.stats,
            |l| {
                l.ask(&node);
                Ok(())
            },
        ));
        match res {
            Ok((v, written, ())) => match held.as_mut() {
                Some(inner) => {
                    inner.put_pool(v, written);
                }
                None => {
                    lock(&self.shared.inner).put_pool(v, written);
                }
            },
            Err(e) => log::warn!("SpiderIPPool {pool}: cannot ask for addresses: {e}"),
        }
    }

    /// A pool where `changes` allocates outside this node's block while a claim ahead is in
    /// flight there.
    fn claims_while_ahead(&self, inner: &Inner, changes: &ChangeSet) -> Option<String> {
        let ahead = self
            .shared
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ahead.is_empty() {
            return None;
        }
        changes
            .pools
            .iter()
            .filter(|pc| ahead.contains(&pc.pool))
            .find(|pc| {
                let mine = inner.pools.get(&pc.pool).map(|e| &e.mine);
                pc.ops.iter().any(|op| {
                    matches!(op, PoolOp::Allocate { ip, .. } if !mine.is_some_and(|m| m.contains(*ip)))
                })
            })
            .map(|pc| pc.pool.clone())
    }

    /// Waits (at most a few seconds) until no claim ahead is in flight in `pool`.
    fn wait_ahead(&self, pool: &str) {
        let ahead = self
            .shared
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _unused =
            self.shared
                .ahead_done
                .wait_timeout_while(ahead, Duration::from_secs(5), |a| a.contains(pool));
    }

    /// Claims this node's next addresses in the background in each pool `changes` allocated
    /// in where its block's free addresses ran low ([`sharing::claim_ahead_at`]), so that
    /// ADDs find addresses in the block instead of waiting for a claim (a status patch on an
    /// object every node patches). Not while any node waits for addresses in the pool: the
    /// unclaimed ones are theirs then. Called with the lock held, after a commit.
    ///
    /// Safe without the lock: a claim only adds addresses to this node's entry (the patch
    /// tests that entry, so it cannot overwrite a hand-back or give-up of this node written
    /// meanwhile), and addresses another block lists too are nobody's own until one node
    /// gives them up; the claim's answer goes into the view under the lock, like any claim's.
    fn claim_ahead(&self, inner: &Inner, changes: &ChangeSet) {
        let node = &self.opts.node;
        for pc in &changes.pools {
            if !pc
                .ops
                .iter()
                .any(|op| matches!(op, PoolOp::Allocate { .. }))
            {
                continue;
            }
            let Some(entry) = inner.pools.get(&pc.pool) else {
                continue;
            };
            // Only a node that has an entry: a first claim appends one, and appends are made
            // under the lock (one agent never has two in flight).
            if !entry.layout.waiting().is_empty() || entry.layout.blocks().all(|(n, _)| n != node) {
                continue;
            }
            // One pass over the pool's holders, on every commit: the held addresses of the
            // block are distinct, so the rest of it is free.
            let held = u128::try_from(inner.held_in_my_block(&pc.pool)).unwrap_or(0);
            let free = entry.mine.len().saturating_sub(held);
            let size = sharing::claim_size(&entry.layout, node, self.opts.block_size, held);
            let Some(at) = sharing::claim_ahead_at(size) else {
                continue;
            };
            if free > at || entry.layout.unclaimed().is_empty() {
                continue;
            }
            if !self
                .shared
                .ahead
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(pc.pool.clone())
            {
                continue;
            }
            let claim = ClaimAhead {
                rt: self.rt.clone(),
                writer: self.writer.clone(),
                shared: Arc::clone(&self.shared),
                node: node.clone(),
                block_size: self.opts.block_size,
                held,
                pool: pc.pool.clone(),
            };
            let object = entry.object.clone();
            let spawned = std::thread::Builder::new()
                .name("kube-store-claim".to_owned())
                .spawn(move || claim.run(object));
            if let Err(e) = spawned {
                log::warn!("SpiderIPPool {}: cannot claim ahead: {e}", pc.pool);
                self.shared
                    .ahead
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&pc.pool);
            }
        }
    }

    /// Claims (or takes over) what `changes` allocates outside this node's blocks. Called
    /// with the lock held.
    fn claim_for(&self, inner: &mut Inner, changes: &ChangeSet) -> Result<(), CommitError> {
        for pc in &changes.pools {
            let Some(entry) = inner.pools.get(&pc.pool) else {
                continue;
            };
            let mine = entry.layout.block(&self.opts.node);
            let mut want: Vec<(IpAddr, bool)> = Vec::new();
            for op in &pc.ops {
                match op {
                    PoolOp::Allocate { ip, .. } if !mine.contains(*ip) => want.push((*ip, false)),
                    PoolOp::Readopt { ip, .. } if !mine.contains(*ip) => want.push((*ip, true)),
                    _ => {}
                }
            }
            if want.is_empty() {
                continue;
            }
            let held = u128::try_from(inner.held_in_my_block(&pc.pool)).unwrap_or(0);
            let size =
                sharing::claim_size(&entry.layout, &self.opts.node, self.opts.block_size, held);
            let node = self.opts.node.clone();
            let res = self.rt.block_on(self.writer.edit_pool_status(
                entry.object.clone(),
                Purpose::Claim,
                writes::STATUS_ATTEMPTS,
                &self.shared.stats,
                |l| {
                    for (ip, transfer) in &want {
                        if *transfer {
                            l.transfer(&node, *ip)?;
                        } else if !l.block(&node).contains(*ip) {
                            l.claim(&node, *ip, size)?;
                        }
                    }
                    Ok(())
                },
            ));
            match res {
                Ok((v, written, ())) => {
                    inner.put_pool(v, written);
                    // The claim is a patch the apiserver applied to whatever the status was
                    // by then: another node's claim written just before may list some of the
                    // same addresses. This node's write came second, so it gives them up.
                    let contested = inner.contested_unheld(&pc.pool);
                    if !contested.is_empty() {
                        give_up(
                            &self.rt,
                            &self.writer,
                            &self.shared.stats,
                            &self.opts.node,
                            inner,
                            &pc.pool,
                            &contested,
                        );
                        if want.iter().any(|(ip, _)| contested.contains(*ip)) {
                            return Err(CommitError::conflict(
                                format!("SpiderIPPool/{}", pc.pool),
                                None,
                                None,
                            ));
                        }
                    }
                }
                Err(e) => {
                    if let WriteError::Block(_) | WriteError::Conflict(_) = e {
                        // Another node took the addresses: refresh and re-plan.
                        if let Ok((v, p)) = self
                            .rt
                            .block_on(self.writer.get_pool(&pc.pool, &self.shared.stats))
                        {
                            inner.put_pool(v, p);
                        }
                    }
                    return Err(e.into_commit());
                }
            }
        }
        Ok(())
    }
}

/// A claim ahead of need ([`KubeStore::claim_ahead`]), run on its own thread.
struct ClaimAhead {
    rt: tokio::runtime::Handle,
    writer: Writer,
    shared: Arc<Shared>,
    node: String,
    block_size: u32,
    held: u128,
    pool: String,
}

impl ClaimAhead {
    fn run(self, object: SpiderIPPool) {
        let (node, block_size, held) = (&self.node, self.block_size, self.held);
        let res = self.rt.block_on(self.writer.edit_pool_status(
            object,
            Purpose::Claim,
            writes::STATUS_ATTEMPTS,
            &self.shared.stats,
            |l| {
                // Re-decided on every status read: a node may have started waiting (the
                // unclaimed addresses are then the waiters'), or others claimed meanwhile.
                // Without its entry (handed everything back) the claim would append one,
                // which only writes made under the store's lock may do.
                if !l.waiting().is_empty() || l.blocks().all(|(n, _)| n != node) {
                    return Ok(());
                }
                let Some(ip) = sharing::claim_start(l, node) else {
                    return Ok(());
                };
                l.claim(node, ip, sharing::claim_size(l, node, block_size, held))
                    .map(drop)
            },
        ));
        {
            let mut inner = lock(&self.shared.inner);
            match res {
                Ok((v, written, ())) => {
                    inner.put_pool(v, written);
                    let contested = inner.contested_unheld(&self.pool);
                    if !contested.is_empty() {
                        give_up(
                            &self.rt,
                            &self.writer,
                            &self.shared.stats,
                            node,
                            &mut inner,
                            &self.pool,
                            &contested,
                        );
                    }
                }
                // The next ADD that needs addresses claims them itself.
                Err(e) => log::debug!("SpiderIPPool {}: claim ahead not made: {e}", self.pool),
            }
        }
        self.shared
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.pool);
        self.shared.ahead_done.notify_all();
        self.shared.changed.notify_all();
    }
}

/// Removes `addresses` from `node`'s block of `pool`: they are listed by another block too
/// and no endpoint of this node holds them. Failure is logged; the maintenance thread tries
/// again.
fn give_up(
    rt: &tokio::runtime::Handle,
    writer: &Writer,
    stats: &Stats,
    node: &str,
    inner: &mut Inner,
    pool: &str,
    addresses: &spiderpool_core::ip::IpRangeSet,
) {
    let Some(object) = inner.pools.get(pool).map(|e| e.object.clone()) else {
        return;
    };
    let res = rt.block_on(writer.edit_pool_status(
        object,
        Purpose::GiveUp,
        writes::STATUS_ATTEMPTS,
        stats,
        |l| {
            l.hand_back(node, addresses);
            Ok(())
        },
    ));
    match res {
        Ok((v, written, ())) => {
            inner.put_pool(v, written);
        }
        Err(e) => log::warn!("SpiderIPPool {pool}: cannot give up {addresses}: {e}"),
    }
}

/// Bumps each pool change of `changes` to the version its pool has now in `inner` (after a
/// claim rebuilt the view, which only moved addresses from "unclaimed" to "mine").
fn at_current_versions(inner: &Inner, changes: &ChangeSet) -> ChangeSet {
    let snap = inner.state.snapshot(&[]);
    let mut out = changes.clone();
    for pc in &mut out.pools {
        if let Some(v) = snap.pool_version(&pc.pool) {
            pc.expected_version = v;
        }
    }
    out
}

/// Refuses, before any write, a change set whose endpoint versions already disagree with the
/// index (the apiserver would refuse the write; a block claimed first would be written for
/// nothing).
fn check_endpoints_locally(inner: &Inner, changes: &ChangeSet) -> Result<(), CommitError> {
    for ec in &changes.endpoints {
        let (key, expected) = (ec.key(), ec.expected_version());
        let found = inner.index.get(key).map(|e| e.version);
        let stale = match (expected, found) {
            (None, Some(_)) => true,
            (Some(v), Some(f)) => f > v,
            (Some(_), None) => matches!(ec, EndpointChange::Put { .. }),
            (None, None) => false,
        };
        if stale {
            return Err(CommitError::conflict(
                format!("SpiderEndpoint/{key}"),
                expected,
                found,
            ));
        }
    }
    Ok(())
}

impl IpamStore for KubeStore {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError> {
        // Endpoints of other nodes are not watched here (a StatefulSet pod moved to this
        // node, or just a pod whose endpoint this agent has not seen): read them, and record
        // their addresses as held in the views so a re-adoption can be planned and checked.
        //
        // During an ADD ([`KubeStore::allocate`]) only those the index knows of: a new pod has
        // no endpoint (nearly every ADD), so the read would cost an apiserver request per ADD
        // for nothing; a pod whose endpoint exists on another node makes the endpoint create
        // fail with AlreadyExists, which reads it into the index, and the engine plans again
        // with it (one more attempt, only then).
        let adding = ADDING.with(Cell::get);
        let missing: Vec<EndpointKey> = {
            let inner = lock(&self.shared.inner);
            endpoints
                .iter()
                .filter(|k| match inner.index.get(k) {
                    None => !adding,
                    Some(e) => e.object.is_none(),
                })
                .cloned()
                .collect()
        };
        let mut fetched = Vec::new();
        for key in missing {
            let got = self
                .rt
                .block_on(self.writer.get_endpoint(&key, &self.shared.stats))
                .map_err(|e| StoreError::new(e.to_string()))?;
            if let Some(found) = got {
                fetched.push(found);
            }
        }
        let mut inner = lock(&self.shared.inner);
        for (v, ep) in &fetched {
            inner.put_endpoint(*v, ep.clone());
        }
        let mut snap = inner.state.snapshot(&[]);
        for key in endpoints {
            if let Some(Entry {
                version,
                object: Some(o),
                ..
            }) = inner.index.get(key)
            {
                snap.insert_endpoint(*version, Arc::clone(o));
            }
        }
        for (v, ep) in fetched {
            let key = index::key_of(&ep);
            if inner.index.get(&key).is_none_or(|e| e.object.is_none()) {
                snap.insert_endpoint(v, Arc::new(ep));
            }
        }
        Ok(snap)
    }

    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        let mut inner = lock(&self.shared.inner);
        let pool_part = ChangeSet {
            pools: changes.pools.clone(),
            endpoints: Vec::new(),
        };
        inner.state.check(&pool_part)?;
        check_endpoints_locally(&inner, changes)?;
        // The plan took an unclaimed address while a claim ahead is in flight for its pool:
        // wait for that claim (its addresses are this node's next ones) and plan again,
        // rather than send a second claim of this node's entry that would conflict with it.
        if let Some(pool) = self.claims_while_ahead(&inner, changes) {
            drop(inner);
            self.wait_ahead(&pool);
            return Err(CommitError::conflict(
                format!("SpiderIPPool/{pool}"),
                None,
                None,
            ));
        }
        self.claim_for(&mut inner, changes)?;
        let pool_part = at_current_versions(&inner, &pool_part);
        // The view now shows the status the claim wrote, which may hold other nodes' claims
        // made just before or after it (an address listed twice is nobody's for a moment):
        // a planned address no longer free there means "plan again", not a broken plan.
        inner.state.check(&pool_part).map_err(|e| match e {
            CommitError::Rejected(r) => CommitError::Conflict {
                object: format!(
                    "SpiderIPPool/{}",
                    changes
                        .pools
                        .iter()
                        .map(|pc| pc.pool.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                expected: "the view planned on".to_owned(),
                found: format!("a view changed by concurrent claims ({r})"),
            },
            other => other,
        })?;
        let mut committed = Committed::default();
        for ec in &changes.endpoints {
            let key = ec.key().clone();
            let res = match ec {
                EndpointChange::Put {
                    expected_version,
                    endpoint,
                    ..
                } => self
                    .rt
                    .block_on(self.writer.put_endpoint(
                        endpoint,
                        *expected_version,
                        &self.shared.stats,
                    ))
                    .map(|(v, ep)| {
                        inner.put_endpoint(v, ep);
                        Some(v)
                    }),
                EndpointChange::Delete {
                    expected_version, ..
                } => self
                    .rt
                    .block_on(self.writer.delete_endpoint(
                        &key,
                        *expected_version,
                        &self.shared.stats,
                    ))
                    .map(|()| {
                        inner.remove_endpoint(&key, None);
                        None
                    }),
            };
            match res {
                Ok(v) => {
                    committed.endpoints.insert(key, v);
                }
                Err(e) => {
                    if let WriteError::Conflict(_) = e
                        && let Ok(fresh) = self
                            .rt
                            .block_on(self.writer.get_endpoint(&key, &self.shared.stats))
                    {
                        match fresh {
                            Some((v, ep)) => inner.put_endpoint(v, ep),
                            None => inner.remove_endpoint(&key, None),
                        }
                    }
                    return Err(e.into_commit());
                }
            }
        }
        // The endpoints are written, and the index already rebuilt the views of their pools
        // from them (the endpoints are the records): nothing else to apply.
        let snap = inner.state.snapshot(&[]);
        for pc in &changes.pools {
            if let Some(v) = snap.pool_version(&pc.pool) {
                committed.pools.insert(pc.pool.clone(), v);
            }
            let now = Instant::now();
            inner.dirty.entry(pc.pool.clone()).or_insert(now);
            inner.touched.insert(pc.pool.clone(), now);
        }
        self.claim_ahead(&inner, changes);
        Ok(committed)
    }
}

/// What the maintenance thread holds: the store's parts, weakly (the thread ends with the
/// store).
struct KubeStoreHandle {
    rt: tokio::runtime::Handle,
    writer: Writer,
    opts: KubeStoreOptions,
    shared: std::sync::Weak<Shared>,
}

impl KubeStoreHandle {
    fn run(self, rx: mpsc::Receiver<watch::FeedEvent>) {
        let mut relists = watch::Relists::default();
        let mut last_tick = Instant::now();
        // The ask of each (pool, waiting node) this node last answered.
        let mut answered: BTreeMap<(String, String), i64> = BTreeMap::new();
        // Contested addresses of this node's blocks at the last tick, by pool.
        let mut contested: BTreeMap<String, spiderpool_core::ip::IpRangeSet> = BTreeMap::new();
        loop {
            let ev = rx.recv_timeout(self.opts.count_interval);
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            match ev {
                Ok(first) => {
                    let mut inner = lock(&shared.inner);
                    relists.apply(&mut inner, first);
                    // Apply what else is queued under the same lock.
                    while let Ok(more) = rx.try_recv() {
                        relists.apply(&mut inner, more);
                    }
                    let someone_waits = inner
                        .pools
                        .values()
                        .any(|e| e.layout.waiting().iter().any(|n| n != &self.opts.node));
                    drop(inner);
                    shared.changed.notify_all();
                    // A node waits for addresses: hand back at once, not at the next tick.
                    if someone_waits {
                        self.hand_back(&shared, Some(&mut answered));
                    }
                    if relists.synced.len() == 3 {
                        let mut s = shared
                            .synced
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if !*s {
                            *s = true;
                            shared.synced_cv.notify_all();
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if last_tick.elapsed() >= self.opts.count_interval {
                last_tick = Instant::now();
                self.hand_back(&shared, None);
                self.write_counts(&shared);
                self.clear_waiting(&shared);
                self.settle_contested(&shared, &mut contested);
            }
        }
    }

    /// Hands back the free addresses of this node's blocks in pools where another node
    /// waits. Done under the store's lock, write included: no commit of this node can take
    /// one of those addresses between computing them and the status write (a commit would
    /// otherwise see them as "unclaimed" in a view already shrunk, and keep one while the
    /// write removes it from the block).
    ///
    /// On a watch event (`eager` holds the ask of each waiter this node last answered) a
    /// node answers each ask of a waiter once: the waiter's flag stays set for a while after
    /// it was served, and giving again on every event made nodes hand addresses back and
    /// forth; a waiter that used up what it got asks again. At each tick (`eager` = None)
    /// every node with free addresses gives to the nodes still waiting.
    fn hand_back(&self, shared: &Shared, mut eager: Option<&mut BTreeMap<(String, String), i64>>) {
        let node = &self.opts.node;
        // A node with an ADD waiting for addresses gives nothing: what it has free was just
        // given to it (the ADD has not planned with it yet), and passing it on made waiting
        // nodes hand the same addresses round while each of them starved.
        let hungry: Vec<String> = shared
            .hungry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let mut inner = lock(&shared.inner);
        let pools: Vec<String> = inner
            .pools
            .iter()
            .filter(|(name, e)| {
                e.layout.waiting().iter().any(|n| n != node) && !hungry.contains(name)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in pools {
            let Some(free) = inner.free_in_my_block(&name).filter(|f| !f.is_empty()) else {
                continue;
            };
            let Some(entry) = inner.pools.get(&name) else {
                continue;
            };
            let mut waiters: Vec<String> = entry
                .layout
                .waiting()
                .iter()
                .filter(|n| *n != node)
                .cloned()
                .collect();
            if let Some(answered) = eager.as_deref() {
                waiters.retain(|w| {
                    answered.get(&(name.clone(), w.clone())) != Some(&entry.layout.asked(w))
                });
            }
            let asks: Vec<i64> = waiters.iter().map(|w| entry.layout.asked(w)).collect();
            if waiters.is_empty() {
                continue;
            }
            // The waiters' shares of the free addresses (each waiter's share, at least one
            // while there are some; this node keeps one share for its own next pods, or
            // nothing when it has not allocated in the pool for a while: the waiters need the
            // addresses now, it may never) go back to the pool, unclaimed, in one write that
            // touches only this node's entry; the waiters claim them. Writing them straight
            // into the waiters' blocks had every node answering an ask edit the same entry at
            // once, and all but one of those writes failed and were re-read and re-sent.
            let busy = inner
                .touched
                .get(&name)
                .is_some_and(|t| t.elapsed() < IDLE_GIVER);
            // A node that waited for addresses itself a moment ago and is still allocating
            // keeps what it got (it was handed back for it): giving it on had two waiting
            // nodes pass the same addresses back and forth.
            if busy && entry.layout.waiting().contains(node) {
                continue;
            }
            let waiters_asked = waiters.clone();
            let gifts = sharing::share_out(&free, waiters, busy);
            if gifts.is_empty() {
                continue;
            }
            let object = entry.object.clone();
            let res = self.rt.block_on(self.writer.edit_pool_status(
                object,
                Purpose::HandBack,
                writes::STATUS_ATTEMPTS,
                &shared.stats,
                |l| {
                    for (_, give) in &gifts {
                        l.hand_back(node, give);
                    }
                    Ok(())
                },
            ));
            match res {
                Ok((v, written, ())) => {
                    inner.put_pool(v, written);
                    if let Some(answered) = eager.as_deref_mut() {
                        for (w, n) in waiters_asked.iter().zip(&asks) {
                            if gifts.iter().any(|(g, _)| g == w) {
                                answered.insert((name.clone(), w.clone()), *n);
                            }
                        }
                    }
                }
                Err(e) => log::warn!(
                    "SpiderIPPool {name}: cannot give free addresses to {}: {e}",
                    gifts
                        .iter()
                        .map(|(w, _)| w.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    }

    /// Gives up the addresses of this node's blocks that another block has listed too since
    /// the last tick and no endpoint of this node holds. The node whose claim made such an
    /// overlap gives them up at once; this catches an agent that died before it could, or a
    /// give-up write that failed. (If both nodes give them up, the addresses are unclaimed
    /// again: no harm.)
    fn settle_contested(
        &self,
        shared: &Shared,
        seen: &mut BTreeMap<String, spiderpool_core::ip::IpRangeSet>,
    ) {
        let mut inner = lock(&shared.inner);
        let names: Vec<String> = inner.pools.keys().cloned().collect();
        let mut now = BTreeMap::new();
        for name in names {
            let c = inner.contested_unheld(&name);
            if c.is_empty() {
                continue;
            }
            if let Some(prev) = seen.get(&name) {
                let stale = c.intersection(prev);
                if !stale.is_empty() {
                    give_up(
                        &self.rt,
                        &self.writer,
                        &shared.stats,
                        &self.opts.node,
                        &mut inner,
                        &name,
                        &stale,
                    );
                }
            }
            now.insert(name, c);
        }
        *seen = now;
    }

    /// Clears this node's waiting flags in pools where it has not starved for a second.
    fn clear_waiting(&self, shared: &Shared) {
        let node = &self.opts.node;
        let quiet = Duration::from_secs(1);
        let due: Vec<SpiderIPPool> = {
            let starved = shared
                .starved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let inner = lock(&shared.inner);
            inner
                .pools
                .iter()
                .filter(|(name, e)| {
                    e.layout.waiting().contains(node)
                        && starved.get(*name).is_none_or(|t| t.elapsed() >= quiet)
                })
                .map(|(_, e)| e.object.clone())
                .collect()
        };
        for pool in due {
            let name = pool.metadata.name.clone().unwrap_or_default();
            let res = self.rt.block_on(self.writer.edit_pool_status(
                pool,
                Purpose::Waiting,
                writes::STATUS_ATTEMPTS,
                &shared.stats,
                |l| {
                    l.set_waiting(node, false);
                    Ok(())
                },
            ));
            match res {
                Ok((v, written, ())) => {
                    lock(&shared.inner).put_pool(v, written);
                }
                Err(e) => log::warn!("SpiderIPPool {name}: cannot clear waiting: {e}"),
            }
        }
    }

    /// Writes the count of this node's block where it changed (the pool's total is the sum
    /// of the blocks' counts). One attempt per tick, so agents do not storm the pool object
    /// with retries: a conflict is tried again at the next tick.
    fn write_counts(&self, shared: &Shared) {
        let node = &self.opts.node;
        let quiet = self.opts.count_interval;
        let now = Instant::now();
        let work: Vec<(SpiderIPPool, i64)> = {
            let mut inner = lock(&shared.inner);
            // A pool's count is written once this node has not allocated in it for
            // `count_interval`, or when it has been stale for 4 intervals: during a burst every
            // status write would invalidate the other nodes' claims in flight (409s), and the
            // count is for people and for the exhaustion estimate, which tolerates lag.
            let due: Vec<String> = inner
                .dirty
                .iter()
                .filter(|(p, since)| {
                    let idle = inner
                        .touched
                        .get(*p)
                        .is_none_or(|t| now.duration_since(*t) >= quiet);
                    idle || now.duration_since(**since) >= quiet * 4
                })
                .map(|(p, _)| p.clone())
                .collect();
            due.into_iter()
                .filter_map(|p| {
                    inner.dirty.remove(&p);
                    let e = inner.pools.get(&p)?;
                    let has_block = e.layout.blocks().any(|(n, _)| n == node);
                    let held = inner.held_in_my_block(&p);
                    (has_block && e.layout.count(node) != Some(held))
                        .then(|| (e.object.clone(), held))
                })
                .collect()
        };
        for (pool, held) in work {
            let name = pool.metadata.name.clone().unwrap_or_default();
            let res = self.rt.block_on(self.writer.edit_pool_status(
                pool,
                Purpose::Count,
                1,
                &shared.stats,
                |l| {
                    l.set_count(node, held);
                    Ok(())
                },
            ));
            let mut inner = lock(&shared.inner);
            match res {
                Ok((v, written, ())) => {
                    inner.put_pool(v, written);
                }
                // Another writer was faster: expected now and then, tried at the next tick.
                Err(e @ WriteError::Conflict(_)) => {
                    log::debug!("SpiderIPPool {name}: count not written this time: {e}");
                }
                // Anything else (a refused permission, an unreachable apiserver) must be seen.
                Err(e) => log::warn!("SpiderIPPool {name}: cannot write this node's count: {e}"),
            }
            // Holders may have changed meanwhile: look again at the next tick.
            inner.dirty.entry(name).or_insert_with(Instant::now);
        }
    }
}
