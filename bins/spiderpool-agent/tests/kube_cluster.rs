//! The seed's cluster side, every binary together on a control plane of its own:
//! `spiderpool-init` creates the SpiderCoordinator of the seed (podCIDRType calico),
//! `spiderpool-controller` (webhooks by URL, Lease, controllers, GC) syncs its status from the
//! seed's two Calico IPPools and the cluster's ServiceCIDR, admits the seed's pool and
//! SpiderMultusConfig applied with kubectl and renders the NAD; two agents allocate for two
//! pods through the real `spiderpool` plugin with the IPAM configuration taken from that NAD,
//! answer the coordinator plugin from the synced status; deleting a pod without any CNI DEL
//! lets the controller's GC release its address.
//!
//! Needs a kube-apiserver build (`hack/testbin.sh`; a private one is started here) and root
//! (network namespaces for `CNI_NETNS`). The controller and init binaries are taken from the
//! agent's target directory (`cargo build --workspace --bins`, as scripts/test.sh does).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kube::{cell, kubectl_ok, kubectl_try, seed, table};
use common::{AGENT, Netns, ip, spiderpool_plugin};
use spiderpool_core::agentapi::GetCoordinatorArgs;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};
use spiderpool_plugin_support::agent_client::AgentClient;
use spiderpool_test_kit::cni::{Call, run_plugin_here};
use spiderpool_test_kit::gate::{self, Need};

/// A binary built beside the agent (same target directory).
fn sibling(name: &str) -> PathBuf {
    let path = Path::new(AGENT).parent().expect("target dir").join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `what` (up to 30 s) until it returns Some.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const CALICO: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ippools.crd.projectcalico.org}
spec:
  group: crd.projectcalico.org
  names: {kind: IPPool, listKind: IPPoolList, plural: ippools, singular: ippool}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

const CALICO_POOLS: &str = r#"
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 10.222.64.0/18, ipipMode: Always, natOutgoing: true, nodeSelector: all()}
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-ipv4-ippool1}
spec: {cidr: 10.223.64.0/18, ipipMode: Always, natOutgoing: true, nodeSelector: all()}
"#;

/// Runs the controller against `kc` (webhooks by URL, GC and controllers), its log in `log`.
/// The GC scans every 2 s and traces pods every second (upstream: 600 s and 5 s).
fn controller(kc: &str, log: &Path) -> Killed {
    Killed(
        Command::new(sibling("spiderpool-controller"))
            .args(["--kubeconfig", kc, "--webhook-listen", "127.0.0.1:0"])
            .args(["--health-port", "0", "--log-level", "debug"])
            .env("SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION", "2")
            .env("SPIDERPOOL_GC_TRACE_POD_GAP_DURATION", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("controller starts"),
    )
}

/// A private control plane with a test namespace, a runtime and a scratch directory.
struct Lab {
    // Dropped last: stops the apiserver.
    _plane: PrivateControlPlane,
    kc: PathBuf,
    rt: tokio::runtime::Runtime,
    tc: TestCluster,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start(test: &str) -> Lab {
        let plane = PrivateControlPlane::start().expect("private control plane");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let tc = rt.block_on(TestCluster::on(&plane, test)).expect("cluster");
        Lab {
            kc: plane.kubeconfig.clone(),
            _plane: plane,
            rt,
            tc,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    /// Writes `text` to `name` in the scratch directory; returns its path.
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_owned()
    }
}

/// A Kubernetes-mode agent for `node` on `kc`, its socket and log in `dir`, once healthy.
fn agent(kc: &str, node: &str, dir: &Path) -> (Killed, PathBuf) {
    let socket = dir.join(format!("{node}.sock"));
    let child = Command::new(AGENT)
        .args([
            "--kubeconfig",
            kc,
            "--node-name",
            node,
            "--health-port",
            "0",
        ])
        .arg("--socket")
        .arg(&socket)
        .arg("--log-file")
        .arg(dir.join(format!("{node}.log")))
        .stdout(Stdio::null())
        .spawn()
        .expect("agent starts");
    let client = AgentClient::new(&socket);
    wait_for("the agent", || client.healthy().ok());
    (Killed(child), socket)
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_cluster_seed_init_controller_agents_and_gc_together() {
    if !gate::ready(&[Need::Root, Need::Program("ip")]) {
        return;
    }
    let lab = Lab::start("seed-cluster");
    let (kc, kc_s, rt, tc, dir) = (
        &lab.kc,
        lab.kc.to_str().expect("utf-8"),
        &lab.rt,
        &lab.tc,
        &lab.dir,
    );
    let ns = tc.namespace.clone();
    let write = |name: &str, text: &str| lab.write(name, text);

    // The seed's Calico: its IPPool CRD and two pools.
    kubectl_ok(Some(kc), &["apply", "-f", &write("calico.yaml", CALICO)]);
    kubectl_ok(
        Some(kc),
        &[
            "wait",
            "--for=condition=Established",
            "crd/ippools.crd.projectcalico.org",
        ],
    );
    kubectl_ok(
        Some(kc),
        &["apply", "-f", &write("pools.yaml", CALICO_POOLS)],
    );

    // spiderpool-init: the default SpiderCoordinator as the seed's chart values make it.
    let init = Command::new(sibling("spiderpool-init"))
        .args(["--kubeconfig", kc_s, "--skip-controller-wait"])
        .env("SPIDERPOOL_NAMESPACE", "kube-system")
        .env("SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME", "default")
        .env(
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE",
            "calico",
        )
        .env(
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR",
            r#"["169.254.0.0/16"]"#,
        )
        .output()
        .expect("spiderpool-init runs");
    assert!(
        init.status.success(),
        "spiderpool-init: {}",
        String::from_utf8_lossy(&init.stderr)
    );

    // spiderpool-controller out of cluster: webhooks by URL, the Lease, controllers, GC.
    let log = dir.path().join("controller.log");
    let _controller = controller(kc_s, &log);
    let controller_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // `kubectl get spidercoordinators default -o yaml` as the seed shows it.
    let status = wait_for("the coordinator to be Synced", || {
        let out = kubectl_ok(
            Some(kc),
            &[
                "get",
                "spidercoordinators.spiderpool.spidernet.io",
                "default",
                "-o",
                "json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        (v["status"]["phase"] == "Synced").then(|| v["status"].clone())
    });
    assert_eq!(
        status["overlayPodCIDR"],
        serde_json::json!(["10.222.64.0/18", "10.223.64.0/18"]),
        "{}",
        controller_log()
    );
    assert_eq!(status["serviceCIDR"], serde_json::json!(["10.233.0.0/18"]));

    // The seed's pool and SpiderMultusConfig through the webhooks (waiting for them to be
    // registered: until then the apiserver admits without defaults).
    wait_for("the webhook configurations", || {
        let out = kubectl_ok(
            Some(kc),
            &["get", "validatingwebhookconfigurations", "-o", "name"],
        );
        (!out.trim().is_empty()).then_some(())
    });
    let bad = write(
        "bad.yaml",
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: bad-gw}\n\
         spec: {subnet: 10.7.0.0/16, ips: [10.7.0.1-10.7.0.10], gateway: 10.7.0.1}\n",
    );
    let refused = wait_for("the webhook to answer", || {
        let out = kubectl_try(Some(kc), &["apply", "-f", &bad])?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (!out.status.success() && err.contains("is invalid")).then_some(err)
    });
    assert!(refused.contains("spec.ips"), "{refused}");
    kubectl_ok(Some(kc), &["apply", "-f", &seed("ippool.yaml")]);
    let smc = std::fs::read_to_string(seed("multusconfig.yaml"))
        .expect("seed SMC")
        .replace("namespace: default", &format!("namespace: {ns}"));
    kubectl_ok(Some(kc), &["apply", "-f", &write("smc.yaml", &smc)]);
    let sp = table(Some(kc), &["get", "sp", "10-6-v4"]);
    assert_eq!(
        cell(&sp, 1, "VERSION"),
        "4",
        "defaulted by the webhook: {sp:?}"
    );

    // The NAD the controller rendered; its first plugin is what Multus hands macvlan.
    let nad: serde_json::Value = wait_for("the NAD", || {
        let out = kubectl_try(
            Some(kc),
            &[
                "get",
                "network-attachment-definitions.k8s.cni.cncf.io",
                "macvlan-ens192",
                "-n",
                &ns,
                "-o",
                "json",
            ],
        )?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())?
    });
    let config: serde_json::Value =
        serde_json::from_str(nad["spec"]["config"].as_str().expect("spec.config")).expect("json");
    let plugins = config["plugins"].as_array().expect("plugins");
    assert_eq!(plugins[0]["type"], "macvlan");
    assert_eq!(plugins[0]["master"], "ens192");
    assert_eq!(
        plugins[0]["ipam"],
        serde_json::json!({"type": "spiderpool", "default_ipv4_ippool": ["10-6-v4"]})
    );
    assert_eq!(plugins.last().expect("a plugin")["type"], "coordinator");

    // Two nodes, two pods of the seed's Deployment, an agent per node.
    let nets = BTreeMap::from([(
        "k8s.v1.cni.cncf.io/networks".to_owned(),
        "macvlan-ens192".to_owned(),
    )]);
    let app = BTreeMap::from([("app".to_owned(), "nginx".to_owned())]);
    let mut uids = Vec::new();
    for (pod, node) in [("nginx-1", "node1"), ("nginx-2", "node2")] {
        rt.block_on(tc.node(node, &BTreeMap::new())).expect("node");
        let p = rt.block_on(tc.pod(pod, node, &nets, &app)).expect("pod");
        uids.push(p.metadata.uid.expect("uid"));
    }
    let agents: Vec<(Killed, PathBuf)> = ["node1", "node2"]
        .iter()
        .map(|node| agent(kc_s, node, dir.path()))
        .collect();

    let plugin = spiderpool_plugin();
    let plugin = plugin.to_str().expect("utf-8 path");
    let mut netns = Netns::default();
    let mut addresses = Vec::new();
    for (i, pod) in ["nginx-1", "nginx-2"].iter().enumerate() {
        let name = netns.add(&format!("scl-{}-{i}", std::process::id()));
        ip(&[
            "-n", &name, "link", "add", "net1", "type", "veth", "peer", "name", "peer1",
        ]);
        let mut conf = plugins[0].clone();
        conf["cniVersion"] = config["cniVersion"].clone();
        conf["name"] = config["name"].clone();
        conf["ipam"]["ipam_unix_socket_path"] =
            serde_json::json!(agents[i].1.to_str().expect("utf-8"));
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={};K8S_POD_INFRA_CONTAINER_ID=c{i}",
            uids[i]
        );
        let cid = format!("c{i}");
        let path = format!("/var/run/netns/{name}");
        let call = Call {
            args: &args,
            ..Call::add(&path, &cid, "net1")
        };
        let run = run_plugin_here(plugin, &call, &conf.to_string());
        assert_eq!(run.code, 0, "ADD {pod}: {} {}", run.stdout, run.stderr);
        let result: serde_json::Value = serde_json::from_str(&run.stdout).expect("CNI result");
        addresses.push(
            result["ips"][0]["address"]
                .as_str()
                .expect("address")
                .to_owned(),
        );

        // What the coordinator plugin asks next: the synced CIDRs.
        let cfg = AgentClient::new(&agents[i].1)
            .coordinator_config(&GetCoordinatorArgs {
                pod_name: (*pod).to_owned(),
                pod_namespace: ns.clone(),
            })
            .expect("coordinator config");
        assert_eq!(
            cfg.overlay_pod_cidr.as_deref(),
            Some(&["10.222.64.0/18".to_owned(), "10.223.64.0/18".to_owned()][..])
        );
        assert_eq!(
            cfg.service_cidr.as_deref(),
            Some(&["10.233.0.0/18".to_owned()][..])
        );
    }
    assert_ne!(addresses[0], addresses[1]);
    let se = table(Some(kc), &["get", "se", "-n", &ns]);
    assert_eq!(se.len(), 3, "{se:?}");
    wait_for("ALLOCATED-IP-COUNT 2", || {
        let sp = table(Some(kc), &["get", "sp", "10-6-v4"]);
        (cell(&sp, 1, "ALLOCATED-IP-COUNT") == "2").then_some(())
    });

    // nginx-1 is deleted and no CNI DEL ever comes: the controller's GC releases it.
    rt.block_on(tc.delete_pod("nginx-1")).expect("delete pod");
    wait_for("the GC to release nginx-1's address", || {
        let se = table(Some(kc), &["get", "se", "-n", &ns]);
        (se.len() == 2 && cell(&se, 1, "NAME") == "nginx-2").then_some(())
    });
    wait_for("ALLOCATED-IP-COUNT 1", || {
        let sp = table(Some(kc), &["get", "sp", "10-6-v4"]);
        (cell(&sp, 1, "ALLOCATED-IP-COUNT") == "1").then_some(())
    });
    assert!(
        controller_log().contains(addresses[0].split('/').next().unwrap_or("?")),
        "the release is logged with the address: {}",
        controller_log()
    );
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_cluster_pod_of_a_deployment_waits_for_its_auto_created_pool() {
    if !gate::ready(&[Need::Root, Need::Program("ip")]) {
        return;
    }
    let lab = Lab::start("auto-pool");
    let (kc, kc_s, rt, tc, dir) = (
        &lab.kc,
        lab.kc.to_str().expect("utf-8"),
        &lab.rt,
        &lab.tc,
        &lab.dir,
    );
    let ns = tc.namespace.clone();
    let write = |name: &str, text: &str| lab.write(name, text);

    // The subnet, admitted by the controller's webhooks; then the controller stops (SIGTERM
    // releases its Lease), so the application's pool cannot exist before the ADD starts.
    let mut first = controller(kc_s, &dir.path().join("c1.log"));
    let subnet = write(
        "subnet.yaml",
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata: {name: s-10-6}\n\
         spec: {subnet: 10.6.0.0/16, ips: [10.6.212.100-10.6.212.200], gateway: 10.6.0.1}\n",
    );
    wait_for("the subnet to be admitted with its defaults", || {
        let out = kubectl_try(Some(kc), &["apply", "-f", &subnet])?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&kubectl_ok(
            Some(kc),
            &[
                "get",
                "spidersubnets.spiderpool.spidernet.io",
                "s-10-6",
                "-o",
                "json",
            ],
        ))
        .ok()?;
        (v["spec"]["ipVersion"] == 4).then_some(())
    });
    let pid = first.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = first.0.wait();

    // nginx: Deployment -> ReplicaSet -> Pod, the pod template naming the subnet.
    let annotations = serde_json::json!({
        "ipam.spidernet.io/subnets": r#"[{"interface":"net1","ipv4":["s-10-6"]}]"#,
        "ipam.spidernet.io/ippool-ip-number": "+1",
    });
    let dep = kubectl_ok(
        Some(kc),
        &[
            "create",
            "-n",
            &ns,
            "-o",
            "json",
            "-f",
            &write(
                "dep.json",
                &serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "nginx", "namespace": ns},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
                             "template": {"metadata": {"labels": {"app": "nginx"},
                                                       "annotations": annotations},
                                          "spec": {"containers": [{"name": "c", "image": "x"}]}}}
                })
                .to_string(),
            ),
        ],
    );
    let dep: serde_json::Value = serde_json::from_str(&dep).expect("deployment");
    let rs = kubectl_ok(
        Some(kc),
        &[
            "create",
            "-n",
            &ns,
            "-o",
            "json",
            "-f",
            &write(
                "rs.json",
                &serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": "nginx-7b7f8", "namespace": ns,
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "nginx", "uid": dep["metadata"]["uid"],
                                     "controller": true}]},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
                             "template": {"metadata": {"labels": {"app": "nginx"},
                                                       "annotations": annotations},
                                          "spec": {"containers": [{"name": "c", "image": "x"}]}}}
                })
                .to_string(),
            ),
        ],
    );
    let rs: serde_json::Value = serde_json::from_str(&rs).expect("replicaset");
    rt.block_on(tc.node("node1", &BTreeMap::new()))
        .expect("node");
    let pod = kubectl_ok(
        Some(kc),
        &[
            "create",
            "-n",
            &ns,
            "-o",
            "json",
            "-f",
            &write(
                "pod.json",
                &serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "nginx-7b7f8-abcde", "namespace": ns,
                                 "labels": {"app": "nginx"}, "annotations": annotations,
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "nginx-7b7f8", "uid": rs["metadata"]["uid"],
                                     "controller": true}]},
                    "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}
                })
                .to_string(),
            ),
        ],
    );
    let pod: serde_json::Value = serde_json::from_str(&pod).expect("pod");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_owned();

    let (_agent, socket) = agent(kc_s, "node1", dir.path());

    // The ADD starts with no pool for the application; the controller starts afterwards.
    let mut netns = Netns::default();
    let name = netns.add(&format!("sap-{}", std::process::id()));
    ip(&[
        "-n", &name, "link", "add", "net1", "type", "veth", "peer", "name", "peer1",
    ]);
    let conf = serde_json::json!({
        "cniVersion": "0.3.1", "name": "macvlan-ens192", "type": "macvlan",
        "master": "ens192", "mode": "bridge",
        "ipam": {"type": "spiderpool", "ipam_unix_socket_path": socket.to_str().expect("utf-8")}
    });
    let plugin = spiderpool_plugin();
    let add = {
        let plugin = plugin.clone();
        let ns = ns.clone();
        let conf = conf.to_string();
        std::thread::spawn(move || {
            let args = format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME=nginx-7b7f8-abcde;K8S_POD_UID={uid};K8S_POD_INFRA_CONTAINER_ID=c0"
            );
            let path = format!("/var/run/netns/{name}");
            let call = Call {
                args: &args,
                ..Call::add(&path, "c0", "net1")
            };
            run_plugin_here(plugin.to_str().expect("utf-8"), &call, &conf)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    if add.is_finished() {
        let run = add.join().expect("ADD thread");
        panic!(
            "the ADD did not wait for the auto-created pool: {} {} {}",
            run.code, run.stdout, run.stderr
        );
    }
    let _second = controller(kc_s, &dir.path().join("c2.log"));
    let run = add.join().expect("ADD thread");
    assert_eq!(run.code, 0, "ADD: {} {}", run.stdout, run.stderr);
    let result: serde_json::Value = serde_json::from_str(&run.stdout).expect("CNI result");
    let address = result["ips"][0]["address"].as_str().expect("address");
    assert!(address.starts_with("10.6.212."), "{address}");

    // The pool upstream would have made: auto4-nginx-net1-<uid part>, 2 + 1 addresses.
    let pools = table(Some(kc), &["get", "sp"]);
    assert_eq!(pools.len(), 2, "{pools:?}");
    let pool = cell(&pools, 1, "NAME").to_owned();
    assert!(pool.starts_with("auto4-nginx-net1-"), "{pool}");
    assert_eq!(cell(&pools, 1, "TOTAL-IP-COUNT"), "3");
    let se = table(Some(kc), &["get", "se", "-n", &ns]);
    assert_eq!(cell(&se, 1, "IPV4POOL"), pool);
}
