//! The commands: configuration, the agent's answer, and the CNI codes of each failure.
//!
//! | command | agent | kernel | failures |
//! |---|---|---|---|
//! | ADD | `GET /v1/coordinator/config` | plan, apply pod then node (all or nothing) | 4 bad pod identity; 7 config / missing prevResult; 8 `CNI_NETNS` missing, not a netns, or the node's own; 11 agent unreachable; 999 agent refusal, planner refusal, kernel step |
//! | DEL | same; a refusal falls back on the NAD keys | node-side teardown; netns may be gone, a leftover file, or the node's own (then node side only) | 4; 7; 11 agent unreachable; 999 teardown |
//! | CHECK | same | re-plan, `verify` both netns | 999 naming the drift |
//! | GC | none | none | none |
//! | STATUS | `GET /v1/ipam/healthy` | none | 50 |

use std::path::Path;

use spiderpool_core::agentapi::GetCoordinatorArgs;
use spiderpool_core::cni::{
    CniError, Command, ERR_INTERNAL, ERR_INVALID_NETNS, ERR_PLUGIN_NOT_AVAILABLE,
};
use spiderpool_core::coordinator::{
    AddRequest, AgentCoordinatorConfig, CoordinatorConfig, DelRequest, Mode, merge,
};
use spiderpool_plugin_support::log::{LogConfig, init, vet_path};
use spiderpool_plugin_support::runner::{NetnsKind, netns_kind};
use spiderpool_plugin_support::{AgentClient, ClientError, Context, Output, PendingCall, Plugin};

use crate::config::PluginConf;
use crate::live;

/// Upstream's prefix for a failed agent call.
pub const AGENT_ERROR_PREFIX: &str = "failed to GetCoordinatorConfig: ";

/// The `coordinator` plugin.
pub struct Coordinator;

/// Parses the keys and starts logging (prefix: command, container ID, interface).
///
/// A `logOptions.logFile` the logger refuses ([`vet_path`]) fails ADD and CHECK with code 7;
/// other commands still run (DEL must be able to clean up) and log to stderr, saying why.
fn setup(ctx: &Context) -> Result<PluginConf, CniError> {
    let conf = PluginConf::from_conf(&ctx.conf)?;
    if matches!(ctx.env.command(), Command::Add | Command::Check)
        && let Some(path) = &conf.log_file
    {
        vet_path(path).map_err(|e| {
            CniError::invalid_config(format!(
                "invalid coordinator configuration key \"logOptions.logFile\": {e}"
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
        file: conf.log_file.clone(),
        max_size_mb: conf.log_max_size,
        max_age_days: conf.log_max_age,
        max_count: conf.log_max_count,
        program: "coordinator".into(),
        prefix,
    });
    Ok(conf)
}

/// `{podName, podNamespace}` from `CNI_ARGS`; without Kubernetes keys, the same fallbacks as
/// the `spiderpool` IPAM plugin (namespace `default`, name = container ID). Keys that are
/// present must be valid Kubernetes names (code 4), as for `spiderpool`.
fn pod_args(ctx: &Context) -> Result<GetCoordinatorArgs, CniError> {
    let args = ctx.env.args();
    args.validate_pod_identity()?;
    let cid = ctx.env.container_id().unwrap_or_default();
    Ok(GetCoordinatorArgs {
        pod_name: args
            .k8s_pod_name()
            .filter(|s| !s.is_empty())
            .unwrap_or(cid)
            .to_owned(),
        pod_namespace: args
            .k8s_pod_namespace()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned(),
    })
}

/// Maps an agent failure: unreachable, slow or broken off: code 11 (the runtime retries); a
/// refusal or a malformed answer: `Ok(error)` so DEL can decide to go on without it.
fn agent_failure(e: ClientError) -> Result<CniError, CniError> {
    log::error!("GET /v1/coordinator/config failed: {e}");
    if e.is_transient() {
        Err(e.to_cni(""))
    } else {
        Ok(CniError::new(
            ERR_INTERNAL,
            format!("{AGENT_ERROR_PREFIX}{e}"),
        ))
    }
}

/// Sends the agent request without waiting for the answer (see [`agent_failure`]).
fn send_to_agent(
    conf: &PluginConf,
    ctx: &Context,
) -> Result<PendingCall<AgentCoordinatorConfig>, Result<CniError, CniError>> {
    let args = pod_args(ctx).map_err(Err)?;
    log::debug!(
        "GET /v1/coordinator/config for {}/{} on {}",
        args.pod_namespace,
        args.pod_name,
        conf.socket.display()
    );
    AgentClient::new(&conf.socket)
        .send_coordinator_config(&args)
        .map_err(agent_failure)
}

/// Asks the agent (see [`agent_failure`]).
fn ask_agent(
    conf: &PluginConf,
    ctx: &Context,
) -> Result<AgentCoordinatorConfig, Result<CniError, CniError>> {
    send_to_agent(conf, ctx)?.wait().map_err(agent_failure)
}

fn merged(
    conf: &PluginConf,
    agent: &AgentCoordinatorConfig,
) -> Result<CoordinatorConfig, CniError> {
    let cfg = merge(&conf.nad, agent).map_err(|e| CniError::invalid_config(e.to_string()))?;
    log::debug!(
        "configuration: {}",
        serde_json::to_string(&cfg).unwrap_or_default()
    );
    Ok(cfg)
}

/// The merged configuration for ADD and CHECK: any agent failure fails the command.
fn config(conf: &PluginConf, ctx: &Context) -> Result<CoordinatorConfig, CniError> {
    let agent = ask_agent(conf, ctx).map_err(|e| e.unwrap_or_else(|e| e))?;
    merged(conf, &agent)
}

/// ADD and CHECK: a `CNI_NETNS` that exists but is not a network namespace (a netns mount
/// point left behind, a directory...) is code 8, as a missing one is. The runner already
/// refused the plugin's own netns; a missing path is reported when it is opened.
fn require_netns(ctx: &Context) -> Result<(), CniError> {
    let path = ctx.env.netns().unwrap_or_default();
    match netns_kind(Path::new(path)) {
        Ok(NetnsKind::NotNetns(what)) => Err(CniError::new(
            ERR_INVALID_NETNS,
            format!("CNI_NETNS {path} is not a network namespace but {what}"),
        )),
        _ => Ok(()),
    }
}

/// DEL: the pod netns to read, or `None` for the "netns gone" path (node-side teardown from
/// `prevResult`). Besides a missing path, that is a path that is not a network namespace (a
/// leftover mount point: DEL must still succeed) and the plugin's own netns (reading the
/// node as if it were the pod would tear down the node's own entries).
fn del_netns(ctx: &Context) -> Option<&str> {
    let path = ctx.env.netns().filter(|p| !p.is_empty())?;
    match netns_kind(Path::new(path)) {
        Ok(NetnsKind::NotNetns(what)) => {
            log::warn!(
                "CNI_NETNS {path} is not a network namespace but {what} (a mount point left \
                 behind?); node-side teardown only"
            );
            None
        }
        Ok(NetnsKind::Own) if !ctx.env.netns_override() => {
            log::warn!(
                "CNI_NETNS {path} is the node's own network namespace; node-side teardown only"
            );
            None
        }
        _ => Some(path),
    }
}

fn add_request(ctx: &Context, conf: &PluginConf) -> AddRequest {
    let mut req = AddRequest::new(
        ctx.env.container_id().unwrap_or_default(),
        ctx.env.ifname().unwrap_or_default(),
    );
    req.default_route_nic_annotation = conf.default_route_nic_annotation.clone();
    req
}

impl Plugin for Coordinator {
    fn add(&self, ctx: &Context) -> Result<Output, CniError> {
        let conf = setup(ctx)?;
        let prev = ctx.conf.prev_result()?.ok_or_else(|| {
            CniError::invalid_config(
                "missing prevResult: the coordinator must be chained after the plugin that \
                 creates the interface",
            )
        })?;
        // Printed in the configuration's version, unchanged (upstream never edits it).
        let out = Output::Result(prev.result);
        if conf.nad_disables() {
            log::debug!("mode disable in the NAD: nothing to do");
            return Ok(out);
        }
        require_netns(ctx)?;
        let pending = send_to_agent(&conf, ctx).map_err(|e| e.unwrap_or_else(|e| e))?;
        // Read the pod and the node while the agent answers. Reading changes nothing, and its
        // errors are reported only after the agent's, in the order of a sequential ADD.
        let pod_ns = live::open_pod(ctx.env.netns().unwrap_or_default());
        let input = match &pod_ns {
            Ok(ns) => live::read_add(ns),
            Err(e) => Err(e.clone()),
        };
        let agent = pending
            .wait()
            .map_err(|e| agent_failure(e).unwrap_or_else(|e| e))?;
        let cfg = merged(&conf, &agent)?;
        if cfg.mode == Mode::Disable {
            log::debug!("mode disable: nothing to do");
            return Ok(out);
        }
        let pod_ns = pod_ns.as_ref().map_err(Clone::clone)?;
        let input = input?;
        let req = add_request(ctx, &conf);
        let plan = live::add(&cfg, &req, pod_ns, input)
            .inspect_err(|e| log::error!("ADD failed: {}", e.msg))?;
        log::info!(
            "{} configured ({:?})",
            req.ifname,
            plan.resolution.map(|r| r.mode)
        );
        Ok(out)
    }

    fn del(&self, ctx: &Context) -> Result<(), CniError> {
        let conf = setup(ctx)?;
        if conf.nad_disables() {
            return Ok(());
        }
        let agent = match ask_agent(&conf, ctx) {
            Ok(a) => a,
            Err(Err(transient)) => return Err(transient),
            // The agent refuses pods it no longer knows (deleted from the apiserver): the
            // node-side entries must go anyway, so fall back on the NAD keys and defaults.
            Err(Ok(refusal)) => {
                log::warn!("{}; tearing down with the NAD settings only", refusal.msg);
                AgentCoordinatorConfig::default()
            }
        };
        let cfg = merged(&conf, &agent)?;
        if cfg.mode == Mode::Disable {
            return Ok(());
        }
        let req = DelRequest {
            container_id: ctx.env.container_id().unwrap_or_default().to_owned(),
            ifname: ctx.env.ifname().unwrap_or_default().to_owned(),
        };
        // A prevResult that does not parse only costs the address hints.
        let prev = ctx.conf.prev_result().ok().flatten().map(|p| p.result);
        live::del(&cfg, &req, del_netns(ctx), prev.as_ref())
            .inspect_err(|e| log::error!("DEL failed: {}", e.msg))?;
        Ok(())
    }

    fn check(&self, ctx: &Context) -> Result<(), CniError> {
        let conf = setup(ctx)?;
        ctx.conf.prev_result()?.ok_or_else(|| {
            CniError::invalid_config("missing prevResult: CHECK needs the ADD result")
        })?;
        if conf.nad_disables() {
            return Ok(());
        }
        require_netns(ctx)?;
        let cfg = config(&conf, ctx)?;
        if cfg.mode == Mode::Disable {
            return Ok(());
        }
        live::check(
            &cfg,
            &add_request(ctx, &conf),
            ctx.env.netns().unwrap_or_default(),
        )
    }

    fn status(&self, ctx: &Context) -> Result<(), CniError> {
        let conf = setup(ctx)?;
        AgentClient::new(&conf.socket).healthy().map_err(|e| {
            CniError::new(ERR_PLUGIN_NOT_AVAILABLE, "plugin not available")
                .with_details(format!("spiderpool-agent: {e}"))
        })
    }
}
