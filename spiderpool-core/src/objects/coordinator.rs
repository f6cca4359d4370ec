//! SpiderCoordinator: the cluster-wide coordinator settings (one object, usually `default`).
//! Its [`CoordinatorSpec`] is also `SpiderMultusConfig.spec.coordinator`.

use crate::manifest::ManifestError;
use serde::{Deserialize, Serialize};

use super::{CoordinatorMode, PodCidrType, Route, kinds};
use crate::meta::ObjectMeta;

kinds::spider_kind! {
    /// A SpiderCoordinator (`spidercoordinators`, short name `scc`, cluster-scoped).
    SpiderCoordinator = super::COORDINATOR, kind_default = "SpiderCoordinator::default_kind", {
        /// Desired settings.
        #[serde(default)]
        spec: CoordinatorSpec,
        /// Discovered cluster CIDRs and readiness.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<CoordinatorStatus>,
    }
}

/// Coordinator settings: `SpiderCoordinator.spec` and `SpiderMultusConfig.spec.coordinator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoordinatorSpec {
    /// `auto`, `underlay`, `overlay` or `disabled`; see [`CoordinatorSpec::mode`].
    ///
    /// Also read from the pre-v1.0 spelling `tuneMode` (seen in old SpiderMultusConfig YAML);
    /// it is always written back as `mode`.
    #[serde(default, alias = "tuneMode", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["auto", "underlay", "overlay", "disabled"], "default" = "auto"))
    )]
    pub mode: Option<String>,
    /// How `status.overlayPodCIDR` is found: `auto`, `cluster`, `calico`, `cilium`, `none`.
    /// Required on a SpiderCoordinator, optional in a SpiderMultusConfig.
    #[serde(
        default,
        rename = "podCIDRType",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["auto", "cluster", "calico", "cilium", "none"]))
    )]
    pub pod_cidr_type: Option<String>,
    /// Extra destinations routed through the host (e.g. `169.254.0.0/16`).
    #[serde(
        default,
        rename = "hijackCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub hijack_cidr: Option<Vec<String>>,
    /// Static routes installed in the current NIC's policy table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_routes: Option<Vec<Route>>,
    /// Two-byte unicast MAC prefix `xx:xx` for pod NICs.
    #[serde(
        default,
        rename = "podMACPrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_mac_prefix: Option<String>,
    /// Tune the routes of multi-NIC pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub tune_pod_routes: Option<bool>,
    /// NIC that keeps the default route (empty: the first NIC).
    #[serde(
        default,
        rename = "podDefaultRouteNIC",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_default_route_nic: Option<String>,
    /// Host routing table for routes to local pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 500)))]
    pub host_rule_table: Option<i64>,
    /// Pod `rp_filter`: 0, 1, 2, or negative to leave unchanged.
    #[serde(
        default,
        rename = "podRPFilter",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub pod_rp_filter: Option<i64>,
    /// tx queue length of the pod NIC (0: leave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub tx_queue_len: Option<i64>,
    /// IPv4 link-local address for `veth0` (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veth_link_address: Option<String>,
    /// MTU of `veth0`.
    #[serde(default, rename = "vethMTU", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub veth_mtu: Option<i64>,
    /// Removed upstream in v1.0 (no effect); accepted and kept so older YAML (such as
    /// `kubectl get` output of old clusters) still reads and round-trips. Not in the CRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub detect_gateway: Option<bool>,
    /// Removed upstream in v1.0 (no effect); kept like `detectGateway`. Not in the CRD.
    #[serde(
        default,
        rename = "detectIPConflict",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub detect_ip_conflict: Option<bool>,
    /// Removed upstream in v1.0 (host rp_filter is set by the agent); kept like
    /// `detectGateway`. Not in the CRD.
    #[serde(
        default,
        rename = "hostRPFilter",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub host_rp_filter: Option<i64>,
}

/// `SpiderCoordinator.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CoordinatorStatus {
    /// `Synced` or `NotReady`.
    #[serde(default)]
    pub phase: String,
    /// Why the phase is `NotReady`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pod CIDRs of the default CNI.
    #[serde(
        default,
        rename = "overlayPodCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub overlay_pod_cidr: Option<Vec<String>>,
    /// Service CIDRs of the cluster.
    #[serde(
        default,
        rename = "serviceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidr: Option<Vec<String>>,
}

/// Phase value of a ready coordinator.
pub const PHASE_SYNCED: &str = "Synced";
/// Phase value of a coordinator that could not discover the cluster CIDRs.
pub const PHASE_NOT_READY: &str = "NotReady";

impl CoordinatorSpec {
    /// Typed `mode` (`Ok(None)` when absent).
    pub fn mode(&self) -> Result<Option<CoordinatorMode>, ManifestError> {
        CoordinatorMode::parse_opt(self.mode.as_deref())
    }

    /// Typed `podCIDRType` (`Ok(None)` when absent).
    pub fn pod_cidr_type(&self) -> Result<Option<PodCidrType>, ManifestError> {
        PodCidrType::parse_opt(self.pod_cidr_type.as_deref())
    }
}

impl SpiderCoordinator {
    /// A coordinator named `name` with `spec` and no status.
    pub fn new(name: impl Into<String>, spec: CoordinatorSpec) -> Self {
        Self {
            api_version: super::API_VERSION.to_owned(),
            kind: Self::default_kind(),
            metadata: ObjectMeta::named(name),
            spec,
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_coordinator_tune_mode_alias() {
        let spec: CoordinatorSpec = serde_json::from_value(
            serde_json::json!({"podCIDRType": "cluster", "tuneMode": "overlay"}),
        )
        .unwrap();
        assert_eq!(spec.mode().unwrap(), Some(CoordinatorMode::Overlay));
        assert_eq!(spec.pod_cidr_type().unwrap(), Some(PodCidrType::Cluster));
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"mode": "overlay", "podCIDRType": "cluster"})
        );
    }

    #[test]
    fn objects_coordinator_bad_mode_is_data_not_parse_error() {
        let spec: CoordinatorSpec =
            serde_json::from_value(serde_json::json!({"mode": "disable"})).unwrap();
        assert!(matches!(
            spec.mode(),
            Err(ManifestError::UnsupportedValue { .. })
        ));
    }
}
