//! Kubernetes mode, `DELETE /v1/ipam/ips` after a failed detection (`isReleaseConflictIPs`):
//! a StatefulSet pod's addresses are its identity and stay (522, as upstream); a Deployment
//! pod's are released.

mod common;

use std::collections::BTreeMap;

use common::kube::KubeAgentProcess;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, PostParams};
use spiderpool_core::agentapi::{IpamAddArgs, IpamBatchDelArgs, STATUS_STATEFUL_RELEASE_FORBIDDEN};
use spiderpool_k8s::testing::{TestCluster, unique_name};
use spiderpool_plugin_support::agent_client::{AgentClient, ClientError};

#[test]
#[ignore = "needs apiserver"]
fn k8s_conflict_release_keeps_a_statefulset_pods_address() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tc = rt
        .block_on(TestCluster::new("batch-release"))
        .expect("cluster");
    let ns = tc.namespace.clone();
    let pool = unique_name("batch");
    rt.block_on(tc.ippool(&pool, "10.61.0.0/16", &["10.61.0.10-10.61.0.20"], None))
        .expect("pool");
    rt.block_on(tc.node("batch-node", &BTreeMap::new()))
        .expect("node");
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db", "namespace": ns},
        "spec": {"replicas": 1, "serviceName": "db",
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .expect("statefulset");
    let sts = rt
        .block_on(
            Api::<StatefulSet>::namespaced(tc.client.clone(), &ns)
                .create(&PostParams::default(), &sts),
        )
        .expect("create statefulset");
    let owner = serde_json::json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
        "uid": sts.metadata.uid, "controller": true}]);
    let none = BTreeMap::new();
    let db = rt
        .block_on(tc.pod("db-0", "batch-node", &none, &none))
        .expect("pod db-0");
    rt.block_on(
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(tc.client.clone(), &ns).patch(
            "db-0",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": owner}})),
        ),
    )
    .expect("own db-0");
    let web = rt
        .block_on(tc.pod("web", "batch-node", &none, &none))
        .expect("pod web");

    let dir = tempfile::tempdir().expect("tmp");
    let agent = KubeAgentProcess::start(dir.path(), "batch-node", "debug");
    let client = AgentClient::new(&agent.socket);
    for (pod, uid) in [("db-0", &db.metadata.uid), ("web", &web.metadata.uid)] {
        client
            .post_ip(&IpamAddArgs {
                container_id: format!("c-{pod}"),
                if_name: "net1".into(),
                net_namespace: "/var/run/netns/x".into(),
                pod_namespace: ns.clone(),
                pod_name: pod.into(),
                pod_uid: uid.clone().expect("uid"),
                default_ipv4_ippool: vec![pool.clone()],
                ..Default::default()
            })
            .expect("ADD");
    }
    let release = |pod: &str, uid: &Option<String>| {
        client.delete_ips(&IpamBatchDelArgs {
            is_release_conflict_ips: true,
            container_id: format!("c-{pod}"),
            net_namespace: "/var/run/netns/x".into(),
            pod_namespace: ns.clone(),
            pod_name: pod.into(),
            pod_uid: uid.clone().expect("uid"),
        })
    };
    match release("db-0", &db.metadata.uid) {
        Err(ClientError::Status { status, message }) => {
            assert_eq!(status, STATUS_STATEFUL_RELEASE_FORBIDDEN, "{message}");
            assert!(message.contains("StatefulSet"), "{message}");
        }
        other => panic!("a StatefulSet pod's conflict release must be refused: {other:?}"),
    }
    let held = |pod: &str| {
        client
            .workload_endpoint(&ns, pod)
            .map(|st| st.current.ips.iter().filter(|i| i.ipv4.is_some()).count())
            .unwrap_or(0)
    };
    assert_eq!(held("db-0"), 1);
    release("web", &web.metadata.uid).expect("a Deployment-like pod's release");
    assert_eq!(held("web"), 0, "the other pod's address is released");
}
