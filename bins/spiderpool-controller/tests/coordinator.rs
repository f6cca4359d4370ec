//! SpiderCoordinator status on a private control plane (the `default` coordinator, ConfigMaps
//! and Pods in kube-system, CRDs and ServiceCIDRs are cluster-wide): the status follows
//! kubeadm-config, kube-controller-manager Pods, ServiceCIDRs and Calico IPPools, says what
//! to fix when nothing is found, and is not rewritten when nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use spiderpool_controller::Ctx;
use spiderpool_controller::coordinator::{self, Args, sources};
use spiderpool_core::objects::{COORDINATOR, CoordinatorStatus, SpiderCoordinator};
use spiderpool_k8s::kinds::{api_resource, from_dynamic};
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// The default ServiceCIDR our test apiserver creates from --service-cluster-ip-range.
const DEFAULT_SERVICE_CIDR: &str = "10.233.0.0/18";

fn args(resync: Duration) -> Args {
    Args {
        resync,
        debounce: Duration::from_millis(100),
        // No host CNI directory is read: no test uses podCIDRType auto.
        cni_config_dir: std::env::temp_dir().join("no-such-cni-dir"),
        ..Args::new()
    }
}

fn coordinators(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &api_resource(&COORDINATOR))
}

async fn create_coordinator(client: &kube::Client, pod_cidr_type: &str) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1",
        "kind": "SpiderCoordinator",
        "metadata": {"name": "default"},
        "spec": {"mode": "auto", "podCIDRType": pod_cidr_type, "tunePodRoutes": true,
                 "hijackCIDR": ["169.254.0.0/16"], "hostRuleTable": 500, "podRPFilter": 0}
    }))
    .unwrap();
    coordinators(client)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn read(client: &kube::Client) -> (SpiderCoordinator, String) {
    let obj = coordinators(client).get("default").await.unwrap();
    let rv = obj.metadata.resource_version.clone().unwrap();
    (from_dynamic(&obj).unwrap(), rv)
}

/// Waits until the status satisfies `pred`; fails with the last status seen.
async fn wait_status(
    client: &kube::Client,
    limit: Duration,
    pred: impl Fn(&CoordinatorStatus) -> bool,
) -> CoordinatorStatus {
    let start = Instant::now();
    loop {
        let (c, _) = read(client).await;
        if let Some(s) = c.status.as_ref().filter(|s| pred(s)) {
            return s.clone();
        }
        assert!(
            start.elapsed() < limit,
            "status still {:?} after {limit:?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn synced_with(overlay: &[&str], service: &[&str]) -> impl Fn(&CoordinatorStatus) -> bool {
    let overlay: Vec<String> = overlay.iter().map(|s| (*s).to_owned()).collect();
    let service: Vec<String> = service.iter().map(|s| (*s).to_owned()).collect();
    move |s| {
        s.phase == "Synced"
            && s.overlay_pod_cidr.as_ref() == Some(&overlay)
            && s.service_cidr.as_ref() == Some(&service)
    }
}

fn not_ready(s: &CoordinatorStatus) -> bool {
    s.phase == "NotReady"
}

async fn kube_system(client: &kube::Client) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "kube-system"}})).unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create kube-system: {e}"),
    }
}

async fn put_kubeadm_config(client: &kube::Client, cluster_configuration: &str) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": cluster_configuration}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .patch(
            "kubeadm-config",
            &PatchParams::apply("coordinator-test").force(),
            &Patch::Apply(&cm),
        )
        .await
        .unwrap();
}

async fn kcm_pod(client: &kube::Client, name: &str, flags: &[&str]) {
    let mut command = vec!["kube-controller-manager".to_owned()];
    command.extend(flags.iter().map(|f| (*f).to_owned()));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"component": "kube-controller-manager", "tier": "control-plane"}},
        "spec": {"containers": [{"name": "kube-controller-manager",
                                 "image": "registry.k8s.io/kube-controller-manager:v1.36.3",
                                 "command": command}]}
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn delete_now<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
}

/// Starts the coordinator controller on the plane (its own client, as a leader would).
async fn start(plane: &PrivateControlPlane, args: Args) -> tokio::task::JoinHandle<()> {
    let client = spiderpool_k8s::client::connect(Some(&plane.kubeconfig))
        .await
        .unwrap();
    let ctx = Ctx::new(client);
    tokio::spawn(async move {
        if let Err(e) = coordinator::run(ctx, args).await {
            panic!("coordinator controller failed: {e}");
        }
    })
}

const WAIT: Duration = Duration::from_secs(10);

/// Waits for an Event with `reason` about the coordinator (cluster-scoped objects' Events go
/// to namespace `default`) and returns its note.
async fn wait_event(client: &kube::Client, reason: &str) -> String {
    let api = Api::<Event>::namespaced(client.clone(), "default");
    let start = Instant::now();
    loop {
        let found = api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref())
                        == Some("SpiderCoordinator")
            });
        if let Some(e) = found {
            return e.note.unwrap_or_default();
        }
        assert!(start.elapsed() < WAIT, "no {reason} event after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
#[ignore = "needs apiserver"]
fn coordinator_status_from_kubeadm_config_kcm_pod_and_service_cidrs() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = TestCluster::on(&plane, "coordinator").await.unwrap();
        let client = cluster.client.clone();
        kube_system(&client).await;
        create_coordinator(&client, "cluster").await;
        // A resync far away: every change below reaches the controller through its watches.
        let controller = start(&plane, args(Duration::from_secs(3600))).await;

        // Neither kubeadm-config nor a kube-controller-manager Pod: NotReady, saying what to fix.
        let s = wait_status(&client, WAIT, not_ready).await;
        let reason = s.reason.unwrap();
        assert!(reason.contains("kubeadm-config not found"), "{reason}");
        assert!(
            reason.contains("no kube-controller-manager Pod"),
            "{reason}"
        );
        assert!(
            reason.contains("create ConfigMap kube-system/kubeadm-config"),
            "{reason}"
        );
        assert_eq!(s.overlay_pod_cidr, Some(vec![]));
        let note = wait_event(&client, "ClusterNotReady").await;
        assert!(note.contains("kubeadm-config not found"), "{note}");

        // Only a kube-controller-manager Pod: its --cluster-cidr. The service CIDR comes from
        // the ServiceCIDR API (the apiserver's default `kubernetes` object).
        kcm_pod(
            &client,
            "kube-controller-manager-master",
            &[
                "--allocate-node-cidrs=true",
                "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
                "--service-cluster-ip-range=10.96.0.0/12",
            ],
        )
        .await;
        wait_status(
            &client,
            WAIT,
            synced_with(
                &["10.244.0.0/16", "fd00:10:244::/56"],
                &[DEFAULT_SERVICE_CIDR],
            ),
        )
        .await;

        // kubeadm-config comes first.
        let kubeadm = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n\
                       networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.233.64.0/18\n  \
                       serviceSubnet: 10.233.0.0/18\n";
        put_kubeadm_config(&client, kubeadm).await;
        wait_status(
            &client,
            WAIT,
            synced_with(&["10.233.64.0/18"], &[DEFAULT_SERVICE_CIDR]),
        )
        .await;

        // Garbage in kubeadm-config: the kube-controller-manager Pod takes over; without it,
        // NotReady naming both and the bad value.
        put_kubeadm_config(
            &client,
            "networking: {podSubnet: 10.233.64.0/33} }}garbage{{",
        )
        .await;
        wait_status(
            &client,
            WAIT,
            synced_with(
                &["10.244.0.0/16", "fd00:10:244::/56"],
                &[DEFAULT_SERVICE_CIDR],
            ),
        )
        .await;
        let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
        delete_now(&pods, "kube-controller-manager-master").await;
        let s = wait_status(&client, WAIT, not_ready).await;
        let reason = s.reason.unwrap();
        assert!(reason.contains("no valid networking.podSubnet"), "{reason}");
        assert!(reason.contains("10.233.64.0/33"), "{reason}");

        // Repaired: Synced again.
        put_kubeadm_config(&client, kubeadm).await;
        wait_status(
            &client,
            WAIT,
            synced_with(&["10.233.64.0/18"], &[DEFAULT_SERVICE_CIDR]),
        )
        .await;

        // Another ServiceCIDR is picked up (creation order), and dropped when deleted.
        let scs = Api::<ServiceCIDR>::all(client.clone());
        let extra: ServiceCIDR = serde_json::from_value(json!({
            "metadata": {"name": "extra"}, "spec": {"cidrs": ["10.96.0.0/16"]}
        }))
        .unwrap();
        scs.create(&PostParams::default(), &extra).await.unwrap();
        wait_status(
            &client,
            WAIT,
            synced_with(&["10.233.64.0/18"], &[DEFAULT_SERVICE_CIDR, "10.96.0.0/16"]),
        )
        .await;
        scs.delete("extra", &DeleteParams::default()).await.unwrap();
        wait_status(
            &client,
            WAIT,
            synced_with(&["10.233.64.0/18"], &[DEFAULT_SERVICE_CIDR]),
        )
        .await;

        // Nothing changes: recomputes (poked through the kubeadm-config watch) write nothing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, rv) = read(&client).await;
        let cms = Api::<ConfigMap>::namespaced(client.clone(), "kube-system");
        for i in 0..4 {
            let poke = json!({"metadata": {"annotations": {"poke": i.to_string()}}});
            cms.patch(
                "kubeadm-config",
                &PatchParams::default(),
                &Patch::Merge(&poke),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        // The apiserver drops no-op writes without a new resourceVersion, so also ask the
        // controller's own step what it would do now: nothing.
        let report = coordinator::sync_once(&client, &args(Duration::from_secs(3600)))
            .await
            .unwrap();
        assert!(
            matches!(report.outcome, coordinator::Outcome::Unchanged(_)),
            "{report:?}"
        );
        let (c, rv_after) = read(&client).await;
        assert_eq!(
            rv, rv_after,
            "status rewritten though nothing changed: {:?}",
            c.status
        );

        // A podCIDRType change is followed.
        let patch = json!({"spec": {"podCIDRType": "none"}});
        coordinators(&client)
            .patch("default", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        wait_status(&client, WAIT, synced_with(&[], &[DEFAULT_SERVICE_CIDR])).await;
        let note = wait_event(&client, "PodCIDRTypeChanged").await;
        assert_eq!(note, "podCIDRType changed from cluster to none");

        // A coordinator written around the webhook without podCIDRType: NotReady, saying so.
        let unset = json!({"spec": {"podCIDRType": null}});
        coordinators(&client)
            .patch("default", &PatchParams::default(), &Patch::Merge(&unset))
            .await
            .unwrap();
        let s = wait_status(&client, WAIT, not_ready).await;
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .contains("spec.podCIDRType is not set"),
            "{s:?}"
        );

        // auto with an unreadable CNI directory: NotReady naming it.
        let auto = json!({"spec": {"podCIDRType": "auto"}});
        coordinators(&client)
            .patch("default", &PatchParams::default(), &Patch::Merge(&auto))
            .await
            .unwrap();
        let s = wait_status(&client, WAIT, |s| {
            s.reason
                .as_deref()
                .is_some_and(|r| r.contains("podCIDRType auto"))
        })
        .await;
        assert_eq!(s.phase, "NotReady");
        assert!(
            s.reason.as_deref().unwrap().contains("no-such-cni-dir"),
            "{s:?}"
        );

        controller.abort();
        assert!(controller.await.unwrap_err().is_cancelled());
    });
}

fn calico_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "ippools.crd.projectcalico.org"},
        "spec": {
            "group": "crd.projectcalico.org",
            "names": {"kind": "IPPool", "listKind": "IPPoolList",
                      "plural": "ippools", "singular": "ippool"},
            "scope": "Cluster",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                              "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap()
}

async fn calico_pool(client: &kube::Client, name: &str, cidr: &str, disabled: bool) {
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"cidr": cidr, "ipipMode": "Always", "natOutgoing": true,
                 "disabled": disabled, "nodeSelector": "all()"}
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(client.clone(), &sources::calico_ippool())
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
}

#[test]
#[ignore = "needs apiserver"]
fn coordinator_overlay_follows_calico_ippools_installed_later() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = TestCluster::on(&plane, "coordinator-calico").await.unwrap();
        let client = cluster.client.clone();
        create_coordinator(&client, "calico").await;
        // No kubeadm-config, no kube-controller-manager: with Calico and the ServiceCIDR API
        // nothing else is needed (upstream would be NotReady here; docs/compatibility.md).
        // Switched off (SPIDERPOOL_COORDINATOR_ENABLED=false): nothing is written.
        let off = start(
            &plane,
            Args {
                enabled: false,
                ..args(Duration::from_secs(1))
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(read(&client).await.0.status, None, "written while disabled");
        off.abort();

        let controller = start(&plane, args(Duration::from_secs(1))).await;

        // The CRD is not installed: NotReady naming it, and no error.
        let s = wait_status(&client, WAIT, not_ready).await;
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .contains("ippools.crd.projectcalico.org"),
            "{s:?}"
        );

        // Installed later: picked up at the next resync.
        let crds = Api::<CustomResourceDefinition>::all(client.clone());
        crds.create(&PostParams::default(), &calico_crd())
            .await
            .unwrap();
        tokio::time::timeout(
            WAIT,
            await_condition(
                crds.clone(),
                "ippools.crd.projectcalico.org",
                conditions::is_crd_established(),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        wait_status(&client, WAIT, synced_with(&[], &[DEFAULT_SERVICE_CIDR])).await;

        // Pools in creation order; disabled ones are not pod CIDRs.
        calico_pool(&client, "default-ipv4-ippool", "10.222.64.0/18", false).await;
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct creation seconds
        calico_pool(&client, "second", "10.223.64.0/18", false).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        calico_pool(&client, "off", "10.224.0.0/16", true).await;
        wait_status(
            &client,
            WAIT,
            synced_with(
                &["10.222.64.0/18", "10.223.64.0/18"],
                &[DEFAULT_SERVICE_CIDR],
            ),
        )
        .await;

        // Deleting one, enabling another: the status follows.
        let pools = Api::<DynamicObject>::all_with(client.clone(), &sources::calico_ippool());
        pools
            .delete("default-ipv4-ippool", &DeleteParams::default())
            .await
            .unwrap();
        let enable = json!({"spec": {"disabled": false}});
        pools
            .patch("off", &PatchParams::default(), &Patch::Merge(&enable))
            .await
            .unwrap();
        wait_status(
            &client,
            WAIT,
            synced_with(
                &["10.223.64.0/18", "10.224.0.0/16"],
                &[DEFAULT_SERVICE_CIDR],
            ),
        )
        .await;

        // Resyncs every second write nothing while nothing changes.
        let (_, rv) = read(&client).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, rv_after) = read(&client).await;
        assert_eq!(rv, rv_after, "status rewritten by a resync");
        let report = coordinator::sync_once(&client, &args(Duration::from_secs(1)))
            .await
            .unwrap();
        assert!(
            matches!(report.outcome, coordinator::Outcome::Unchanged(_)),
            "{report:?}"
        );
        assert!(report.served.calico && report.served.service_cidrs && !report.served.cilium_pools);

        // A coordinator (re-)created while the controller runs gets its status too.
        coordinators(&client)
            .delete("default", &DeleteParams::default())
            .await
            .unwrap();
        while coordinators(&client)
            .get_opt("default")
            .await
            .unwrap()
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        create_coordinator(&client, "calico").await;
        wait_status(
            &client,
            WAIT,
            synced_with(
                &["10.223.64.0/18", "10.224.0.0/16"],
                &[DEFAULT_SERVICE_CIDR],
            ),
        )
        .await;
        controller.abort();
    });
}
