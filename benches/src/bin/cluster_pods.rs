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
use spiderpool_examples::cluster::{Cluster, SEED_POOL_ON_NODE, repo_root};
use spiderpool_examples::kube::{Kube, test_deployment, wait_for};

/// The seed's SMC (the pool is `SEED_POOL_ON_NODE`: the seed's, the node's address excluded).
const SMC: &str = include_str!("../../../examples/quickstart/multusconfig.yaml");
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
    let cluster = Cluster::start(&repo_root(), Path::new(DIR)).map_err(|e| anyhow!(e))?;
    let k = Kube::of(&cluster);
    // The agent's allocation/release timings, read from the node after each phase.
    let metrics = ["--set", "spiderpoolAgent.prometheus.enabled=true"];
    cluster
        .install_chart_with(&k, &metrics)
        .map_err(|e| anyhow!(e))?;
    k.apply("pool.yaml", SEED_POOL_ON_NODE)
        .map_err(|e| anyhow!(e))?;
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
        let cpu0 = cpu_snapshot();
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
        let cpu_up = cpu_delta(&cpu0, &cpu_snapshot());
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
        println!("CPU seconds while scaling up ({name}):");
        for (who, secs) in &cpu_up {
            println!("  {who:<24} {secs:>6.2}");
        }
        if networks.is_some() {
            let m = agent_metrics()?;
            for key in [
                "spiderpool_ipam_allocation_average_duration_seconds",
                "spiderpool_ipam_allocation_max_duration_seconds",
                "spiderpool_ipam_release_average_duration_seconds",
                "spiderpool_ipam_release_max_duration_seconds",
            ] {
                let v = m
                    .lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().last())
                    .unwrap_or("?");
                println!("  agent {key}: {v}");
            }
        }
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

/// The daemons whose CPU time is reported, by process name (`/proc/PID/comm`).
const DAEMONS: [&str; 8] = [
    "kube-apiserver",
    "etcd",
    "kubelet",
    // Before `containerd`: names are matched by prefix.
    "containerd-shim",
    "containerd",
    "spiderpool-agen",
    "spiderpool-cont",
    "kube-controller",
];

/// CPU seconds used so far: the machine's total busy time, and each daemon's (summed over
/// its processes).
fn cpu_snapshot() -> Vec<(String, f64)> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = Vec::new();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        let busy: f64 = stat
            .lines()
            .next()
            .map(|cpu| {
                let f: Vec<f64> = cpu
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system (idle iowait skipped) irq softirq steal
                [0usize, 1, 2, 5, 6, 7]
                    .iter()
                    .filter_map(|i| f.get(*i))
                    .sum::<f64>()
            })
            .unwrap_or(0.0);
        out.push(("whole machine".to_owned(), busy / tick));
    }
    let mut per: Vec<(String, f64)> = DAEMONS.iter().map(|d| (d.to_string(), 0.0)).collect();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let comm = comm.trim();
        let Some(slot) = per.iter_mut().find(|(d, _)| comm.starts_with(d.as_str())) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
            // Fields after the `(comm)`: utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<f64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            slot.1 += (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / tick;
        }
    }
    out.extend(per);
    out
}

/// `after - before` per entry. A daemon whose processes came and went (shims) is counted by
/// what was alive at each snapshot, so it reads low; the whole machine's figure is exact.
fn cpu_delta(before: &[(String, f64)], after: &[(String, f64)]) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(k, a)| {
            let b = before.iter().find(|(kb, _)| kb == k).map_or(0.0, |x| x.1);
            (k.clone(), (a - b).max(0.0))
        })
        .collect()
}

/// The agent's metrics, read inside the node's network namespace.
fn agent_metrics() -> Result<String> {
    let out = std::process::Command::new("nsenter")
        .args([
            "--net=/run/netns/spk-node",
            "curl",
            "-sf",
            "http://127.0.0.1:5711/metrics",
        ])
        .output()?;
    if !out.status.success() {
        bail!("agent metrics: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A zero-replica Deployment of the test image, with a second NIC when `networks` is given.
fn deployment(name: &str, networks: Option<&str>) -> String {
    let annotations: Vec<(&str, &str)> = networks
        .map(|n| ("k8s.v1.cni.cncf.io/networks", n))
        .into_iter()
        .collect();
    test_deployment(name, 0, &annotations)
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
