#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Multus scenarios on a real one-node cluster (kubelet + containerd + Multus thin plugin, our
//! chart and images), each checked the way a user sees it: `kubectl get`, the pod's
//! annotations, and `kubectl exec` of `ip -o addr`, `ip rule`, `ip route show table N`.
//!
//! 1. A NAD in another namespace, referenced as `other/macvlan-other` by a pod in `default`.
//! 2. Two extra NICs (`networks: macvlan-ens192, macvlan-b`): net1 and net2, each from its
//!    SMC's pool, policy tables 101 and 102 (§4.3: the Calico-like eth0 makes both NICs
//!    overlay-mode; the second gets `#UP links + 99` = 102), both in the SpiderEndpoint.
//! 3. `ipam.spidernet.io/ippools` (per NIC) and `ipam.spidernet.io/ippool` (the NIC being
//!    added) choosing pools other than the SMCs' (§3.3 sources 2 and 3).
//! 4. A StatefulSet pod deleted and re-created under the same name gets its address back
//!    (§3.11 re-adopt: endpoint and pool record move to the new pod UID).
//! 5. Multus's `k8s.v1.cni.cncf.io/network-status` shows the addresses our IPAM gave.
//!
//! One cluster for all (its start costs most of a run); pods of every scenario are created at
//! once, then checked one scenario after the other. A failed scenario is reported with its
//! context (describe, kubelet/Multus/agent logs) and the others still run; the test fails at
//! the end listing every failed scenario.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use spiderpool_examples::cluster::{Cluster, ROUTER, SEED_POOL_ON_NODE, repo_root};
use spiderpool_examples::kube::{Kube, wait_for};
use spiderpool_test_kit::gate;

mod support;

/// The cluster's scratch directory (its own, beside the quick start's).
const DIR: &str = "/tmp/spiderpool-cluster-multus";
/// How long a pod may take to be Running with its NICs recorded.
const STEP: Duration = Duration::from_secs(150);

/// Beside the seed's pool (`SEED_POOL_ON_NODE`), two more ranges of the same underlay subnet
/// (pools with the same `subnet` may coexist, §1.1 CREATE step 3).
const POOLS: &str = r#"apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-b
spec:
  gateway: 10.6.0.1
  ips:
  - 10.6.213.100-10.6.213.110
  subnet: 10.6.0.0/16
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-c
spec:
  gateway: 10.6.0.1
  ips:
  - 10.6.214.100-10.6.214.110
  subnet: 10.6.0.0/16
"#;

/// Macvlan SMCs on the node's `ens192`: the seed's, a second one for net2 (two macvlans on one
/// master), and one in namespace `other`.
const SMCS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: other
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-ens192
  namespace: default
spec:
  cniType: macvlan
  macvlan:
    master: [ens192]
    ippools:
      ipv4: [10-6-v4]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-b
  namespace: default
spec:
  cniType: macvlan
  macvlan:
    master: [ens192]
    ippools:
      ipv4: [10-6-b]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-other
  namespace: other
spec:
  cniType: macvlan
  macvlan:
    master: [ens192]
    ippools:
      ipv4: [10-6-v4]
"#;

const CROSS_NS: &str = "cross-ns";
const TWO_NICS: &str = "two-nics";
const IPPOOLS: &str = "by-ippools";
const IPPOOL: &str = "by-ippool";
const STS: &str = "sts";
const STS_POD: &str = "sts-0";

/// The test image's pod spec (no pull, instant stop), indented for its place.
fn pod_spec(indent: &str) -> String {
    [
        "terminationGracePeriodSeconds: 0",
        "containers:",
        "- name: main",
        "  image: localhost/spiderpool-rs/testpod:0.1.0",
        "  imagePullPolicy: Never",
    ]
    .iter()
    .map(|l| format!("{indent}{l}\n"))
    .collect()
}

/// A bare pod in `default` with these annotations.
fn pod(name: &str, annotations: &[(&str, &str)]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n"
    );
    for (k, v) in annotations {
        // Single-quoted: the JSON values must stay strings.
        y.push_str(&format!("    {k}: '{v}'\n"));
    }
    y.push_str("spec:\n");
    y.push_str(&pod_spec("  "));
    y
}

/// A one-replica StatefulSet with the seed's NAD.
fn statefulset() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {STS}
  namespace: default
spec:
  serviceName: {STS}
  replicas: 1
  selector:
    matchLabels: {{app: {STS}}}
  template:
    metadata:
      labels: {{app: {STS}}}
      annotations:
        k8s.v1.cni.cncf.io/networks: macvlan-ens192
    spec:
{}"#,
        pod_spec("      ")
    )
}

/// The pools' ranges as [`POOLS`] writes them: name, first three octets, first and last.
const RANGES: [(&str, &str, u8, u8); 3] = [
    ("10-6-v4", "10.6.212.", 100, 200),
    ("10-6-b", "10.6.213.", 100, 110),
    ("10-6-c", "10.6.214.", 100, 110),
];

/// One NIC of a SpiderEndpoint: its address (without prefix) and pool.
#[derive(Debug, Clone, PartialEq)]
struct Nic {
    ip: String,
    pool: String,
}

/// A Running pod and what its SpiderEndpoint records per NIC.
#[derive(Debug, Clone)]
struct Running {
    uid: String,
    endpoint_uid: String,
    nics: BTreeMap<String, Nic>,
    annotations: Value,
}

/// The NICs `status.current.ips` records (interface → address, pool).
fn endpoint_nics(se: &Value) -> BTreeMap<String, Nic> {
    se["status"]["current"]["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|d| {
                    let ip = d["ipv4"].as_str()?.split('/').next()?.to_owned();
                    let pool = d["ipv4Pool"].as_str().unwrap_or_default().to_owned();
                    Some((d["interface"].as_str()?.to_owned(), Nic { ip, pool }))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `name` is Running (not terminating; with `other_than` its UID must differ) and
/// its SpiderEndpoint records every NIC of `nics`.
fn wait_running(
    k: &Kube,
    name: &str,
    nics: &[&str],
    other_than: Option<&str>,
) -> Result<Running, String> {
    wait_for(&format!("pod {name} Running with {nics:?}"), STEP, || {
        let p = k.json(&["get", "pod", name])?;
        let uid = p["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        if p["status"]["phase"] != "Running" || !p["metadata"]["deletionTimestamp"].is_null() {
            return Err(format!("phase {}", p["status"]["phase"]));
        }
        if other_than == Some(uid.as_str()) {
            return Err("still the old pod".into());
        }
        let se = k.json(&["get", "spiderendpoint", name])?;
        let recorded = endpoint_nics(&se);
        if let Some(missing) = nics.iter().find(|n| !recorded.contains_key(**n)) {
            return Err(format!("endpoint lacks {missing}: {recorded:?}"));
        }
        Ok(Some(Running {
            uid,
            endpoint_uid: se["status"]["current"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            nics: recorded,
            annotations: p["metadata"]["annotations"].clone(),
        }))
    })
}

/// `kubectl exec` printed with its output, failing on a missing line.
fn exec_has(k: &Kube, pod: &str, cmd: &[&str], lines: &[String]) -> Result<String, String> {
    let out = k.exec(pod, cmd, true)?;
    for l in lines {
        if !out.contains(l.as_str()) {
            return Err(format!("{pod}: `{}` lacks {l:?}:\n{out}", cmd.join(" ")));
        }
    }
    Ok(out)
}

/// The address lies in `a.b.c.lo`..`a.b.c.hi` (the pool's range as the test wrote it).
fn in_range(ip: &str, prefix: &str, lo: u8, hi: u8) -> bool {
    ip.strip_prefix(prefix)
        .and_then(|last| last.parse::<u8>().ok())
        .is_some_and(|n| (lo..=hi).contains(&n))
}

fn nic<'a>(r: &'a Running, name: &str) -> Result<&'a Nic, String> {
    r.nics
        .get(name)
        .ok_or_else(|| format!("endpoint lacks {name}: {:?}", r.nics))
}

/// The endpoint records `name` with an address of `pool`, inside the pool's range.
fn expect_pool(r: &Running, name: &str, pool: &str) -> Result<String, String> {
    let n = nic(r, name)?;
    let (_, prefix, lo, hi) = RANGES
        .iter()
        .find(|(p, ..)| *p == pool)
        .ok_or_else(|| format!("unknown pool {pool}"))?;
    if n.pool != pool || !in_range(&n.ip, prefix, *lo, *hi) {
        return Err(format!(
            "{name}: expected an address of pool {pool} ({prefix}{lo}-{hi}), the endpoint records {n:?}"
        ));
    }
    Ok(n.ip.clone())
}

// ---- the scenarios ----

/// Scenario 1: `other/macvlan-other`: the NAD of another namespace gives net1 from its SMC's
/// pool.
fn cross_namespace(k: &Kube) -> Result<(), String> {
    let r = wait_running(k, CROSS_NS, &["net1"], None)?;
    k.show(&["get", "network-attachment-definitions", "-n", "other"])?;
    let ip = expect_pool(&r, "net1", "10-6-v4")?;
    exec_has(
        k,
        CROSS_NS,
        &["ip", "-o", "-4", "addr", "show", "dev", "net1"],
        &[format!("inet {ip}/16")],
    )?;
    exec_has(
        k,
        CROSS_NS,
        &["ip", "rule"],
        &[format!("from {ip} lookup 101")],
    )?;
    exec_has(
        k,
        CROSS_NS,
        &["ip", "route", "show", "table", "101"],
        &[format!("default via {ROUTER} dev net1")],
    )?;
    network_status(&r, &[("net1", "other/macvlan-other")])
}

/// Scenario 2: `networks: macvlan-ens192, macvlan-b`: net1 and net2 with tables 101 and 102.
fn two_nics(k: &Kube) -> Result<(), String> {
    let r = wait_running(k, TWO_NICS, &["net1", "net2"], None)?;
    // The printer columns show the first NIC only (as upstream's); the endpoint holds both.
    k.show(&["get", "se", TWO_NICS])?;
    println!(
        "# {TWO_NICS}'s SpiderEndpoint status.current.ips: {:?}",
        r.nics
    );
    let ip1 = expect_pool(&r, "net1", "10-6-v4")?;
    let ip2 = expect_pool(&r, "net2", "10-6-b")?;
    for (dev, ip) in [("net1", &ip1), ("net2", &ip2)] {
        exec_has(
            k,
            TWO_NICS,
            &["ip", "-o", "-4", "addr", "show", "dev", dev],
            &[format!("inet {ip}/16")],
        )?;
    }
    exec_has(
        k,
        TWO_NICS,
        &["ip", "rule"],
        &[
            format!("from {ip1} lookup 101"),
            format!("from {ip2} lookup 102"),
        ],
    )?;
    // eth0 keeps the default route; each extra NIC's default route moved to its table.
    exec_has(k, TWO_NICS, &["ip", "route"], &["default via".into()]).and_then(|main| {
        let dflt = main
            .lines()
            .find(|l| l.starts_with("default"))
            .unwrap_or("");
        if dflt.contains("dev eth0") {
            Ok(())
        } else {
            Err(format!(
                "{TWO_NICS}: the main default route is not eth0's:\n{main}"
            ))
        }
    })?;
    exec_has(
        k,
        TWO_NICS,
        &["ip", "route", "show", "table", "101"],
        &[format!("default via {ROUTER} dev net1")],
    )?;
    exec_has(
        k,
        TWO_NICS,
        &["ip", "route", "show", "table", "102"],
        &[format!("default via {ROUTER} dev net2")],
    )?;
    // Traffic sourced from net2's address leaves by net2 and is answered.
    let route = k.exec(
        TWO_NICS,
        &["ip", "route", "get", ROUTER, "from", &ip2],
        true,
    )?;
    if !route.contains("dev net2") {
        return Err(format!(
            "from {ip2} to {ROUTER} does not leave by net2: {route}"
        ));
    }
    k.exec(
        TWO_NICS,
        &["ping", "-c", "2", "-W", "2", "-I", &ip2, ROUTER],
        false,
    )
    .map_err(|e| format!("ping {ROUTER} from net2's {ip2}: {e}"))?;
    println!("  ping {ROUTER} from net2 ({ip2}): ok");
    Ok(())
}

/// Scenario 3: pool choice by pod annotation, per NIC (`ippools`) and for the NIC being added
/// (`ippool`), overriding the SMCs' pools.
fn pool_annotations(k: &Kube) -> Result<(), String> {
    let r = wait_running(k, IPPOOLS, &["net1", "net2"], None)?;
    k.show(&["get", "se", IPPOOLS])?;
    // Swapped against the SMCs: net1 (SMC pool 10-6-v4) from 10-6-c, net2 (SMC pool 10-6-b)
    // from 10-6-v4.
    let ip1 = expect_pool(&r, "net1", "10-6-c")?;
    let ip2 = expect_pool(&r, "net2", "10-6-v4")?;
    for (dev, ip) in [("net1", &ip1), ("net2", &ip2)] {
        exec_has(
            k,
            IPPOOLS,
            &["ip", "-o", "-4", "addr", "show", "dev", dev],
            &[format!("inet {ip}/16")],
        )?;
    }
    exec_has(
        k,
        IPPOOLS,
        &["ip", "rule"],
        &[
            format!("from {ip1} lookup 101"),
            format!("from {ip2} lookup 102"),
        ],
    )?;
    network_status(
        &r,
        &[
            ("net1", "default/macvlan-ens192"),
            ("net2", "default/macvlan-b"),
        ],
    )?;

    let r = wait_running(k, IPPOOL, &["net1"], None)?;
    k.show(&["get", "se", IPPOOL])?;
    // The SMC macvlan-b names 10-6-b; the annotation wins.
    let ip = expect_pool(&r, "net1", "10-6-c")?;
    exec_has(
        k,
        IPPOOL,
        &["ip", "-o", "-4", "addr", "show", "dev", "net1"],
        &[format!("inet {ip}/16")],
    )?;
    Ok(())
}

/// Scenario 4: `kubectl delete pod sts-0`: the StatefulSet's new `sts-0` (new UID) gets the
/// same net1 address; the endpoint follows the new UID and the pool counts no second address.
/// Scaled to zero, the address is released.
fn statefulset_keeps_its_address(k: &Kube) -> Result<(), String> {
    let before = wait_running(k, STS_POD, &["net1"], None)?;
    let ip = expect_pool(&before, "net1", "10-6-v4")?;
    println!("# {STS_POD} (uid {}) holds {ip} on net1", before.uid);
    let count_before = settled_count(k, "10-6-v4")?;
    k.kubectl(&["delete", "pod", STS_POD, "--wait=true"], true)?;
    let after = wait_running(k, STS_POD, &["net1"], Some(&before.uid))?;
    k.show(&["get", "se", STS_POD])?;
    let again = nic(&after, "net1")?;
    if again.ip != ip {
        return Err(format!(
            "the re-created {STS_POD} got {} instead of its previous {ip}",
            again.ip
        ));
    }
    if after.endpoint_uid != after.uid {
        return Err(format!(
            "the endpoint records uid {}, the new pod is {}",
            after.endpoint_uid, after.uid
        ));
    }
    exec_has(
        k,
        STS_POD,
        &["ip", "-o", "-4", "addr", "show", "dev", "net1"],
        &[format!("inet {ip}/16")],
    )?;
    exec_has(
        k,
        STS_POD,
        &["ip", "rule"],
        &[format!("from {ip} lookup 101")],
    )?;
    // Our pools keep no per-address records (docs/compatibility.md, "where a pool's records
    // live"): the endpoint is the record. The pool still counts one address for sts-0.
    let held = settled_count(k, "10-6-v4")?;
    if held != count_before {
        return Err(format!(
            "pool 10-6-v4 counted {count_before} addresses before the re-creation, {held} after"
        ));
    }
    println!(
        "  {STS_POD} re-created (uid {}): same address {ip}",
        after.uid
    );
    // Scaled to zero, the ordinal is no longer valid: the address and endpoint go (§3.14
    // step 5).
    k.kubectl(
        &["scale", &format!("statefulset/{STS}"), "--replicas=0"],
        true,
    )?;
    wait_for(&format!("{STS_POD} and its endpoint gone"), STEP, || {
        let pods = k.json(&["get", "pods", "-l", &format!("app={STS}")])?;
        let n = pods["items"].as_array().map_or(0, Vec::len);
        let se = k.kubectl(&["get", "se", STS_POD, "--ignore-not-found"], false)?;
        if n == 0 && se.trim().is_empty() {
            Ok(Some(()))
        } else {
            Err(format!("{n} pods, endpoint: {}", se.trim()))
        }
    })?;
    let released = settled_count(k, "10-6-v4")?;
    if released + 1 != count_before {
        return Err(format!(
            "scaled to zero, pool 10-6-v4 counts {released} addresses (before: {count_before})"
        ));
    }
    println!("  scaled to 0: {ip} and the endpoint released");
    Ok(())
}

/// The pool's `allocatedIPCount` once it agrees with the SpiderEndpoints (it is written
/// behind the ADDs and converges within about a second).
fn settled_count(k: &Kube, pool: &str) -> Result<u64, String> {
    wait_for(
        &format!("{pool}'s count to match the endpoints"),
        STEP,
        || {
            let count = k.json(&["get", "sp", pool])?["status"]["allocatedIPCount"]
                .as_u64()
                .unwrap_or(0);
            let endpoints = k.json(&["get", "se"])?;
            let held = endpoints["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .flat_map(|se| endpoint_nics(se).into_values())
                        .filter(|n| n.pool == pool)
                        .count() as u64
                })
                .unwrap_or(0);
            if count == held {
                Ok(Some(count))
            } else {
                Err(format!("allocatedIPCount {count}, endpoints hold {held}"))
            }
        },
    )
}

/// Scenario 5: Multus's `network-status` on the two-NIC pod: eth0 (default) with the pod IP,
/// net1 and net2 with the endpoint's addresses under their NADs' names.
fn multus_network_status(k: &Kube) -> Result<(), String> {
    let r = wait_running(k, TWO_NICS, &["net1", "net2"], None)?;
    let status = annotation_json(&r, "k8s.v1.cni.cncf.io/network-status")?;
    println!(
        "# {TWO_NICS} k8s.v1.cni.cncf.io/network-status:\n{}",
        serde_json::to_string_pretty(&status).unwrap_or_default()
    );
    let p = k.json(&["get", "pod", TWO_NICS])?;
    let pod_ip = p["status"]["podIP"].as_str().unwrap_or_default();
    let default = status
        .as_array()
        .and_then(|a| a.iter().find(|e| e["default"] == true))
        .ok_or("no default network entry")?;
    if default["interface"] != "eth0" || !has_ip(default, pod_ip) {
        return Err(format!(
            "the default entry is not eth0 with {pod_ip}: {default}"
        ));
    }
    network_status(
        &r,
        &[
            ("net1", "default/macvlan-ens192"),
            ("net2", "default/macvlan-b"),
        ],
    )
}

fn annotation_json(r: &Running, key: &str) -> Result<Value, String> {
    let text = r.annotations[key]
        .as_str()
        .ok_or_else(|| format!("no {key} annotation"))?;
    serde_json::from_str(text).map_err(|e| format!("{key}: {e}: {text}"))
}

fn has_ip(entry: &Value, ip: &str) -> bool {
    entry["ips"].as_array().is_some_and(|ips| {
        ips.iter()
            .any(|i| i.as_str().and_then(|s| s.split('/').next()) == Some(ip))
    })
}

/// Each `(nic, nad)` appears in the pod's network-status with the endpoint's address.
fn network_status(r: &Running, expect: &[(&str, &str)]) -> Result<(), String> {
    let status = annotation_json(r, "k8s.v1.cni.cncf.io/network-status")?;
    for (nic_name, nad) in expect {
        let ip = &nic(r, nic_name)?.ip;
        let entry = status
            .as_array()
            .and_then(|a| a.iter().find(|e| e["interface"] == *nic_name))
            .ok_or_else(|| format!("network-status has no {nic_name}: {status}"))?;
        if entry["name"] != *nad || !has_ip(entry, ip) {
            return Err(format!(
                "network-status {nic_name}: expected {nad} with {ip}, got {entry}"
            ));
        }
    }
    Ok(())
}

// ---- set-up and context ----

fn install(k: &Kube, cluster: &Cluster) -> Result<(), String> {
    cluster.install_chart(k)?;
    wait_for("SpiderCoordinator default Synced", STEP, || {
        let c = k.json(&["get", "spidercoordinators", "default"])?;
        Ok((c["status"]["phase"] == "Synced").then_some(()))
    })
}

/// What a reader needs when a scenario fails: the pods, their events, the node's logs.
fn context(k: &Kube, dir: &Path, pods: &[&str]) {
    println!("\n---- context ----");
    for args in [
        vec!["get", "pods", "-A", "-o", "wide"],
        vec!["get", "se", "-o", "wide"],
        vec!["get", "sp"],
    ] {
        let _ = k.show(&args);
    }
    for p in pods {
        let _ = k.show(&["describe", "pod", p]);
    }
    let _ = k.show(&[
        "logs",
        "-n",
        "kube-system",
        "-l",
        "app.kubernetes.io/component=spiderpool-agent",
        "--tail=60",
    ]);
    for log in ["kubelet.log", "multus.log"] {
        let path = dir.join(log);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        println!("---- tail of {}:", path.display());
        for l in tail.iter().rev() {
            println!("{l}");
        }
    }
}

#[test]
#[ignore = "needs root"]
fn multus_scenarios_on_a_real_node() {
    if !gate::ready(&support::CLUSTER_NEEDS) {
        return;
    }
    let repo = repo_root();
    let started = Instant::now();
    let cluster = Cluster::start(&repo, Path::new(DIR)).expect("cluster up");
    println!("cluster up in {:.1} s", started.elapsed().as_secs_f64());
    let k = Kube::of(&cluster);
    install(&k, &cluster).unwrap_or_else(|e| {
        context(&k, &cluster.dir, &[]);
        panic!("helm install: {e}");
    });
    println!("installed at {:.1} s", started.elapsed().as_secs_f64());

    k.apply("seed-pool.yaml", SEED_POOL_ON_NODE)
        .expect("seed pool");
    k.apply("pools.yaml", POOLS).expect("pools");
    k.apply("smcs.yaml", SMCS).expect("SMCs");
    for (ns, nad) in [
        ("default", "macvlan-ens192"),
        ("default", "macvlan-b"),
        ("other", "macvlan-other"),
    ] {
        wait_for(&format!("NAD {ns}/{nad}"), STEP, || {
            Ok(
                k.json(&["get", "network-attachment-definitions", "-n", ns, nad])
                    .ok(),
            )
        })
        .expect("NADs rendered");
    }

    // Every scenario's pods at once: they start in parallel.
    let mut manifests = vec![
        pod(
            CROSS_NS,
            &[("k8s.v1.cni.cncf.io/networks", "other/macvlan-other")],
        ),
        pod(
            TWO_NICS,
            &[("k8s.v1.cni.cncf.io/networks", "macvlan-ens192, macvlan-b")],
        ),
        pod(
            IPPOOLS,
            &[
                ("k8s.v1.cni.cncf.io/networks", "macvlan-ens192,macvlan-b"),
                (
                    "ipam.spidernet.io/ippools",
                    r#"[{"interface":"net1","ipv4":["10-6-c"]},{"interface":"net2","ipv4":["10-6-v4"]}]"#,
                ),
            ],
        ),
        pod(
            IPPOOL,
            &[
                ("k8s.v1.cni.cncf.io/networks", "macvlan-b"),
                ("ipam.spidernet.io/ippool", r#"{"ipv4":["10-6-c"]}"#),
            ],
        ),
    ];
    manifests.push(statefulset());
    k.apply("scenarios.yaml", &manifests.join("---\n"))
        .expect("scenario workloads");

    type Scenario = fn(&Kube) -> Result<(), String>;
    let scenarios: [(&str, Scenario, &[&str]); 5] = [
        (
            "1. NAD of another namespace (other/macvlan-other)",
            cross_namespace,
            &[CROSS_NS],
        ),
        (
            "2. two extra NICs, tables 101 and 102",
            two_nics,
            &[TWO_NICS],
        ),
        (
            "3. ipam.spidernet.io/ippools and ippool annotations",
            pool_annotations,
            &[IPPOOLS, IPPOOL],
        ),
        (
            "4. StatefulSet pod re-created keeps its address",
            statefulset_keeps_its_address,
            &[STS_POD],
        ),
        (
            "5. Multus network-status shows our addresses",
            multus_network_status,
            &[TWO_NICS],
        ),
    ];
    let mut failed = Vec::new();
    for (name, run, pods) in scenarios {
        println!("\n== {name}\n");
        let t = Instant::now();
        match run(&k) {
            Ok(()) => println!("  ok ({:.1} s)", t.elapsed().as_secs_f64()),
            Err(e) => {
                println!("  FAILED: {e}");
                context(&k, &cluster.dir, pods);
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    println!(
        "\n{} of 5 scenarios passed; run took {:.1} s",
        5 - failed.len(),
        started.elapsed().as_secs_f64()
    );
    drop(cluster);
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n")
    );
    assert!(!Path::new(DIR).exists(), "{DIR} left behind");
}

#[test]
fn manifests_are_well_formed() {
    let p = pod(TWO_NICS, &[("k8s.v1.cni.cncf.io/networks", "a, b")]);
    assert!(p.contains("    k8s.v1.cni.cncf.io/networks: 'a, b'\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n"), "{p}");
    assert!(p.ends_with("\n    imagePullPolicy: Never\n"), "{p}");
    let s = statefulset();
    assert!(
        s.contains("    spec:\n      terminationGracePeriodSeconds: 0\n"),
        "{s}"
    );
    assert!(in_range("10.6.213.105", "10.6.213.", 100, 110));
    assert!(!in_range("10.6.212.105", "10.6.213.", 100, 110));
    let se = serde_json::json!({"status": {"current": {"uid": "u", "ips": [
        {"interface": "net1", "ipv4": "10.6.212.100/16", "ipv4Pool": "10-6-v4"},
        {"interface": "eth0"}]}}});
    let nics = endpoint_nics(&se);
    assert_eq!(nics.len(), 1);
    assert_eq!(
        nics["net1"],
        Nic {
            ip: "10.6.212.100".into(),
            pool: "10-6-v4".into()
        }
    );
}
