//! The pool controller beside agents' stores on one real apiserver (a private control plane):
//! three nodes allocate a pool's addresses while the controller runs and the pool's spec
//! grows. The controller's status writes never cost an allocation or a block, the counts end
//! right, and the emptied pool goes once deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use spiderpool_controller::{Ctx, ippool};
use spiderpool_core::ipam::{
    AllocateRequest, EndpointKey, PodInfo, ReleaseRequest, TopController, release_with_retry,
};
use spiderpool_core::objects::{IPPOOL, SpiderIPPool, SpiderIPPoolSpec};
use spiderpool_k8s::kinds::{api_resource, from_dynamic, to_dynamic};
use spiderpool_k8s::store::{KubeStore, KubeStoreOptions};
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

const POOL: &str = "shared";

fn request(ns: &str, pod: &str, node: &str) -> AllocateRequest {
    let uid = format!("uid-{pod}");
    AllocateRequest {
        container_id: format!("c-{pod}"),
        ifname: "net1".into(),
        pod: PodInfo {
            namespace: ns.into(),
            name: pod.into(),
            uid: uid.clone(),
            node: node.into(),
            controller: TopController::orphan(ns, pod, &uid),
            ..Default::default()
        },
        default_ipv4_ippool: vec![POOL.into()],
        ..Default::default()
    }
}

fn pool(api: &Api<DynamicObject>, rt: &tokio::runtime::Runtime) -> SpiderIPPool {
    from_dynamic(&rt.block_on(api.get(POOL)).unwrap()).unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs apiserver"]
fn ippool_controller_and_agents_share_a_pool_without_fighting() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tc = rt.block_on(TestCluster::on(&plane, "pool-agents")).unwrap();
    let pools: Api<DynamicObject> = Api::all_with(tc.client.clone(), &api_resource(&IPPOOL));
    let mut p = SpiderIPPool::new(
        POOL,
        SpiderIPPoolSpec {
            subnet: "10.6.0.0/16".into(),
            ips: Some(vec!["10.6.1.0-10.6.1.59".into()]),
            ..Default::default()
        },
    );
    p.metadata.finalizers = Some(vec!["spiderpool.spidernet.io".into()]);
    rt.block_on(pools.create(&PostParams::default(), &to_dynamic(&p).unwrap()))
        .unwrap();
    let ctl = rt.spawn(ippool::run(
        Ctx::new(tc.client.clone()),
        ippool::Args {
            retry_delay: Duration::from_millis(200),
            ..ippool::Args::default()
        },
    ));
    let stores: Vec<Arc<KubeStore>> = (0..3)
        .map(|i| {
            let mut opts = KubeStoreOptions::new(format!("node-{i}"));
            opts.count_interval = Duration::from_millis(50);
            Arc::new(
                KubeStore::start(
                    rt.handle().clone(),
                    tc.client.clone(),
                    opts,
                    Duration::from_secs(30),
                )
                .unwrap(),
            )
        })
        .collect();
    for s in &stores {
        wait_for("the pool in every store", || {
            s.pools()
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(POOL))
        });
    }

    // Allocate on three nodes while the spec grows by 10 addresses: the controller writes
    // totalIPCount in the middle of the agents' block claims.
    let ns = tc.namespace.clone();
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (s, ns) = (Arc::clone(s), ns.clone());
            std::thread::spawn(move || {
                (0..20)
                    .map(|k| {
                        s.allocate(&request(&ns, &format!("p{i}-{k}"), &format!("node-{i}")))
                            .map(|d| {
                                d.result
                                    .current()
                                    .and_then(|n| n.ipv4.as_ref())
                                    .map(|c| c.address)
                            })
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let grow = json!({"spec": {"ips": ["10.6.1.0-10.6.1.59", "10.6.2.0-10.6.2.9"]}});
    rt.block_on(pools.patch(POOL, &PatchParams::default(), &Patch::Merge(&grow)))
        .unwrap();
    let mut seen: BTreeSet<IpAddr> = BTreeSet::new();
    for h in handles {
        for r in h.join().unwrap() {
            let ip = r
                .expect("every allocation succeeds")
                .expect("an IPv4 address");
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
    }
    assert_eq!(seen.len(), 60);

    // Counts converge: total from the grown spec, allocated = the blocks' sum = 60.
    wait_for("totalIPCount 70 and allocatedIPCount 60", || {
        let st = pool(&pools, &rt).status.unwrap_or_default();
        st.total_ip_count == Some(70) && st.allocated_ip_count == Some(60)
    });
    let st = pool(&pools, &rt).status.unwrap();
    let blocks = st.blocks.unwrap();
    let sum: i64 = blocks.iter().filter_map(|b| b.allocated_ip_count).sum();
    assert_eq!(sum, 60);

    // Deleted while in use: it stays. Released: it goes.
    rt.block_on(pools.delete(POOL, &DeleteParams::default()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(rt.block_on(pools.get_opt(POOL)).unwrap().is_some());
    for (i, s) in stores.iter().enumerate() {
        for k in 0..20 {
            let pod = format!("p{i}-{k}");
            let rel = ReleaseRequest {
                container_id: format!("c-{pod}"),
                ifname: "net1".into(),
                endpoint: EndpointKey::new(&ns, &pod),
                pod_uid: Some(format!("uid-{pod}")),
                ..Default::default()
            };
            release_with_retry(s.as_ref(), &rel, 16).expect("release");
        }
    }
    wait_for("the emptied pool to go", || {
        rt.block_on(pools.get_opt(POOL)).unwrap().is_none()
    });
    ctl.abort();
}
