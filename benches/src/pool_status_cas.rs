//! Upstream's allocation strategy on Kubernetes, as the baseline of the `k8s_ipam` harness:
//! every record of a pool lives in its `status.allocatedIPs` JSON, and each allocation is
//! one optimistic update of that status (read from a watch cache, written with its
//! resourceVersion, retried a few times on 409), then the SpiderEndpoint is created.
//!
//! It implements the same [`IpamStore`] contract as our [`spiderpool_k8s::store::KubeStore`],
//! so the IPAM engine and the harness drive both identically.

use spiderpool_core::ipam::{CommitError, IpamError, StoreError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use spiderpool_core::ipam::{
    ChangeSet, Committed, EndpointChange, EndpointKey, IpamStore, PoolState, Snapshot,
};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderEndpoint, SpiderIPPool};
use spiderpool_k8s::kinds::{api_resource, from_dynamic, resource_version, to_dynamic};

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e.to_string())
}

/// A change set that does not apply to the pool read back.
fn rejected(e: IpamError) -> CommitError {
    CommitError::Rejected(Box::new(e))
}

/// The baseline store.
pub struct PoolStatusStore {
    rt: tokio::runtime::Handle,
    client: Client,
    pools: Arc<Mutex<BTreeMap<String, (u64, SpiderIPPool)>>>,
    /// Writes sent.
    pub writes: AtomicU64,
    /// Writes refused with 409.
    pub conflicts: AtomicU64,
}

impl PoolStatusStore {
    /// Starts a watch of the pools (upstream's informer) and waits for its first list.
    pub fn start(rt: tokio::runtime::Handle, client: Client) -> Self {
        let pools: Arc<Mutex<BTreeMap<String, (u64, SpiderIPPool)>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        {
            let pools = Arc::clone(&pools);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&IPPOOL));
            rt.spawn(async move {
                let mut s = watcher::watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(Ok(ev)) = s.next().await {
                    let mut map = pools.lock().unwrap_or_else(|p| p.into_inner());
                    match ev {
                        Event::Apply(o) | Event::InitApply(o) => {
                            if let Ok(p) = from_dynamic::<SpiderIPPool>(&o) {
                                let name = p.metadata.name.clone().unwrap_or_default();
                                let v = resource_version(&o);
                                if map.get(&name).is_none_or(|(old, _)| *old < v) {
                                    map.insert(name, (v, p));
                                }
                            }
                        }
                        Event::Delete(o) => {
                            map.remove(o.metadata.name.as_deref().unwrap_or_default());
                        }
                        Event::InitDone => {
                            let _ = tx.send(());
                        }
                        Event::Init => {}
                    }
                }
            });
        }
        let _ = rx.recv();
        PoolStatusStore {
            rt,
            client,
            pools,
            writes: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        }
    }

    fn endpoints(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &api_resource(&ENDPOINT))
    }
}

impl IpamStore for PoolStatusStore {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError> {
        let mut snap = Snapshot::new();
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (v, p) in pools.values() {
            // Upstream parses allocatedIPs on every allocation too.
            if let Ok(state) = PoolState::from_pool(p, &[]) {
                snap.insert_pool(*v, Arc::new(state));
            }
        }
        for key in endpoints {
            let got = self
                .rt
                .block_on(self.endpoints(&key.namespace).get_opt(&key.name))
                .map_err(store_err)?;
            if let Some(o) = got {
                let ep: SpiderEndpoint = from_dynamic(&o).map_err(store_err)?;
                snap.insert_endpoint(resource_version(&o), Arc::new(ep));
            }
        }
        Ok(snap)
    }

    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        let mut committed = Committed::default();
        for pc in &changes.pools {
            let cached = self
                .pools
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&pc.pool)
                .cloned();
            let Some((v, pool)) = cached.filter(|(v, _)| *v == pc.expected_version) else {
                return Err(CommitError::Conflict {
                    object: format!("SpiderIPPool/{}", pc.pool),
                    expected: pc.expected_version.to_string(),
                    found: "newer".into(),
                });
            };
            let mut state = PoolState::from_pool(&pool, &[]).map_err(rejected)?;
            for op in &pc.ops {
                state.apply_op(op).map_err(rejected)?;
            }
            let mut next = pool.clone();
            next.metadata.resource_version = Some(v.to_string());
            next.status = Some(state.to_status());
            let obj = to_dynamic(&next).map_err(store_err)?;
            let api: Api<DynamicObject> =
                Api::all_with(self.client.clone(), &api_resource(&IPPOOL));
            self.writes.fetch_add(1, Ordering::Relaxed);
            match self
                .rt
                .block_on(api.replace_status(&pc.pool, &PostParams::default(), &obj))
            {
                Ok(written) => {
                    let nv = resource_version(&written);
                    if let Ok(p) = from_dynamic::<SpiderIPPool>(&written) {
                        let mut map = self.pools.lock().unwrap_or_else(|p| p.into_inner());
                        if map.get(&pc.pool).is_none_or(|(old, _)| *old < nv) {
                            map.insert(pc.pool.clone(), (nv, p));
                        }
                    }
                    committed.pools.insert(pc.pool.clone(), nv);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    return Err(CommitError::Conflict {
                        object: format!("SpiderIPPool/{}", pc.pool),
                        expected: v.to_string(),
                        found: "newer".into(),
                    });
                }
                Err(e) => return Err(store_err(e).into()),
            }
        }
        for ec in &changes.endpoints {
            if let EndpointChange::Put {
                key,
                expected_version: None,
                endpoint,
            } = ec
            {
                let obj = to_dynamic(endpoint.as_ref()).map_err(store_err)?;
                self.writes.fetch_add(1, Ordering::Relaxed);
                let written = self
                    .rt
                    .block_on(
                        self.endpoints(&key.namespace)
                            .create(&PostParams::default(), &obj),
                    )
                    .map_err(store_err)?;
                committed
                    .endpoints
                    .insert(key.clone(), Some(resource_version(&written)));
            }
            // The harness only allocates fresh pods; updates and deletes are not measured.
        }
        Ok(committed)
    }
}
