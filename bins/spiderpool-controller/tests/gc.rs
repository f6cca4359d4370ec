//! The IP garbage collector on a private kube-apiserver (it acts on every namespace):
//! addresses are allocated through the agent's KubeStore, so the SpiderEndpoints are exactly
//! what an agent writes; `gc::run` runs in a task with short intervals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use spiderpool_controller::{Ctx, gc};
use spiderpool_core::ipam::{AllocateRequest, PodInfo, TopController};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderIPPool, SpiderIPPoolSpec};
use spiderpool_k8s::kinds::{api_resource, from_dynamic, to_dynamic};
use spiderpool_k8s::store::{KubeStore, KubeStoreOptions};
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

struct Env {
    rt: tokio::runtime::Runtime,
    tc: TestCluster,
    // Dropped last: the apiserver stops with it.
    _plane: PrivateControlPlane,
}

fn env(test: &str) -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let plane = PrivateControlPlane::start().expect("private control plane");
    let tc = rt.block_on(TestCluster::on(&plane, test)).expect("cluster");
    Env {
        rt,
        tc,
        _plane: plane,
    }
}

fn args(interval_ms: u64) -> gc::Args {
    gc::Args {
        interval: Duration::from_millis(interval_ms),
        trace_gap: Duration::from_millis(200),
        ..gc::Args::default()
    }
}

impl Env {
    fn start_gc(&self, args: gc::Args) -> Ctx {
        let ctx = Ctx::new(self.tc.client.clone());
        let c = ctx.clone();
        self.rt.spawn(async move {
            if let Err(e) = gc::run(c, args).await {
                panic!("gc stopped: {e}");
            }
        });
        ctx
    }

    fn create_pool(&self, name: &str, ips: &str) {
        let pool = SpiderIPPool::new(
            name,
            SpiderIPPoolSpec {
                subnet: "10.6.0.0/16".into(),
                ips: Some(vec![ips.into()]),
                gateway: Some("10.6.0.1".into()),
                ..Default::default()
            },
        );
        let api: Api<DynamicObject> = Api::all_with(self.tc.client.clone(), &api_resource(&IPPOOL));
        self.rt
            .block_on(api.create(&PostParams::default(), &to_dynamic(&pool).unwrap()))
            .expect("create pool");
    }

    fn pool(&self, name: &str) -> SpiderIPPool {
        let api: Api<DynamicObject> = Api::all_with(self.tc.client.clone(), &api_resource(&IPPOOL));
        from_dynamic(&self.rt.block_on(api.get(name)).unwrap()).unwrap()
    }

    fn block_nodes(&self, pool: &str) -> Vec<String> {
        self.pool(pool)
            .status
            .and_then(|s| s.blocks)
            .unwrap_or_default()
            .into_iter()
            .map(|b| b.node)
            .collect()
    }

    fn create_node(&self, name: &str) {
        let api: Api<Node> = Api::all(self.tc.client.clone());
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        self.rt
            .block_on(api.create(&PostParams::default(), &node))
            .expect("create node");
    }

    fn store(&self, node: &str) -> KubeStore {
        let mut opts = KubeStoreOptions::new(node);
        opts.count_interval = Duration::from_millis(50);
        KubeStore::start(
            self.rt.handle().clone(),
            self.tc.client.clone(),
            opts,
            Duration::from_secs(30),
        )
        .expect("store starts")
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.tc.client.clone(), &self.tc.namespace)
    }

    /// Creates pod `name` on `node` (owned by `owner` = `(kind, name, uid)` if given);
    /// returns its UID.
    fn create_pod(&self, name: &str, node: &str, owner: Option<(&str, &str, &str)>) -> String {
        let mut meta = json!({"name": name});
        if let Some((kind, oname, uid)) = owner {
            meta["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": kind, "name": oname, "uid": uid,
                "controller": true,
            }]);
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]},
        }))
        .unwrap();
        let pod = self
            .rt
            .block_on(self.pods().create(&PostParams::default(), &pod))
            .expect("create pod");
        pod.metadata.uid.unwrap()
    }

    fn set_running(&self, name: &str, ip: &str) {
        let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
        self.rt
            .block_on(self.pods().patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .expect("pod status");
    }

    fn delete_pod(&self, name: &str, grace: u32) {
        let dp = DeleteParams {
            grace_period_seconds: Some(grace),
            ..DeleteParams::default()
        };
        self.rt
            .block_on(self.pods().delete(name, &dp))
            .expect("delete pod");
    }

    fn allocate(
        &self,
        store: &KubeStore,
        pod: &str,
        uid: &str,
        node: &str,
        pool: &str,
        controller: Option<TopController>,
    ) -> IpAddr {
        let ns = &self.tc.namespace;
        let req = AllocateRequest {
            container_id: format!("c-{pod}-{uid}"),
            ifname: "eth0".into(),
            pod: PodInfo {
                namespace: ns.clone(),
                name: pod.into(),
                uid: uid.into(),
                node: node.into(),
                controller: controller.unwrap_or_else(|| TopController::orphan(ns, pod, uid)),
                ..Default::default()
            },
            default_ipv4_ippool: vec![pool.into()],
            ..Default::default()
        };
        let d = store.allocate(&req).expect("allocate");
        d.result
            .current()
            .and_then(|n| n.ipv4.as_ref())
            .map(|c| c.address)
            .expect("an IPv4 address")
    }

    fn endpoints(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.tc.client.clone(),
            &self.tc.namespace,
            &api_resource(&ENDPOINT),
        )
    }

    fn endpoint_uid(&self, name: &str) -> Option<String> {
        let obj = self.rt.block_on(self.endpoints().get_opt(name)).unwrap()?;
        let ep: spiderpool_core::objects::SpiderEndpoint = from_dynamic(&obj).unwrap();
        Some(ep.status.map(|s| s.current.uid).unwrap_or_default())
    }

    fn wait_gone(&self, endpoint: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.endpoint_uid(endpoint).is_some() {
            assert!(
                Instant::now() < deadline,
                "{what}: endpoint {endpoint} still there"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `endpoint` still exists after `scans` full scans of `interval_ms`.
    fn assert_kept(&self, endpoint: &str, interval_ms: u64, scans: u64, what: &str) {
        std::thread::sleep(Duration::from_millis(interval_ms * scans));
        assert!(self.endpoint_uid(endpoint).is_some(), "{what}: released");
    }
}

#[test]
#[ignore = "needs apiserver"]
fn gc_releases_a_deleted_pods_address_which_is_handed_out_again() {
    let e = env("gc-deleted");
    // The full scan runs only at start: the release below is the Pod watch's doing.
    let ctx = e.start_gc(args(3_600_000));
    e.create_pool("one", "10.6.0.10");
    e.create_node("n1");
    let store = e.store("n1");
    let uid = e.create_pod("a", "n1", None);
    let ip = e.allocate(&store, "a", &uid, "n1", "one", None);
    assert_eq!(ip.to_string(), "10.6.0.10");
    e.set_running("a", "10.6.0.10");
    e.delete_pod("a", 0);
    e.wait_gone("a", "deleted pod");
    assert!(
        !ctx.health
            .gc_pending
            .load(std::sync::atomic::Ordering::Relaxed),
        "readiness no longer waits for the GC once its caches synced"
    );
    assert_eq!(ctx.metrics.ip_gc_counts.get(), 1);
    assert_eq!(ctx.metrics.ip_gc_failure_counts.get(), 0);
    // The agent of the node frees the address: the one-address pool serves the next pod.
    let deadline = Instant::now() + Duration::from_secs(10);
    let uid_b = e.create_pod("b", "n1", None);
    let again = loop {
        let ns = e.tc.namespace.clone();
        let req_pod = PodInfo {
            namespace: ns.clone(),
            name: "b".into(),
            uid: uid_b.clone(),
            node: "n1".into(),
            controller: TopController::orphan(&ns, "b", &uid_b),
            ..Default::default()
        };
        let req = AllocateRequest {
            container_id: "c-b".into(),
            ifname: "eth0".into(),
            pod: req_pod,
            default_ipv4_ippool: vec!["one".into()],
            ..Default::default()
        };
        match store.allocate(&req) {
            Ok(d) => {
                break d
                    .result
                    .current()
                    .and_then(|n| n.ipv4.as_ref())
                    .unwrap()
                    .address;
            }
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "address not handed out again: {err}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(again, ip);
}

#[test]
#[ignore = "needs apiserver"]
fn gc_releases_pods_past_their_grace_period_keeps_running_ones_and_survives_bad_endpoints() {
    let e = env("gc-terminating");
    e.create_pool("p", "10.6.1.10-10.6.1.20");
    e.create_node("n1");
    let store = e.store("n1");
    // An endpoint without status (nothing to judge it by) and one whose address is garbage
    // and whose pod never existed: neither stops the scan.
    let ep_api = e.endpoints();
    let api_version = api_resource(&ENDPOINT).api_version;
    for (name, status) in [
        ("no-status", None),
        (
            "odd",
            Some(json!({"current": {"uid": "x", "node": "n1",
                "ips": [{"interface": "eth0", "ipv4": "not-an-address", "ipv4Pool": "p"}]},
                "ownerControllerType": "Pod", "ownerControllerName": "odd"})),
        ),
    ] {
        let mut obj = json!({
            "apiVersion": api_version, "kind": "SpiderEndpoint",
            "metadata": {"name": name},
        });
        if let Some(st) = status {
            obj["status"] = st;
        }
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        e.rt.block_on(ep_api.create(&PostParams::default(), &obj))
            .expect("endpoint");
    }

    for name in ["run", "short", "long"] {
        let uid = e.create_pod(name, "n1", None);
        let got = e.allocate(&store, name, &uid, "n1", "p", None);
        e.set_running(name, &got.to_string());
    }
    let ctx = e.start_gc(args(300));
    e.delete_pod("short", 1);
    e.delete_pod("long", 3600);
    e.wait_gone("short", "terminating past its grace period");
    e.wait_gone("odd", "endpoint of a pod that never existed");
    e.assert_kept("long", 300, 3, "terminating within its grace period");
    e.assert_kept("run", 300, 1, "running pod");
    e.assert_kept("no-status", 300, 1, "endpoint without status");
    assert_eq!(ctx.metrics.ip_gc_counts.get(), 2);
}

#[test]
#[ignore = "needs apiserver"]
fn gc_keeps_a_statefulset_pods_endpoint_while_its_statefulset_wants_it() {
    let e = env("gc-sts");
    e.create_pool("p", "10.6.2.10-10.6.2.20");
    e.create_node("n1");
    let store = e.store("n1");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
    }))
    .unwrap();
    let sts_api: Api<StatefulSet> = Api::namespaced(e.tc.client.clone(), &e.tc.namespace);
    let sts =
        e.rt.block_on(sts_api.create(&PostParams::default(), &sts))
            .unwrap();
    let sts_uid = sts.metadata.uid.clone().unwrap();
    let ctl = TopController {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        namespace: e.tc.namespace.clone(),
        name: "web".into(),
        uid: sts_uid.clone(),
    };
    for pod in ["web-0", "web-1"] {
        let uid = e.create_pod(pod, "n1", Some(("StatefulSet", "web", &sts_uid)));
        e.allocate(&store, pod, &uid, "n1", "p", Some(ctl.clone()));
        e.delete_pod(pod, 0);
    }
    e.start_gc(args(300));
    e.assert_kept("web-0", 300, 3, "StatefulSet pod within replicas");
    e.assert_kept("web-1", 300, 0, "StatefulSet pod within replicas");
    // Scaled down to one replica: web-1 goes, web-0 stays.
    e.rt.block_on(sts_api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    ))
    .unwrap();
    e.wait_gone("web-1", "ordinal past the replicas");
    e.assert_kept("web-0", 300, 2, "StatefulSet pod within replicas");
    e.rt.block_on(sts_api.delete("web", &DeleteParams::default()))
        .unwrap();
    e.wait_gone("web-0", "StatefulSet deleted");
}

#[test]
#[ignore = "needs apiserver"]
fn gc_releases_the_stale_endpoint_of_a_pod_recreated_with_a_new_uid() {
    let e = env("gc-recreated");
    e.create_pool("p", "10.6.3.10-10.6.3.20");
    e.create_node("n1");
    let store = e.store("n1");
    let old = e.create_pod("a", "n1", None);
    e.allocate(&store, "a", &old, "n1", "p", None);
    e.start_gc(args(300));
    e.assert_kept("a", 300, 2, "pod alive");
    e.delete_pod("a", 0);
    let new = e.create_pod("a", "n1", None);
    assert_ne!(old, new);
    e.set_running("a", "10.6.3.99");
    e.wait_gone("a", "endpoint of the previous pod");
}

#[test]
#[ignore = "needs apiserver"]
fn gc_reclaims_the_blocks_of_a_deleted_node() {
    let e = env("gc-node");
    e.create_pool("p", "10.6.4.10-10.6.4.100");
    e.create_node("gone");
    e.create_node("live");
    let (gone, live) = (e.store("gone"), e.store("live"));
    let a = e.create_pod("a", "gone", None);
    e.allocate(&gone, "a", &a, "gone", "p", None);
    let b = e.create_pod("b", "live", None);
    e.allocate(&live, "b", &b, "live", "p", None);
    e.set_running("b", "10.6.4.30");
    drop(gone);
    let mut blocks = e.block_nodes("p");
    blocks.sort();
    assert_eq!(blocks, ["gone", "live"]);
    e.start_gc(args(300));
    // Its pod is deleted, then the Node: first the endpoint goes, then the block.
    e.delete_pod("a", 0);
    let nodes: Api<Node> = Api::all(e.tc.client.clone());
    e.rt.block_on(nodes.delete("gone", &DeleteParams::default()))
        .unwrap();
    e.wait_gone("a", "pod deleted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.block_nodes("p").contains(&"gone".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "block of the deleted node still there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        e.block_nodes("p"),
        ["live"],
        "the live node keeps its block"
    );
    let st = e.pool("p").status.unwrap();
    assert_eq!(st.allocated_ip_count, Some(1), "{st:?}");
    e.assert_kept("b", 300, 1, "running pod on a live node");
}

#[test]
#[ignore = "needs apiserver"]
fn gc_releases_upstream_records_of_pods_that_are_gone() {
    let e = env("gc-legacy");
    // A pool upstream wrote: two records in status.allocatedIPs, one of a pod that is gone.
    e.create_pool("up", "10.6.5.10-10.6.5.11");
    e.create_node("n1");
    let alive = e.create_pod("alive", "n1", None);
    e.set_running("alive", "10.6.5.10");
    let ns = e.tc.namespace.clone();
    let records = json!({
        "10.6.5.10": {"pod": format!("{ns}/alive"), "podUid": alive},
        "10.6.5.11": {"pod": format!("{ns}/ghost"), "podUid": "ghost-uid"},
    });
    let pools: Api<DynamicObject> = Api::all_with(e.tc.client.clone(), &api_resource(&IPPOOL));
    let patch = json!({"status": {"allocatedIPs": records.to_string(), "allocatedIPCount": 2}});
    e.rt.block_on(pools.patch_status("up", &PatchParams::default(), &Patch::Merge(&patch)))
        .expect("upstream records");
    let ctx = e.start_gc(args(300));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = e.pool("up").status.unwrap();
        let recs = st.allocated_ips().unwrap();
        if !recs.contains_key("10.6.5.11") {
            assert!(
                recs.contains_key("10.6.5.10"),
                "the running pod's record stays"
            );
            assert_eq!(st.allocated_ip_count, Some(1));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ghost record still there: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ctx.metrics.ip_gc_counts.get(), 1);
    // The freed address is handed out by an agent; the other stays upstream's.
    let store = e.store("n1");
    let uid = e.create_pod("next", "n1", None);
    let ip = e.allocate(&store, "next", &uid, "n1", "up", None);
    assert_eq!(ip.to_string(), "10.6.5.11");
}

fn kubevirt_crd(kind: &str, plural: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.kubevirt.io")},
        "spec": {"group": "kubevirt.io", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]},
    })
}

#[test]
#[ignore = "needs apiserver"]
fn gc_keeps_a_kubevirt_endpoint_while_its_vmi_or_vm_lives() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::ApiResource;
    let e = env("gc-kubevirt");
    let crds: Api<CustomResourceDefinition> = Api::all(e.tc.client.clone());
    let mut apis = Vec::new();
    for (kind, plural) in [
        ("VirtualMachineInstance", "virtualmachineinstances"),
        ("VirtualMachine", "virtualmachines"),
    ] {
        let crd: CustomResourceDefinition =
            serde_json::from_value(kubevirt_crd(kind, plural)).unwrap();
        e.rt.block_on(crds.create(&PostParams::default(), &crd))
            .expect("crd");
        let ar = ApiResource {
            group: "kubevirt.io".into(),
            version: "v1".into(),
            api_version: "kubevirt.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(e.tc.client.clone(), &e.tc.namespace, &ar);
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": {"name": "vm1"},
        }))
        .unwrap();
        // The CRD takes a moment to be served.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(err) = e.rt.block_on(api.create(&PostParams::default(), &obj)) {
            assert!(Instant::now() < deadline, "create {kind}: {err}");
            std::thread::sleep(Duration::from_millis(200));
        }
        apis.push(api);
    }
    e.create_pool("p", "10.6.6.10-10.6.6.20");
    e.create_node("n1");
    let store = e.store("n1");
    let pod = "virt-launcher-vm1-abcde";
    let uid = e.create_pod(pod, "n1", None);
    let ctl = TopController {
        api_version: "kubevirt.io/v1".into(),
        kind: "VirtualMachineInstance".into(),
        namespace: e.tc.namespace.clone(),
        name: "vm1".into(),
        uid: "vmi-uid".into(),
    };
    e.allocate(&store, pod, &uid, "n1", "p", Some(ctl));
    assert!(
        e.endpoint_uid("vm1").is_some(),
        "the endpoint is named after the VMI"
    );
    e.delete_pod(pod, 0);
    e.start_gc(args(300));
    e.assert_kept("vm1", 300, 3, "VMI alive");
    let dp = DeleteParams::default();
    e.rt.block_on(apis[0].delete("vm1", &dp)).unwrap();
    e.assert_kept("vm1", 300, 3, "VMI gone, VM alive");
    e.rt.block_on(apis[1].delete("vm1", &dp)).unwrap();
    e.wait_gone("vm1", "VMI and VM gone");
}
