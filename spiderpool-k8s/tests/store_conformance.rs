//! The IpamStore conformance suite (test-kit) on the Kubernetes store against a real
//! kube-apiserver: generated allocate / release / re-create / stale / conflicting / foreign
//! DEL sequences, the invariants checked after each step, and the same state as the memory
//! store in lockstep. Fewer cases than for the in-process stores: every step is apiserver
//! round trips.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use spiderpool_core::ipam::IpamStore;
use spiderpool_core::objects::{IPPOOL, RESERVEDIP, SpiderIPPool, SpiderReservedIP};
use spiderpool_k8s::kinds::{api_resource, to_dynamic};
use spiderpool_k8s::store::{KubeStore, KubeStoreOptions};
use spiderpool_k8s::testing::{TestCluster, unique_name};
use spiderpool_test_kit::conformance::{self, BoxError, Config, ConformanceStore};

struct KubeCase {
    rt: tokio::runtime::Handle,
    cluster: TestCluster,
    store: KubeStore,
    prefix: String,
}

impl KubeCase {
    /// Waits until the store's watch has `pool` (creation through the apiserver is
    /// asynchronous for the watch; the suite expects `put_pool` to be visible at once).
    fn await_pool(&self, name: &str) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.store.snapshot(&[])?.pool(name).is_none() {
            if Instant::now() > deadline {
                return Err(format!("pool {name} never seen by the store").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl ConformanceStore for KubeCase {
    fn store(&self) -> &dyn IpamStore {
        &self.store
    }

    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), BoxError> {
        let api: Api<DynamicObject> =
            Api::all_with(self.cluster.client.clone(), &api_resource(&IPPOOL));
        let name = pool.metadata.name.clone().unwrap_or_default();
        self.rt
            .block_on(api.create(&PostParams::default(), &to_dynamic(&pool)?))?;
        self.await_pool(&name)
    }

    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), BoxError> {
        let api: Api<DynamicObject> =
            Api::all_with(self.cluster.client.clone(), &api_resource(&RESERVEDIP));
        self.rt
            .block_on(api.create(&PostParams::default(), &to_dynamic(&reserved)?))?;
        // Reserved addresses reach the views through the watch: wait for the rebuild.
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    fn prefix(&self) -> String {
        self.prefix.clone()
    }

    fn namespace(&self) -> String {
        self.cluster.namespace.clone()
    }
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_store_passes_the_ipam_store_conformance_suite() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config {
        cases: 8,
        max_ops: 25,
        compare_with_reference: true,
    };
    conformance::run(&config, || {
        let cluster = rt
            .block_on(TestCluster::new("conformance"))
            .expect("cluster");
        let prefix = format!("{}-", unique_name("cf"));
        let store = KubeStore::start(
            rt.handle().clone(),
            cluster.client.clone(),
            KubeStoreOptions::new(unique_name("cf-node")),
            Duration::from_secs(30),
        )
        .expect("store");
        KubeCase {
            rt: rt.handle().clone(),
            cluster,
            store,
            prefix,
        }
    });
}
