//! The conformance suite passes on `MemoryStore` and catches broken stores: one that ignores
//! versions (no compare-and-swap) and one that writes part of a conflicting change set.

use std::panic::{AssertUnwindSafe, catch_unwind};

use spiderpool_core::ipam::{ChangeSet, Committed, EndpointKey, IpamStore, MemoryStore, Snapshot};
use spiderpool_core::ipam::{CommitError, StoreError};
use spiderpool_core::objects::{SpiderIPPool, SpiderReservedIP};
use spiderpool_test_kit::conformance::{self, BoxError, Config, ConformanceStore, Op, Spoil};

/// How a [`Broken`] store misbehaves.
#[derive(Clone, Copy)]
enum Flaw {
    /// Commits whatever the versions say.
    NoCas,
    /// On a conflict, still writes the first pool change.
    Partial,
}

struct Broken(MemoryStore, Flaw);

impl Broken {
    /// `changes` with every expected version set to the store's current one.
    fn rebased(&self, changes: &ChangeSet) -> ChangeSet {
        let keys: Vec<EndpointKey> = changes.endpoints.iter().map(|e| e.key().clone()).collect();
        let snap = self.0.snapshot(&keys).expect("snapshot");
        let mut c = changes.clone();
        for p in &mut c.pools {
            p.expected_version = snap.pool_version(&p.pool).expect("pool");
        }
        for e in &mut c.endpoints {
            let now = snap.endpoint(e.key()).map(|(v, _)| v);
            match e {
                spiderpool_core::ipam::EndpointChange::Put {
                    expected_version, ..
                } => {
                    *expected_version = now;
                }
                spiderpool_core::ipam::EndpointChange::Delete {
                    expected_version, ..
                } => {
                    *expected_version = now.unwrap_or(*expected_version);
                }
            }
        }
        c
    }
}

impl IpamStore for Broken {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError> {
        self.0.snapshot(endpoints)
    }

    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        match self.1 {
            Flaw::NoCas => self.0.commit(&self.rebased(changes)),
            Flaw::Partial => self.0.commit(changes).inspect_err(|_| {
                let mut first = self.rebased(changes);
                first.pools.truncate(1);
                first.endpoints.clear();
                let _ = self.0.commit(&first);
            }),
        }
    }
}

impl ConformanceStore for Broken {
    fn store(&self) -> &dyn IpamStore {
        self
    }
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), BoxError> {
        Ok(self.0.put_pool(pool)?)
    }
    fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), BoxError> {
        Ok(self.0.put_reserved_ip(r)?)
    }
}

fn failure(flaw: Flaw) -> String {
    let run = || conformance::run(&Config::with_cases(64), || Broken(MemoryStore::new(), flaw));
    let err = catch_unwind(AssertUnwindSafe(run)).expect_err("the suite must reject the store");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn memory_store_conforms() {
    conformance::run(&Config::with_cases(64), MemoryStore::new);
    conformance::run_concurrent(MemoryStore::new, 4, 10);
}

#[test]
fn a_store_without_compare_and_swap_is_caught() {
    let msg = failure(Flaw::NoCas);
    assert!(msg.contains("IpamStore conformance"), "{msg}");
    // The smallest failing case is one spoiled commit that went through.
    let mut s = Broken(MemoryStore::new(), Flaw::NoCas);
    let e = conformance::run_ops(&mut s, &[Op::Conflict(0, Spoil::Pool)], false).unwrap_err();
    assert!(
        e.to_string()
            .contains("a commit at a wrong version succeeded"),
        "{e}"
    );
}

#[test]
fn a_store_that_writes_part_of_a_conflicting_commit_is_caught() {
    let msg = failure(Flaw::Partial);
    assert!(msg.contains("wrote something"), "{msg}");
}
