//! Property tests of the IPAM engine against `MemoryStore`, through the workspace's
//! `IpamStore` conformance suite (`spiderpool-test-kit`): arbitrary interleavings of
//! allocate, retried allocate, release, pod re-creation, stale and deliberately conflicting
//! commits over small v4 and v6 pools with excludeIPs and reserved IPs, checked against a
//! model after every step; then many threads allocating from one pool.

use spiderpool_core::ipam::{IpamStore, MemoryStore};
use spiderpool_test_kit::conformance::{self, Config};

#[test]
fn ipam_props_interleavings() {
    conformance::run(&Config::with_cases(200), MemoryStore::new);
}

#[test]
fn ipam_props_concurrent_threads_distinct_then_exhausted() {
    conformance::run_concurrent(MemoryStore::new, 8, 25);
    let store = MemoryStore::new();
    let dyn_store: &dyn IpamStore = &store;
    assert!(dyn_store.snapshot(&[]).is_ok(), "the trait is object-safe");
}
