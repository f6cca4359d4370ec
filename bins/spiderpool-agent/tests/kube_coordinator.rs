//! Kubernetes mode: `GET /v1/coordinator/config` through the agent's socket is answered from
//! the SpiderCoordinator's live status and spec plus the pod's annotations, follows status
//! changes, and is refused (with the reason) while the coordinator is NotReady, for a pod that
//! does not exist, and when there is no SpiderCoordinator. On a private control plane: the
//! `default` SpiderCoordinator is cluster-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use spiderpool_core::agentapi::GetCoordinatorArgs;
use spiderpool_core::coordinator::AgentCoordinatorConfig;
use spiderpool_core::objects::COORDINATOR;
use spiderpool_k8s::kinds::api_resource;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};
use spiderpool_plugin_support::agent_client::{AgentClient, ClientError};

/// The agent on `node` of the private plane, killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(kubeconfig: &Path, dir: &Path, node: &str) -> (Agent, AgentClient) {
    let socket = dir.join("agent.sock");
    let log = dir.join("agent.log");
    let child = Command::new(common::AGENT)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--node-name",
            node,
            "--health-port",
            "0",
            "--log-level",
            "debug",
        ])
        .arg("--socket")
        .arg(&socket)
        .arg("--log-file")
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .expect("agent starts");
    let agent = Agent(child);
    let client = AgentClient::new(&socket);
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.healthy().is_err() {
        assert!(
            Instant::now() < deadline,
            "agent not healthy: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (agent, client)
}

fn ask(agent: &AgentClient, namespace: &str, pod: &str) -> Result<AgentCoordinatorConfig, String> {
    agent
        .coordinator_config(&GetCoordinatorArgs {
            pod_name: pod.to_owned(),
            pod_namespace: namespace.to_owned(),
        })
        .map_err(|e| match e {
            ClientError::Status { status, message } => format!("{status}: {message}"),
            other => panic!("not an HTTP refusal: {other:?}"),
        })
}

/// Asks until `pred` holds for the answer (the agent's cache follows the apiserver).
fn ask_until(
    agent: &AgentClient,
    namespace: &str,
    pod: &str,
    pred: impl Fn(&Result<AgentCoordinatorConfig, String>) -> bool,
) -> Result<AgentCoordinatorConfig, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = ask(agent, namespace, pod);
        if pred(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "answer still {answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_status(rt: &tokio::runtime::Runtime, api: &Api<DynamicObject>, status: serde_json::Value) {
    rt.block_on(api.patch_status(
        "default",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    ))
    .unwrap();
}

fn strings(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
#[ignore = "needs apiserver"]
fn kube_coordinator_config_from_live_status_and_pod_annotations() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt
        .block_on(TestCluster::on(&plane, "kube-coordinator"))
        .unwrap();
    let ns = cluster.namespace.clone();
    let none = BTreeMap::new();
    rt.block_on(cluster.node("node-a", &none)).unwrap();
    let nic: BTreeMap<String, String> = [(
        "ipam.spidernet.io/default-route-nic".to_owned(),
        "net1".to_owned(),
    )]
    .into();
    rt.block_on(cluster.pod("pod-net1", "node-a", &nic, &none))
        .unwrap();
    rt.block_on(cluster.pod("pod-plain", "node-a", &none, &none))
        .unwrap();

    let api: Api<DynamicObject> =
        Api::all_with(cluster.client.clone(), &api_resource(&COORDINATOR));
    let coordinator: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1",
        "kind": "SpiderCoordinator",
        "metadata": {"name": "default"},
        "spec": {"mode": "auto", "podCIDRType": "calico", "tunePodRoutes": true,
                 "hijackCIDR": ["169.254.0.0/16"], "hostRuleTable": 500, "podRPFilter": 0,
                 "podDefaultRouteNIC": "eth0", "vethMTU": 1500}
    }))
    .unwrap();
    rt.block_on(api.create(&PostParams::default(), &coordinator))
        .unwrap();
    set_status(
        &rt,
        &api,
        json!({"phase": "Synced", "overlayPodCIDR": ["10.222.64.0/18", "10.223.64.0/18"],
               "serviceCIDR": ["10.233.0.0/18"]}),
    );

    let dir = tempfile::tempdir().unwrap();
    let (_agent, client) = start_agent(&plane.kubeconfig, dir.path(), "node-a");

    // The status's CIDRs, the spec's settings, the pod's annotation over the spec's NIC.
    let a = ask(&client, &ns, "pod-net1").unwrap();
    assert_eq!(a.mode.as_deref(), Some("auto"));
    assert_eq!(
        a.overlay_pod_cidr,
        strings(&["10.222.64.0/18", "10.223.64.0/18"])
    );
    assert_eq!(a.service_cidr, strings(&["10.233.0.0/18"]));
    assert_eq!(a.hijack_cidr, strings(&["169.254.0.0/16"]));
    assert_eq!(a.tune_pod_routes, Some(true));
    assert_eq!(a.host_rule_table, Some(500));
    assert_eq!(a.pod_default_route_nic.as_deref(), Some("net1"));
    let b = ask(&client, &ns, "pod-plain").unwrap();
    assert_eq!(b.pod_default_route_nic.as_deref(), Some("eth0"));

    // A status change is followed (watch cache, no restart).
    set_status(
        &rt,
        &api,
        json!({"phase": "Synced", "overlayPodCIDR": ["10.244.0.0/16"],
               "serviceCIDR": ["10.96.0.0/12"]}),
    );
    let a = ask_until(&client, &ns, "pod-net1", |a| {
        a.as_ref()
            .is_ok_and(|a| a.overlay_pod_cidr == strings(&["10.244.0.0/16"]))
    })
    .unwrap();
    assert_eq!(a.service_cidr, strings(&["10.96.0.0/12"]));

    // NotReady: refused with the coordinator's reason (every coordinator call fails, as
    // upstream's).
    set_status(
        &rt,
        &api,
        json!({"phase": "NotReady", "reason": "No kube-controller-manager pod found",
               "overlayPodCIDR": [], "serviceCIDR": []}),
    );
    let refused = ask_until(&client, &ns, "pod-net1", |a| a.is_err()).unwrap_err();
    assert!(refused.starts_with("500"), "{refused}");
    assert!(refused.contains("NotReady"), "{refused}");
    assert!(
        refused.contains("No kube-controller-manager pod found"),
        "{refused}"
    );
    set_status(
        &rt,
        &api,
        json!({"phase": "Synced", "reason": null, "overlayPodCIDR": ["10.244.0.0/16"],
               "serviceCIDR": ["10.96.0.0/12"]}),
    );
    ask_until(&client, &ns, "pod-net1", |a| a.is_ok()).unwrap();

    // A pod that does not exist is refused (the plugin's DEL then falls back on the NAD).
    let refused = ask(&client, &ns, "no-such-pod").unwrap_err();
    assert!(refused.starts_with("500"), "{refused}");
    assert!(refused.contains("no-such-pod"), "{refused}");

    // No SpiderCoordinator at all: refused, saying so.
    rt.block_on(api.delete("default", &DeleteParams::default()))
        .unwrap();
    let refused = ask_until(&client, &ns, "pod-net1", |a| a.is_err()).unwrap_err();
    assert!(refused.contains("no SpiderCoordinator"), "{refused}");

    // Without `default`, the first by name answers.
    for (name, cidr) in [
        ("zz-coordinator", "10.9.0.0/16"),
        ("aa-coordinator", "10.8.0.0/16"),
    ] {
        let mut other = coordinator.clone();
        other.metadata.name = Some(name.to_owned());
        rt.block_on(api.create(&PostParams::default(), &other))
            .unwrap();
        rt.block_on(api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"status": {"phase": "Synced", "overlayPodCIDR": [cidr],
                                             "serviceCIDR": ["10.96.0.0/12"]}}),
            ),
        ))
        .unwrap();
    }
    let a = ask_until(&client, &ns, "pod-plain", |a| {
        a.as_ref()
            .is_ok_and(|a| a.overlay_pod_cidr == strings(&["10.8.0.0/16"]))
    });
    assert!(a.is_ok());
}
