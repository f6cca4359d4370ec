//! The commands: what each asks the agent and how failures map to CNI codes.
//!
//! | command | agent calls | on failure |
//! |---|---|---|
//! | ADD | `GET /v1/ipam/healthy`, `POST /v1/ipam/ip`; after a failed detection `DELETE /v1/ipam/ips` | before the agent is asked: `K8S_POD_*` not a Kubernetes name: 4, refused `log_file_path`: 7, `CNI_NETNS` the node's own (the runner) or not a network namespace: 8; unreachable/slow/unhealthy agent: 11; agent refusal (HTTP 500): 999 `spiderpool IP allocation error: <agent message>`; no address for `CNI_IFNAME`: 999; IP conflict / unreachable gateway / probe failure: 999; `CNI_NETNS` unopenable for detection: 8 |
//! | DEL | `GET /v1/ipam/healthy`, `DELETE /v1/ipam/ip` | `K8S_POD_*` not a Kubernetes name: 4; unreachable/slow/unhealthy agent: 11 (the runtime retries, so addresses do not leak); an agent refusal is logged and DEL succeeds |
//! | CHECK | none | only configuration errors |
//! | GC | none: the agent's own garbage collector releases leaked addresses | only configuration errors |
//! | STATUS | `GET /v1/ipam/healthy` | 50 `plugin not available` |

use std::net::IpAddr;
use std::path::Path;

use agent_values::{parse_gateway, parse_net};
use spiderpool_core::agentapi::{
    self, IpamAddArgs, IpamAddResponse, IpamBatchDelArgs, IpamDelArgs,
};
use spiderpool_core::cni::{
    CniError, Command, Dns, ERR_INTERNAL, ERR_INVALID_NETNS, ERR_PLUGIN_NOT_AVAILABLE,
    ERR_TRY_AGAIN_LATER, IpConfig, Result100, Route,
};
use spiderpool_plugin_support::log::{LogConfig, init, vet_path};
use spiderpool_plugin_support::runner::{NetnsKind, netns_kind};
use spiderpool_plugin_support::{AgentClient, ClientError, Context, Output, Plugin};

use crate::config::IpamConf;
use crate::detect;
use crate::pod::{PodIdentity, local_pod_info};

/// Upstream's prefix for allocation failures.
pub const ALLOCATION_ERROR_PREFIX: &str = "spiderpool IP allocation error: ";

/// The `spiderpool` IPAM plugin.
pub struct SpiderpoolIpam;

/// Parses the `ipam` keys and starts logging (prefix: command, container ID, interface).
///
/// A `log_file_path` the logger refuses ([`vet_path`]) fails ADD and CHECK with code 7; other
/// commands still run (DEL must be able to release) and log to stderr, saying why.
fn setup(ctx: &Context) -> Result<(IpamConf, AgentClient), CniError> {
    let conf = IpamConf::from_conf(&ctx.conf)?;
    if matches!(ctx.env.command(), Command::Add | Command::Check)
        && let Some(path) = &conf.log_file_path
    {
        vet_path(path).map_err(|e| {
            CniError::invalid_config(format!(
                "invalid ipam configuration key \"log_file_path\": {e}"
            ))
        })?;
    }
    let prefix = [
        Some(ctx.env.command().as_str()),
        ctx.env.container_id(),
        ctx.env.ifname(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    init(&LogConfig {
        level: conf.log_level,
        file: conf.log_file_path.clone(),
        max_size_mb: conf.log_file_max_size,
        max_age_days: conf.log_file_max_age,
        max_count: conf.log_file_max_count,
        program: "spiderpool".into(),
        prefix,
    });
    let client = AgentClient::new(&conf.socket);
    Ok((conf, client))
}

/// ADD: a `CNI_NETNS` that exists but is not a network namespace (a netns mount point left
/// behind, a directory) is code 8 before anything is allocated; detection and the announcement
/// could not run there. A missing path is left alone: only detection needs the netns, and it
/// reports a missing one itself (code 8, after releasing).
fn refuse_non_netns(path: &str) -> Result<(), CniError> {
    match netns_kind(Path::new(path)) {
        Ok(NetnsKind::NotNetns(what)) => Err(CniError::new(
            ERR_INVALID_NETNS,
            format!("CNI_NETNS {path} is not a network namespace but {what}"),
        )),
        _ => Ok(()),
    }
}

/// The health check every command that talks to the agent starts with: any failure (agent
/// absent, slow, or answering non-2xx) is code 11, since a restarting agent is the usual cause.
fn health_check(client: &AgentClient) -> Result<(), CniError> {
    client.healthy().map_err(|e| {
        log::error!("health check failed: {e}");
        match e {
            ClientError::Status { status, message } => CniError::new(
                ERR_TRY_AGAIN_LATER,
                format!(
                    "unhealthy spiderpool-agent backend at {}: HTTP {status}: {message}; try again later",
                    client.socket().display()
                ),
            ),
            other => other.to_cni(""),
        }
    })
}

impl Plugin for SpiderpoolIpam {
    fn add(&self, ctx: &Context) -> Result<Output, CniError> {
        let (conf, client) = setup(ctx)?;
        let ifname = ctx.env.ifname().unwrap_or_default();
        let pod = PodIdentity::from_env(&ctx.env)?;
        refuse_non_netns(ctx.env.netns().unwrap_or_default())?;
        let args = IpamAddArgs {
            container_id: ctx.env.container_id().unwrap_or_default().to_owned(),
            if_name: ifname.to_owned(),
            net_namespace: ctx.env.netns().unwrap_or_default().to_owned(),
            pod_namespace: pod.namespace,
            pod_name: pod.name,
            pod_uid: pod.uid,
            default_ipv4_ippool: conf.default_ipv4_ippool,
            default_ipv6_ippool: conf.default_ipv6_ippool,
            clean_gateway: conf.clean_gateway,
            match_master_subnet: conf.match_master_subnet,
            pod: local_pod_info(&ctx.conf)?,
        };
        log::debug!(
            "ADD pod {}/{} uid {} netns {}",
            args.pod_namespace,
            args.pod_name,
            args.pod_uid,
            args.net_namespace
        );
        health_check(&client)?;
        let resp = client.post_ip(&args).map_err(|e| {
            log::error!("POST /v1/ipam/ip failed: {e}");
            e.to_cni(ALLOCATION_ERROR_PREFIX)
        })?;
        let result = build_result(&resp, ifname)?;
        let netns = ctx.env.netns().unwrap_or_default();
        let targets = detect::targets(&resp, ifname);
        if !targets.is_empty() {
            log::debug!("detection in {netns} on {ifname}: {targets:?}");
            if let Err(failure) = detect::detect_in(netns, ifname, &targets) {
                return Err(release_after(&client, &args, failure.to_cni()));
            }
        }
        let addrs: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.addr()).collect();
        detect::announce(netns, ifname, &addrs);
        log::info!(
            "allocated {}",
            result
                .ips
                .iter()
                .map(|ip| ip.address.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Output::Result(result))
    }

    fn del(&self, ctx: &Context) -> Result<(), CniError> {
        let (_conf, client) = setup(ctx)?;
        let pod = PodIdentity::from_env(&ctx.env)?;
        let args = IpamDelArgs {
            container_id: ctx.env.container_id().unwrap_or_default().to_owned(),
            if_name: ctx.env.ifname().unwrap_or_default().to_owned(),
            // May be empty: DEL does not need the netns, which may be gone.
            net_namespace: ctx.env.netns().unwrap_or_default().to_owned(),
            pod_namespace: pod.namespace,
            pod_name: pod.name,
            pod_uid: pod.uid,
        };
        health_check(&client)?;
        match client.delete_ip(&args) {
            Ok(()) => {
                log::info!("released pod {}/{}", args.pod_namespace, args.pod_name);
                Ok(())
            }
            // The agent could not be asked: keep the runtime retrying so nothing leaks.
            Err(e) if e.is_transient() => {
                log::error!("DELETE /v1/ipam/ip failed: {e}");
                Err(e.to_cni(""))
            }
            // The agent answered and refused: as upstream, DEL still succeeds (an address
            // already gone, a pod still alive...); the agent's GC has the last word.
            Err(e) => {
                log::warn!("agent refused to release, ignored: {e}");
                Ok(())
            }
        }
    }

    fn check(&self, ctx: &Context) -> Result<(), CniError> {
        // Upstream's CHECK is a no-op; only the configuration is validated.
        setup(ctx).map(drop)
    }

    fn gc(&self, ctx: &Context) -> Result<(), CniError> {
        // The agent and controller release leaked addresses themselves (spec §3.15); a
        // runtime GC has nothing to add yet.
        setup(ctx)?;
        log::debug!(
            "GC: {} valid attachments; nothing to do (the agent collects)",
            ctx.conf.valid_attachments.as_ref().map_or(0, Vec::len)
        );
        Ok(())
    }

    fn status(&self, ctx: &Context) -> Result<(), CniError> {
        let (_conf, client) = setup(ctx)?;
        client.healthy().map_err(|e| {
            // The line's prefix already names the command.
            log::warn!("agent not available: {e}");
            CniError::new(ERR_PLUGIN_NOT_AVAILABLE, "plugin not available")
                .with_details(e.to_string())
        })
    }
}

/// This NIC's addresses and routes as a CNI result (no `interfaces`: the main plugin owns
/// them). The default route is not made up here: the agent includes `0.0.0.0/0` (`::/0`) via
/// the pool gateway in `routes` unless `cleanGateway` (spec §3.9).
pub fn build_result(resp: &IpamAddResponse, ifname: &str) -> Result<Result100, CniError> {
    let mut result = Result100::default();
    for ip in resp.ips.iter().filter(|ip| ip.nic == ifname) {
        let address = parse_net(&ip.address, "address")?;
        let mut cfg = IpConfig::new(address);
        cfg.gateway = parse_gateway(&ip.gateway, "gateway")?;
        result.ips.push(cfg);
    }
    if result.ips.is_empty() {
        return Err(CniError::new(
            ERR_INTERNAL,
            format!("no Interface {ifname} IP allocation found"),
        ));
    }
    for r in resp.routes.iter().filter(|r| r.if_name == ifname) {
        let mut route = Route::new(parse_net(&r.dst, "route dst")?);
        route.gw = parse_gateway(&r.gw, "route gw")?;
        result.routes.push(route);
    }
    if let Some(dns) = &resp.dns {
        result.dns = convert_dns(dns);
    }
    Ok(result)
}

fn convert_dns(dns: &agentapi::Dns) -> Dns {
    Dns {
        nameservers: dns.nameservers.clone(),
        domain: dns.domain.clone(),
        search: dns.search.clone(),
        options: dns.options.clone(),
    }
}

/// After a failed detection: gives every address of the pod back (`DELETE /v1/ipam/ips`, as
/// upstream) so nothing leaks, then returns `err`. A failed release is logged and named in
/// the error's `details`; the message stays the detection's.
fn release_after(client: &AgentClient, args: &IpamAddArgs, err: CniError) -> CniError {
    log::error!("{}; releasing the pod's addresses", err.msg);
    let batch = IpamBatchDelArgs {
        is_release_conflict_ips: true,
        container_id: args.container_id.clone(),
        net_namespace: args.net_namespace.clone(),
        pod_namespace: args.pod_namespace.clone(),
        pod_name: args.pod_name.clone(),
        pod_uid: args.pod_uid.clone(),
    };
    match client.delete_ips(&batch) {
        Ok(()) => err,
        Err(e) => {
            log::error!("DELETE /v1/ipam/ips failed: {e}");
            err.with_details(format!(
                "releasing the pod's addresses failed too ({e}); DEL or the agent's GC releases them"
            ))
        }
    }
}

/// Parsing of the agent's address strings, with errors that say which value was wrong.
mod agent_values {
    use super::*;

    pub(super) fn parse_net(text: &str, what: &str) -> Result<ipnet::IpNet, CniError> {
        text.parse().map_err(|_| {
            CniError::new(
                ERR_INTERNAL,
                format!("invalid {what} {text:?} from spiderpool-agent"),
            )
        })
    }

    pub(super) fn parse_gateway(text: &str, what: &str) -> Result<Option<IpAddr>, CniError> {
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            CniError::new(
                ERR_INTERNAL,
                format!("invalid {what} {text:?} from spiderpool-agent"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spiderpool_core::cni::SpecVersion;

    fn resp(json: &str) -> IpamAddResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn picks_this_nic_only() {
        let r = resp(
            r#"{"ips":[{"version":4,"address":"10.6.100.1/16","gateway":"10.6.0.1","nic":"eth0"},
                       {"version":6,"address":"fd00::5/64","nic":"eth0"},
                       {"version":4,"address":"10.7.0.9/24","gateway":"10.7.0.1","nic":"net1"}],
                "routes":[{"ifName":"eth0","dst":"0.0.0.0/0","gw":"10.6.0.1"},
                          {"ifName":"net1","dst":"0.0.0.0/0","gw":"10.7.0.1"}]}"#,
        );
        let res = build_result(&r, "eth0").unwrap();
        assert_eq!(res.ips.len(), 2);
        assert_eq!(res.ips[1].gateway, None);
        assert_eq!(res.routes.len(), 1);
        let net1 = build_result(&r, "net1").unwrap();
        assert_eq!(net1.ips[0].address.to_string(), "10.7.0.9/24");
        let e = build_result(&r, "net2").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (999, "no Interface net2 IP allocation found")
        );
    }

    #[test]
    fn upstream_observed_shape() {
        let r = resp(
            r#"{"ips":[{"version":4,"address":"10.6.100.1/16","ipPool":"pool-1000","gateway":"10.6.0.1","nic":"eth0"}],
                "routes":[{"ifName":"eth0","dst":"0.0.0.0/0","gw":"10.6.0.1"}]}"#,
        );
        let text = build_result(&r, "eth0")
            .unwrap()
            .to_json_pretty(SpecVersion::V1_0_0)
            .unwrap();
        assert_eq!(
            text,
            "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.6.100.1/16\",\n            \"gateway\": \"10.6.0.1\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"0.0.0.0/0\",\n            \"gw\": \"10.6.0.1\"\n        }\n    ]\n}"
        );
    }

    #[test]
    fn bad_agent_values_are_named() {
        let r = resp(r#"{"ips":[{"version":4,"address":"10.6.100.1","nic":"eth0"}]}"#);
        let e = build_result(&r, "eth0").unwrap_err();
        assert!(
            e.msg.contains("invalid address \"10.6.100.1\""),
            "{}",
            e.msg
        );
        let r =
            resp(r#"{"ips":[{"version":4,"address":"10.6.100.1/16","gateway":"x","nic":"eth0"}]}"#);
        assert!(
            build_result(&r, "eth0")
                .unwrap_err()
                .msg
                .contains("invalid gateway")
        );
    }
}
