//! `controller_scale`: a real `spiderpool-controller` process on a cluster holding N Pods and
//! N SpiderEndpoints: time until it is ready (webhooks serving, Lease taken, caches synced,
//! the GC's start-up scan done) and its resident memory afterwards.
//!
//! ```text
//! KUBECONFIG=... controller_scale --controller-bin target/release/spiderpool-controller
//!                                 [--pods 10000] [--nodes 10] [--settle 10]
//! ```
//!
//! The Pods are created Running on `--nodes` Nodes; their SpiderEndpoints are written by
//! Kubernetes stores exactly as agents write them (one store per node, allocating from one
//! pool). Every Pod exists, so the GC must keep every endpoint: the harness checks that none
//! was released. Use a control plane of its own (objects are left behind), e.g.
//! `CP_PORT=17443 CP_ETCD_PORT=24790 hack/control-plane.sh up /tmp/cp-scale`. Results are in
//! docs/benchmarks.md ("Controller at scale").

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use spiderpool_core::ipam::{AllocateRequest, PodInfo, TopController};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderIPPool, SpiderIPPoolSpec};
use spiderpool_k8s::kinds::{api_resource, to_dynamic};
use spiderpool_k8s::store::{KubeStore, KubeStoreOptions};

struct Args {
    pods: usize,
    nodes: usize,
    settle: u64,
    controller_bin: String,
}

fn args() -> Result<Args> {
    let mut a = Args {
        pods: 10_000,
        nodes: 10,
        settle: 10,
        controller_bin: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--pods" => a.pods = value.parse()?,
            "--nodes" => a.nodes = value.parse::<usize>()?.max(1),
            "--settle" => a.settle = value.parse()?,
            "--controller-bin" => a.controller_bin = value,
            other => bail!("unknown argument {other}"),
        }
    }
    if a.controller_bin.is_empty() {
        bail!("--controller-bin PATH is required");
    }
    Ok(a)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether `GET http://127.0.0.1:port/path` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

async fn create_pods(client: &kube::Client, ns: &str, nodes: &[String], n: usize) -> Result<()> {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let results: Vec<Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let node = nodes[i % nodes.len()].clone();
            async move {
                let name = format!("pod-{i}");
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}
                }))?;
                api.create(&PostParams::default(), &pod).await?;
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Running"}})),
                )
                .await?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

fn main() -> Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = rt.block_on(spiderpool_k8s::client::connect(None))?;
    rt.block_on(spiderpool_k8s::crds::install(
        &client,
        Duration::from_secs(60),
    ))?;
    let run = format!("scale{}", std::process::id());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": run}}))?;
    rt.block_on(Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns))?;
    let nodes: Vec<String> = (0..a.nodes).map(|i| format!("{run}-node-{i}")).collect();
    for n in &nodes {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": n}}))?;
        rt.block_on(Api::<Node>::all(client.clone()).create(&PostParams::default(), &node))?;
    }
    let pool = format!("{run}-pool");
    let spec = SpiderIPPoolSpec {
        subnet: "10.40.0.0/16".into(),
        ips: Some(vec!["10.40.0.10-10.40.250.250".into()]),
        gateway: Some("10.40.0.1".into()),
        ..Default::default()
    };
    rt.block_on(
        Api::<DynamicObject>::all_with(client.clone(), &api_resource(&IPPOOL)).create(
            &PostParams::default(),
            &to_dynamic(&SpiderIPPool::new(&pool, spec))?,
        ),
    )?;

    let t = Instant::now();
    rt.block_on(create_pods(&client, &run, &nodes, a.pods))?;
    println!(
        "{} Running pods created in {:.1} s",
        a.pods,
        t.elapsed().as_secs_f64()
    );

    // Endpoints as agents write them: one store per node, its pods allocated in sequence.
    let t = Instant::now();
    let stores: Vec<Arc<KubeStore>> = nodes
        .iter()
        .map(|n| {
            KubeStore::start(
                rt.handle().clone(),
                client.clone(),
                KubeStoreOptions::new(n.clone()),
                Duration::from_secs(60),
            )
            .map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    let pods = Api::<Pod>::namespaced(client.clone(), &run);
    let uids: std::collections::BTreeMap<String, String> = rt
        .block_on(pods.list(&ListParams::default()))?
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
        .collect();
    let failed: usize = std::thread::scope(|s| {
        let hs: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(k, store)| {
                let (uids, run, pool, node) = (&uids, &run, &pool, &nodes[k]);
                s.spawn(move || {
                    let mut failed = 0;
                    for i in (k..a.pods).step_by(a.nodes) {
                        let name = format!("pod-{i}");
                        let uid = uids.get(&name).cloned().unwrap_or_default();
                        let req = AllocateRequest {
                            container_id: format!("c-{i}"),
                            ifname: "net1".into(),
                            pod: PodInfo {
                                namespace: run.clone(),
                                name: name.clone(),
                                uid: uid.clone(),
                                node: node.clone(),
                                controller: TopController::orphan(run, &name, &uid),
                                ..Default::default()
                            },
                            default_ipv4_ippool: vec![pool.clone()],
                            ..Default::default()
                        };
                        if let Err(e) = store.allocate(&req) {
                            eprintln!("{name}: {e}");
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(usize::MAX)).sum()
    });
    drop(stores);
    if failed > 0 {
        bail!("{failed} allocations failed");
    }
    println!(
        "{} SpiderEndpoints written in {:.1} s",
        a.pods,
        t.elapsed().as_secs_f64()
    );

    let health = free_port()?;
    let webhook = free_port()?;
    let kubeconfig = std::env::var("KUBECONFIG").context("KUBECONFIG")?;
    let started = Instant::now();
    let mut child = std::process::Command::new(&a.controller_bin)
        .args(["--kubeconfig", &kubeconfig, "--log-level", "warn"])
        .args(["--webhook-listen", &format!("127.0.0.1:{webhook}")])
        .args(["--health-port", &health.to_string()])
        .env("SPIDERPOOL_POD_NAME", format!("{run}-controller"))
        .spawn()
        .with_context(|| a.controller_bin.clone())?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !http_ok(health, "/v1/runtime/readiness") {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("controller not ready after 300 s");
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("controller exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = started.elapsed();
    let mut peak = 0;
    for _ in 0..a.settle {
        std::thread::sleep(Duration::from_secs(1));
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    let last = rss_kib(pid).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let eps = Api::<DynamicObject>::namespaced_with(client.clone(), &run, &api_resource(&ENDPOINT));
    let left = rt.block_on(eps.list(&ListParams::default()))?.items.len();
    println!(
        "spiderpool-controller with {} Pods and {} SpiderEndpoints: ready after {:.1} s; RSS {} KiB after {} s (peak {} KiB); endpoints kept: {left}",
        a.pods,
        a.pods,
        ready.as_secs_f64(),
        last,
        a.settle,
        peak
    );
    if left != a.pods {
        bail!(
            "the GC released {} endpoints of running pods",
            a.pods - left
        );
    }
    Ok(())
}
