//! The SpiderSubnet controllers on a real apiserver (a private control plane: they act on
//! every namespace and on cluster-scoped pools). The controllers run in-process; no
//! kube-controller-manager runs, so a Deployment is only an object (no pods), and the
//! SpiderIPPool controller runs beside them to lift the pools' finalizers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use spiderpool_controller::{Ctx, ippool, subnet};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SUBNET};
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

fn args() -> subnet::Args {
    subnet::Args {
        retry_delay: Duration::from_millis(500),
        ..subnet::Args::default()
    }
}

fn start(tc: &TestCluster) -> Vec<tokio::task::JoinHandle<()>> {
    start_with(Ctx::new(tc.client.clone()))
}

fn start_with(ctx: Ctx) -> Vec<tokio::task::JoinHandle<()>> {
    // The controllers' warnings on stderr (why a test waits in vain).
    spiderpool_plugin_support::log::init(&spiderpool_plugin_support::log::LogConfig {
        level: spiderpool_plugin_support::log::LevelFilter::Warn,
        program: "subnet-test".to_owned(),
        ..Default::default()
    });
    let s = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            subnet::run(ctx, args()).await.unwrap();
        }
    });
    let p = tokio::spawn(async move {
        let a = ippool::Args {
            retry_delay: Duration::from_millis(300),
            ..ippool::Args::default()
        };
        ippool::run(ctx, a).await.unwrap();
    });
    vec![s, p]
}

fn subnets(tc: &TestCluster) -> Api<DynamicObject> {
    Api::all_with(tc.client.clone(), &api_resource(&SUBNET))
}

fn pools(tc: &TestCluster) -> Api<DynamicObject> {
    Api::all_with(tc.client.clone(), &api_resource(&IPPOOL))
}

fn object(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

async fn create_subnet(tc: &TestCluster, name: &str, spec: Value) -> DynamicObject {
    subnets(tc)
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
                "metadata": {"name": name}, "spec": spec,
            })),
        )
        .await
        .unwrap()
}

async fn create_pool(tc: &TestCluster, name: &str, spec: Value) -> DynamicObject {
    pools(tc)
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
                "metadata": {"name": name}, "spec": spec,
            })),
        )
        .await
        .unwrap()
}

/// The subnet's `(controlledIPPools parsed, allocatedIPCount, totalIPCount)`.
fn subnet_status(s: &DynamicObject) -> (Value, i64, i64) {
    let st = s.data.get("status").cloned().unwrap_or(json!({}));
    let controlled = st
        .get("controlledIPPools")
        .and_then(Value::as_str)
        .map(|t| serde_json::from_str(t).unwrap())
        .unwrap_or(json!({}));
    let n = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(-1);
    (controlled, n("allocatedIPCount"), n("totalIPCount"))
}

async fn subnet_with(tc: &TestCluster, name: &str, want: (Value, i64, i64)) -> DynamicObject {
    let api = subnets(tc);
    let mut last = None;
    for _ in 0..200 {
        let s = api.get(name).await.unwrap();
        let got = subnet_status(&s);
        if got == want {
            return s;
        }
        last = Some(got);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("SpiderSubnet {name}: wanted {want:?}, last saw {last:?}");
}

fn labels(o: &DynamicObject) -> std::collections::BTreeMap<String, String> {
    o.metadata.labels.clone().unwrap_or_default()
}

fn ips(o: &DynamicObject) -> Value {
    o.data.pointer("/spec/ips").cloned().unwrap_or(Value::Null)
}

#[test]
#[ignore = "needs apiserver"]
fn subnet_adopts_pools_of_its_cidr_and_counts_their_addresses() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tc = TestCluster::on(&plane, "subnet").await.unwrap();
        let ctx = Ctx::new(tc.client.clone());
        let tasks = start_with(ctx.clone());
        let s = create_subnet(
            &tc,
            "s10",
            json!({"subnet": "10.10.0.0/24", "ips": ["10.10.0.1-10.10.0.100"],
                   "gateway": "10.10.0.254",
                   "routes": [{"dst": "172.16.0.0/16", "gw": "10.10.0.253"}]}),
        )
        .await;
        let uid = s.metadata.uid.clone().unwrap();
        create_pool(
            &tc,
            "p10",
            json!({"subnet": "10.10.0.0/24", "ips": ["10.10.0.10-10.10.0.19"]}),
        )
        .await;
        // Same CIDR but its own routes (an explicit empty list is kept) and gateway.
        create_pool(
            &tc,
            "p10b",
            json!({"subnet": "10.10.0.0/24", "ips": ["10.10.0.90-10.10.0.110"],
                   "gateway": "10.10.0.1", "routes": []}),
        )
        .await;
        create_pool(
            &tc,
            "other",
            json!({"subnet": "10.11.0.0/24", "ips": ["10.11.0.1"]}),
        )
        .await;

        // controlledIPPools is upstream's JSON string; p10b counts only its share inside the
        // subnet's ips.
        let s = subnet_with(
            &tc,
            "s10",
            (
                json!({"p10": {"ips": ["10.10.0.10-10.10.0.19"]},
                       "p10b": {"ips": ["10.10.0.90-10.10.0.100"]}}),
                21,
                100,
            ),
        )
        .await;
        assert_eq!(
            labels(&s).get("ipam.spidernet.io/subnet-cidr").map(String::as_str),
            Some("10-10-0-0-24")
        );
        // Upstream's gauges (debug ones per subnet).
        let m = ctx.metrics.encode(true);
        for line in [
            "spiderpool_total_subnet_counts 1",
            "spiderpool_debug_subnet_ippool_counts{subnet=\"s10\"} 2",
            "spiderpool_debug_subnet_total_ip_counts{subnet=\"s10\"} 100",
            "spiderpool_debug_subnet_available_ip_counts{subnet=\"s10\"} 79",
        ] {
            assert!(m.contains(line), "{line} not in {m}");
        }
        let text = s.data.pointer("/status/controlledIPPools").unwrap();
        assert_eq!(
            text,
            &json!(r#"{"p10":{"ips":["10.10.0.10-10.10.0.19"]},"p10b":{"ips":["10.10.0.90-10.10.0.100"]}}"#)
        );

        let p = pools(&tc).get("p10").await.unwrap();
        assert_eq!(
            labels(&p).get("ipam.spidernet.io/owner-spider-subnet").map(String::as_str),
            Some("s10")
        );
        let refs = p.metadata.owner_references.clone().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].kind, "SpiderSubnet");
        assert_eq!(refs[0].api_version, "spiderpool.spidernet.io/v2beta1");
        assert_eq!(refs[0].name, "s10");
        assert_eq!(refs[0].uid, uid);
        assert_eq!(refs[0].controller, Some(true));
        assert_eq!(refs[0].block_owner_deletion, Some(true));
        // Gateway and routes inherited.
        assert_eq!(p.data.pointer("/spec/gateway"), Some(&json!("10.10.0.254")));
        assert_eq!(
            p.data.pointer("/spec/routes"),
            Some(&json!([{"dst": "172.16.0.0/16", "gw": "10.10.0.253"}]))
        );
        let pb = pools(&tc).get("p10b").await.unwrap();
        assert_eq!(pb.data.pointer("/spec/gateway"), Some(&json!("10.10.0.1")));
        assert_eq!(pb.data.pointer("/spec/routes"), Some(&json!([])));
        let other = pools(&tc).get("other").await.unwrap();
        assert!(other.metadata.owner_references.is_none());
        assert!(!labels(&other).contains_key("ipam.spidernet.io/owner-spider-subnet"));

        // A pool's ips edited: the record follows.
        pools(&tc)
            .patch(
                "p10",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"ips": ["10.10.0.10-10.10.0.14"]}})),
            )
            .await
            .unwrap();
        subnet_with(
            &tc,
            "s10",
            (
                json!({"p10": {"ips": ["10.10.0.10-10.10.0.14"]},
                       "p10b": {"ips": ["10.10.0.90-10.10.0.100"]}}),
                16,
                100,
            ),
        )
        .await;
        // Pools deleted: their records go; an empty map is no field at all.
        for n in ["p10", "p10b"] {
            pools(&tc).delete(n, &DeleteParams::default()).await.unwrap();
        }
        let s = subnet_with(&tc, "s10", (json!({}), 0, 100)).await;
        assert!(s.data.pointer("/status/controlledIPPools").is_none());
        for t in tasks {
            t.abort();
        }
    });
}

fn deployment(name: &str, replicas: i32, annotations: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap()
}

async fn scale(api: &Api<Deployment>, name: &str, replicas: i32) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
    )
    .await
    .unwrap();
}

/// The pool named `name` once its `spec.ips` is `want`.
async fn pool_with_ips(tc: &TestCluster, name: &str, want: Value) -> DynamicObject {
    let api = pools(tc);
    let mut last = None;
    for _ in 0..200 {
        if let Some(p) = api.get_opt(name).await.unwrap() {
            if ips(&p) == want {
                return p;
            }
            last = Some(ips(&p));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("SpiderIPPool {name}: wanted ips {want}, last saw {last:?}");
}

/// Writes the pool's `status.blocks` as an agent would (the controllers write the counts
/// meanwhile: a 409 is read again and retried).
async fn set_blocks(tc: &TestCluster, name: &str, blocks: Value) {
    for _ in 0..50 {
        let mut p = pools(tc).get(name).await.unwrap();
        if !p.data.get("status").is_some_and(Value::is_object) {
            p.data["status"] = json!({});
        }
        p.data["status"]["blocks"] = blocks.clone();
        match pools(tc)
            .replace_status(name, &PostParams::default(), &p)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("write the blocks of {name}: {e}"),
        }
    }
    panic!("write the blocks of {name}: still conflicting");
}

/// The notes of the Warning Events recorded on `kind`/`name` in the test namespace.
async fn warnings(tc: &TestCluster, kind: &str, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(tc.client.clone(), &tc.namespace);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(kind)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .filter_map(|e| e.note)
        .collect()
}

#[test]
#[ignore = "needs apiserver"]
fn subnet_auto_pool_follows_a_deployment_and_goes_with_it() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tc = TestCluster::on(&plane, "autopool").await.unwrap();
        let ns = tc.namespace.clone();
        let tasks = start(&tc);
        let s = create_subnet(
            &tc,
            "s20",
            json!({"subnet": "10.20.0.0/24", "ips": ["10.20.0.1-10.20.0.50"],
                   "gateway": "10.20.0.254"}),
        )
        .await;
        let subnet_uid = s.metadata.uid.clone().unwrap();
        // An ordinary pool holds the two lowest addresses: the auto pool starts above them.
        create_pool(
            &tc,
            "manual20",
            json!({"subnet": "10.20.0.0/24", "ips": ["10.20.0.1-10.20.0.2"]}),
        )
        .await;
        subnet_with(
            &tc,
            "s20",
            (json!({"manual20": {"ips": ["10.20.0.1-10.20.0.2"]}}), 2, 50),
        )
        .await;

        let deploys: Api<Deployment> = Api::namespaced(tc.client.clone(), &ns);
        let d = deploys
            .create(
                &PostParams::default(),
                &deployment(
                    "Web".to_lowercase().as_str(),
                    2,
                    json!({"ipam.spidernet.io/subnet": r#"{"ipv4":["s20"]}"#,
                           "ipam.spidernet.io/ippool-ip-number": "+1"}),
                ),
            )
            .await
            .unwrap();
        let uid = d.metadata.uid.clone().unwrap();
        let short: String = uid.rsplit('-').next().unwrap().chars().take(5).collect();
        let name = format!("auto4-web-eth0-{short}");

        // replicas 2, "+1": three addresses, the lowest free ones.
        let p = pool_with_ips(&tc, &name, json!(["10.20.0.3-10.20.0.5"])).await;
        let l = labels(&p);
        for (k, v) in [
            ("ipam.spidernet.io/owner-spider-subnet", "s20"),
            ("ipam.spidernet.io/owner-application-gv", "apps_v1"),
            ("ipam.spidernet.io/owner-application-kind", "Deployment"),
            ("ipam.spidernet.io/owner-application-namespace", ns.as_str()),
            ("ipam.spidernet.io/owner-application-name", "web"),
            ("ipam.spidernet.io/owner-application-uid", uid.as_str()),
            ("ipam.spidernet.io/interface", "eth0"),
            ("ipam.spidernet.io/ippool-reclaim", "true"),
            ("ipam.spidernet.io/ip-version", "IPv4"),
            ("ipam.spidernet.io/ippool-cidr", "10-20-0-0-24"),
        ] {
            assert_eq!(l.get(k).map(String::as_str), Some(v), "label {k}");
        }
        assert_eq!(
            p.metadata
                .annotations
                .clone()
                .unwrap()
                .get("ipam.spidernet.io/ippool-ip-number")
                .map(String::as_str),
            Some("+1")
        );
        assert_eq!(
            p.data.pointer("/spec/podAffinity"),
            Some(&json!({"matchLabels": {
                "ipam.spidernet.io/app-api-group": "apps",
                "ipam.spidernet.io/app-api-version": "v1",
                "ipam.spidernet.io/app-kind": "Deployment",
                "ipam.spidernet.io/app-namespace": ns,
                "ipam.spidernet.io/app-name": "web"}}))
        );
        assert_eq!(p.data.pointer("/spec/ipVersion"), Some(&json!(4)));
        assert_eq!(p.data.pointer("/spec/subnet"), Some(&json!("10.20.0.0/24")));
        assert_eq!(p.data.pointer("/spec/gateway"), Some(&json!("10.20.0.254")));
        let refs = p.metadata.owner_references.clone().unwrap();
        assert_eq!(
            (
                refs[0].kind.as_str(),
                refs[0].name.as_str(),
                refs[0].uid.as_str(),
                refs[0].controller
            ),
            ("SpiderSubnet", "s20", subnet_uid.as_str(), Some(true))
        );
        assert_eq!(
            p.metadata.finalizers.clone().unwrap(),
            vec!["spiderpool.spidernet.io".to_owned()]
        );
        let app = format!("apps_v1_Deployment_{ns}_web");
        subnet_with(
            &tc,
            "s20",
            (
                json!({"manual20": {"ips": ["10.20.0.1-10.20.0.2"]},
                       name.clone(): {"ips": ["10.20.0.3-10.20.0.5"], "application": app}}),
                5,
                50,
            ),
        )
        .await;

        // Scale up to 4: five addresses.
        scale(&deploys, "web", 4).await;
        pool_with_ips(&tc, &name, json!(["10.20.0.3-10.20.0.7"])).await;
        subnet_with(
            &tc,
            "s20",
            (
                json!({"manual20": {"ips": ["10.20.0.1-10.20.0.2"]},
                       name.clone(): {"ips": ["10.20.0.3-10.20.0.7"], "application": app}}),
                7,
                50,
            ),
        )
        .await;

        // A pod's endpoint holds .3 and node-a's block claims .5: scaling down to 1 (two
        // addresses) drops the lowest of the others (.4, .6, .7).
        let eps: Api<DynamicObject> =
            Api::namespaced_with(tc.client.clone(), &ns, &api_resource(&ENDPOINT));
        eps.create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderEndpoint",
                "metadata": {"name": "web-0"},
                "status": {"current": {"uid": "u0", "node": "node-a", "ips": [
                    {"interface": "eth0", "ipv4": "10.20.0.3/24", "ipv4Pool": name}]},
                    "ownerControllerType": "Deployment", "ownerControllerName": "web"}
            })),
        )
        .await
        .unwrap();
        set_blocks(
            &tc,
            &name,
            json!([{"node": "node-a", "ips": ["10.20.0.5"], "allocatedIPCount": 0}]),
        )
        .await;
        scale(&deploys, "web", 1).await;
        pool_with_ips(&tc, &name, json!(["10.20.0.3", "10.20.0.5"])).await;
        subnet_with(
            &tc,
            "s20",
            (
                json!({"manual20": {"ips": ["10.20.0.1-10.20.0.2"]},
                       name.clone(): {"ips": ["10.20.0.3", "10.20.0.5"], "application": app}}),
                4,
                50,
            ),
        )
        .await;
        // The block survived the spec write.
        let p = pools(&tc).get(&name).await.unwrap();
        assert_eq!(
            p.data.pointer("/status/blocks/0/ips"),
            Some(&json!(["10.20.0.5"]))
        );

        // Down to 0 (one address): both are in use, so nothing changes and the Deployment
        // gets a Warning Event; once they are free the retry shrinks the pool.
        scale(&deploys, "web", 0).await;
        let notes = eventually("a Warning Event on the Deployment", || async {
            let n = warnings(&tc, "Deployment", "web").await;
            (!n.is_empty()).then_some(n)
        })
        .await;
        assert!(
            notes[0].contains("IPPool available free IPs are not enough"),
            "{notes:?}"
        );
        assert_eq!(
            ips(&pools(&tc).get(&name).await.unwrap()),
            json!(["10.20.0.3", "10.20.0.5"])
        );
        eps.delete("web-0", &DeleteParams::default()).await.unwrap();
        pool_with_ips(&tc, &name, json!(["10.20.0.5"])).await;

        // The Deployment deleted: its pool goes (reclaim defaults to true), then its record.
        set_blocks(&tc, &name, json!([])).await;
        deploys
            .delete("web", &DeleteParams::default())
            .await
            .unwrap();
        eventually("the auto pool deleted", || async {
            pools(&tc)
                .get_opt(&name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        subnet_with(
            &tc,
            "s20",
            (json!({"manual20": {"ips": ["10.20.0.1-10.20.0.2"]}}), 2, 50),
        )
        .await;
        for t in tasks {
            t.abort();
        }
    });
}

#[test]
#[ignore = "needs apiserver"]
fn subnet_too_small_for_an_application_reports_and_creates_nothing() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tc = TestCluster::on(&plane, "small").await.unwrap();
        let ns = tc.namespace.clone();
        let tasks = start(&tc);
        create_subnet(
            &tc,
            "s30",
            json!({"subnet": "10.30.0.0/24", "ips": ["10.30.0.1-10.30.0.3"]}),
        )
        .await;
        subnet_with(&tc, "s30", (json!({}), 0, 3)).await;
        let deploys: Api<Deployment> = Api::namespaced(tc.client.clone(), &ns);
        deploys
            .create(
                &PostParams::default(),
                &deployment(
                    "big",
                    5,
                    json!({"ipam.spidernet.io/subnets":
                           r#"[{"interface":"net1","ipv4":["s30"]}]"#}),
                ),
            )
            .await
            .unwrap();
        let notes = eventually("a Warning Event on the Deployment", || async {
            let n = warnings(&tc, "Deployment", "big").await;
            (!n.is_empty()).then_some(n)
        })
        .await;
        assert!(
            notes[0].contains("insufficient subnet FreeIPs, required '5' but only left '3'"),
            "{notes:?}"
        );
        // Nothing half-done: no pool, no record.
        let auto = pools(&tc)
            .list(
                &kube::api::ListParams::default()
                    .labels("ipam.spidernet.io/owner-application-name=big"),
            )
            .await
            .unwrap();
        assert!(auto.items.is_empty());
        assert_eq!(
            subnet_status(&subnets(&tc).get("s30").await.unwrap()),
            (json!({}), 0, 3)
        );
        // Scaled to what fits: the pool comes (on net1), with all three addresses.
        scale(&deploys, "big", 3).await;
        let p = eventually("the auto pool", || async {
            pools(&tc)
                .list(
                    &kube::api::ListParams::default()
                        .labels("ipam.spidernet.io/owner-application-name=big"),
                )
                .await
                .unwrap()
                .items
                .into_iter()
                .next()
        })
        .await;
        assert!(
            p.metadata
                .name
                .clone()
                .unwrap()
                .starts_with("auto4-big-net1-")
        );
        assert_eq!(ips(&p), json!(["10.30.0.1-10.30.0.3"]));
        for t in tasks {
            t.abort();
        }
    });
}

/// The pools labelled as `app`'s (any instance).
async fn pools_of(tc: &TestCluster, app: &str) -> Vec<DynamicObject> {
    let mut items = pools(tc)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("ipam.spidernet.io/owner-application-name={app}")),
        )
        .await
        .unwrap()
        .items;
    items.sort_by_key(|p| p.metadata.name.clone());
    items
}

fn app_object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    let api_version = if kind == "Job" || kind == "CronJob" {
        "batch/v1"
    } else {
        "apps/v1"
    };
    object(
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec}),
    )
}

fn app_api(tc: &TestCluster, kind: &str) -> Api<DynamicObject> {
    let (group, plural) = match kind {
        "StatefulSet" => ("apps", "statefulsets"),
        "Deployment" => ("apps", "deployments"),
        _ => ("batch", "jobs"),
    };
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, "v1", kind),
        plural,
    );
    Api::namespaced_with(tc.client.clone(), &tc.namespace, &ar)
}

fn template(name: &str, annotations: Value, host_network: bool, restart: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": name}, "annotations": annotations},
        "spec": {"hostNetwork": host_network, "restartPolicy": restart,
                 "containers": [{"name": "c", "image": "busybox"}]}
    })
}

#[test]
#[ignore = "needs apiserver"]
fn subnet_other_kinds_dual_stack_reclaim_false_sweep_and_subnet_deletion() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tc = TestCluster::on(&plane, "kinds").await.unwrap();
        let ns = tc.namespace.clone();
        let tasks = start(&tc);
        create_subnet(
            &tc,
            "s40",
            json!({"subnet": "10.40.0.0/24", "ips": ["10.40.0.1-10.40.0.100"]}),
        )
        .await;
        create_subnet(
            &tc,
            "s6",
            json!({"subnet": "fd00:40::/120", "ips": ["fd00:40::1-fd00:40::20"]}),
        )
        .await;

        // A StatefulSet on two families with a fixed size.
        let sts = app_api(&tc, "StatefulSet");
        sts.create(
            &PostParams::default(),
            &app_object(
                "StatefulSet",
                "db",
                json!({"replicas": 2, "serviceName": "db",
                       "selector": {"matchLabels": {"app": "db"}},
                       "template": template("db", json!({
                           "ipam.spidernet.io/subnets":
                               r#"[{"interface":"eth0","ipv4":["s40"],"ipv6":["s6"]}]"#,
                           "ipam.spidernet.io/ippool-ip-number": "3"}), false, "Always")}),
            ),
        )
        .await
        .unwrap();
        let got = eventually("two pools of the StatefulSet", || async {
            let p = pools_of(&tc, "db").await;
            (p.len() == 2 && p.iter().all(|p| ips(p) != Value::Null)).then_some(p)
        })
        .await;
        assert!(
            got[0]
                .metadata
                .name
                .clone()
                .unwrap()
                .starts_with("auto4-db-eth0-")
        );
        assert_eq!(ips(&got[0]), json!(["10.40.0.1-10.40.0.3"]));
        assert!(
            got[1]
                .metadata
                .name
                .clone()
                .unwrap()
                .starts_with("auto6-db-eth0-")
        );
        assert_eq!(ips(&got[1]), json!(["fd00:40::1-fd00:40::3"]));
        assert_eq!(
            labels(&got[1])
                .get("ipam.spidernet.io/ip-version")
                .map(String::as_str),
            Some("IPv6")
        );
        assert_eq!(
            labels(&got[0])
                .get("ipam.spidernet.io/owner-application-kind")
                .map(String::as_str),
            Some("StatefulSet")
        );
        // Scaling a fixed-size application changes nothing.
        sts.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();

        // A Job: completions count (4), "+1".
        let jobs = app_api(&tc, "Job");
        jobs.create(
            &PostParams::default(),
            &app_object(
                "Job",
                "batch",
                json!({"completions": 4, "parallelism": 2,
                       "template": template("batch", json!({
                           "ipam.spidernet.io/subnet": r#"{"ipv4":["s40"]}"#,
                           "ipam.spidernet.io/ippool-ip-number": "+1"}), false, "Never")}),
            ),
        )
        .await
        .unwrap();
        let job_pool = eventually("the Job's pool", || async {
            pools_of(&tc, "batch").await.into_iter().next()
        })
        .await;
        assert_eq!(ips(&job_pool), json!(["10.40.0.4-10.40.0.8"]));
        assert_eq!(
            labels(&job_pool)
                .get("ipam.spidernet.io/owner-application-gv")
                .map(String::as_str),
            Some("batch_v1")
        );

        // Host-network templates get nothing.
        let deploys = app_api(&tc, "Deployment");
        let dep = |name: &str, annotations: Value, host: bool| {
            app_object(
                "Deployment",
                name,
                json!({"replicas": 1, "selector": {"matchLabels": {"app": name}},
                       "template": template(name, annotations, host, "Always")}),
            )
        };
        let anno = json!({"ipam.spidernet.io/subnet": r#"{"ipv4":["s40"]}"#});
        deploys
            .create(&PostParams::default(), &dep("host", anno.clone(), true))
            .await
            .unwrap();

        // reclaim "false": the pool outlives its Deployment and the next one takes it over.
        let keep_anno = json!({"ipam.spidernet.io/subnet": r#"{"ipv4":["s40"]}"#,
                               "ipam.spidernet.io/ippool-reclaim": "false"});
        let first = deploys
            .create(
                &PostParams::default(),
                &dep("keep", keep_anno.clone(), false),
            )
            .await
            .unwrap();
        let kept = eventually("the kept pool", || async {
            pools_of(&tc, "keep").await.into_iter().next()
        })
        .await;
        assert_eq!(
            labels(&kept)
                .get("ipam.spidernet.io/ippool-reclaim")
                .map(String::as_str),
            Some("false")
        );
        deploys
            .delete("keep", &DeleteParams::default())
            .await
            .unwrap();
        let second = deploys
            .create(&PostParams::default(), &dep("keep", keep_anno, false))
            .await
            .unwrap();
        assert_ne!(first.metadata.uid, second.metadata.uid);
        let new_uid = second.metadata.uid.clone().unwrap();
        let relabelled = eventually("the kept pool relabelled", || async {
            let p = pools_of(&tc, "keep").await;
            (p.len() == 1
                && labels(&p[0]).get("ipam.spidernet.io/owner-application-uid") == Some(&new_uid))
            .then(|| p[0].clone())
        })
        .await;
        assert_eq!(relabelled.metadata.name, kept.metadata.name);
        assert_eq!(ips(&relabelled), ips(&kept));
        assert!(pools_of(&tc, "host").await.is_empty());

        // A Deployment deleted while no controller runs: the sweep at start removes its pool.
        deploys
            .create(&PostParams::default(), &dep("gone", anno, false))
            .await
            .unwrap();
        let gone_pool = eventually("the pool of gone", || async {
            pools_of(&tc, "gone").await.into_iter().next()
        })
        .await;
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        deploys
            .delete("gone", &DeleteParams::default())
            .await
            .unwrap();
        let tasks = start(&tc);
        let gone_name = gone_pool.metadata.name.clone().unwrap();
        eventually("the orphan pool swept", || async {
            pools(&tc)
                .get_opt(&gone_name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        // The others stay.
        assert_eq!(pools_of(&tc, "db").await.len(), 2);
        assert_eq!(pools_of(&tc, "keep").await.len(), 1);

        // A subnet being deleted: its pools go first, then its finalizer.
        subnets(&tc)
            .create(
                &PostParams::default(),
                &object(json!({
                    "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
                    "metadata": {"name": "s50", "finalizers": ["spiderpool.spidernet.io"]},
                    "spec": {"subnet": "10.50.0.0/24", "ips": ["10.50.0.1-10.50.0.9"]}
                })),
            )
            .await
            .unwrap();
        create_pool(
            &tc,
            "p50",
            json!({"subnet": "10.50.0.0/24", "ips": ["10.50.0.1"]}),
        )
        .await;
        subnet_with(&tc, "s50", (json!({"p50": {"ips": ["10.50.0.1"]}}), 1, 9)).await;
        subnets(&tc)
            .delete("s50", &DeleteParams::default())
            .await
            .unwrap();
        eventually("s50 and its pool gone", || async {
            let s = subnets(&tc).get_opt("s50").await.unwrap();
            let p = pools(&tc).get_opt("p50").await.unwrap();
            (s.is_none() && p.is_none()).then_some(())
        })
        .await;
        let _ = ns;
        for t in tasks {
            t.abort();
        }
    });
}
