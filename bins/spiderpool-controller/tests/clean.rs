//! `spiderpool-controller clean` (the chart's pre-delete hook) as a binary on a control plane
//! of its own (it deletes webhook configurations and CRDs): everything Spiderpool is gone
//! afterwards, what is not Spiderpool's stays, a second run succeeds, and a cluster it cannot
//! reach gives a non-zero exit naming every step that failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use spiderpool_controller::clean::crd_names;
use spiderpool_controller::webhook::register::{Target, configurations};
use spiderpool_core::objects::{
    COORDINATOR, ENDPOINT, IPPOOL, KindInfo, MULTUSCONFIG, RESERVEDIP, SUBNET,
};
use spiderpool_k8s::kinds::api_resource;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

const BIN: &str = env!("CARGO_BIN_EXE_spiderpool-controller");
const FINALIZER: &str = "spiderpool.spidernet.io";

fn clean(args: &[&str], namespace: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SPIDERPOOL_POD_NAMESPACE", namespace)
        .env_remove("SPIDERPOOL_INIT_NAME")
        .output()
        .expect("run spiderpool-controller")
}

async fn create(ts: &TestCluster, info: &KindInfo, obj: serde_json::Value) {
    let ar = api_resource(info);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    let api: Api<DynamicObject> = match &obj.metadata.namespace {
        Some(ns) => Api::namespaced_with(ts.client.clone(), ns, &ar),
        None => Api::all_with(ts.client.clone(), &ar),
    };
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", info.kind));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs apiserver"]
async fn clean_removes_every_spiderpool_object_crd_webhook_and_the_init_job() {
    let plane = tokio::task::spawn_blocking(PrivateControlPlane::start)
        .await
        .unwrap()
        .expect("private control plane");
    let ts = TestCluster::on(&plane, "clean").await.unwrap();
    let ns = ts.namespace.clone();
    let api_version = "spiderpool.spidernet.io/v2beta1";

    // One object of every kind; the pool, the endpoint and the coordinator hold finalizers
    // (as the controller and the agents put them).
    create(
        &ts,
        &SUBNET,
        json!({"apiVersion": api_version, "kind": "SpiderSubnet",
        "metadata": {"name": "s1"},
        "spec": {"subnet": "10.9.0.0/24", "ips": ["10.9.0.10-10.9.0.20"]}}),
    )
    .await;
    create(
        &ts,
        &IPPOOL,
        json!({"apiVersion": api_version, "kind": "SpiderIPPool",
        "metadata": {"name": "p1", "finalizers": [FINALIZER]},
        "spec": {"subnet": "10.9.0.0/24", "ips": ["10.9.0.10-10.9.0.12"]}}),
    )
    .await;
    create(
        &ts,
        &RESERVEDIP,
        json!({"apiVersion": api_version, "kind": "SpiderReservedIP",
        "metadata": {"name": "r1"}, "spec": {"ips": ["10.9.0.15"]}}),
    )
    .await;
    create(
        &ts,
        &ENDPOINT,
        json!({"apiVersion": api_version, "kind": "SpiderEndpoint",
        "metadata": {"name": "pod-a", "namespace": ns, "finalizers": [FINALIZER]},
        "status": {"current": {"uid": "u1", "node": "n1",
                               "ips": [{"interface": "eth0", "ipv4": "10.9.0.10/24",
                                        "ipv4Pool": "p1"}]},
                   "ownerControllerType": "Pod", "ownerControllerName": "pod-a"}}),
    )
    .await;
    create(
        &ts,
        &MULTUSCONFIG,
        json!({"apiVersion": api_version, "kind": "SpiderMultusConfig",
        "metadata": {"name": "macvlan", "namespace": ns},
        "spec": {"cniType": "macvlan", "macvlan": {"master": ["eth0"]}}}),
    )
    .await;
    create(
        &ts,
        &COORDINATOR,
        json!({"apiVersion": api_version, "kind": "SpiderCoordinator",
        "metadata": {"name": "default", "finalizers": [FINALIZER]},
        "spec": {"mode": "auto"}}),
    )
    .await;

    // The webhook configurations as the chart's controller registers them, pointing at
    // nothing (failurePolicy Fail): every write to a Spiderpool object is refused until they
    // are gone, so clean must delete them first. Plus one that is not ours.
    let (m, v) = configurations(
        "spiderpool-controller",
        &Target::Url("127.0.0.1:9".into()),
        None,
    );
    let mapi: Api<MutatingWebhookConfiguration> = Api::all(ts.client.clone());
    let vapi: Api<ValidatingWebhookConfiguration> = Api::all(ts.client.clone());
    mapi.create(&PostParams::default(), &serde_json::from_value(m).unwrap())
        .await
        .unwrap();
    vapi.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();
    let (_, other) = configurations("someone-else", &Target::Url("127.0.0.1:9".into()), None);
    let mut other: ValidatingWebhookConfiguration = serde_json::from_value(other).unwrap();
    for w in other.webhooks.iter_mut().flatten() {
        w.rules = Some(vec![
            serde_json::from_value(json!({
            "apiGroups": ["example.com"], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["things"]}))
            .unwrap(),
        ]);
    }
    vapi.create(&PostParams::default(), &other).await.unwrap();

    // The post-install Job as the chart names it (no controller-manager here: no pods).
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "spiderpool-init", "namespace": ns},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "init", "image": "spiderpool-controller"}]}}}}))
    .unwrap();
    let japi: Api<Job> = Api::namespaced(ts.client.clone(), &ns);
    japi.create(&PostParams::default(), &job).await.unwrap();

    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let out = clean(
        &[
            "clean",
            "--kubeconfig",
            &kubeconfig,
            "--validate",
            "spiderpool-controller",
            "--mutating",
            "spiderpool-controller",
        ],
        &ns,
    );
    assert!(
        out.status.success(),
        "clean failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        mapi.get_opt("spiderpool-controller")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        vapi.get_opt("spiderpool-controller")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        vapi.get_opt("someone-else").await.unwrap().is_some(),
        "another webhook configuration is left alone"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(ts.client.clone());
    for name in crd_names() {
        assert!(
            crds.get_opt(&name).await.unwrap().is_none(),
            "CRD {name} left"
        );
    }
    assert!(
        crds.get_opt("network-attachment-definitions.k8s.cni.cncf.io")
            .await
            .unwrap()
            .is_some(),
        "the NAD CRD (maybe shared with a separate Multus) stays, as upstream"
    );
    assert!(japi.get_opt("spiderpool-init").await.unwrap().is_none());

    // Idempotent: nothing left to delete is not an error; the kubeconfig flag before the
    // subcommand works as well.
    let again = clean(&["--kubeconfig", &kubeconfig, "clean"], &ns);
    assert!(
        again.status.success(),
        "second clean failed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(plane);
}

#[test]
fn clean_with_a_bad_kubeconfig_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("kubeconfig");
    std::fs::write(&garbage, "this: [is not a kubeconfig").unwrap();
    let out = clean(
        &["clean", "--kubeconfig", garbage.to_str().unwrap()],
        "kube-system",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(garbage.to_str().unwrap()), "{stderr}");

    // A cluster nobody answers at: every step is tried and each failure is named.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = dir.path().join("unreachable");
    std::fs::write(
        &unreachable,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let out = clean(
        &[
            "clean",
            "--kubeconfig",
            unreachable.to_str().unwrap(),
            "--timeout",
            "1",
        ],
        "kube-system",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for step in [
        "delete MutatingWebhookConfiguration spiderpool-controller",
        "delete ValidatingWebhookConfiguration spiderpool-controller",
        "list SpiderIPPools",
        "list SpiderCoordinators",
        "delete CustomResourceDefinition spiderippools.spiderpool.spidernet.io",
        "delete Job kube-system/spiderpool-init",
    ] {
        assert!(stderr.contains(step), "{step} not reported: {stderr}");
    }
}

#[test]
fn daemon_and_clean_subcommands_parse() {
    for (args, expect) in [
        (&["daemon", "--help"][..], "--webhook-port"),
        (&["clean", "--help"][..], "--validate"),
        (&["--help"][..], "clean"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(expect),
            "{args:?}: no {expect}"
        );
    }
}
