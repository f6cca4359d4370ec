//! Kubernetes mode end to end, with kubectl as the user's client: the seed's pool and
//! SpiderMultusConfig applied with kubectl, two Pods with the Multus annotation on two Node
//! objects, CNI ADD through the real `spiderpool` plugin against two real agents (one per
//! node), `kubectl get se` / `kubectl get sp` as the seed prints them, then DEL.
//!
//! Needs a kube-apiserver (`hack/control-plane.sh up`, `KUBECONFIG`) and root (network
//! namespaces for `CNI_NETNS`). `kubectl` is `$KUBECTL` or the first on `PATH`
//! (scripts/test.sh puts the one built with the apiserver first).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::kube::{KubeAgentProcess, cell, ipam_conf, kubectl, kubectl_ok, seed, table};
use common::{Netns, ip, spiderpool_plugin};
use spiderpool_k8s::testing::TestCluster;
use spiderpool_test_kit::cni::{Call, run_plugin_here};
use spiderpool_test_kit::gate::{self, Need};

#[test]
#[ignore = "needs apiserver"]
fn k8s_seed_pods_get_net1_addresses_and_kubectl_shows_them() {
    if !gate::ready(&[Need::Root, Need::Program("ip")]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tc = rt.block_on(TestCluster::new("seed-e2e")).expect("cluster");
    let ns = tc.namespace.clone();
    kubectl_ok(None, &["apply", "-f", &seed("ippool.yaml")]);
    kubectl_ok(None, &["apply", "-f", &seed("multusconfig.yaml")]);
    let nets = BTreeMap::from([(
        "k8s.v1.cni.cncf.io/networks".to_owned(),
        "macvlan-ens192".to_owned(),
    )]);
    let mut uids = Vec::new();
    for (pod, node) in [("nginx-1", "node1"), ("nginx-2", "node2")] {
        rt.block_on(tc.node(node, &BTreeMap::new())).expect("node");
        let p = rt
            .block_on(tc.pod(
                pod,
                node,
                &nets,
                &BTreeMap::from([("app".into(), "nginx".into())]),
            ))
            .expect("pod");
        uids.push(p.metadata.uid.expect("uid"));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let agents = [
        KubeAgentProcess::start(dir.path(), "node1", "debug"),
        KubeAgentProcess::start(dir.path(), "node2", "debug"),
    ];
    let plugin = spiderpool_plugin();
    let plugin = plugin.to_str().expect("utf-8 path");
    let mut netns = Netns::default();
    let mut addresses = Vec::new();
    for (i, pod) in ["nginx-1", "nginx-2"].iter().enumerate() {
        let name = netns.add(&format!("se2e-{}-{i}", std::process::id()));
        ip(&[
            "-n", &name, "link", "add", "net1", "type", "veth", "peer", "name", "peer1",
        ]);
        let path = format!("/var/run/netns/{name}");
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={};K8S_POD_INFRA_CONTAINER_ID=c{i}",
            uids[i]
        );
        let cid = format!("c{i}");
        let call = Call {
            args: &args,
            ..Call::add(&path, &cid, "net1")
        };
        let run = run_plugin_here(
            plugin,
            &call,
            &ipam_conf("0.3.1", &agents[i].socket, "10-6-v4"),
        );
        assert_eq!(run.code, 0, "ADD {pod}: {} {}", run.stdout, run.stderr);
        let result: serde_json::Value = serde_json::from_str(&run.stdout).expect("CNI result");
        let address = result["ips"][0]["address"]
            .as_str()
            .expect("address")
            .to_owned();
        assert!(
            address.starts_with("10.6.212.") && address.ends_with("/16"),
            "{address}"
        );
        addresses.push(address);
    }
    assert_ne!(addresses[0], addresses[1]);

    // `kubectl get se` as in the seed: NAME INTERFACE IPV4POOL IPV4 ... NODE.
    let se = table(None, &["get", "se", "-n", &ns]);
    assert_eq!(se.len(), 3, "{se:?}");
    for (row, (pod, node)) in [("nginx-1", "node1"), ("nginx-2", "node2")]
        .iter()
        .enumerate()
    {
        let r = row + 1;
        assert_eq!(cell(&se, r, "NAME"), *pod);
        assert_eq!(cell(&se, r, "INTERFACE"), "net1");
        assert_eq!(cell(&se, r, "IPV4POOL"), "10-6-v4");
        assert_eq!(
            cell(&se, r, "IPV4"),
            addresses[row],
            "the endpoint holds the CNI result"
        );
        assert_eq!(cell(&se, r, "NODE"), *node);
    }
    // `kubectl get sp`: ALLOCATED-IP-COUNT converges to 2 (written behind the ADDs).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sp = table(None, &["get", "sp", "10-6-v4"]);
        if cell(&sp, 1, "ALLOCATED-IP-COUNT") == "2" {
            assert_eq!(cell(&sp, 1, "TOTAL-IP-COUNT"), "101");
            assert_eq!(cell(&sp, 1, "SUBNET"), "10.6.0.0/16");
            break;
        }
        assert!(Instant::now() < deadline, "count never 2: {sp:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // DEL while the pods live keeps the addresses (a re-created sandbox keeps its IPs).
    for (i, pod) in ["nginx-1", "nginx-2"].iter().enumerate() {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={}",
            uids[i]
        );
        let cid = format!("c{i}");
        let call = Call {
            args: &args,
            ..Call::add("", &cid, "net1").with("DEL")
        };
        let run = run_plugin_here(
            plugin,
            &call,
            &ipam_conf("0.3.1", &agents[i].socket, "10-6-v4"),
        );
        assert_eq!(run.code, 0, "DEL {pod}: {} {}", run.stdout, run.stderr);
    }
    assert_eq!(
        table(None, &["get", "se", "-n", &ns]).len(),
        3,
        "live pods keep their endpoints"
    );

    // The pods are deleted: DEL releases, the endpoints go, the count returns to 0.
    for (i, pod) in ["nginx-1", "nginx-2"].iter().enumerate() {
        rt.block_on(tc.delete_pod(pod)).expect("delete pod");
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={}",
            uids[i]
        );
        let cid = format!("c{i}");
        let call = Call {
            args: &args,
            ..Call::add("", &cid, "net1").with("DEL")
        };
        let run = run_plugin_here(
            plugin,
            &call,
            &ipam_conf("0.3.1", &agents[i].socket, "10-6-v4"),
        );
        assert_eq!(run.code, 0, "DEL {pod}: {} {}", run.stdout, run.stderr);
    }
    let out = Command::new(kubectl())
        .args(["get", "se", "-n", &ns])
        .output()
        .expect("kubectl");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "endpoints left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cell(
        &table(None, &["get", "sp", "10-6-v4"]),
        1,
        "ALLOCATED-IP-COUNT",
    ) != "0"
    {
        assert!(Instant::now() < deadline, "count never back to 0");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on 127.0.0.1:`port`: the status code and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_agent_serves_upstreams_health_probes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _tc = rt.block_on(TestCluster::new("probes")).expect("cluster");
    // A free port: bind, read it, release it for the agent.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("probes.sock");
    let mut child = Command::new(common::AGENT)
        .args(["--node-name", "probe-node", "--log-level", "warn"])
        .arg("--health-port")
        .arg(port.to_string())
        .arg("--socket")
        .arg(&socket)
        .spawn()
        .expect("agent");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "probe port never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in [
        "/v1/runtime/startup",
        "/v1/runtime/readiness",
        "/v1/runtime/liveness",
    ] {
        assert_eq!(http_get(port, path), (200, "\"ok\"".to_owned()), "{path}");
    }
    assert_eq!(http_get(port, "/v1/runtime/other").0, 404);
    let _ = child.kill();
    let _ = child.wait();
}
