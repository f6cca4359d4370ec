//! The allocation request: who asks, for which NIC, under which cluster switches. Plain data;
//! the agent fills it from the pod, its namespace, its node and the CNI call.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// API version of core kinds (`Pod`, ...).
pub const CORE_V1: &str = "v1";
/// API version of `Deployment`, `StatefulSet`, ...
pub const APPS_V1: &str = "apps/v1";
/// API version of KubeVirt's `VirtualMachineInstance`.
pub const KUBEVIRT_V1: &str = "kubevirt.io/v1";
/// Kind of a StatefulSet.
pub const KIND_STATEFULSET: &str = "StatefulSet";
/// Kind of a KubeVirt VMI.
pub const KIND_VMI: &str = "VirtualMachineInstance";
/// Kind of a pod without controller.
pub const KIND_POD: &str = "Pod";

/// The pod's top controller (§3.2): the pod itself, a Deployment, a StatefulSet, a KubeVirt
/// VMI, a third-party controller...
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopController {
    /// `apiVersion` of the controller, e.g. `apps/v1`.
    pub api_version: String,
    /// Kind, e.g. `StatefulSet`.
    pub kind: String,
    /// Namespace of the controller (the pod's).
    pub namespace: String,
    /// Name of the controller.
    pub name: String,
    /// UID of the controller (used to find auto-created pools).
    pub uid: String,
}

impl TopController {
    /// A pod without controller: itself (`v1`, `Pod`).
    pub fn orphan(namespace: &str, name: &str, uid: &str) -> Self {
        TopController {
            api_version: CORE_V1.to_owned(),
            kind: KIND_POD.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
        }
    }

    /// Whether this is an `apps/v1` StatefulSet.
    pub fn is_statefulset(&self) -> bool {
        self.api_version == APPS_V1 && self.kind == KIND_STATEFULSET
    }

    /// Whether this is a `kubevirt.io/v1` VirtualMachineInstance.
    pub fn is_kubevirt_vmi(&self) -> bool {
        self.api_version == KUBEVIRT_V1 && self.kind == KIND_VMI
    }

    /// Whether the pod has no controller.
    pub fn is_orphan(&self) -> bool {
        self.api_version == CORE_V1 && self.kind == KIND_POD
    }

    /// `(group, version)` of the API version: `("apps", "v1")`, `("", "v1")`.
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        }
    }
}

/// The pod being given addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Labels (for `podAffinity`).
    pub labels: BTreeMap<String, String>,
    /// Annotations (pool selection, routes, Multus networks).
    pub annotations: BTreeMap<String, String>,
    /// Node the pod runs on.
    pub node: String,
    /// Top controller (§3.2).
    pub controller: TopController,
}

impl PodInfo {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// Cluster switches of the agent (`spiderpool-conf`) that change allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// `enableIPv4`: IPv4 candidates are dropped when false.
    pub enable_ipv4: bool,
    /// `enableIPv6`: IPv6 candidates are dropped when false.
    pub enable_ipv6: bool,
    /// `enableStatefulSet`: StatefulSet pods keep their addresses across re-creation.
    pub enable_statefulset: bool,
    /// `enableKubevirtStaticIP`: KubeVirt VM pods keep their addresses (keyed by the VMI).
    pub enable_kubevirt_static_ip: bool,
    /// `enableSpiderSubnet`.
    pub enable_spider_subnet: bool,
    /// `enableAutoPoolForApplication`.
    pub enable_auto_pool: bool,
    /// `MULTUS_CLUSTER_NETWORK` (`ns/name`): NAD of the first NIC when the pod has no
    /// `v1.multus-cni.io/default-network` annotation.
    pub cluster_network: Option<String>,
    /// Namespace Spiderpool is installed in: bare `multusName` entries and bare NAD names
    /// resolve there.
    pub agent_namespace: String,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            enable_ipv4: true,
            enable_ipv6: true,
            enable_statefulset: true,
            enable_kubevirt_static_ip: true,
            enable_spider_subnet: true,
            enable_auto_pool: true,
            cluster_network: None,
            agent_namespace: "kube-system".to_owned(),
        }
    }
}

/// A CNI ADD for one NIC of one pod, with everything pool selection needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocateRequest {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`: the NIC being added (`eth0`, `net1`, ...).
    pub ifname: String,
    /// The pod.
    pub pod: PodInfo,
    /// Labels of the pod's namespace (`namespaceAffinity`).
    pub namespace_labels: BTreeMap<String, String>,
    /// Annotations of the pod's namespace (namespace default pools).
    pub namespace_annotations: BTreeMap<String, String>,
    /// Labels of the pod's node (`nodeAffinity`).
    pub node_labels: BTreeMap<String, String>,
    /// The NAD (`ns/name`) serving this NIC, when the caller knows it. When `None` it is
    /// derived from the pod's Multus annotations as upstream does (§3.6 rule 5).
    pub nad: Option<String>,
    /// IPAM config `default_ipv4_ippool` (pool source 5).
    pub default_ipv4_ippool: Vec<String>,
    /// IPAM config `default_ipv6_ippool` (pool source 5).
    pub default_ipv6_ippool: Vec<String>,
    /// IPAM config `cleangateway`: no default route for this NIC.
    pub clean_gateway: bool,
    /// IPAM config `match_master_subnet` (SR-IOV): keep only pools whose subnet holds one of
    /// [`AllocateRequest::master_addresses`].
    pub match_master_subnet: bool,
    /// Host addresses of the VF's physical function, found by the caller (the lookup needs the
    /// pod netns and sysfs, so it is not done here).
    pub master_addresses: Vec<IpAddr>,
    /// Cluster switches.
    pub config: IpamConfig,
}

impl AllocateRequest {
    /// Name of the SpiderEndpoint and key of the pool records: the VMI name for KubeVirt VM
    /// pods (when KubeVirt static IPs are on), else the pod name.
    pub fn endpoint_name(&self) -> &str {
        if self.config.enable_kubevirt_static_ip && self.pod.controller.is_kubevirt_vmi() {
            &self.pod.controller.name
        } else {
            &self.pod.name
        }
    }

    /// Whether the pod keeps its addresses across re-creation (StatefulSet / KubeVirt, §3.11).
    pub fn is_static(&self) -> bool {
        (self.config.enable_statefulset && self.pod.controller.is_statefulset())
            || (self.config.enable_kubevirt_static_ip && self.pod.controller.is_kubevirt_vmi())
    }

    /// Whether `family` is enabled.
    pub fn family_enabled(&self, family: crate::ip::IpFamily) -> bool {
        match family {
            crate::ip::IpFamily::V4 => self.config.enable_ipv4,
            crate::ip::IpFamily::V6 => self.config.enable_ipv6,
        }
    }
}
