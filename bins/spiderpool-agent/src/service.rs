//! [`IpamService`]: the agent API's behaviour, whatever the mode. The HTTP routing
//! ([`crate::api`]) calls it; [`crate::agent::Agent`] (local mode) and
//! [`crate::kube_mode::KubeAgent`] (Kubernetes mode) implement it.

use spiderpool_core::agentapi::{
    GetCoordinatorArgs, IpRoute, IpamAddArgs, IpamAddResponse, IpamBatchDelArgs, IpamDelArgs,
    STATUS_STATELESS_RELEASE_FORBIDDEN,
};
use spiderpool_core::coordinator::AgentCoordinatorConfig;
use spiderpool_core::ipam::{
    AllocationDecision, DEFAULT_MAX_ATTEMPTS, DecisionKind, EndpointKey, IpamError, IpamStore,
    ReleaseDecision, ReleaseOutcome, commit_with_retry, plan_release_pod,
};
use spiderpool_core::objects::SpiderEndpointStatus;

use crate::agent::{Agent, ApiError};

/// What the agent's socket API does.
pub trait IpamService: Send + Sync {
    /// `POST /v1/ipam/ip`.
    fn add(&self, args: &IpamAddArgs) -> Result<IpamAddResponse, ApiError>;
    /// `DELETE /v1/ipam/ip`.
    fn del(&self, args: &IpamDelArgs) -> Result<(), ApiError>;
    /// `DELETE /v1/ipam/ips`.
    fn batch_del(&self, args: &IpamBatchDelArgs) -> Result<(), ApiError>;
    /// `GET /v1/coordinator/config`.
    fn coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<AgentCoordinatorConfig, ApiError>;
    /// `GET /v1/workloadendpoint`.
    fn workload_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SpiderEndpointStatus, ApiError>;
    /// `GET /v1/local/state` (`spiderpool-agent dump`).
    fn dump_json(&self) -> Result<serde_json::Value, ApiError>;
    /// `Err(why)` while the agent cannot serve (its store failed, its caches are not
    /// synced): `GET /v1/ipam/healthy` then answers 503.
    fn healthy(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The fields upstream's API marks required, per request: the routing checks them once for
/// both modes (400 naming the empty ones).
pub trait Required {
    /// `(name, value)` of every required field.
    fn required(&self) -> Vec<(&'static str, &String)>;
}

impl Required for IpamAddArgs {
    fn required(&self) -> Vec<(&'static str, &String)> {
        vec![
            ("containerID", &self.container_id),
            ("ifName", &self.if_name),
            ("podNamespace", &self.pod_namespace),
            ("podName", &self.pod_name),
            ("podUID", &self.pod_uid),
        ]
    }
}

impl Required for IpamDelArgs {
    fn required(&self) -> Vec<(&'static str, &String)> {
        vec![
            ("containerID", &self.container_id),
            ("ifName", &self.if_name),
            ("podNamespace", &self.pod_namespace),
            ("podName", &self.pod_name),
        ]
    }
}

impl Required for IpamBatchDelArgs {
    fn required(&self) -> Vec<(&'static str, &String)> {
        vec![
            ("containerID", &self.container_id),
            ("podNamespace", &self.pod_namespace),
            ("podName", &self.pod_name),
            ("podUID", &self.pod_uid),
        ]
    }
}

/// Fails with 400 naming the empty required fields of `args`.
pub fn check_required(args: &impl Required) -> Result<(), ApiError> {
    require(&args.required())
}

/// `DELETE /v1/ipam/ips` after a failed detection (`isReleaseConflictIPs`) is refused with 521
/// when `SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS` (`--enable-release-conflict-ips`) is off,
/// as upstream.
pub fn check_conflict_release(args: &IpamBatchDelArgs, enabled: bool) -> Result<(), ApiError> {
    if args.is_release_conflict_ips && !enabled {
        return Err(ApiError {
            status: STATUS_STATELESS_RELEASE_FORBIDDEN,
            message: format!(
                "release of conflicting IPs is disabled (--enable-release-conflict-ips=false): \
                 addresses of pod {}/{} kept",
                args.pod_namespace, args.pod_name
            ),
        });
    }
    Ok(())
}

/// Releases every address of the pod `key` whose endpoint carries `uid` (batch release),
/// re-planning on conflict.
pub fn release_pod<S: IpamStore + ?Sized>(
    store: &S,
    key: &EndpointKey,
    uid: &str,
) -> Result<ReleaseDecision, IpamError> {
    commit_with_retry(
        store,
        std::slice::from_ref(key),
        DEFAULT_MAX_ATTEMPTS,
        |snap| {
            let d = plan_release_pod(key, uid, snap)?;
            let changes = d.changes.clone();
            Ok((d, changes))
        },
    )
}

/// Fails with 400 naming the empty required fields.
pub fn require(fields: &[(&str, &String)]) -> Result<(), ApiError> {
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| *k)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError {
            status: 400,
            message: format!("missing required fields: {}", missing.join(", ")),
        })
    }
}

/// Detection flags copied into every address of an ADD answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detection {
    /// `enableIPConflictDetection`.
    pub ip_conflict: bool,
    /// `enableGatewayDetection` (only for addresses with a gateway).
    pub gateway: bool,
}

/// The ADD answer for `decision`: every NIC's addresses and routes (the plugin keeps its
/// own NIC's, as upstream).
pub fn add_response(decision: &AllocationDecision, detection: Detection) -> IpamAddResponse {
    let mut resp = IpamAddResponse::default();
    for nic in &decision.result.nics {
        for ip in nic.ips() {
            resp.ips.push(spiderpool_core::agentapi::IpConfig {
                version: if ip.address.is_ipv4() { 4 } else { 6 },
                address: ip.cidr(),
                ip_pool: ip.pool.clone(),
                gateway: ip.gateway.map(|g| g.to_string()).unwrap_or_default(),
                nic: nic.interface.clone(),
                enable_ip_conflict_detection: detection.ip_conflict,
                // Nothing to probe without a gateway.
                enable_gateway_detection: detection.gateway && ip.gateway.is_some(),
                ..Default::default()
            });
        }
        resp.routes.extend(nic.routes.iter().map(|r| IpRoute {
            if_name: nic.interface.clone(),
            dst: r.dst.clone(),
            gw: r.gw.clone(),
        }));
    }
    resp
}

/// `10.6.212.101/16 (pool), ...` for the NIC `if_name` of `resp`, for logs.
pub fn addresses_text(resp: &IpamAddResponse, if_name: &str) -> String {
    resp.ips
        .iter()
        .filter(|i| i.nic == if_name)
        .map(|i| format!("{} ({})", i.address, i.ip_pool))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How an ADD was served, as words for the log.
pub fn decision_text(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Allocated => "allocated",
        DecisionKind::Existing => "already allocated to this pod (a retried ADD)",
        DecisionKind::Readopted => "taken over from the pod's previous incarnation",
    }
}

/// A release's outcome as a sentence for the log.
pub fn outcome_text(outcome: ReleaseOutcome, released: &[(String, std::net::IpAddr)]) -> String {
    match outcome {
        ReleaseOutcome::Released if released.is_empty() => {
            "released; no address was recorded".to_owned()
        }
        ReleaseOutcome::Released => format!("released {}", released_text(released)),
        ReleaseOutcome::NoEndpoint => {
            "nothing to release: no address is recorded for this pod (already released, or \
             never allocated)"
                .to_owned()
        }
        ReleaseOutcome::NotOwner => "nothing released: the addresses recorded under this name \
             belong to another pod UID or another NIC"
            .to_owned(),
        ReleaseOutcome::NoUid => {
            "nothing released: no pod UID given, left to garbage collection".to_owned()
        }
        ReleaseOutcome::PodAlive => "nothing released: the pod is still alive".to_owned(),
        ReleaseOutcome::StaticKept => {
            "addresses kept for the pod's next incarnation (StatefulSet / KubeVirt)".to_owned()
        }
    }
}

/// `ip (pool), ...` of released addresses, for logs.
pub fn released_text(released: &[(String, std::net::IpAddr)]) -> String {
    released
        .iter()
        .map(|(pool, ip)| format!("{ip} ({pool})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl IpamService for Agent {
    fn add(&self, args: &IpamAddArgs) -> Result<IpamAddResponse, ApiError> {
        Agent::add(self, args)
    }

    fn del(&self, args: &IpamDelArgs) -> Result<(), ApiError> {
        Agent::del(self, args)
    }

    fn batch_del(&self, args: &IpamBatchDelArgs) -> Result<(), ApiError> {
        Agent::batch_del(self, args)
    }

    fn coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<AgentCoordinatorConfig, ApiError> {
        Agent::coordinator_config(self, args)
    }

    fn workload_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SpiderEndpointStatus, ApiError> {
        Agent::workload_endpoint(self, namespace, name)
    }

    fn healthy(&self) -> Result<(), String> {
        Agent::healthy(self)
    }

    fn dump_json(&self) -> Result<serde_json::Value, ApiError> {
        let dump = Agent::dump(self)?;
        serde_json::to_value(dump).map_err(|e| ApiError {
            status: 500,
            message: format!("cannot encode the state: {e}"),
        })
    }
}
