//! SpiderIPPool controller on a real apiserver (a private control plane: the controller acts
//! on every pool). The controller runs in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use spiderpool_controller::{Ctx, ippool};
use spiderpool_core::objects::{ENDPOINT, IPPOOL};
use spiderpool_k8s::kinds::api_resource;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// Polls `check` every 100 ms for up to 20 s; returns its first `Some`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn args() -> ippool::Args {
    ippool::Args {
        retry_delay: Duration::from_millis(300),
        ..ippool::Args::default()
    }
}

/// A pool as the mutating webhook leaves it (finalizer set), created around the webhook.
fn pool(name: &str, subnet: &str, ips: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
        "metadata": {"name": name, "finalizers": ["spiderpool.spidernet.io"]},
        "spec": {"subnet": subnet, "ips": ips},
    }))
    .unwrap()
}

fn count(p: &DynamicObject, key: &str) -> Option<i64> {
    p.data.pointer(&format!("/status/{key}"))?.as_i64()
}

async fn counts(api: &Api<DynamicObject>, name: &str, total: i64, allocated: i64) {
    eventually(
        &format!("{name}: totalIPCount {total}, allocatedIPCount {allocated}"),
        || async {
            let p = api.get(name).await.unwrap();
            (count(&p, "totalIPCount") == Some(total)
                && count(&p, "allocatedIPCount") == Some(allocated))
            .then_some(())
        },
    )
    .await;
}

async fn gone(api: &Api<DynamicObject>, name: &str) {
    eventually(&format!("pool {name} gone"), || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// Still there (with its finalizer) after the controller had time to act.
async fn stays(api: &Api<DynamicObject>, name: &str) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = api.get_opt(name).await.unwrap().expect("pool still there");
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(
        p.metadata.finalizers.as_deref(),
        Some(&["spiderpool.spidernet.io".to_owned()][..])
    );
}

async fn set_blocks(api: &Api<DynamicObject>, name: &str, blocks: Value) {
    let mut p = api.get(name).await.unwrap();
    p.data["status"]["blocks"] = blocks;
    api.replace_status(name, &PostParams::default(), &p)
        .await
        .unwrap();
}

#[test]
#[ignore = "needs apiserver"]
fn ippool_counts_follow_spec_and_blocks_and_the_finalizer_goes_when_empty() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tc = TestCluster::on(&plane, "ippool").await.unwrap();
        let pools: Api<DynamicObject> = Api::all_with(tc.client.clone(), &api_resource(&IPPOOL));
        let endpoints: Api<DynamicObject> =
            Api::namespaced_with(tc.client.clone(), &tc.namespace, &api_resource(&ENDPOINT));
        // Garbage first (written around the webhook), so the controller meets it early.
        pools
            .create(
                &PostParams::default(),
                &pool("garbage", "10.9.0.0/16", json!(["not-an-ip"])),
            )
            .await
            .unwrap();
        for (name, subnet) in [
            ("a", "10.6.0.0/16"),
            ("b", "10.7.0.0/16"),
            ("c", "10.8.0.0/16"),
        ] {
            let ips =
                json!([subnet.replace(".0.0/16", ".0.1-") + &subnet.replace(".0.0/16", ".0.10")]);
            pools
                .create(&PostParams::default(), &pool(name, subnet, ips))
                .await
                .unwrap();
        }
        let ctx = Ctx::new(tc.client.clone());
        let ctl = tokio::spawn(ippool::run(ctx.clone(), args()));

        // totalIPCount set; allocatedIPCount initialised.
        for name in ["a", "b", "c"] {
            counts(&pools, name, 10, 0).await;
        }
        // The garbage pool is reported and left without counts.
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(tc.client.clone(), "default");
        let note = eventually("a Warning Event on the garbage pool", || async {
            let list = events.list(&Default::default()).await.unwrap();
            list.items.into_iter().find_map(|e| {
                (e.regarding.as_ref()?.name.as_deref() == Some("garbage")
                    && e.type_.as_deref() == Some("Warning"))
                .then(|| e.note.unwrap_or_default())
            })
        })
        .await;
        assert!(note.contains("not-an-ip"), "{note}");
        assert_eq!(
            count(&pools.get("garbage").await.unwrap(), "totalIPCount"),
            None
        );

        // A spec change: the total follows (ips minus excludeIPs).
        let patch = json!({"spec": {"ips": ["10.6.0.1-10.6.0.20"], "excludeIPs": ["10.6.0.20"]}});
        pools
            .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        counts(&pools, "a", 19, 0).await;
        // allocatedIPCount is the blocks' sum (a status written without it gets it back).
        set_blocks(
            &pools,
            "a",
            json!([{"node": "n1", "ips": ["10.6.0.1-10.6.0.4"], "allocatedIPCount": 3},
                   {"node": "n2", "ips": ["10.6.0.5"], "allocatedIPCount": 1}]),
        )
        .await;
        counts(&pools, "a", 19, 4).await;
        // Pool gauges (upstream's names): the pool count, and a's total and free addresses.
        let text = eventually("a's gauges", || async {
            let text = ctx.metrics.encode(true);
            text.contains("spiderpool_debug_ippool_available_ip_counts{ippool=\"a\"} 15")
                .then_some(text)
        })
        .await;
        assert!(text.contains("spiderpool_total_ippool_counts 4"), "{text}");
        assert!(
            text.contains("spiderpool_debug_ippool_total_ip_counts{ippool=\"a\"} 19"),
            "{text}"
        );
        let blocks = pools.get("a").await.unwrap().data["status"]["blocks"].clone();
        assert_eq!(blocks.as_array().unwrap().len(), 2, "blocks untouched");

        // b: an endpoint holds one of its addresses: deletion waits for the endpoint.
        let ep: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderEndpoint",
            "metadata": {"name": "holder"},
            "status": {"current": {"uid": "u1", "node": "n1", "ips": [
                {"interface": "net1", "ipv4": "10.7.0.2/16", "ipv4Pool": "b"}]},
                "ownerControllerType": "Pod", "ownerControllerName": "holder"}
        }))
        .unwrap();
        endpoints.create(&PostParams::default(), &ep).await.unwrap();
        pools.delete("b", &DeleteParams::default()).await.unwrap();
        stays(&pools, "b").await;
        endpoints
            .delete("holder", &DeleteParams::default())
            .await
            .unwrap();
        gone(&pools, "b").await;
        let text = ctx.metrics.encode(true);
        assert!(!text.contains("{ippool=\"b\"}"), "{text}");

        // c: a block count above zero (no endpoint yet seen): kept until the count drops.
        set_blocks(
            &pools,
            "c",
            json!([{"node": "n1", "ips": ["10.8.0.1-10.8.0.4"], "allocatedIPCount": 1}]),
        )
        .await;
        counts(&pools, "c", 10, 1).await;
        pools.delete("c", &DeleteParams::default()).await.unwrap();
        stays(&pools, "c").await;
        set_blocks(
            &pools,
            "c",
            json!([{"node": "n1", "ips": ["10.8.0.1-10.8.0.4"], "allocatedIPCount": 0}]),
        )
        .await;
        gone(&pools, "c").await;

        // A released pool with garbage in its spec can still be deleted.
        pools
            .delete("garbage", &DeleteParams::default())
            .await
            .unwrap();
        gone(&pools, "garbage").await;
        // a is still reconciled after all of that.
        let patch = json!({"spec": {"excludeIPs": []}});
        pools
            .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        counts(&pools, "a", 20, 4).await;
        ctl.abort();
    });
}
