//! `--enable-metric` in Kubernetes mode: the same counters as in local mode, for requests on
//! the agent's socket against a real apiserver.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spiderpool_core::agentapi::{IpamAddArgs, IpamDelArgs};
use spiderpool_k8s::testing::{TestCluster, unique_name};
use spiderpool_plugin_support::agent_client::AgentClient;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
        .parse()
        .unwrap()
}

/// Kills the agent when the test ends, however it ends.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_metrics_count_allocations_and_releases() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tc = rt.block_on(TestCluster::new("metrics-kube")).unwrap();
    let ns = tc.namespace.clone();
    let pool = unique_name("metrics");
    rt.block_on(tc.ippool(&pool, "10.8.0.0/16", &["10.8.0.10-10.8.0.20"], None))
        .unwrap();
    let node = format!("{ns}-n0");
    let uids = rt
        .block_on(tc.pods_on(2, std::slice::from_ref(&node)))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let log = dir.path().join("agent.log");
    let port = free_port();
    let _agent = Agent(
        Command::new(common::AGENT)
            .args([
                "--node-name",
                &node,
                "--health-port",
                "0",
                "--enable-metric",
            ])
            .args(["--metric-port", &port.to_string()])
            .arg("--socket")
            .arg(&socket)
            .arg("--log-file")
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
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

    let add = |pod: &str, pools: &[&str]| IpamAddArgs {
        container_id: format!("c-{pod}"),
        if_name: "net1".to_owned(),
        pod_namespace: ns.clone(),
        pod_name: pod.to_owned(),
        pod_uid: uids[pod].clone(),
        default_ipv4_ippool: pools.iter().map(|p| (*p).to_owned()).collect(),
        ..IpamAddArgs::default()
    };
    client.post_ip(&add("pod-0", &[&pool])).unwrap();
    client.post_ip(&add("pod-1", &[&pool])).unwrap();
    // A second NIC from a pool that does not exist: a failed allocation.
    let bad = IpamAddArgs {
        if_name: "net2".to_owned(),
        ..add("pod-1", &["no-such-pool"])
    };
    assert!(client.post_ip(&bad).is_err());
    client
        .delete_ip(&IpamDelArgs {
            container_id: "c-pod-0".to_owned(),
            if_name: "net1".to_owned(),
            pod_namespace: ns.clone(),
            pod_name: "pod-0".to_owned(),
            pod_uid: uids["pod-0"].clone(),
            ..IpamDelArgs::default()
        })
        .unwrap();

    let body = scrape(port);
    assert_eq!(
        sample(&body, "spiderpool_ipam_allocation_counts_total"),
        3.0
    );
    assert_eq!(
        sample(&body, "spiderpool_ipam_allocation_failure_counts_total"),
        1.0
    );
    assert_eq!(sample(&body, "spiderpool_ipam_release_counts_total"), 1.0);
    assert_eq!(
        sample(&body, "spiderpool_ipam_release_failure_counts_total"),
        0.0
    );
    assert_eq!(
        sample(&body, "spiderpool_ipam_allocation_duration_seconds_count"),
        3.0
    );
}
