//! The seed's Calico quick start, for real, in network namespaces.
//!
//! 1. Offline: the seed's SpiderIPPool and SpiderMultusConfig go through the admission
//!    webhooks (defaulting + validation) and the SpiderMultusConfig becomes its
//!    NetworkAttachmentDefinition, exactly as in a cluster.
//! 2. Live (root): a node with `ens192` (10.6.212.132/16), an underlay router (10.6.0.1), and
//!    two pods with a Calico-like `eth0`. `spiderpool-agent` runs in local mode with the seed's
//!    pool and SpiderCoordinator; Debian's macvlan plugin adds `net1` with our `spiderpool`
//!    IPAM, and our `coordinator` tunes the routes. It prints a `kubectl get se`-style table,
//!    the pod's and node's policy routing, and pings across every path; then it repeats one pod
//!    with `ipam.spidernet.io/default-route-nic: net1`, and cleans up (also on failure or
//!    Ctrl-C).
//!
//! Without root it prints the coordinator's plan for the seed's pod instead, and says why.
//!
//! Run with `cargo run -p spiderpool-examples --example quickstart`.

mod chain;
mod lab;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use spiderpool_core::admission::{self, ClusterState, Operation, Switches};
use spiderpool_core::coordinator::{
    AddRequest, AgentCoordinatorConfig, Family, HostView, NadCoordinatorConf, PodView, merge,
    plan_add, render_ip_route, render_ip_rule, render_plan,
};
use spiderpool_core::manifest::{SpiderObject, parse_documents, to_yaml};
use spiderpool_core::multus::render_nad;
use spiderpool_plugin_support::agent_client::AgentClient;

use chain::Attachment;
use lab::{Lab, NODE, ROUTER, ip, run};

/// The seed's manifests, as a user would `kubectl apply` them.
const POOL: &str = include_str!("ippool.yaml");
const SMC: &str = include_str!("multusconfig.yaml");
const COORDINATOR: &str = include_str!("coordinator.yaml");
const TOPOLOGY: &str = include_str!("topology-overlay.yaml");

/// Debian's macvlan plugin (package containernetworking-plugins).
const DEBIAN_MACVLAN: &str = "/usr/lib/cni/macvlan";

/// The seed's two nginx pods: name, uid, netns, node-side veth, Calico address.
const PODS: [(&str, &str, &str, &str, &str); 2] = [
    (
        "nginx-4653bc4f24-rswak",
        "0b8f1d2e-0001",
        "spq-pod1",
        "calirswak0001",
        "10.233.73.210",
    ),
    (
        "nginx-4653bc4f24-aswpm",
        "0b8f1d2e-0002",
        "spq-pod2",
        "caliaswpm0002",
        "10.233.73.211",
    ),
];

fn main() -> ExitCode {
    let _ = ctrlc::set_handler(|| lab::INTERRUPTED.store(true, Ordering::SeqCst));
    match run_all() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_all() -> Result<(), String> {
    let nad_config = offline()?;
    if !is_root() {
        println!(
            "\nNot running as root, so the live part (network namespaces, veth, macvlan) is \
             skipped. This is what the coordinator would do for the seed's pod:\n"
        );
        return offline_plan();
    }
    live(&nad_config)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Admission of the seed's pool and SpiderMultusConfig; returns the NAD's `spec.config`.
fn offline() -> Result<String, String> {
    println!("== 1. The seed's objects through the admission webhooks (offline)\n");
    let switches = Switches::default();
    let mut cluster = ClusterState::default();
    let mut nad_config = None;
    for (file, text) in [("ippool.yaml", POOL), ("multusconfig.yaml", SMC)] {
        for obj in parse_documents(text).map_err(|e| format!("{file}: {e}"))? {
            let name = format!("{}/{}", obj.kind(), obj.name());
            let admitted = admission::admit(Operation::Create, obj, None, &cluster, &switches)
                .map_err(|errs| {
                    let lines: Vec<String> = errs.iter().map(|e| format!("{name}: {e}")).collect();
                    lines.join("\n")
                })?;
            println!("# {name} admitted ({file})");
            match &admitted {
                SpiderObject::MultusConfig(smc) => {
                    let nad = render_nad(smc).map_err(|e| format!("{name}: {e}"))?;
                    println!("# the NetworkAttachmentDefinition it becomes:");
                    let yaml = serde_saphyr::to_string(&nad).map_err(|e| e.to_string())?;
                    println!("{yaml}");
                    nad_config = nad.spec.config.clone();
                }
                other => println!("{}", to_yaml(other).map_err(|e| e.to_string())?),
            }
            cluster.upsert(admitted);
        }
    }
    nad_config.ok_or_else(|| "the SpiderMultusConfig rendered no CNI config".into())
}

/// The coordinator's plan for the seed's pod, computed without touching the kernel.
fn offline_plan() -> Result<(), String> {
    let topo: Value = serde_saphyr::from_str(TOPOLOGY).map_err(|e| e.to_string())?;
    let pod: PodView = serde_json::from_value(topo["pod"].clone()).map_err(|e| e.to_string())?;
    let host: HostView = serde_json::from_value(topo["host"].clone()).map_err(|e| e.to_string())?;
    let Some(SpiderObject::Coordinator(scc)) = parse_documents(COORDINATOR)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
    else {
        return Err("coordinator.yaml holds no SpiderCoordinator".into());
    };
    let agent =
        AgentCoordinatorConfig::from_spider_coordinator(&scc, None).map_err(|e| e.to_string())?;
    let cfg = merge(&NadCoordinatorConf::default(), &agent).map_err(|e| e.to_string())?;
    let plan = plan_add(
        &cfg,
        &AddRequest::new("0123456789abcdef", "net1"),
        &pod,
        &host,
    )
    .map_err(|e| e.to_string())?;
    print!("{}", render_plan(&plan));
    let (pod_after, host_after) = plan.apply(&pod, &host);
    println!(
        "\n# pod: ip rule\n{}",
        render_ip_rule(&pod_after.rules, Family::V4)
    );
    for (what, table) in [
        ("ip route", 254),
        ("ip route show table 100", 100),
        ("ip route show table 101", 101),
    ] {
        println!(
            "# pod: {what}\n{}",
            render_ip_route(&pod_after.routes, table, Family::V4)
        );
    }
    println!(
        "# node: ip route show table 500\n{}",
        render_ip_route(&host_after.routes, 500, Family::V4)
    );
    Ok(())
}

/// Our binaries next to this example (`target/<profile>/`), built first when run by cargo.
fn our_binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?
        .to_path_buf();
    if let Ok(cargo) = std::env::var("CARGO") {
        println!("(building spiderpool, coordinator and spiderpool-agent)");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-q",
            "-p",
            "spiderpool",
            "-p",
            "coordinator",
            "-p",
            "spiderpool-agent",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("cargo build of the plugins and the agent failed".into());
        }
    }
    for bin in ["spiderpool", "coordinator", "spiderpool-agent"] {
        if !dir.join(bin).exists() {
            return Err(format!(
                "{} is missing: run `cargo build -p spiderpool -p coordinator -p spiderpool-agent`",
                dir.join(bin).display()
            ));
        }
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn live(nad_config: &str) -> Result<(), String> {
    if !Path::new(DEBIAN_MACVLAN).exists() {
        return Err(format!(
            "{DEBIAN_MACVLAN} is missing: install Debian's CNI plugins \
             (apt-get install containernetworking-plugins)"
        ));
    }
    let bins = our_binaries()?;
    let mut lab = Lab::new()?;

    println!("\n== 2. The seed topology in network namespaces\n");
    lab.build_underlay()?;
    for (_, _, ns, cali, eth0) in PODS {
        lab.build_pod(ns, cali, eth0)?;
    }
    println!(
        "node {NODE}: ens192 10.6.212.132/16 -> router {ROUTER}: eth0 10.6.0.1/16\n\
         pods {} and {}: Calico-like eth0 (/32, default via 169.254.1.1)",
        PODS[0].2, PODS[1].2
    );

    // The agent in local mode, fed the same YAML one would kubectl apply.
    let config = lab.dir.join("config");
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    write(&config.join("ippool.yaml"), POOL)?;
    write(&config.join("multusconfig.yaml"), SMC)?;
    write(&config.join("coordinator.yaml"), COORDINATOR)?;
    let socket = lab.dir.join("spiderpool.sock");
    lab.start_agent(&bins.join("spiderpool-agent"), &config, &socket)?;
    println!("spiderpool-agent (local mode) serving {}", socket.display());

    // CNI_PATH: Debian's macvlan beside our IPAM and coordinator.
    let cni_path = lab.dir.join("cni-bin");
    std::fs::create_dir_all(&cni_path).map_err(|e| e.to_string())?;
    for (name, target) in [
        ("macvlan", PathBuf::from(DEBIAN_MACVLAN)),
        ("spiderpool", bins.join("spiderpool")),
        ("coordinator", bins.join("coordinator")),
    ] {
        std::os::unix::fs::symlink(&target, cni_path.join(name)).map_err(|e| e.to_string())?;
    }
    let list = chain::conflist(nad_config, &socket, &lab.dir.join("plugins.log"))?;

    println!("\n== 3. CNI ADD: macvlan + spiderpool IPAM + coordinator for net1\n");
    let mut results = Vec::new();
    for (name, uid, ns, _, _) in PODS {
        let att = attachment(name, uid, ns, None);
        let result = chain::add(&cni_path, NODE, &list, &att)?;
        println!("{name}: net1 {}", first_address(&result)?);
        results.push(result);
    }

    let client = AgentClient::new(&socket);
    println!("\n~# kubectl get se");
    print_endpoints(&client)?;

    let (pod1, _, pod1_ns, _, pod1_eth0) = PODS[0];
    let pod1_net1 = strip_prefix(&first_address(&results[0])?);
    println!("\n== 4. Policy routing of {pod1}\n");
    show_routing(pod1_ns)?;

    let mut failures = Vec::new();
    println!("\n== 5. Connectivity\n");
    let checks = [
        (pod1_ns, "10.6.212.132", "pod -> node"),
        (pod1_ns, PODS[1].4, "pod -> pod (Calico)"),
        (pod1_ns, "10.6.0.1", "pod -> underlay gateway"),
        (ROUTER, pod1_net1.as_str(), "router -> pod underlay IP"),
        (NODE, pod1_net1.as_str(), "node -> pod underlay IP"),
        (NODE, pod1_eth0, "node -> pod Calico IP"),
    ];
    for (ns, dst, what) in checks {
        ping(ns, dst, what, &mut failures)?;
    }

    // The same pod again, with its default route on net1.
    let (pod2, uid2, pod2_ns, pod2_cali, pod2_eth0) = PODS[1];
    println!("\n== 6. {pod2} re-created with ipam.spidernet.io/default-route-nic: net1\n");
    let att = attachment(pod2, uid2, pod2_ns, None);
    chain::del(&cni_path, NODE, &list, &att, &results[1])?;
    // A new pod sandbox: fresh netns and Calico eth0, as a pod re-created with the annotation.
    lab.build_pod(pod2_ns, pod2_cali, pod2_eth0)?;
    let annotations = json!({"podAnnotations": {"ipam.spidernet.io/default-route-nic": "net1"}});
    let att = attachment(pod2, uid2, pod2_ns, Some(annotations));
    results[1] = chain::add(&cni_path, NODE, &list, &att)?;
    println!("{pod2}: net1 {}", first_address(&results[1])?);
    show_routing(pod2_ns)?;
    println!();
    for (ns, dst, what) in [
        (pod2_ns, "10.6.0.1", "pod -> underlay gateway"),
        (
            pod2_ns,
            "10.7.212.101",
            "pod -> outside the cluster (default route)",
        ),
        (pod2_ns, "10.6.212.132", "pod -> node"),
        (pod2_ns, pod1_eth0, "pod -> pod (Calico)"),
    ] {
        if dst == "10.7.212.101" {
            // Nothing answers there; show which NIC the default route uses.
            println!("{what}: {dst} leaves by {}", route_dev(ns, dst)?);
            continue;
        }
        ping(ns, dst, what, &mut failures)?;
    }

    println!("\n== 7. CNI DEL\n");
    for (i, (name, uid, ns, _, _)) in PODS.into_iter().enumerate() {
        let annotations = (i == 1)
            .then(|| json!({"podAnnotations": {"ipam.spidernet.io/default-route-nic": "net1"}}));
        chain::del(
            &cni_path,
            NODE,
            &list,
            &attachment(name, uid, ns, annotations),
            &results[i],
        )?;
        let gone = client.workload_endpoint("default", name).is_err();
        println!(
            "{name}: released (endpoint {})",
            if gone { "gone" } else { "still present" }
        );
        if !gone {
            failures.push(format!("{name}: endpoint still present after DEL"));
        }
    }
    println!(
        "node table 500 after DEL:\n{}",
        ip(NODE, "route show table 500")?
    );

    if failures.is_empty() {
        println!("all checks passed");
        Ok(())
    } else {
        Err(format!(
            "{} check(s) failed: {}",
            failures.len(),
            failures.join("; ")
        ))
    }
}

fn attachment(name: &str, uid: &str, ns: &str, runtime_config: Option<Value>) -> Attachment {
    Attachment {
        container_id: format!("{uid}-{name}"),
        netns: Lab::netns_path(ns),
        ifname: "net1".into(),
        args: format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_UID={uid}"
        ),
        runtime_config,
    }
}

fn first_address(result: &Value) -> Result<String, String> {
    result["ips"][0]["address"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no address in the CNI result {result}"))
}

fn strip_prefix(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or(cidr).to_owned()
}

/// A `kubectl get se` table from the agent's endpoint records.
fn print_endpoints(client: &AgentClient) -> Result<(), String> {
    println!(
        "{:<24} {:<10} {:<10} {:<18} {:<9} {:<6} NODE",
        "NAME", "INTERFACE", "IPV4POOL", "IPV4", "IPV6POOL", "IPV6"
    );
    for (name, ..) in PODS {
        let se = client
            .workload_endpoint("default", name)
            .map_err(|e| format!("endpoint of {name}: {e}"))?;
        let nic = se.current.ips.first();
        let get = |f: fn(&spiderpool_core::objects::IPAllocationDetail) -> Option<String>| {
            nic.and_then(f).unwrap_or_default()
        };
        println!(
            "{:<24} {:<10} {:<10} {:<18} {:<9} {:<6} {}",
            name,
            nic.map(|n| n.interface.clone()).unwrap_or_default(),
            get(|n| n.ipv4_pool.clone()),
            get(|n| n.ipv4.clone()),
            get(|n| n.ipv6_pool.clone()),
            get(|n| n.ipv6.clone()),
            se.current.node
        );
    }
    Ok(())
}

fn show_routing(pod_ns: &str) -> Result<(), String> {
    for (label, args) in [
        ("ip rule", "rule"),
        ("ip route", "route"),
        ("ip route show table 100", "route show table 100"),
        ("ip route show table 101", "route show table 101"),
    ] {
        // A table the plan did not use does not exist at all (FIB table does not exist).
        let text = match ip(pod_ns, args) {
            Ok(t) => t,
            Err(_) if args.contains("table") => "(no such table)".into(),
            Err(e) => return Err(e),
        };
        println!("/# {label}\n{}", text.trim_end());
    }
    println!("node# ip rule\n{}", ip(NODE, "rule")?.trim_end());
    println!(
        "node# ip route show table 500\n{}",
        ip(NODE, "route show table 500")?.trim_end()
    );
    Ok(())
}

/// The device `ip route get` picks in `ns` for `dst`.
fn route_dev(ns: &str, dst: &str) -> Result<String, String> {
    let out = ip(ns, &format!("route get {dst}"))?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return Ok(words.next().unwrap_or("?").to_owned());
        }
    }
    Ok("?".into())
}

fn ping(ns: &str, dst: &str, what: &str, failures: &mut Vec<String>) -> Result<(), String> {
    let dev = route_dev(ns, dst)?;
    let ok = run(
        &[
            "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-q", dst,
        ],
        false,
    )
    .is_ok();
    println!(
        "{what}: ping {dst} via {dev}: {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        failures.push(format!("{what} ({dst})"));
    }
    Ok(())
}
