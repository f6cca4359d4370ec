//! What the agent answers on `GET /v1/coordinator/config`, built from a SpiderCoordinator.
//!
//! The agent (and the offline `spiderpoolctl plan`) turn the cluster's SpiderCoordinator and
//! the pod's `ipam.spidernet.io/default-route-nic` annotation into an
//! [`AgentCoordinatorConfig`]; the plugin then merges it with its NAD keys ([`super::merge`]).

use crate::coordinator::CoordinatorError;
use crate::objects::{PHASE_SYNCED, SpiderCoordinator};

use super::{AgentCoordinatorConfig, RouteSpec};

impl AgentCoordinatorConfig {
    /// The agent's answer for a pod, from the SpiderCoordinator in the cluster.
    ///
    /// Fails as upstream does when the coordinator is not `Synced` (every coordinator ADD and
    /// DEL then fails, which keeps pods from starting with half-known cluster CIDRs). Upstream's
    /// quirk of blanking `overlayPodCIDR` when `serviceCIDR` is absent is not reproduced: each
    /// list is passed on as the status holds it.
    pub fn from_spider_coordinator(
        coordinator: &SpiderCoordinator,
        default_route_nic_annotation: Option<&str>,
    ) -> Result<Self, CoordinatorError> {
        let name = coordinator.metadata.name.as_deref().unwrap_or("default");
        let status = coordinator.status.as_ref();
        let phase = status.map(|s| s.phase.as_str()).unwrap_or("");
        if phase != PHASE_SYNCED {
            let reason = status
                .and_then(|s| s.reason.as_deref())
                .filter(|r| !r.is_empty())
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return Err(CoordinatorError::NotReady {
                name: name.to_owned(),
                phase: phase.to_owned(),
                reason,
            });
        }
        let spec = &coordinator.spec;
        let annotation = default_route_nic_annotation.filter(|a| !a.is_empty());
        Ok(AgentCoordinatorConfig {
            mode: spec.mode.clone(),
            overlay_pod_cidr: Some(
                status
                    .and_then(|s| s.overlay_pod_cidr.clone())
                    .unwrap_or_default(),
            ),
            service_cidr: Some(
                status
                    .and_then(|s| s.service_cidr.clone())
                    .unwrap_or_default(),
            ),
            hijack_cidr: spec.hijack_cidr.clone(),
            policy_routes: spec.policy_routes.as_ref().map(|routes| {
                routes
                    .iter()
                    .map(|r| RouteSpec {
                        dst: r.dst.clone(),
                        gw: r.gw.clone(),
                    })
                    .collect()
            }),
            pod_mac_prefix: spec.pod_mac_prefix.clone(),
            tune_pod_routes: spec.tune_pod_routes,
            pod_default_route_nic: annotation
                .map(str::to_owned)
                .or_else(|| spec.pod_default_route_nic.clone()),
            host_rule_table: spec.host_rule_table,
            pod_rp_filter: spec.pod_rp_filter,
            tx_queue_len: spec.tx_queue_len,
            veth_link_address: spec.veth_link_address.clone(),
            veth_mtu: spec.veth_mtu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SpiderObject, parse_documents};

    fn coordinator(yaml: &str) -> SpiderCoordinator {
        match parse_documents(yaml).unwrap().remove(0) {
            SpiderObject::Coordinator(c) => c,
            other => panic!("not a coordinator: {other:?}"),
        }
    }

    const SEED: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata: {name: default}
spec:
  hijackCIDR: [169.254.0.0/16]
  hostRuleTable: 500
  mode: auto
  podCIDRType: calico
  podDefaultRouteNIC: \"\"
  podRPFilter: 0
  tunePodRoutes: true
status:
  overlayPodCIDR: [10.222.64.0/18, 10.223.64.0/18]
  phase: PHASE
  serviceCIDR: [10.233.0.0/18]
";

    #[test]
    fn synced_coordinator_becomes_the_agent_answer() {
        let c = coordinator(&SEED.replace("PHASE", "Synced"));
        let a = AgentCoordinatorConfig::from_spider_coordinator(&c, None).unwrap();
        assert_eq!(a.mode.as_deref(), Some("auto"));
        assert_eq!(
            a.overlay_pod_cidr.as_deref(),
            Some(&["10.222.64.0/18".to_owned(), "10.223.64.0/18".to_owned()][..])
        );
        assert_eq!(
            a.service_cidr.as_deref(),
            Some(&["10.233.0.0/18".to_owned()][..])
        );
        assert_eq!(a.host_rule_table, Some(500));
        assert_eq!(a.pod_default_route_nic.as_deref(), Some(""));
        // And it merges into a usable config.
        let cfg = super::super::merge(&Default::default(), &a).unwrap();
        assert_eq!(cfg.hijack_list().len(), 4);
    }

    #[test]
    fn annotation_overrides_the_spec_default_route_nic() {
        let c = coordinator(&SEED.replace("PHASE", "Synced"));
        let a = AgentCoordinatorConfig::from_spider_coordinator(&c, Some("net1")).unwrap();
        assert_eq!(a.pod_default_route_nic.as_deref(), Some("net1"));
        let a = AgentCoordinatorConfig::from_spider_coordinator(&c, Some("")).unwrap();
        assert_eq!(a.pod_default_route_nic.as_deref(), Some(""));
    }

    #[test]
    fn not_ready_coordinator_is_refused_with_its_reason() {
        let yaml = SEED.replace("PHASE", "NotReady").replace(
            "status:\n",
            "status:\n  reason: No kube-controller-manager pod found\n",
        );
        let err = AgentCoordinatorConfig::from_spider_coordinator(&coordinator(&yaml), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("default"), "{err}");
        assert!(err.contains("NotReady"), "{err}");
        assert!(
            err.contains("No kube-controller-manager pod found"),
            "{err}"
        );
    }
}
