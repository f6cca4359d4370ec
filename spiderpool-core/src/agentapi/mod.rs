//! The spiderpool-agent HTTP API (upstream's `api/v1/agent/openapi.yaml`) as wire types.
//!
//! Served by `spiderpool-agent` as HTTP/1.1 + JSON on a UNIX socket (default
//! [`DEFAULT_SOCKET`]), called by the `spiderpool` IPAM plugin and the `coordinator` plugin.
//! JSON names are upstream's, so an upstream plugin can talk to our agent and the other way
//! round.
//!
//! | method and path | request | response |
//! |---|---|---|
//! | `GET /v1/ipam/healthy` | — | 200, empty body |
//! | `POST /v1/ipam/ip` | [`IpamAddArgs`] | 200 [`IpamAddResponse`]; 500 error string |
//! | `DELETE /v1/ipam/ip` | [`IpamDelArgs`] | 200; 500 error string |
//! | `DELETE /v1/ipam/ips` | [`IpamBatchDelArgs`] | 200; 500; 521 / 522 release forbidden |
//! | `GET /v1/coordinator/config` | [`GetCoordinatorArgs`] as the body | 200 [`crate::coordinator::AgentCoordinatorConfig`]; 500 |
//! | `GET /v1/workloadendpoint?podNamespace=&podName=` | query | 200 [`crate::objects::SpiderEndpointStatus`]; 400; 404; 500 |
//!
//! Error bodies are a JSON string (e.g. `"failed to get pod default/nope"`), as upstream's
//! go-swagger server writes them.

use serde::{Deserialize, Serialize};

/// Where the agent listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/spidernet/spiderpool.sock";
/// Path prefix of every endpoint.
pub const BASE_PATH: &str = "/v1";
/// `GET`: the agent is up.
pub const PATH_HEALTHY: &str = "/v1/ipam/healthy";
/// `POST` allocates, `DELETE` releases one NIC's addresses.
pub const PATH_IP: &str = "/v1/ipam/ip";
/// `DELETE`: releases every address of a pod.
pub const PATH_IPS: &str = "/v1/ipam/ips";
/// `GET`: the coordinator configuration for a pod.
pub const PATH_COORDINATOR_CONFIG: &str = "/v1/coordinator/config";
/// `GET`: a pod's SpiderEndpoint status.
pub const PATH_WORKLOAD_ENDPOINT: &str = "/v1/workloadendpoint";
/// HTTP status upstream uses when releasing a stateless pod's conflicting IPs is forbidden.
pub const STATUS_STATELESS_RELEASE_FORBIDDEN: u16 = 521;
/// HTTP status upstream uses when releasing a stateful pod's IPs is forbidden.
pub const STATUS_STATEFUL_RELEASE_FORBIDDEN: u16 = 522;

/// `POST /v1/ipam/ip`: allocate addresses for one NIC of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamAddArgs {
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// `CNI_NETNS`.
    pub net_namespace: String,
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: String,
    /// `K8S_POD_NAME`.
    pub pod_name: String,
    /// `K8S_POD_UID`.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// The NAD's `default_ipv4_ippool`.
    #[serde(
        default,
        rename = "defaultIPv4IPPool",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_ipv4_ippool: Vec<String>,
    /// The NAD's `default_ipv6_ippool`.
    #[serde(
        default,
        rename = "defaultIPv6IPPool",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_ipv6_ippool: Vec<String>,
    /// The NAD's `clean_gateway`: no default route for this NIC.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clean_gateway: bool,
    /// The NAD's `match_master_subnet` (SR-IOV).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_master_subnet: bool,
    /// Extension for local mode (no Kubernetes to ask): the pod's labels and annotations,
    /// taken by the plugin from the CNI config's `args` / `runtimeConfig`. Upstream plugins
    /// never send it; the Kubernetes agent ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<LocalPodInfo>,
}

/// Pod facts a local-mode plugin passes to a local-mode agent (our extension).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalPodInfo {
    /// Pod labels (for pool `podAffinity`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Pod annotations (`ipam.spidernet.io/ippool`, `.../default-route-nic`, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// One allocated address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfig {
    /// 4 or 6.
    pub version: i64,
    /// The address with the pool's prefix length, e.g. `10.6.212.145/16`.
    pub address: String,
    /// The pool it came from.
    #[serde(default, rename = "ipPool", skip_serializing_if = "String::is_empty")]
    pub ip_pool: String,
    /// The pool's gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// The NIC it belongs to.
    pub nic: String,
    /// VLAN id (IaaS providers only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vlan: i64,
    /// MAC (IaaS providers only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Probe the gateway before returning (the plugin does it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_gateway_detection: bool,
    /// Probe for an IP conflict before returning (the plugin does it).
    #[serde(
        default,
        rename = "enableIPConflictDetection",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub enable_ip_conflict_detection: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A route for one NIC.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpRoute {
    /// The NIC the route belongs to.
    pub if_name: String,
    /// Destination CIDR (`0.0.0.0/0` for the default route).
    pub dst: String,
    /// Gateway.
    pub gw: String,
}

/// DNS settings (unused by Spiderpool, kept for the wire format).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Search domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Search list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

/// `POST /v1/ipam/ip` answer: every address and route of the pod's NICs allocated so far
/// (the plugin picks those of its NIC).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpamAddResponse {
    /// Addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<IpRoute>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// `DELETE /v1/ipam/ip`: release one NIC's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamDelArgs {
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// `CNI_NETNS` (may be empty on DEL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net_namespace: String,
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: String,
    /// `K8S_POD_NAME`.
    pub pod_name: String,
    /// `K8S_POD_UID`.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
}

/// `DELETE /v1/ipam/ips`: release every address of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamBatchDelArgs {
    /// Release addresses that conflict (stateless pods only).
    #[serde(default, rename = "isReleaseConflictIPs")]
    pub is_release_conflict_ips: bool,
    /// `CNI_CONTAINERID`.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_NETNS`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net_namespace: String,
    /// Pod namespace.
    pub pod_namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod UID.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
}

/// `GET /v1/coordinator/config` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetCoordinatorArgs {
    /// Pod name.
    pub pod_name: String,
    /// Pod namespace.
    pub pod_namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_args_use_upstream_names() {
        let args = IpamAddArgs {
            container_id: "cid".into(),
            if_name: "net1".into(),
            net_namespace: "/var/run/netns/p".into(),
            pod_namespace: "default".into(),
            pod_name: "nginx".into(),
            pod_uid: "u1".into(),
            default_ipv4_ippool: vec!["10-6-v4".into()],
            ..Default::default()
        };
        let v = serde_json::to_value(&args).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"containerID": "cid", "ifName": "net1",
                "netNamespace": "/var/run/netns/p", "podNamespace": "default",
                "podName": "nginx", "podUID": "u1", "defaultIPv4IPPool": ["10-6-v4"]})
        );
        let back: IpamAddArgs = serde_json::from_value(v).unwrap();
        assert_eq!(back, args);
    }

    #[test]
    fn add_response_reads_upstream_json() {
        let r: IpamAddResponse = serde_json::from_str(
            r#"{"ips":[{"version":4,"address":"10.6.212.145/16","ipPool":"10-6-v4",
                "gateway":"10.6.0.1","nic":"net1","enableIPConflictDetection":true}],
                "routes":[{"ifName":"net1","dst":"10.10.0.0/16","gw":"10.6.0.1"}]}"#,
        )
        .unwrap();
        assert_eq!(r.ips[0].address, "10.6.212.145/16");
        assert!(r.ips[0].enable_ip_conflict_detection);
        assert_eq!(r.routes[0].if_name, "net1");
        assert_eq!(r.dns, None);
    }

    #[test]
    fn coordinator_args_are_pod_name_and_namespace() {
        let v = serde_json::to_string(&GetCoordinatorArgs {
            pod_name: "p".into(),
            pod_namespace: "ns".into(),
        })
        .unwrap();
        assert_eq!(v, r#"{"podName":"p","podNamespace":"ns"}"#);
    }
}
