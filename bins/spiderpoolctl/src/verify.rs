//! `spiderpoolctl verify`: compares live network namespaces with the coordinator's plan.
//!
//! `-f` takes either a topology file (the same format as `plan`: the pod and node as they were
//! before the coordinator ran; the plan is recomputed from it with `--coordinator` and
//! `--ifname`) or a plan as printed by `spiderpoolctl plan -o json`. The pod netns (`--netns`)
//! is read and checked against the plan's pod steps, and the node netns (`--host-netns`, when
//! given) against its node steps. Each difference is one line on stdout:
//!
//! ```text
//! pod: step 14: missing: ip route add default via 10.6.212.132 dev veth0 src 10.6.212.145 table 100
//! node: step 3: differs: ip neigh replace 10.6.212.145 dev veth0123456789a lladdr ... (...)
//! ```
//!
//! Exit 0: no drift; 1: drift; 2: unreadable input, a netns that cannot be read, or a
//! topology the coordinator would refuse (there is then no plan to compare with).

use std::path::{Path, PathBuf};

use clap::Args;
use spiderpool_core::coordinator::{AddRequest, NetnsPlan, Plan, merge, plan_add};
use spiderpool_netlink::sysctl::ProcSys;
use spiderpool_netlink::{Drift, NetNs, read, sysctl_keys, verify};

use crate::plan::{Topology, read_agent_config, read_value};
use crate::{EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED, output};

/// `spiderpoolctl verify` arguments.
#[derive(Args)]
pub struct VerifyArgs {
    /// The pod's netns (`/var/run/netns/NAME`, `/proc/PID/ns/net`, a CNI_NETNS path).
    #[arg(long, value_name = "PATH")]
    netns: PathBuf,
    /// The node's netns; without it the plan's node steps are not checked.
    #[arg(long, value_name = "PATH")]
    host_netns: Option<PathBuf>,
    /// A topology file (as for `plan`) or a plan printed by `plan -o json`.
    #[arg(short = 'f', long = "filename", value_name = "TOPOLOGY_OR_PLAN")]
    file: PathBuf,
    /// The cluster's SpiderCoordinator, when `-f` is a topology.
    #[arg(long, value_name = "FILE")]
    coordinator: Option<PathBuf>,
    /// The NIC that was configured (overrides the topology file's `ifname`).
    #[arg(long, value_name = "NAME")]
    ifname: Option<String>,
}

/// The plan in `-f`: loaded as is, or recomputed from a topology.
fn load_plan(args: &VerifyArgs) -> Result<Plan, String> {
    let value = read_value(&args.file)?;
    let at = |e: serde_json::Error| format!("{}: {e}", args.file.display());
    // A plan has steps under `pod`; a topology has links there.
    let is_plan = value.get("pod").is_some_and(|p| p.get("steps").is_some());
    if is_plan {
        return serde_json::from_value(value).map_err(at);
    }
    let topo: Topology = serde_json::from_value(value).map_err(at)?;
    let agent = read_agent_config(
        args.coordinator.as_deref(),
        topo.default_route_nic.as_deref(),
    )?;
    let ifname = args.ifname.clone().unwrap_or(topo.ifname.clone());
    let mut request = AddRequest::new(topo.container_id.clone(), ifname);
    request.default_route_nic_annotation = topo.default_route_nic.clone();
    merge(&topo.nad, &agent)
        .and_then(|cfg| plan_add(&cfg, &request, &topo.pod, &topo.host))
        .map_err(|e| format!("{}: the coordinator would refuse: {e}", args.file.display()))
}

/// Reads the netns at `path` and lists where it differs from `plan`.
fn drift_in(path: &Path, plan: &NetnsPlan) -> Result<Vec<Drift>, String> {
    let at = |e: spiderpool_netlink::Error| format!("{}: {e}", path.display());
    let ns = NetNs::open(path).map_err(at)?;
    let mut nl = ns.route_socket().map_err(at)?;
    let mut sys = ProcSys::in_netns(&ns);
    let live = read(&mut nl, &mut sys, &sysctl_keys(plan)).map_err(at)?;
    Ok(verify(plan, &live))
}

/// Runs the command and returns the exit code.
pub fn run(args: &VerifyArgs) -> u8 {
    let plan = match load_plan(args) {
        Ok(p) => p,
        Err(e) => {
            note!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let mut sides = vec![("pod", args.netns.as_path(), &plan.pod)];
    match &args.host_netns {
        Some(host) => sides.push(("node", host.as_path(), &plan.host)),
        None if !plan.host.is_empty() => {
            note!("note: node steps not checked (no --host-netns)");
        }
        None => {}
    }
    let mut drifted = 0;
    for (who, path, steps) in sides {
        match drift_in(path, steps) {
            Ok(drift) => {
                let lines: String = drift.iter().map(|d| format!("{who}: {d}\n")).collect();
                if let Err(code) = output::emit(&lines) {
                    return code;
                }
                drifted += drift.len();
            }
            Err(e) => {
                note!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        }
    }
    if drifted == 0 { EXIT_OK } else { EXIT_REJECTED }
}
