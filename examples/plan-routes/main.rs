//! Plan the coordinator's routes for a described pod, without root and without a kernel.
//!
//! ```sh
//! cargo run -p spiderpool-examples --example plan-routes
//! ```
//!
//! The coordinator is the chained CNI plugin that, once the main plugin has added `net1`,
//! makes cluster traffic leave by `eth0`, underlay traffic by `net1` and replies by the NIC
//! they came in on. Its decisions are a pure function in `spiderpool_core::coordinator`:
//! describe the pod and the node as a plugin would read them ([`PodView`], [`HostView`]),
//! give the cluster's settings, and [`plan_add`] returns the steps. This program describes the
//! pod of the quick start (a Calico `eth0`, a macvlan `net1` with 10.6.212.145/16), prints
//! the plan as `ip` commands, then the pod's and the node's rules and tables after it
//! ([`Plan::apply`] computes them without touching anything).
//!
//! `spiderpoolctl plan -f examples/quickstart/topology-overlay.yaml --coordinator
//! examples/quickstart/coordinator.yaml` does the same from YAML files.

use std::collections::BTreeSet;
use std::process::ExitCode;

use spiderpool_core::coordinator::{
    AddRequest, AgentCoordinatorConfig, Family, HostView, LinkView, NadCoordinatorConf, Neighbour,
    Plan, PodView, Proto, Route, Rule, Scope, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, merge,
    plan_add, render_ip_neigh, render_ip_route, render_ip_rule, render_plan,
};

type BoxError = Box<dyn std::error::Error>;

/// The pod after macvlan and the `spiderpool` IPAM configured `net1`, before the coordinator.
fn pod() -> Result<PodView, BoxError> {
    let eth0 = LinkView::ethernet("eth0", 2, Some("a2:99:9d:04:01:80".parse()?))
        .with_addresses(["10.233.73.210/32".parse()?])
        .with_peer(3); // Calico's veth: its node end has index 3
    let net1 = LinkView::ethernet("net1", 3, Some("2a:1e:a1:db:2a:9a".parse()?))
        .with_addresses(["10.6.212.145/16".parse()?]);
    let mut pod = PodView::new(vec![LinkView::loopback(), eth0, net1]);
    pod.routes = vec![
        Route::new("0.0.0.0/0".parse()?, "eth0").via("169.254.1.1".parse()?),
        Route::new("0.0.0.0/0".parse()?, "net1").via("10.6.0.1".parse()?),
        Route::new("10.6.0.0/16".parse()?, "net1")
            .with_proto(Proto::KERNEL)
            .with_scope(Scope::Link)
            .with_src(Some("10.6.212.145".parse()?)),
        Route::new("169.254.1.1/32".parse()?, "eth0").with_scope(Scope::Link),
    ];
    Ok(pod)
}

/// The node: its NIC `ens192` and the node end of the pod's `eth0`.
fn host() -> Result<HostView, BoxError> {
    let ens192 = LinkView::ethernet("ens192", 2, Some("da:5b:0e:4e:d4:59".parse()?))
        .with_addresses(["10.6.212.132/16".parse()?]);
    let cali =
        LinkView::ethernet("calia1b2c3d4e5f", 3, Some("ee:ee:ee:ee:ee:ee".parse()?)).with_peer(2);
    let mut host = HostView::new(vec![ens192, cali]);
    // What `ip route get <pod IP>` on the node answers as source address.
    for pod_ip in ["10.233.73.210", "10.6.212.145"] {
        host.route_src
            .insert(pod_ip.parse()?, "10.6.212.132".parse()?);
    }
    Ok(host)
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

/// `ip rule`, `ip route` and each policy table, as iproute2 prints them.
fn tables(who: &str, rules: &[Rule], routes: &[Route], neighbours: &[Neighbour]) -> String {
    let mut out = format!("# {who}: ip rule\n{}", render_ip_rule(rules, Family::V4));
    out += &format!("# {who}: ip route\n");
    out += &render_ip_route(routes, TABLE_MAIN, Family::V4);
    let policy: BTreeSet<u32> = (routes.iter())
        .map(|r| r.table)
        .filter(|t| ![TABLE_MAIN, TABLE_LOCAL, TABLE_DEFAULT].contains(t))
        .collect();
    for table in policy {
        out += &format!("# {who}: ip route show table {table}\n");
        out += &render_ip_route(routes, table, Family::V4);
    }
    let neigh = render_ip_neigh(neighbours, None);
    if !neigh.is_empty() {
        out += &format!("# {who}: ip neigh (permanent entries)\n{neigh}");
    }
    out
}

fn run() -> Result<(), BoxError> {
    let (pod, host) = (pod()?, host()?);
    // The NAD's coordinator keys (none here) merged with the cluster's settings.
    let config = merge(&NadCoordinatorConf::default(), &cluster())?;
    let plan: Plan = plan_add(
        &config,
        &AddRequest::new("0123456789abcdef", "net1"),
        &pod,
        &host,
    )?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    println!("## the plan, as commands (pod first, then node)");
    print!("{}", render_plan(&plan));
    let (pod_after, host_after) = plan.apply(&pod, &host);
    println!("\n## after the plan");
    print!(
        "{}",
        tables(
            "pod",
            &pod_after.rules,
            &pod_after.routes,
            &pod_after.neighbours
        )
    );
    print!(
        "{}",
        tables(
            "node",
            &host_after.rules,
            &host_after.routes,
            &host_after.neighbours
        )
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
