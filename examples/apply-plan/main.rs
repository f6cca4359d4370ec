//! Apply a coordinator plan to fresh network namespaces and read back the drift (root).
//!
//! ```sh
//! cargo build -p spiderpool-examples --example apply-plan
//! sudo target/debug/examples/apply-plan
//! ```
//!
//! `spiderpool_netlink` is the kernel half of the coordinator: it reads a namespace into the
//! views the planner takes ([`read_with`], [`read_host_with`]), applies a plan all or nothing
//! ([`apply_plan`]: the pod's steps, then the node's, undoing the pod's if the node's fail),
//! and compares a live namespace with a plan ([`verify`]). This program builds the quick
//! start's pod in three new anonymous namespaces (a node with `ens192`, its underlay, a pod
//! with a Calico-like `eth0` and a macvlan `net1`), plans the coordinator's ADD for `net1` from
//! what it reads, applies it, and verifies it: "no drift". Then it changes one route of the
//! pod's policy table with `ip`, as an operator might, and prints the drift line.
//!
//! The namespaces are anonymous: they vanish when the program ends, however it ends. Without
//! root it says so and exits 0. It needs iproute2's `ip` for the set-up and the change by hand.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::{Command, ExitCode};

use spiderpool_core::coordinator::{
    AddRequest, AgentCoordinatorConfig, NadCoordinatorConf, NetnsPlan, merge, plan_add, render_plan,
};
use spiderpool_netlink::link::{self, VethOptions};
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{
    NetNs, ReadOptions, Target, apply_plan, read, read_host_with, read_with, sysctl_keys, verify,
};

type BoxError = Box<dyn std::error::Error>;

/// The route changed by hand, and the command that changes it.
const BY_HAND: &str = "route change default via 10.6.0.254 dev net1 metric 100 table 101";

/// Runs each line of `script` as `ip <line>` inside `ns`.
fn ip(ns: &NetNs, script: &str) -> Result<(), BoxError> {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args: Vec<&str> = line.split_whitespace().collect();
        // `ns.run` enters the namespace on a short-lived thread; `ip` inherits it.
        let out = ns.run(|| Ok(Command::new("ip").args(&args).output()))?;
        let out = out.map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("ip {line}: {}", stderr.trim()).into());
        }
    }
    Ok(())
}

/// A veth whose peer goes to `ns`.
fn to(ns: &NetNs) -> VethOptions<'_> {
    VethOptions {
        peer_netns: Some(ns.as_fd()),
        ..VethOptions::default()
    }
}

/// The namespaces of the example; dropping them (at exit) removes everything.
struct Lab {
    node: NetNs,
    pod: NetNs,
    _underlay: NetNs,
}

/// A node with `ens192` (10.6.212.132/16) on an underlay holding the gateway 10.6.0.1, and a
/// pod as Calico and macvlan + IPAM leave it: `eth0` 10.233.73.210/32 (default route via
/// 169.254.1.1, node end `calia1b2c3d4e5f`) and `net1` 10.6.212.145/16 on `ens192`.
fn build() -> Result<Lab, BoxError> {
    let (node, pod, underlay) = (
        NetNs::create_anonymous()?,
        NetNs::create_anonymous()?,
        NetNs::create_anonymous()?,
    );
    let mut nl = node.route_socket()?;
    link::create_veth(&mut nl, "ens192", "uplink", &to(&underlay))?;
    link::create_veth(&mut nl, "calia1b2c3d4e5f", "eth0", &to(&pod))?;
    ip(
        &underlay,
        "link set lo up\n addr add 10.6.0.1/16 dev uplink\n link set uplink up",
    )?;
    ip(
        &node,
        "link set lo up
         addr add 10.6.212.132/16 dev ens192
         link set ens192 up
         link set calia1b2c3d4e5f up
         route add 10.233.73.210 dev calia1b2c3d4e5f scope link
         link add net1 link ens192 type macvlan mode bridge",
    )?;
    let net1 = link::require(&mut nl, "net1")?;
    link::set_netns(&mut nl, net1.index, pod.as_fd())?;
    ip(
        &pod,
        "link set lo up
         addr add 10.233.73.210/32 dev eth0
         link set eth0 up
         route add 169.254.1.1 dev eth0 scope link
         route add default via 169.254.1.1 dev eth0
         addr add 10.6.212.145/16 dev net1
         link set net1 up
         route add default via 10.6.0.1 dev net1 metric 100",
    )?;
    Ok(Lab {
        node,
        pod,
        _underlay: underlay,
    })
}

/// The cluster's SpiderCoordinator as the agent hands it to the plugin (phase Synced).
fn cluster() -> AgentCoordinatorConfig {
    let list = |s: &str| Some(vec![s.to_owned()]);
    AgentCoordinatorConfig {
        mode: Some("auto".into()),
        overlay_pod_cidr: list("10.233.64.0/18"),
        service_cidr: list("10.233.0.0/18"),
        hijack_cidr: list("169.254.0.0/16"),
        tune_pod_routes: Some(true),
        host_rule_table: Some(500),
        ..AgentCoordinatorConfig::default()
    }
}

/// Reads `ns` and lists where it differs from `plan`, one line each.
fn drift(who: &str, ns: &NetNs, plan: &NetnsPlan) -> Result<Vec<String>, BoxError> {
    let mut nl = ns.route_socket()?;
    let mut sys = ProcSys::in_netns(ns);
    let live = read(&mut nl, &mut sys, &sysctl_keys(plan))?;
    Ok(verify(plan, &live)
        .iter()
        .map(|d| format!("{who}: {d}"))
        .collect())
}

fn run() -> Result<(), BoxError> {
    let lab = build()?;
    let (mut pod_nl, mut pod_sys) = (lab.pod.route_socket()?, ProcSys::in_netns(&lab.pod));
    let (mut node_nl, mut node_sys) = (lab.node.route_socket()?, ProcSys::in_netns(&lab.node));

    // Plan from what the kernel says, as the coordinator plugin does.
    let pod = read_with(&mut pod_nl, &mut pod_sys, &[], ReadOptions::PLANNING)?;
    let pod_ips: Vec<IpAddr> = pod.links.iter().flat_map(|l| l.usable_ips()).collect();
    let host = read_host_with(
        &mut node_nl,
        &mut node_sys,
        &[],
        &pod_ips,
        ReadOptions::PLANNING,
    )?;
    let config = merge(&NadCoordinatorConf::default(), &cluster())?;
    let plan = plan_add(
        &config,
        &AddRequest::new("0123456789abcdef", "net1"),
        &pod,
        &host,
    )?;
    print!("{}", render_plan(&plan));

    let report = apply_plan(
        &plan,
        &mut Target::new(&mut pod_nl, &mut pod_sys).with_peer_netns(lab.node.as_fd()),
        &mut Target::new(&mut node_nl, &mut node_sys),
    )?;
    println!(
        "\napplied: {} pod steps and {} node steps changed something",
        report.pod.changed, report.node.changed
    );

    let mut lines = drift("pod", &lab.pod, &plan.pod)?;
    lines.extend(drift("node", &lab.node, &plan.host)?);
    if !lines.is_empty() {
        return Err(format!("drift right after applying:\n{}", lines.join("\n")).into());
    }
    println!("verify: no drift");

    println!("\nby hand, in the pod: ip {BY_HAND}");
    ip(&lab.pod, BY_HAND)?;
    let lines = drift("pod", &lab.pod, &plan.pod)?;
    if lines.is_empty() {
        return Err("verify missed the route changed by hand".into());
    }
    println!("verify: {} drift line(s)", lines.len());
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        println!(
            "apply-plan needs root: it creates network namespaces and changes routes in them. \
             Nothing was done. Run it as root (sudo target/debug/examples/apply-plan), or run \
             `cargo run -p spiderpool-examples --example plan-routes` to see a plan without \
             applying it."
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
