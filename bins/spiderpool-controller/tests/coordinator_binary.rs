//! The `spiderpool-controller` binary keeps the SpiderCoordinator status once it leads,
//! configured by upstream's environment variables (`SPIDERPOOL_COORDINATOR_DEAFULT_NAME`
//! [sic], `SPIDERPOOL_COORDINATOR_INFORMER_RESYNC_PERIOD`), on a private control plane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use spiderpool_core::objects::{COORDINATOR, SpiderCoordinator};
use spiderpool_k8s::kinds::{api_resource, from_dynamic};
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// The controller process, killed when dropped.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn coordinator(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1",
        "kind": "SpiderCoordinator",
        "metadata": {"name": name},
        "spec": {"mode": "auto", "podCIDRType": "cluster", "tunePodRoutes": true,
                 "hostRuleTable": 500, "podRPFilter": 0}
    }))
    .unwrap()
}

#[test]
#[ignore = "needs apiserver"]
fn coordinator_binary_keeps_the_named_coordinator_from_upstream_env() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("controller.log");
    let (api, ns) = rt.block_on(async {
        let cluster = TestCluster::on(&plane, "coordinator-binary").await.unwrap();
        let client = cluster.client.clone();
        let ks: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "kube-system"}})).unwrap();
        let _ = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ks)
            .await;
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration":
                "kind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.233.64.0/18\n  serviceSubnet: 10.233.0.0/18\n"}
        }))
        .unwrap();
        Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
        let api: Api<DynamicObject> = Api::all_with(client, &api_resource(&COORDINATOR));
        for name in ["default", "cluster-coordinator"] {
            api.create(&PostParams::default(), &coordinator(name))
                .await
                .unwrap();
        }
        (api, cluster.namespace)
    });

    let out = std::fs::File::create(&log).unwrap();
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
            .arg("--kubeconfig")
            .arg(&plane.kubeconfig)
            .env_remove("KUBECONFIG")
            .env("SPIDERPOOL_POD_NAMESPACE", &ns)
            .env("SPIDERPOOL_POD_NAME", "controller-0")
            .env("SPIDERPOOL_HEALTH_PORT", free_port().to_string())
            .env("SPIDERPOOL_WEBHOOK_PORT", free_port().to_string())
            .env("SPIDERPOOL_COORDINATOR_ENABLED", "true")
            .env("SPIDERPOOL_COORDINATOR_DEAFULT_NAME", "cluster-coordinator")
            .env("SPIDERPOOL_COORDINATOR_INFORMER_RESYNC_PERIOD", "2")
            .env("SPIDERPOOL_CNI_CONFIG_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );

    let read = |name: &str| -> SpiderCoordinator {
        from_dynamic(&rt.block_on(api.get(name)).unwrap()).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = read("cluster-coordinator").status {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no status after 40 s; controller log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.phase, "Synced", "{status:?}");
    assert_eq!(
        status.overlay_pod_cidr,
        Some(vec!["10.233.64.0/18".to_owned()])
    );
    assert_eq!(status.service_cidr, Some(vec!["10.233.0.0/18".to_owned()]));
    // Only the named coordinator is kept.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read("default").status, None);
}
