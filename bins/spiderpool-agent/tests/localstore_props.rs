//! Property tests of `LocalStore` through the workspace's `IpamStore` conformance suite
//! (`spiderpool-test-kit`): the interleavings core's `MemoryStore` passes (allocate, retried
//! allocate, release, pod re-creation, stale and conflicting commits over v4 and v6 pools with
//! excludeIPs and reserved IPs), in lockstep with a `MemoryStore` that must end up with the
//! same records and endpoints; generated `Reopen` steps close the store and open it again
//! from disk (half the cases with aggressive compaction), reloading the pool definitions the
//! way the agent does on start.

use std::path::Path;
use std::sync::Mutex;

use spiderpool_agent::localstore::{LocalStore, LocalStoreOptions};
use spiderpool_core::ipam::IpamStore;
use spiderpool_core::objects::{
    SpiderIPPool, SpiderIPPoolSpec, SpiderReservedIP, SpiderReservedIPSpec,
};
use spiderpool_test_kit::conformance::{self, BoxError, Config, ConformanceStore};

/// A local store in its own temp dir, remembering the definitions it was given so a reopen
/// can reload them.
struct Local {
    /// `None` only between closing and reopening.
    store: Option<LocalStore>,
    dir: tempfile::TempDir,
    compact: u64,
    pools: Mutex<Vec<SpiderIPPool>>,
    reserved: Mutex<Vec<SpiderReservedIP>>,
}

fn open(dir: &Path, compact: u64) -> Result<LocalStore, BoxError> {
    let options = LocalStoreOptions {
        compact_after_bytes: compact,
    };
    let (store, report) = LocalStore::open_with(dir, options)?;
    if report.torn_bytes != 0 {
        return Err(format!("a clean close left a torn tail: {report:?}").into());
    }
    Ok(store)
}

impl Local {
    fn new(compact: u64) -> Local {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), compact).expect("open a new local store");
        Local {
            store: Some(store),
            dir,
            compact,
            pools: Mutex::default(),
            reserved: Mutex::default(),
        }
    }
}

impl Local {
    fn live(&self) -> &LocalStore {
        self.store.as_ref().expect("the store is open")
    }
}

impl ConformanceStore for Local {
    fn store(&self) -> &dyn IpamStore {
        self.live()
    }

    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), BoxError> {
        self.live().put_pool(pool.clone())?;
        self.pools.lock().map_err(|e| e.to_string())?.push(pool);
        Ok(())
    }

    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), BoxError> {
        self.live().put_reserved_ip(reserved.clone())?;
        self.reserved
            .lock()
            .map_err(|e| e.to_string())?
            .push(reserved);
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), BoxError> {
        // Close first, as a restarted agent does.
        self.store = None;
        let store = self.store.insert(open(self.dir.path(), self.compact)?);
        let pools = self.pools.lock().map_err(|e| e.to_string())?.clone();
        let reserved = self.reserved.lock().map_err(|e| e.to_string())?.clone();
        let report = store.set_pools(&pools, &reserved)?;
        if !report.rejected.is_empty() || !report.orphaned.is_empty() {
            return Err(format!("reloading the definitions: {report:?}").into());
        }
        if !store.orphaned_pools().is_empty() {
            return Err("orphaned pools after a reopen".into());
        }
        Ok(())
    }
}

#[test]
fn localstore_props_lockstep_with_memory_store_and_reopen() {
    let mut case = 0u64;
    conformance::run(&Config::with_cases(128), || {
        case += 1;
        // Every other case compacts after (almost) every commit.
        let compact = if case.is_multiple_of(2) {
            u64::MAX
        } else {
            case * 997 % 4096
        };
        Local::new(compact)
    });
}

#[test]
fn localstore_props_concurrent_threads_distinct_then_exhausted() {
    conformance::run_concurrent(|| Local::new(u64::MAX), 8, 25);
}

fn pool(name: &str, subnet: &str, ips: &str, exclude: &[&str]) -> SpiderIPPool {
    SpiderIPPool::new(
        name,
        SpiderIPPoolSpec {
            subnet: subnet.into(),
            ips: Some(vec![ips.into()]),
            exclude_ips: Some(exclude.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        },
    )
}

#[test]
fn localstore_props_set_pools_equals_put_pool() {
    let pools = [
        pool("a", "10.0.0.0/24", "10.0.0.1-10.0.0.6", &["10.0.0.3"]),
        pool("b", "10.0.1.0/24", "10.0.1.1-10.0.1.3", &[]),
        pool("c", "fd00::/120", "fd00::1-fd00::6", &["fd00::2"]),
    ];
    let reserved = [("r4", 4, "10.0.0.5"), ("r6", 6, "fd00::4")].map(|(name, v, ip)| {
        let spec = SpiderReservedIPSpec {
            ip_version: Some(v),
            ips: Some(vec![ip.into()]),
        };
        SpiderReservedIP::new(name, spec)
    });
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = LocalStore::open(&dir.path().join("a")).unwrap();
    for p in &pools {
        a.put_pool(p.clone()).unwrap();
    }
    for r in &reserved {
        a.put_reserved_ip(r.clone()).unwrap();
    }
    let (b, _) = LocalStore::open(&dir.path().join("b")).unwrap();
    b.set_pools(&pools, &reserved).unwrap();
    for name in ["a", "b", "c"] {
        let (pa, pb) = (a.pool_state(name).unwrap(), b.pool_state(name).unwrap());
        assert_eq!(pa.free(), pb.free(), "free set of {name}");
        assert!(!pa.free().is_empty(), "{name} has room");
    }
}
