//! Faults under load, on a real kube-apiserver: while two agents allocate for 120 pods from one
//! pool, one agent is killed with SIGKILL and restarted, then kube-apiserver and etcd are
//! restarted. Requests that fail meanwhile fail with CNI code 11 and succeed when retried (as
//! a runtime retries); in the end every pod holds one distinct address, every SpiderEndpoint
//! holds what the plugin printed, nothing else is held, and the pool's count is exact.
//!
//! Restarting the control plane needs its directory: `SPIDERPOOL_CP_DIR` (scripts/test.sh
//! exports it).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kube::{KubeAgentProcess, ipam_conf};
use common::spiderpool_plugin;
use kube::api::{Api, DynamicObject, ListParams};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderEndpoint, SpiderIPPool};
use spiderpool_k8s::kinds::{api_resource, from_dynamic};
use spiderpool_k8s::testing::{TestCluster, unique_name};
use spiderpool_test_kit::cni::{Call, run_plugin_here};
use spiderpool_test_kit::gate::{self, Need};

const PODS: usize = 120;

fn control_plane(cmd: &str) {
    let dir = std::env::var("SPIDERPOOL_CP_DIR").expect("SPIDERPOOL_CP_DIR");
    let script = format!("{}/../../hack/control-plane.sh", env!("CARGO_MANIFEST_DIR"));
    let st = Command::new(script)
        .args([cmd, &dir])
        .status()
        .expect("control-plane.sh");
    assert!(st.success(), "control-plane.sh {cmd}");
}

fn kill_by_pidfile(name: &str) {
    let dir = std::env::var("SPIDERPOOL_CP_DIR").expect("SPIDERPOOL_CP_DIR");
    let pid = std::fs::read_to_string(format!("{dir}/{name}.pid")).expect("pid file");
    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_agent_kill_and_apiserver_restart_lose_nothing() {
    if !gate::ready(&[
        Need::Root,
        Need::Program("unshare"),
        Need::Env("SPIDERPOOL_CP_DIR"),
    ]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tc = rt.block_on(TestCluster::new("faults")).expect("cluster");
    let ns = tc.namespace.clone();
    let pool = unique_name("faults");
    rt.block_on(tc.ippool(&pool, "10.12.0.0/16", &["10.12.0.10-10.12.0.209"], None))
        .expect("create pool");
    let pools: Api<DynamicObject> = Api::all_with(tc.client.clone(), &api_resource(&IPPOOL));
    let nodes = [format!("{ns}-a"), format!("{ns}-b")];
    let uids = rt.block_on(tc.pods_on(PODS, &nodes)).expect("pods");
    let dir = tempfile::tempdir().expect("tmp");
    let agents: Arc<Mutex<Vec<KubeAgentProcess>>> = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|n| KubeAgentProcess::spawn(dir.path(), n, "info"))
            .collect(),
    ));
    let holder = Command::new("unshare")
        .args(["-n", "sleep", "600"])
        .spawn()
        .expect("netns");
    std::thread::sleep(Duration::from_millis(300));
    let netns = format!("/proc/{}/ns/net", holder.id());
    let plugin = spiderpool_plugin().to_str().expect("utf-8").to_owned();
    let sockets: Vec<PathBuf> = nodes
        .iter()
        .map(|n| dir.path().join(format!("{n}.sock")))
        .collect();
    let done = AtomicUsize::new(0);
    let retried = AtomicUsize::new(0);

    let results: Vec<(String, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (uids, ns, netns, plugin, pool, sockets, done, retried) =
                    (&uids, &ns, &netns, &plugin, &pool, &sockets, &done, &retried);
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (w..PODS).step_by(4) {
                        let pod = format!("pod-{i}");
                        let args = format!(
                            "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={}",
                            uids[&pod]
                        );
                        let cid = format!("c-{pod}");
                        let call = Call { args: &args, ..Call::add(netns, &cid, "net1") };
                        let conf = ipam_conf("1.0.0", &sockets[i % 2], pool);
                        let deadline = Instant::now() + Duration::from_secs(120);
                        loop {
                            let run = run_plugin_here(plugin, &call, &conf);
                            if run.code == 0 {
                                let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("result");
                                out.push((pod.clone(), v["ips"][0]["address"].as_str().expect("address").to_owned()));
                                break;
                            }
                            // Only "try again later" is acceptable while things restart.
                            assert_eq!(run.cni_code(), Some(11), "ADD {pod}: {} {}", run.stdout, run.stderr);
                            assert!(Instant::now() < deadline, "ADD {pod} kept failing: {}", run.stdout);
                            retried.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    out
                })
            })
            .collect();
        // The faults, while the workers run.
        let wait_for = |n: usize| {
            while done.load(Ordering::Relaxed) < n {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for(PODS / 4);
        {
            let mut a = agents.lock().expect("agents");
            a[0].kill(); // SIGKILL
            std::thread::sleep(Duration::from_millis(500));
            a[0] = KubeAgentProcess::spawn(dir.path(), &nodes[0], "info");
        }
        wait_for(PODS / 2);
        kill_by_pidfile("apiserver");
        kill_by_pidfile("etcd");
        std::thread::sleep(Duration::from_secs(2));
        control_plane("up");
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    eprintln!(
        "{} ADD attempts were retried after code 11",
        retried.load(Ordering::Relaxed)
    );
    let distinct: BTreeSet<&String> = results.iter().map(|(_, a)| a).collect();
    assert_eq!(results.len(), PODS);
    assert_eq!(distinct.len(), PODS, "no address handed out twice");

    // Every endpoint holds what its plugin printed, and there is no other record.
    let eps: Api<DynamicObject> =
        Api::namespaced_with(tc.client.clone(), &ns, &api_resource(&ENDPOINT));
    let list = rt.block_on(eps.list(&ListParams::default())).expect("list");
    let held: BTreeMap<String, String> = list
        .items
        .iter()
        .map(|o| {
            let ep: SpiderEndpoint = from_dynamic(o).expect("endpoint");
            let st = ep.status.expect("status");
            (
                ep.metadata.name.expect("name"),
                st.current.ips[0].ipv4.clone().expect("ipv4"),
            )
        })
        .collect();
    assert_eq!(held.len(), PODS);
    for (pod, addr) in &results {
        assert_eq!(held.get(pod), Some(addr), "endpoint of {pod}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p: SpiderIPPool =
            from_dynamic(&rt.block_on(pools.get(&pool)).expect("pool")).expect("decode");
        if p.status.as_ref().and_then(|s| s.allocated_ip_count) == Some(PODS as i64) {
            break;
        }
        assert!(Instant::now() < deadline, "count: {:?}", p.status);
        std::thread::sleep(Duration::from_millis(200));
    }
    agents.lock().expect("agents").clear();
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
}
