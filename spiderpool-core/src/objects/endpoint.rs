//! SpiderEndpoint: per-pod record of the IPs Spiderpool allocated (status only).

use serde::{Deserialize, Serialize};

use super::{Route, kinds};
use crate::meta::ObjectMeta;

kinds::spider_kind! {
    /// A SpiderEndpoint (`spiderendpoints`, short name `se`, namespaced). It has no spec; its
    /// `status` is a plain field (no status subresource).
    SpiderEndpoint = super::ENDPOINT, kind_default = "SpiderEndpoint::default_kind", {
        /// The allocation record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<SpiderEndpointStatus>,
    }
}

/// `SpiderEndpoint.status` (upstream `WorkloadEndpointStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SpiderEndpointStatus {
    /// The pod currently holding the allocation.
    pub current: PodIPAllocation,
    /// Top controller kind (`Pod`, `Deployment`, `StatefulSet`, ...).
    pub owner_controller_type: String,
    /// Top controller name.
    pub owner_controller_name: String,
}

/// `SpiderEndpoint.status.current`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PodIPAllocation {
    /// UID of the pod.
    pub uid: String,
    /// Node name.
    pub node: String,
    /// One entry per NIC.
    pub ips: Vec<IPAllocationDetail>,
}

/// One NIC of `SpiderEndpoint.status.current.ips`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IPAllocationDetail {
    /// NIC name (`eth0`, `net1`, ...).
    pub interface: String,
    /// IPv4 address with the pool prefix, e.g. `10.6.212.145/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// IPv6 address with the pool prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// Pool of the IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_pool: Option<String>,
    /// Pool of the IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_pool: Option<String>,
    /// VLAN (filled from IaaS provider responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 0, max = 4094), extend("default" = 0))
    )]
    pub vlan: Option<i64>,
    /// Gateway of the IPv4 pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_gateway: Option<String>,
    /// Gateway of the IPv6 pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_gateway: Option<String>,
    /// True when no default route was generated for the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_gateway: Option<bool>,
    /// Routes of this NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// MAC address from an IaaS provider, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl SpiderEndpoint {
    /// An endpoint `namespace/name` with `status`.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        status: Option<SpiderEndpointStatus>,
    ) -> Self {
        let mut metadata = ObjectMeta::named(name);
        metadata.namespace = Some(namespace.into());
        Self {
            api_version: super::API_VERSION.to_owned(),
            kind: Self::default_kind(),
            metadata,
            status,
        }
    }
}
