//! `cluster_pods`: N pods on the real one-node cluster (`hack/cluster.sh`, our chart and
//! images), with a second NIC from our IPAM and coordinator beside the same pods without one.
//!
//! ```text
//! cluster_pods [--pods 100]      (root; builds/caches what hack/cluster.sh needs)
//! ```
//!
//! For each variant, on the same node in the same run: time from `kubectl scale` to N pods
//! Running (ours: also every SpiderEndpoint written), and from scaling to zero to every pod
//! gone (ours: also every SpiderEndpoint gone and the pool's `allocatedIPCount` back to 0).
//! The baseline (default network only: Multus + ptp + host-local) is what the node costs
//! without us; the difference is our share (macvlan + `spiderpool` IPAM through the agent +
//! `coordinator`, the Multus delegation for net1, the controller's GC-free release path).
//! Results are in docs/benchmarks.md ("Pods on a real node").

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use spiderpool_examples::cluster::Cluster;
use spiderpool_examples::kube::{Kube, wait_for};

/// The seed's SMC; the pool is the seed's with the node's own address excluded.
const SMC: &str = include_str!("../../../examples/quickstart/multusconfig.yaml");
const POOL: &str = r#"apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  excludeIPs:
  - 10.6.212.132
  subnet: 10.6.0.0/16
"#;
const DIR: &str = "/tmp/spiderpool-bench-cluster";
const TIMEOUT: Duration = Duration::from_secs(900);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pods: usize = match args.as_slice() {
        [] => 100,
        [flag, n] if flag == "--pods" => n.parse()?,
        other => bail!("usage: cluster_pods [--pods N] (got {other:?})"),
    };
    if pods == 0 || pods > 100 {
        bail!("--pods takes 1 to 100 (the pool holds 100 addresses)");
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("no repository root"))?;
    let cluster = Cluster::start(repo, Path::new(DIR)).map_err(|e| anyhow!(e))?;
    let k = Kube::of(&cluster);
    let chart = repo.join("charts").join("spiderpool");
    let chart = chart.to_string_lossy();
    let mut install = vec![
        "install",
        "spiderpool",
        &chart,
        "-n",
        "kube-system",
        "--wait",
    ];
    let values = cluster.chart_values().map_err(|e| anyhow!(e))?;
    install.extend(values.iter().map(String::as_str));
    k.helm(&install).map_err(|e| anyhow!(e))?;
    k.apply("pool.yaml", POOL).map_err(|e| anyhow!(e))?;
    k.apply("smc.yaml", SMC).map_err(|e| anyhow!(e))?;
    wait_for("the NAD", TIMEOUT, || {
        Ok(k.json(&["get", "net-attach-def", "macvlan-ens192"]).ok())
    })
    .map_err(|e| anyhow!(e))?;

    let mut rows = Vec::new();
    for (name, networks) in [
        ("baseline: default network only (Multus + ptp)", None),
        (
            "ours: + net1 (macvlan, spiderpool IPAM, coordinator)",
            Some("macvlan-ens192"),
        ),
    ] {
        let deploy = if networks.is_some() { "net1" } else { "plain" };
        k.apply(&format!("{deploy}.yaml"), &deployment(deploy, networks))
            .map_err(|e| anyhow!(e))?;
        let t = Instant::now();
        k.kubectl(
            &[
                "scale",
                &format!("deployment/{deploy}"),
                &format!("--replicas={pods}"),
            ],
            true,
        )
        .map_err(|e| anyhow!(e))?;
        wait_for("pods Running", TIMEOUT, || {
            let running = count_running(&k, deploy)?;
            let endpoints = if networks.is_some() {
                count(&k, &["get", "se"])?
            } else {
                pods
            };
            Ok((running == pods && endpoints == pods).then_some(()))
        })
        .map_err(|e| anyhow!(e))?;
        let up = t.elapsed();
        let t = Instant::now();
        k.kubectl(
            &["scale", &format!("deployment/{deploy}"), "--replicas=0"],
            true,
        )
        .map_err(|e| anyhow!(e))?;
        wait_for("pods gone and addresses released", TIMEOUT, || {
            let left = count(&k, &["get", "pods", "-l", &format!("app={deploy}")])?;
            let endpoints = count(&k, &["get", "se"])?;
            let pool = k.json(&["get", "sp", "10-6-v4"])?;
            let allocated = pool["status"]["allocatedIPCount"].as_u64().unwrap_or(0);
            Ok((left == 0 && endpoints == 0 && allocated == 0).then_some(()))
        })
        .map_err(|e| anyhow!(e))?;
        let down = t.elapsed();
        println!(
            "{name}: {pods} Running in {:.1} s, all gone in {:.1} s",
            up.as_secs_f64(),
            down.as_secs_f64()
        );
        rows.push((name, up, down));
    }
    println!("\n| variant | scale 0 → {pods} Running | scale {pods} → 0, all released |");
    println!("|---|---|---|");
    for (name, up, down) in rows {
        println!(
            "| {name} | {:.1} s ({:.0} ms/pod) | {:.1} s |",
            up.as_secs_f64(),
            up.as_secs_f64() * 1000.0 / pods as f64,
            down.as_secs_f64()
        );
    }
    Ok(())
}

/// A zero-replica Deployment of the test image, with a second NIC when `networks` is given.
fn deployment(name: &str, networks: Option<&str>) -> String {
    let annotations = networks
        .map(|n| format!("\n      annotations:\n        k8s.v1.cni.cncf.io/networks: {n}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: 0
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}{annotations}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: c
        image: localhost/spiderpool-rs/testpod:0.1.0
        imagePullPolicy: Never
"#
    )
}

fn count(k: &Kube, args: &[&str]) -> Result<usize, String> {
    Ok(k.json(args)?["items"].as_array().map_or(0, Vec::len))
}

fn count_running(k: &Kube, app: &str) -> Result<usize, String> {
    let pods = k.json(&["get", "pods", "-l", &format!("app={app}")])?;
    Ok(pods["items"].as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
    }))
}
