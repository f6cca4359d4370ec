//! `spiderpoolctl plan`: the coordinator's plan for one NIC, offline.
//!
//! The topology file describes the pod and the host as the coordinator would read them
//! (YAML or JSON):
//!
//! ```yaml
//! containerID: 0123456789abcdef   # optional; names the host veth in underlay mode
//! ifname: net1                    # optional, default net1: the NIC being configured
//! defaultRouteNic: net1           # optional: the pod's ipam.spidernet.io/default-route-nic
//! nad: {mode: auto}               # optional: the coordinator plugin's NAD keys
//! pod:  {links: [...], routes: [...]}          # spiderpool_core::coordinator::PodView
//! host: {links: [...], routeSrc: {...}}        # spiderpool_core::coordinator::HostView
//! ```
//!
//! `--coordinator FILE` holds the cluster's SpiderCoordinator (e.g. `kubectl get scc default
//! -o yaml`); without it the coordinator defaults apply and no cluster CIDR is known.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use spiderpool_core::coordinator::{
    AddRequest, AgentCoordinatorConfig, Family, HostView, NadCoordinatorConf, PodView, Route,
    TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, merge, plan_add, render_ip_neigh, render_ip_route,
    render_ip_rule, render_plan,
};
use spiderpool_core::manifest::{SpiderObject, parse_documents};

use crate::{EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED, PlanArgs, PlanOutput, output};

/// The topology file (also read by `verify`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Topology {
    #[serde(default = "default_container_id", rename = "containerID")]
    pub(crate) container_id: String,
    #[serde(default = "default_ifname")]
    pub(crate) ifname: String,
    #[serde(default)]
    pub(crate) default_route_nic: Option<String>,
    #[serde(default)]
    pub(crate) nad: NadCoordinatorConf,
    pub(crate) pod: PodView,
    pub(crate) host: HostView,
}

fn default_container_id() -> String {
    "0123456789abcdef".into()
}

fn default_ifname() -> String {
    "net1".into()
}

/// Reads a YAML or JSON file into a serde value.
pub(crate) fn read_value(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn read_agent_config(
    path: Option<&Path>,
    annotation: Option<&str>,
) -> Result<AgentCoordinatorConfig, String> {
    let Some(path) = path else {
        return Ok(AgentCoordinatorConfig {
            pod_default_route_nic: annotation.map(str::to_owned),
            ..AgentCoordinatorConfig::default()
        });
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let objs = parse_documents(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let coordinator = objs
        .into_iter()
        .find_map(|o| match o {
            SpiderObject::Coordinator(c) => Some(c),
            _ => None,
        })
        .ok_or_else(|| format!("{}: no SpiderCoordinator in the file", path.display()))?;
    AgentCoordinatorConfig::from_spider_coordinator(&coordinator, annotation)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the command and returns the exit code.
pub fn run(args: &PlanArgs) -> u8 {
    let topo: Topology = match read_value(&args.file).and_then(|v| {
        serde_json::from_value(v).map_err(|e| format!("{}: {e}", args.file.display()))
    }) {
        Ok(t) => t,
        Err(e) => {
            note!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let agent = match read_agent_config(
        args.coordinator.as_deref(),
        topo.default_route_nic.as_deref(),
    ) {
        Ok(a) => a,
        Err(e) => {
            note!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let ifname = args.ifname.clone().unwrap_or(topo.ifname.clone());
    let mut request = AddRequest::new(topo.container_id.clone(), ifname);
    request.default_route_nic_annotation = topo.default_route_nic.clone();
    let plan =
        merge(&topo.nad, &agent).and_then(|cfg| plan_add(&cfg, &request, &topo.pod, &topo.host));
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            note!("error: {e}");
            return EXIT_REJECTED;
        }
    };
    for w in &plan.warnings {
        note!("warning: {w}");
    }
    let text = match args.output {
        PlanOutput::Commands => render_plan(&plan),
        PlanOutput::Json => match serde_json::to_string_pretty(&plan) {
            Ok(s) => s + "\n",
            Err(e) => {
                note!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        },
        PlanOutput::Tables => {
            let (pod, host) = plan.apply(&topo.pod, &topo.host);
            let mut text = tables("pod", &pod.rules, &pod.routes, &pod.neighbours);
            text.push_str(&tables("node", &host.rules, &host.routes, &host.neighbours));
            text
        }
    };
    output::emit_then(&text, EXIT_OK)
}

/// `ip rule`, `ip route` and every policy table as iproute2 shows them.
fn tables(
    who: &str,
    rules: &[spiderpool_core::coordinator::Rule],
    routes: &[Route],
    neighbours: &[spiderpool_core::coordinator::Neighbour],
) -> String {
    let mut out = String::new();
    for family in [Family::V4, Family::V6] {
        let has = routes.iter().any(|r| r.family() == family)
            || rules
                .iter()
                .any(|r| r.family == family && r.priority != Some(0));
        if !has || (family == Family::V6 && !routes.iter().any(|r| r.family() == family)) {
            continue;
        }
        let ip = if family == Family::V6 { "ip -6" } else { "ip" };
        out.push_str(&format!("# {who}: {ip} rule\n"));
        out.push_str(&render_ip_rule(rules, family));
        out.push_str(&format!("# {who}: {ip} route\n"));
        out.push_str(&render_ip_route(routes, TABLE_MAIN, family));
        let tables: BTreeSet<u32> = routes
            .iter()
            .filter(|r| r.family() == family)
            .map(|r| r.table)
            .filter(|t| ![TABLE_MAIN, TABLE_LOCAL, TABLE_DEFAULT].contains(t))
            .collect();
        for t in tables {
            out.push_str(&format!("# {who}: {ip} route show table {t}\n"));
            out.push_str(&render_ip_route(routes, t, family));
        }
    }
    let neigh = render_ip_neigh(neighbours, None);
    if !neigh.is_empty() {
        out.push_str(&format!("# {who}: ip neigh (permanent entries)\n"));
        out.push_str(&neigh);
    }
    out
}
