//! Many agents, one pool, on a real kube-apiserver: 10 agent processes, each its own node,
//! allocate for 100 pods each from one 1000-address pool through the real `spiderpool`
//! plugin at a total concurrency of 10. Every ADD succeeds, the 1000 addresses are distinct,
//! every SpiderEndpoint holds what the plugin printed, the pool's count is exact, and the
//! 1001st pod gets a CNI error naming the exhausted pool.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kube::{KubeAgentProcess, ipam_conf};
use common::spiderpool_plugin;
use kube::api::{Api, DynamicObject, ListParams};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderEndpoint, SpiderIPPool};
use spiderpool_k8s::kinds::{api_resource, from_dynamic};
use spiderpool_k8s::testing::{TestCluster, unique_name};
use spiderpool_test_kit::cni::{Call, run_plugin_here};
use spiderpool_test_kit::gate::{self, Need};

const NODES: usize = 10;
const PER_NODE: usize = 100;

fn add(
    plugin: &str,
    netns: &str,
    ns: &str,
    pod: &str,
    uid: &str,
    socket: &Path,
    pool: &str,
) -> spiderpool_test_kit::cni::Run {
    let args =
        format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={uid}");
    let cid = format!("c-{pod}");
    let call = Call {
        args: &args,
        ..Call::add(netns, &cid, "net1")
    };
    run_plugin_here(plugin, &call, &ipam_conf("1.0.0", socket, pool))
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_ten_agents_share_one_pool_without_duplicates_or_failures() {
    if !gate::ready(&[Need::Root, Need::Program("ip")]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tc = rt
        .block_on(TestCluster::new("ten-agents"))
        .expect("cluster");
    let ns = tc.namespace.clone();
    let pool = unique_name("thousand");
    rt.block_on(tc.ippool(
        &pool,
        "10.7.0.0/16",
        &["10.7.0.10-10.7.3.241"],
        Some("10.7.0.1"),
    ))
    .expect("create pool");
    let pools: Api<DynamicObject> = Api::all_with(tc.client.clone(), &api_resource(&IPPOOL));
    let nodes: Vec<String> = (0..NODES).map(|i| format!("{ns}-n{i}")).collect();
    // 1000 pods (+1 for the exhaustion check).
    let uids = rt
        .block_on(tc.pods_on(NODES * PER_NODE + 1, &nodes))
        .expect("pods");
    // Pod i runs on node i % NODES, served by that node's agent below.

    let dir = tempfile::tempdir().expect("tmp");
    let agents: Vec<Arc<KubeAgentProcess>> = nodes
        .iter()
        .map(|n| Arc::new(KubeAgentProcess::start(dir.path(), n, "warn")))
        .collect();
    // One network namespace serves every call: the IPAM plugin only announces in it.
    let holder = Command::new("unshare")
        .args(["-n", "sleep", "300"])
        .spawn()
        .expect("netns holder");
    std::thread::sleep(Duration::from_millis(200));
    let netns = format!("/proc/{}/ns/net", holder.id());
    let plugin = spiderpool_plugin().to_str().expect("utf-8").to_owned();

    let started = Instant::now();
    let results: Vec<(String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..NODES)
            .map(|n| {
                let (agent, uids, ns, netns, plugin, pool) =
                    (Arc::clone(&agents[n]), &uids, &ns, &netns, &plugin, &pool);
                s.spawn(move || {
                    (0..PER_NODE)
                        .map(|k| {
                            let pod = format!("pod-{}", k * NODES + n);
                            let run =
                                add(plugin, netns, ns, &pod, &uids[&pod], &agent.socket, pool);
                            assert_eq!(run.code, 0, "ADD {pod}: {} {}", run.stdout, run.stderr);
                            let v: serde_json::Value =
                                serde_json::from_str(&run.stdout).expect("result");
                            (
                                pod,
                                v["ips"][0]["address"].as_str().expect("address").to_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    eprintln!("1000 ADDs through 10 agents: {:?}", started.elapsed());
    let distinct: BTreeSet<&String> = results.iter().map(|(_, a)| a).collect();
    assert_eq!(distinct.len(), NODES * PER_NODE, "every address distinct");

    // The 1001st pod: a CNI error naming the pool.
    let last = format!("pod-{}", NODES * PER_NODE);
    let run = add(
        &plugin,
        &netns,
        &ns,
        &last,
        &uids[&last],
        &agents[0].socket,
        &pool,
    );
    assert_ne!(run.code, 0, "the pool is exhausted");
    let err: serde_json::Value = serde_json::from_str(&run.stdout).expect("CNI error JSON");
    assert!(err["code"].as_u64().is_some(), "{err}");
    assert!(
        err["msg"].as_str().unwrap_or_default().contains(&pool)
            || err["details"].as_str().unwrap_or_default().contains(&pool),
        "{err}"
    );

    // Every endpoint holds what its plugin printed.
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
    assert_eq!(held.len(), NODES * PER_NODE);
    for (pod, addr) in &results {
        assert_eq!(held.get(pod), Some(addr), "endpoint of {pod}");
    }
    // The pool's count converges to exactly 1000.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p: SpiderIPPool =
            from_dynamic(&rt.block_on(pools.get(&pool)).expect("pool")).expect("decode");
        let st = p.status.clone().unwrap_or_default();
        if st.allocated_ip_count == Some(1000) {
            assert_eq!(st.total_ip_count, Some(1000));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "count: {:?}",
            st.allocated_ip_count
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(agents);
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
}
