//! Well-known annotation and label keys (spec §1 and §3.19), and the finalizer.

/// Finalizer Spiderpool puts on pools, subnets, endpoints and the coordinator.
pub const SPIDER_FINALIZER: &str = "spiderpool.spidernet.io";

// --- pod annotations read by the IPAM plugin / agent ---

/// Pod annotation: pools for the NIC being added, `{"ipv4":[..],"ipv6":[..]}`.
pub const ANNO_POD_IPPOOL: &str = "ipam.spidernet.io/ippool";
/// Pod annotation: per-NIC pools, `[{"interface","ipv4","ipv6","cleangateway"}]`.
pub const ANNO_POD_IPPOOLS: &str = "ipam.spidernet.io/ippools";
/// Pod annotation: auto-pool from a subnet, `{"interface","ipv4":[s],"ipv6":[s]}`.
pub const ANNO_POD_SUBNET: &str = "ipam.spidernet.io/subnet";
/// Pod annotation: per-NIC auto-pools from subnets.
pub const ANNO_POD_SUBNETS: &str = "ipam.spidernet.io/subnets";
/// Pod annotation (and auto-pool annotation): auto-pool size, `"N"` or `"+N"`.
pub const ANNO_IPPOOL_IP_NUMBER: &str = "ipam.spidernet.io/ippool-ip-number";
/// Pod annotation and auto-pool label: delete the auto-pool with its application.
pub const ANNO_IPPOOL_RECLAIM: &str = "ipam.spidernet.io/ippool-reclaim";
/// Pod annotation: extra routes, `[{"dst","gw"}]`.
pub const ANNO_POD_ROUTES: &str = "ipam.spidernet.io/routes";
/// Pod annotation: the NIC that keeps the default route.
pub const ANNO_DEFAULT_ROUTE_NIC: &str = "ipam.spidernet.io/default-route-nic";
/// Pod annotation defined upstream but unused.
pub const ANNO_POD_DNS: &str = "ipam.spidernet.io/dns";
/// Multus: NAD of the pod's first NIC.
pub const ANNO_MULTUS_DEFAULT_NETWORK: &str = "v1.multus-cni.io/default-network";
/// Multus: NADs of the pod's extra NICs.
pub const ANNO_MULTUS_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// KubeVirt: set on a live-migration target pod.
pub const ANNO_KUBEVIRT_MIGRATION_JOB: &str = "kubevirt.io/migrationJobName";

// --- namespace annotations ---

/// Namespace annotation: default IPv4 pools (JSON list of names).
pub const ANNO_NS_DEFAULT_IPV4_IPPOOL: &str = "ipam.spidernet.io/default-ipv4-ippool";
/// Namespace annotation: default IPv6 pools (JSON list of names).
pub const ANNO_NS_DEFAULT_IPV6_IPPOOL: &str = "ipam.spidernet.io/default-ipv6-ippool";

// --- resource injection (pod / namespace annotations, SMC annotations and labels) ---

/// Pod webhook RDMA resource injection selector (annotation, copied to an SMC label).
pub const ANNO_RDMA_RESOURCE_INJECT: &str = "cni.spidernet.io/rdma-resource-inject";
/// Pod webhook network resource injection selector (annotation, copied to an SMC label).
pub const ANNO_NETWORK_RESOURCE_INJECT: &str = "cni.spidernet.io/network-resource-inject";

// --- SpiderMultusConfig annotations ---

/// SMC annotation: name of the generated NAD.
pub const ANNO_MULTUS_CR_NAME: &str = "multus.spidernet.io/cr-name";
/// SMC annotation: `cniVersion` of the generated CNI config.
pub const ANNO_MULTUS_CNI_VERSION: &str = "multus.spidernet.io/cni-version";
/// SMC annotation: `name` inside the generated CNI config.
pub const ANNO_CNI_CONFIG_NAME: &str = "cni.spidernet.io/cniconfig-name";
/// NAD annotation: device-plugin resource name.
pub const ANNO_NAD_RESOURCE_NAME: &str = "k8s.v1.cni.cncf.io/resourceName";
/// CNI versions accepted in [`ANNO_MULTUS_CNI_VERSION`].
pub const SUPPORTED_CNI_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
/// Default CNI version of generated NADs.
pub const DEFAULT_CNI_VERSION: &str = "0.3.1";

// --- labels written by the system on pools and subnets ---

/// Pool label: CIDR with `.`, `:` and `/` replaced by `-`.
pub const LABEL_IPPOOL_CIDR: &str = "ipam.spidernet.io/ippool-cidr";
/// Subnet label: CIDR with `.`, `:` and `/` replaced by `-`.
pub const LABEL_SUBNET_CIDR: &str = "ipam.spidernet.io/subnet-cidr";
/// Pool label: name of the owning SpiderSubnet.
pub const LABEL_OWNER_SPIDER_SUBNET: &str = "ipam.spidernet.io/owner-spider-subnet";
/// Auto-pool label: application group/version (`group_version` or `version`).
pub const LABEL_OWNER_APPLICATION_GV: &str = "ipam.spidernet.io/owner-application-gv";
/// Auto-pool label: application kind.
pub const LABEL_OWNER_APPLICATION_KIND: &str = "ipam.spidernet.io/owner-application-kind";
/// Auto-pool label: application namespace.
pub const LABEL_OWNER_APPLICATION_NAMESPACE: &str = "ipam.spidernet.io/owner-application-namespace";
/// Auto-pool label: application name (its presence marks an auto-created pool).
pub const LABEL_OWNER_APPLICATION_NAME: &str = "ipam.spidernet.io/owner-application-name";
/// Auto-pool label: application UID.
pub const LABEL_OWNER_APPLICATION_UID: &str = "ipam.spidernet.io/owner-application-uid";
/// Auto-pool label: interface the pool serves.
pub const LABEL_INTERFACE: &str = "ipam.spidernet.io/interface";
/// Auto-pool label: `true`/`false`, delete with the application.
pub const LABEL_IPPOOL_RECLAIM: &str = ANNO_IPPOOL_RECLAIM;
/// Auto-pool label: `IPv4` or `IPv6`.
pub const LABEL_IP_VERSION: &str = "ipam.spidernet.io/ip-version";

// --- podAffinity keys of auto-created pools ---

/// Auto-pool podAffinity key: application API group.
pub const AFFINITY_APP_API_GROUP: &str = "ipam.spidernet.io/app-api-group";
/// Auto-pool podAffinity key: application API version.
pub const AFFINITY_APP_API_VERSION: &str = "ipam.spidernet.io/app-api-version";
/// Auto-pool podAffinity key: application kind.
pub const AFFINITY_APP_KIND: &str = "ipam.spidernet.io/app-kind";
/// Auto-pool podAffinity key: application namespace.
pub const AFFINITY_APP_NAMESPACE: &str = "ipam.spidernet.io/app-namespace";
/// Auto-pool podAffinity key: application name.
pub const AFFINITY_APP_NAME: &str = "ipam.spidernet.io/app-name";
/// The only podAffinity `matchLabels` keys allowed on auto-created pools.
pub const AUTO_POOL_AFFINITY_KEYS: &[&str] = &[
    AFFINITY_APP_API_GROUP,
    AFFINITY_APP_API_VERSION,
    AFFINITY_APP_KIND,
    AFFINITY_APP_NAMESPACE,
    AFFINITY_APP_NAME,
];
