//! The SpiderSubnet controllers inside the real `spiderpool-controller` binary, behind its own
//! admission webhooks, on a private control plane: the auto-created pool's creates and resizes
//! pass the pool webhook (whose watch cache must have the subnet's record first), and the
//! controllers run only once this replica holds the Lease.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use spiderpool_core::objects::{IPPOOL, SUBNET};
use spiderpool_k8s::kinds::api_resource;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// The controller process, killed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(plane: &PrivateControlPlane, ns: &str) -> Controller {
    let log = plane.dir().join("subnet-controller.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["--webhook-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--subnet-retry-delay", "0.5"])
        .env_remove("KUBECONFIG")
        .env("SPIDERPOOL_POD_NAMESPACE", ns)
        .env("SPIDERPOOL_POD_NAME", "subnet-binary-test")
        .env("SPIDERPOOL_HEALTH_PORT", free_port().to_string())
        .env("SPIDERPOOL_METRIC_HTTP_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Controller { child, log }
}

fn object(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

/// Polls `check` every 100 ms for up to 60 s; on timeout, fails with the controller's log.
async fn eventually<T, F, Fut>(ctl: &Controller, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting for {what}; controller log:\n{}",
        ctl.log()
    );
}

#[test]
#[ignore = "needs apiserver"]
fn subnet_binary_auto_pool_passes_the_webhooks_and_follows_the_deployment() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tc = TestCluster::on(&plane, "subnet-binary").await.unwrap();
        let ctl = start(&plane, &tc.namespace);
        let subnets: Api<DynamicObject> = Api::all_with(tc.client.clone(), &api_resource(&SUBNET));
        let pools: Api<DynamicObject> = Api::all_with(tc.client.clone(), &api_resource(&IPPOOL));

        // Wait for the webhooks: a subnet whose gateway is one of its ips is refused.
        let bad = object(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
            "metadata": {"name": "bad"},
            "spec": {"subnet": "10.61.0.0/24", "ips": ["10.61.0.1-10.61.0.9"],
                     "gateway": "10.61.0.1"}
        }));
        eventually(&ctl, "the webhooks registered", || async {
            match subnets.create(&PostParams::default(), &bad).await {
                Err(kube::Error::Api(s)) if s.message.contains("spec.gateway") => Some(()),
                Err(_) => None,
                Ok(_) => {
                    // Admitted before the registration: take it away and try again.
                    let _ = subnets
                        .patch(
                            "bad",
                            &PatchParams::default(),
                            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                        )
                        .await;
                    let _ = subnets.delete("bad", &DeleteParams::default()).await;
                    None
                }
            }
        })
        .await;

        let s = subnets
            .create(
                &PostParams::default(),
                &object(json!({
                    "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
                    "metadata": {"name": "s60"},
                    "spec": {"subnet": "10.60.0.0/24", "ips": ["10.60.0.1-10.60.0.20"],
                             "gateway": "10.60.0.254"}
                })),
            )
            .await
            .unwrap();
        // Defaulted by the mutating webhook.
        assert_eq!(s.data.pointer("/spec/ipVersion"), Some(&json!(4)));
        assert!(
            s.metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .contains(&"spiderpool.spidernet.io".to_owned())
        );

        let deploys: Api<Deployment> = Api::namespaced(tc.client.clone(), &tc.namespace);
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {
                        "ipam.spidernet.io/subnet": r#"{"ipv4":["s60"]}"#,
                        "ipam.spidernet.io/ippool-ip-number": "+1"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        }))
        .unwrap();
        let d = deploys.create(&PostParams::default(), &d).await.unwrap();
        let uid = d.metadata.uid.clone().unwrap();
        let short: String = uid.rsplit('-').next().unwrap().chars().take(5).collect();
        let name = format!("auto4-web-eth0-{short}");
        let with_ips = |want: Value| {
            let pools = pools.clone();
            let name = name.clone();
            async move {
                let p = pools.get_opt(&name).await.unwrap()?;
                (p.data.pointer("/spec/ips") == Some(&want)).then_some(p)
            }
        };
        let p = eventually(&ctl, "the auto pool with 3 addresses", || {
            with_ips(json!(["10.60.0.1-10.60.0.3"]))
        })
        .await;
        assert_eq!(p.data.pointer("/spec/gateway"), Some(&json!("10.60.0.254")));
        for (replicas, want) in [
            (4, json!(["10.60.0.1-10.60.0.5"])),
            (1, json!(["10.60.0.4-10.60.0.5"])),
        ] {
            deploys
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
                )
                .await
                .unwrap();
            eventually(&ctl, &format!("{want} for {replicas} replicas"), || {
                with_ips(want.clone())
            })
            .await;
        }
        // The subnet's record and counts, written by the controller in the binary.
        let s = eventually(&ctl, "the subnet's record", || async {
            let s = subnets.get("s60").await.unwrap();
            (s.data.pointer("/status/allocatedIPCount") == Some(&json!(2))).then_some(s)
        })
        .await;
        let record: Value = serde_json::from_str(
            s.data
                .pointer("/status/controlledIPPools")
                .and_then(Value::as_str)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            record[&name],
            json!({"ips": ["10.60.0.4-10.60.0.5"],
                   "application": format!("apps_v1_Deployment_{}_web", tc.namespace)})
        );
        // Deleting the Deployment deletes the pool (finalizer lifted by the pool controller).
        deploys
            .delete("web", &DeleteParams::default())
            .await
            .unwrap();
        eventually(&ctl, "the auto pool deleted", || async {
            pools.get_opt(&name).await.unwrap().is_none().then_some(())
        })
        .await;
    });
}
