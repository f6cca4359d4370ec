//! The seed's Calico quick start on a real cluster, installed the way users install Spiderpool.
//!
//! 1. A one-node cluster from the project's scripts (`hack/cluster.sh`): kube-apiserver, etcd,
//!    kube-controller-manager, kube-scheduler, containerd + runc and a kubelet whose node sits
//!    in a network namespace shaped like the seed's worker (`ens192` 10.6.212.132/16, the
//!    underlay router 10.6.0.1 on the host side), with a Calico-like routed default network
//!    (10.233.64.0/18). Our images (`hack/images.sh`, built without Docker) are imported into
//!    the node's containerd.
//! 2. `helm install` of our chart with `multus.multusCNI.install=true`: Multus (thin plugin)
//!    goes in front of the default network, the agent DaemonSet and the controller run as pods
//!    under the chart's ServiceAccounts (the apiserver's audit log must show nothing refused),
//!    the init Job creates the SpiderCoordinator `default`, which the controller syncs from the
//!    cluster's `kubeadm-config`.
//! 3. The seed's steps with kubectl: the pool `10-6-v4`, the SpiderMultusConfig
//!    `macvlan-ens192`, a two-replica Deployment with `k8s.v1.cni.cncf.io/networks`; it prints
//!    what the seed prints (`kubectl get se`, `kubectl get sp`, the coordinator's status, the
//!    pod's `ip rule`, `ip route` and tables 100/101) and pings pod → gateway via `net1` and
//!    pod → pod via `eth0`; then the `ipam.spidernet.io/default-route-nic: net1` variant; then
//!    it scales to zero and checks every address and endpoint is released.
//!
//! Exits non-zero on any failed check and tears the cluster down on success, failure and
//! Ctrl-C (`SPIDERPOOL_KEEP_CLUSTER=1` keeps it). `--pods N` also scales the Deployment to N
//! pods and back, timing both. Root only.
//!
//! Run with `cargo run -p spiderpool-examples --example quickstart-k8s`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use spiderpool_examples::shell::{INTERRUPTED, run};

use spiderpool_examples::cluster::{Cluster, ROUTER, repo_root};
use spiderpool_examples::kube::{Kube, test_deployment, wait_for};
use spiderpool_examples::rbac::{Usage, audit_usage, granted, unused};

/// The seed's manifests, shared with the one-host quick start.
const POOL: &str = include_str!("../quickstart/ippool.yaml");
const SMC: &str = include_str!("../quickstart/multusconfig.yaml");

/// The cluster's scratch directory.
const DIR: &str = "/tmp/spiderpool-quickstart-k8s";
/// How long one step may take before the run fails.
const STEP: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    let pods = match parse_args(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("quickstart-k8s: {e}\nusage: quickstart-k8s [--pods N]");
            return ExitCode::from(2);
        }
    };
    if !is_root() {
        eprintln!(
            "quickstart-k8s: needs root: it runs a kubelet, containerd and a network namespace \
             for the node. The one-host quick start (`--example quickstart`) shows the plan \
             without root."
        );
        return ExitCode::FAILURE;
    }
    let repo = repo_root();
    match run_all(&repo, pods) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart-k8s: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--pods N` (optional): also scale to N pods and back.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<u32>, String> {
    let args: Vec<String> = args.collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, n] if flag == "--pods" => match n.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "--pods takes 1 to 100 (the pool holds 100 addresses once the node's is excluded), not {n:?}"
            )),
        },
        other => Err(format!("unexpected arguments {other:?}")),
    }
}

fn is_root() -> bool {
    run(&["id", "-u"], false).is_ok_and(|o| o.trim() == "0")
}

fn run_all(repo: &Path, pods: Option<u32>) -> Result<(), String> {
    println!("== 0. A one-node cluster (hack/cluster.sh): control plane, containerd, kubelet\n");
    let started = Instant::now();
    // Multus from our chart, as users install it (the node starts with its default network).
    let cluster = Cluster::start_with(repo, Path::new(DIR), true)?;
    println!("  cluster up in {:.1} s\n", started.elapsed().as_secs_f64());
    let k = Kube::of(&cluster);
    k.show(&["get", "nodes", "-o", "wide"])?;

    install(&k, &cluster)?;
    coordinator(&k)?;
    println!("\n== 3. The seed's SpiderIPPool and SpiderMultusConfig\n");
    k.apply("ippool.yaml", POOL)?;
    k.apply("multusconfig.yaml", SMC)?;
    // The seed's range 10.6.212.100-200 holds the node's own address (10.6.212.132): the
    // 33rd pod would take it and cut the node off its underlay (the seed only ever ran two
    // pods). A real cluster excludes its nodes' addresses; so does this one.
    println!("# the node's ens192 address lies in the seed's range: exclude it");
    k.kubectl(
        &[
            "patch",
            "sp",
            "10-6-v4",
            "--type=merge",
            "-p",
            r#"{"spec":{"excludeIPs":["10.6.212.132"]}}"#,
        ],
        true,
    )?;
    k.show(&["get", "sp"])?;
    let nad = wait_for("the NAD macvlan-ens192", STEP, || {
        Ok(
            k.json(&["get", "network-attachment-definitions", "macvlan-ens192"])
                .ok(),
        )
    })?;
    println!(
        "# NetworkAttachmentDefinition macvlan-ens192 (rendered by spiderpool-controller):\n{}",
        nad["spec"]["config"].as_str().unwrap_or("?")
    );

    println!("\n== 4. A Deployment with `k8s.v1.cni.cncf.io/networks: macvlan-ens192`\n");
    let t = Instant::now();
    k.apply("nginx.yaml", &deployment(2, None))?;
    let running = wait_pods(&k, 2)?;
    let took = t.elapsed();
    k.show(&["get", "pods", "-o", "wide"])?;
    k.show(&["get", "se"])?;
    k.show(&["get", "sp"])?;
    println!(
        "  apply -> 2 pods Running with their net1 tables: {:.2} s",
        took.as_secs_f64()
    );
    let [a, b] = running
        .try_into()
        .map_err(|v: Vec<PodIps>| format!("expected 2 pods, got {}", v.len()))?;
    check_tables(&k, &a, false)?;
    pings(&k, &a, &b)?;

    println!("\n== 5. The `ipam.spidernet.io/default-route-nic: net1` variant\n");
    k.apply("nginx.yaml", &deployment(2, Some("net1")))?;
    let running = wait_pods_with(&k, 2, Some("net1"))?;
    let first = running.first().ok_or("no pod after the rollout")?;
    check_tables(&k, first, true)?;

    if let Some(n) = pods {
        println!("\n== 6. Scale to {n} pods\n");
        let t = Instant::now();
        k.kubectl(
            &["scale", "deployment/nginx", &format!("--replicas={n}")],
            true,
        )?;
        let all = wait_pods_with(&k, n as usize, Some("net1"))?;
        println!(
            "  scale 2 -> {n}: all Running with their net1 addresses in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for p in &all {
            rule_in_place(&k, p, true)?;
        }
        println!("  every pod's rule for table 101 checked");
    }

    println!("\n== 7. Scale to zero: every address and endpoint released\n");
    let t = Instant::now();
    k.kubectl(&["scale", "deployment/nginx", "--replicas=0"], true)?;
    wait_released(&k)?;
    println!(
        "  scale to 0 -> every address released: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    k.show(&["get", "se"])?;
    k.show(&["get", "sp"])?;

    rbac(&k, &cluster)?;

    println!("\n== 9. helm uninstall\n");
    k.helm(&["uninstall", "spiderpool", "-n", "kube-system", "--wait"])?;
    // The pre-delete hook (`spiderpool-controller clean`) removed our CRDs and webhooks.
    let crds = k.kubectl(&["get", "crd", "-o", "name"], false)?;
    let ours: Vec<&str> = crds
        .lines()
        .filter(|l| l.ends_with(".spiderpool.spidernet.io"))
        .collect();
    if !ours.is_empty() {
        return Err(format!("helm uninstall left CRDs behind: {ours:?}"));
    }
    for kind in [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    ] {
        let left = k.kubectl(&["get", kind, "-o", "name"], false)?;
        if left.contains("spiderpool") {
            return Err(format!("helm uninstall left {kind} behind: {left}"));
        }
    }
    println!("  the pre-delete hook removed the Spiderpool CRDs and webhook configurations");
    let hook = "system:serviceaccount:kube-system:spiderpool-controller-hook-pre-delete";
    let usage = audit_usage(&cluster.dir.join("audit.log"), hook)?;
    let u = usage
        .get(hook)
        .ok_or("the pre-delete hook made no request under its ServiceAccount")?;
    if !u.refused.is_empty() {
        return Err(format!("the pre-delete hook was refused: {:?}", u.refused));
    }
    println!(
        "  its ServiceAccount: {} requests, nothing refused",
        u.requests
    );
    wait_for("the release's pods to go", STEP, || {
        let pods = k.json(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "app.kubernetes.io/name=spiderpool",
        ])?;
        let left = pods["items"].as_array().map_or(0, Vec::len);
        Ok((left == 0).then_some(()))
    })?;
    println!("\nall checks passed");
    Ok(())
}

/// Our pods ran under the chart's ServiceAccounts: nothing they asked for may have been
/// refused; what their roles grant and the run never used is listed.
fn rbac(k: &Kube, cluster: &Cluster) -> Result<(), String> {
    println!("\n== 8. RBAC: what our ServiceAccounts did (the apiserver's audit log)\n");
    let prefix = "system:serviceaccount:kube-system:";
    let usage = audit_usage(
        &cluster.dir.join("audit.log"),
        &format!("{prefix}spiderpool-"),
    )?;
    let mut refused = Vec::new();
    for sa in [
        "spiderpool-agent",
        "spiderpool-controller",
        "spiderpool-init",
        "spiderpool-multus",
    ] {
        let none = Usage::default();
        let u = usage.get(&format!("{prefix}{sa}")).unwrap_or(&none);
        if u.requests == 0 {
            return Err(format!(
                "{sa} made no request: did it run under its ServiceAccount?"
            ));
        }
        let used: Vec<String> = u.used.iter().map(|(v, r)| format!("{v} {r}")).collect();
        println!("{sa}: {} requests, {} refused", u.requests, u.refused.len());
        println!("  used: {}", used.join(", "));
        let idle = unused(&granted(k, "kube-system", sa)?, u);
        println!("  granted, not used in this run: {}", idle.join(", "));
        refused.extend(u.refused.iter().map(|r| format!("{sa}: {r}")));
    }
    if !refused.is_empty() {
        return Err(format!(
            "requests refused (missing permissions):\n{}",
            refused.join("\n")
        ));
    }
    println!("nothing refused");
    Ok(())
}

/// `helm install` of our chart with the node's paths.
fn install(k: &Kube, cluster: &Cluster) -> Result<(), String> {
    println!("\n== 1. helm install spiderpool (our chart, our images)\n");
    let t = Instant::now();
    let out = cluster.install_chart(k)?;
    print!("{out}");
    println!(
        "  helm install (pods Ready, init Job done): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    k.show(&["get", "pods", "-n", "kube-system", "-o", "wide"])?;
    for plugin in ["spiderpool", "coordinator"] {
        let p = cluster.dir.join("cni").join("bin").join(plugin);
        if !p.is_file() {
            return Err(format!("the agent did not install {}", p.display()));
        }
    }
    Ok(())
}

/// The SpiderCoordinator `default` reaches `Synced` with the cluster's CIDRs.
fn coordinator(k: &Kube) -> Result<(), String> {
    println!("\n== 2. The SpiderCoordinator learns the cluster's CIDRs\n");
    let status = wait_for("SpiderCoordinator default phase Synced", STEP, || {
        let c = k.json(&["get", "spidercoordinators", "default"])?;
        Ok((c["status"]["phase"] == "Synced").then(|| c["status"].clone()))
    })?;
    k.show(&["get", "spidercoordinators", "default", "-o", "yaml"])?;
    let has = |field: &str, cidr: &str| {
        status[field]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == cidr))
    };
    if !has("overlayPodCIDR", "10.233.64.0/18") || !has("serviceCIDR", "10.233.0.0/18") {
        return Err(format!(
            "the coordinator's CIDRs are not the cluster's (pods 10.233.64.0/18, services \
             10.233.0.0/18): {status}"
        ));
    }
    Ok(())
}

/// The seed's nginx Deployment, on our small test image.
fn deployment(replicas: u32, default_route_nic: Option<&str>) -> String {
    let mut annotations = vec![("k8s.v1.cni.cncf.io/networks", "macvlan-ens192")];
    if let Some(nic) = default_route_nic {
        annotations.push(("ipam.spidernet.io/default-route-nic", nic));
    }
    test_deployment("nginx", replicas, &annotations)
}

/// A running pod and its two addresses.
struct PodIps {
    name: String,
    eth0: String,
    net1: String,
}

fn wait_pods(k: &Kube, n: usize) -> Result<Vec<PodIps>, String> {
    wait_pods_with(k, n, None)
}

/// Waits for exactly `n` Running pods of the Deployment (old ones gone), each with its net1
/// address in its SpiderEndpoint and the coordinator's rule for it in place; with
/// `default_route_nic`, only pods carrying that annotation count.
fn wait_pods_with(
    k: &Kube,
    n: usize,
    default_route_nic: Option<&str>,
) -> Result<Vec<PodIps>, String> {
    let what = format!("{n} Running nginx pods with net1 tables");
    let timeout = STEP + Duration::from_secs(5 * n as u64);
    wait_for(&what, timeout, || {
        let pods = k.json(&["get", "pods", "-l", "app=nginx"])?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let running: Vec<&Value> = items
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .filter(|p| match default_route_nic {
                Some(nic) => {
                    p["metadata"]["annotations"]["ipam.spidernet.io/default-route-nic"] == nic
                }
                None => true,
            })
            .collect();
        if items.len() != n || running.len() != n {
            return Err(format!("{} pods, {} Running", items.len(), running.len()));
        }
        let endpoints = k.json(&["get", "se"])?;
        let mut out = Vec::new();
        for p in running {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let eth0 = p["status"]["podIP"].as_str().unwrap_or_default().to_owned();
            let net1 = endpoint_ip(&endpoints, &name, "net1")
                .ok_or_else(|| format!("no SpiderEndpoint with net1 for {name}"))?;
            out.push(PodIps { name, eth0, net1 });
        }
        // Running means the CNI ADD, coordinator included, completed; the seed-sized runs
        // also look at each pod's rules (the scale run checks them once it is timed).
        if n <= 2 {
            for p in &out {
                rule_in_place(k, p, default_route_nic.is_some())?;
            }
        }
        Ok(Some(out))
    })
}

/// The coordinator's last step is in place: the rule sending the replies of the NIC that does
/// not hold the default route to table 101.
fn rule_in_place(k: &Kube, p: &PodIps, net1_default: bool) -> Result<(), String> {
    let rules = k.exec(&p.name, &["ip", "rule"], false)?;
    let from = if net1_default { &p.eth0 } else { &p.net1 };
    if rules.contains(&format!("from {from} lookup 101")) {
        Ok(())
    } else {
        Err(format!("{}: no rule for {from} in:\n{rules}", p.name))
    }
}

/// The address (without prefix) the SpiderEndpoint of `pod` records for `nic`.
fn endpoint_ip(endpoints: &Value, pod: &str, nic: &str) -> Option<String> {
    endpoints["items"]
        .as_array()?
        .iter()
        .find(|e| e["metadata"]["name"] == pod)?["status"]["current"]["ips"]
        .as_array()?
        .iter()
        .find(|ip| ip["interface"] == nic)?["ipv4"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
}

/// The pod's policy routing, as the seed shows it, checked line by line.
fn check_tables(k: &Kube, pod: &PodIps, net1_default: bool) -> Result<(), String> {
    println!("\n# {} (eth0 {}, net1 {})", pod.name, pod.eth0, pod.net1);
    let rules = k.exec(&pod.name, &["ip", "rule"], true)?;
    let main = k.exec(&pod.name, &["ip", "route"], true)?;
    let t100 = k.exec(&pod.name, &["ip", "route", "show", "table", "100"], true)?;
    let t101 = k.exec(&pod.name, &["ip", "route", "show", "table", "101"], true)?;
    // Cluster traffic leaves by eth0 whichever NIC holds the default route.
    let mut expect = vec![
        (&main, "10.233.0.0/18 via".to_owned(), "ip route"),
        (&main, "10.233.64.0/18 via".to_owned(), "ip route"),
    ];
    if net1_default {
        // The default route is net1's; eth0's replies go by table 101, which holds the
        // default route eth0 had.
        expect.push((&rules, format!("from {} lookup 101", pod.eth0), "ip rule"));
        expect.push((&main, format!("default via {ROUTER} dev net1"), "ip route"));
        expect.push((&t101, "dev eth0".to_owned(), "table 101"));
    } else {
        // As in the seed: eth0 keeps the default route; table 100 for eth0's replies, table
        // 101 for net1's, with the underlay gateway as its default route.
        expect.push((&rules, format!("from {} lookup 100", pod.eth0), "ip rule"));
        expect.push((&rules, format!("from {} lookup 101", pod.net1), "ip rule"));
        expect.push((&main, "dev eth0".to_owned(), "ip route"));
        expect.push((&t100, "dev eth0".to_owned(), "table 100"));
        expect.push((&t101, format!("default via {ROUTER} dev net1"), "table 101"));
    }
    for (text, line, what) in expect {
        if !text.contains(&line) {
            return Err(format!("{}: `{what}` lacks {line:?}:\n{text}", pod.name));
        }
    }
    Ok(())
}

/// pod → underlay gateway leaves by net1; pod → pod by eth0; both answer.
fn pings(k: &Kube, a: &PodIps, b: &PodIps) -> Result<(), String> {
    println!();
    for (dst, dev, what) in [
        (ROUTER, "net1", "pod -> underlay gateway"),
        (b.eth0.as_str(), "eth0", "pod -> pod (Calico-like eth0)"),
        (b.net1.as_str(), "net1", "pod -> pod (underlay)"),
    ] {
        let route = k.exec(&a.name, &["ip", "route", "get", dst], false)?;
        if !route.contains(&format!("dev {dev}")) {
            return Err(format!("{what}: {dst} does not leave by {dev}: {route}"));
        }
        k.exec(&a.name, &["ping", "-c", "2", "-W", "2", dst], false)
            .map_err(|e| format!("{what}: ping {dst} failed: {e}"))?;
        println!("  {what}: ping {dst} via {dev}: ok");
    }
    Ok(())
}

/// No nginx pod, no SpiderEndpoint and nothing allocated from the pool.
fn wait_released(k: &Kube) -> Result<(), String> {
    wait_for("every address released", STEP, || {
        let pods = k.json(&["get", "pods", "-l", "app=nginx"])?;
        let se = k.json(&["get", "se"])?;
        let pool = k.json(&["get", "sp", "10-6-v4"])?;
        let n_pods = pods["items"].as_array().map_or(0, Vec::len);
        let n_se = se["items"].as_array().map_or(0, Vec::len);
        let allocated = pool["status"]["allocatedIPCount"].as_u64().unwrap_or(0);
        if n_pods == 0 && n_se == 0 && allocated == 0 {
            Ok(Some(()))
        } else {
            Err(format!(
                "{n_pods} pods, {n_se} SpiderEndpoints, {allocated} addresses allocated"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        let args = |v: &[&str]| parse_args(v.iter().map(|s| s.to_string()));
        assert_eq!(args(&[]), Ok(None));
        assert_eq!(args(&["--pods", "100"]), Ok(Some(100)));
        assert!(args(&["--pods", "101"]).is_err());
        assert!(args(&["--pods", "x"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn endpoint_addresses_are_read_per_nic() {
        let se = serde_json::json!({"items": [{"metadata": {"name": "p"}, "status": {"current":
            {"ips": [{"interface": "eth0"}, {"interface": "net1", "ipv4": "10.6.212.100/16"}]}}}]});
        assert_eq!(
            endpoint_ip(&se, "p", "net1").as_deref(),
            Some("10.6.212.100")
        );
        assert_eq!(endpoint_ip(&se, "p", "net2"), None);
        assert_eq!(endpoint_ip(&se, "q", "net1"), None);
    }

    #[test]
    fn the_deployment_carries_the_annotations() {
        assert!(deployment(2, None).contains("k8s.v1.cni.cncf.io/networks: macvlan-ens192\n"));
        assert!(
            deployment(3, Some("net1"))
                .contains("ipam.spidernet.io/default-route-nic: net1\n    spec")
        );
    }
}
