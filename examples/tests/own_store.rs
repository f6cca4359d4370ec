//! The `own-store` example: it runs and prints the allocations, the release and the
//! records read back from its file; and its `JsonFileStore` passes the `IpamStore`
//! conformance suite every store must pass (reopening from the file included).

mod support;

#[path = "../own-store/store.rs"]
mod store;

use spiderpool_core::ipam::IpamStore;
use spiderpool_core::objects::{SpiderIPPool, SpiderReservedIP};
use spiderpool_test_kit::conformance::{self, BoxError, Config, ConformanceStore};
use store::JsonFileStore;

#[test]
fn own_store_allocates_for_two_pods_releases_one_and_reads_the_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ipam.json");
    let out = support::run("own-store", &[file.to_str().unwrap()], &[], b"");
    let (stdout, stderr) = support::texts(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let expected = [
        "allocated default/pod-a net1: 10.6.168.101/16 (pool v4-pool, gateway 10.6.0.1), \
         fd00:6::101/64 (pool v6-pool, gateway fd00:6::1)",
        "allocated default/pod-b net1: 10.6.168.102/16 (pool v4-pool, gateway 10.6.0.1), \
         fd00:6::102/64 (pool v6-pool, gateway fd00:6::1)",
        "released default/pod-a: Released, 10.6.168.101 to v4-pool, fd00:6::101 to v6-pool",
        "  v4-pool: 10.6.168.102 -> default/pod-b",
        "  v6-pool: fd00:6::102 -> default/pod-b",
    ];
    for line in expected {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    // The file the example left holds pod-b's records only, as upstream's pool status does.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        saved["pools"][0]["status"]["allocatedIPs"],
        r#"{"10.6.168.102":{"pod":"default/pod-b","podUid":"uid-b"}}"#,
        "{saved:#}"
    );
}

/// The example's store, as the conformance suite drives it.
struct Case {
    _dir: tempfile::TempDir,
    store: JsonFileStore,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = JsonFileStore::open(dir.path().join("ipam.json")).expect("an empty store");
        Case { _dir: dir, store }
    }
}

impl ConformanceStore for Case {
    fn store(&self) -> &dyn IpamStore {
        &self.store
    }

    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), BoxError> {
        Ok(self.store.put_pool(pool)?)
    }

    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), BoxError> {
        Ok(self.store.put_reserved_ip(reserved)?)
    }

    fn reopen(&mut self) -> Result<(), BoxError> {
        self.store = JsonFileStore::open(self.store.path())?;
        Ok(())
    }
}

#[test]
fn json_file_store_passes_the_conformance_suite() {
    conformance::run(&Config::with_cases(48), Case::new);
}

#[test]
fn json_file_store_threads_never_share_an_address() {
    conformance::run_concurrent(Case::new, 4, 10);
}
