//! The one error type of `spiderpool-core`.
//!
//! Admission (validation) failures are not errors of this kind: they are data
//! (lists of field errors) because a webhook reports all of them at once.

use thiserror::Error;

/// Everything that can go wrong in `spiderpool-core`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    // --- ip: addresses, ranges, CIDRs (owned by src/ip) ---
    /// Text that should be an IP address is not one.
    #[error("invalid IP address {input:?}: {reason}")]
    InvalidIp {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Text that should be an IP range (`a` or `a-b`) is not one.
    #[error("invalid IP range {input:?}: {reason}")]
    InvalidRange {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Text that should be a CIDR (`address/prefix`) is not one.
    #[error("invalid CIDR {input:?}: {reason}")]
    InvalidCidr {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A CIDR that must be written canonically (masked network, lower-case, compressed) is not.
    #[error("unformatted subnet {input}, please change it to {canonical}")]
    NonCanonicalCidr {
        /// The text as given.
        input: String,
        /// The canonical spelling of the same network.
        canonical: String,
    },
    /// An address, range or set of one IP family was given where the other was required.
    #[error("{input:?} is not an {expected} address or range")]
    FamilyMismatch {
        /// The offending text.
        input: String,
        /// The family that was required.
        expected: crate::ip::IpFamily,
    },
    /// One entry of a list of ranges (such as `spec.ips`) is invalid.
    #[error("entry [{index}]: {source}")]
    InvalidListEntry {
        /// Zero-based position of the entry in the list.
        index: usize,
        /// What is wrong with it.
        source: Box<Error>,
    },
    // --- end ip ---

    // --- manifest / objects (owned by src/manifest, src/objects) ---
    /// A manifest document could not be read: bad YAML/JSON, wrong shape or wrong field types.
    #[error("document {document}{}: {reason}", item.map(|i| format!(", item {i}")).unwrap_or_default())]
    Manifest {
        /// 1-based number of the document in the input.
        document: usize,
        /// 1-based position inside a `kind: List` document, if the problem is in an item.
        item: Option<usize>,
        /// What is wrong (with line/column or field when known).
        reason: String,
    },
    /// A manifest document has a `kind` that is not one of the six Spiderpool kinds.
    #[error(
        "document {document}{}: unknown kind {kind}; supported: {}",
        item.map(|i| format!(", item {i}")).unwrap_or_default(),
        crate::objects::KINDS.join(", ")
    )]
    UnknownKind {
        /// 1-based number of the document in the input.
        document: usize,
        /// 1-based position inside a `kind: List` document, if any.
        item: Option<usize>,
        /// The kind as written.
        kind: String,
    },
    /// A Spiderpool kind was given with an `apiVersion` other than `spiderpool.spidernet.io/v2beta1`.
    #[error(
        "document {document}{}: unsupported apiVersion {api_version} for kind {kind}; supported: {}",
        item.map(|i| format!(", item {i}")).unwrap_or_default(),
        crate::objects::API_VERSION
    )]
    BadApiVersion {
        /// 1-based number of the document in the input.
        document: usize,
        /// 1-based position inside a `kind: List` document, if any.
        item: Option<usize>,
        /// The kind of the object.
        kind: String,
        /// The apiVersion as written.
        api_version: String,
    },
    /// A status field holding a JSON document as a string (`allocatedIPs`,
    /// `controlledIPPools`) does not hold valid JSON of the expected shape.
    #[error("invalid JSON in {field}: {reason}")]
    BadStatusJson {
        /// The field, e.g. `status.allocatedIPs`.
        field: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// An object could not be written as YAML or JSON.
    #[error("cannot serialize {kind}: {reason}")]
    Serialize {
        /// The kind of the object.
        kind: String,
        /// The serializer's message.
        reason: String,
    },
    /// An enumerated field (cniType, mode, ...) holds a value outside its set.
    #[error("{field}: unsupported value {value:?}: supported values: {}", supported.join(", "))]
    UnsupportedValue {
        /// The field, e.g. `spec.cniType`.
        field: &'static str,
        /// The value as written.
        value: String,
        /// Every accepted value.
        supported: &'static [&'static str],
    },
    // --- end manifest ---

    // --- multus rendering (owned by src/multus) ---
    /// A SpiderMultusConfig cannot be rendered into a NetworkAttachmentDefinition: a field
    /// its cniType needs is missing or unusable (admission would have refused it).
    #[error("SpiderMultusConfig {smc}: {field}: {reason}")]
    MultusConfig {
        /// `namespace/name` of the SpiderMultusConfig.
        smc: String,
        /// The field path, e.g. `spec.macvlan.bond`.
        field: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// An entry of `spec.chainCNIJsonData` is not a JSON CNI plugin object.
    #[error("SpiderMultusConfig {smc}: spec.chainCNIJsonData[{index}]: {reason}")]
    MultusChainPlugin {
        /// `namespace/name` of the SpiderMultusConfig.
        smc: String,
        /// Zero-based position of the entry.
        index: usize,
        /// Why it was refused.
        reason: String,
    },
    // --- end multus ---

    // --- coordinator planning (owned by src/coordinator) ---
    /// A coordinator setting (NAD key or SpiderCoordinator field) has a value that cannot be used.
    #[error("coordinator config: {key}: {value:?}: {reason}")]
    CoordinatorConfig {
        /// The upstream key, e.g. `podMACPrefix`.
        key: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// `mode` is not one of `auto`, `underlay`, `overlay`, `disable` (or `disabled`).
    #[error(
        "coordinator config: mode: unknown mode {mode:?} (expected auto, underlay, overlay or disable)"
    )]
    CoordinatorUnknownMode {
        /// The mode as given.
        mode: String,
    },
    /// The interface named by `CNI_IFNAME` is not in the pod.
    #[error("interface {ifname:?} does not exist in the pod")]
    CoordinatorInterfaceMissing {
        /// The interface name.
        ifname: String,
    },
    /// The interface has no address the coordinator can route (link-local and multicast do not count).
    #[error(
        "no usable IP addresses on {ifname:?} (link-local and multicast addresses do not count)"
    )]
    CoordinatorNoUsableIp {
        /// The interface name.
        ifname: String,
    },
    /// Underlay mode on a later NIC, but the first NIC did not create `veth0`.
    #[error(
        "underlay mode: the pod has no veth0, so the coordinator did not run for the first interface {first:?}; enable the coordinator plugin for {first:?} too (configuring {ifname:?})"
    )]
    CoordinatorVeth0Missing {
        /// The interface being configured.
        ifname: String,
        /// The first NIC name (`podDefaultCniNic`).
        first: String,
    },
    /// Overlay mode asked to configure the first NIC, which belongs to the default CNI.
    #[error(
        "overlay mode cannot configure the first interface {ifname:?}: it belongs to the default CNI (use underlay or auto)"
    )]
    CoordinatorOverlayOnFirstNic {
        /// The interface being configured.
        ifname: String,
    },
    /// Overlay mode on a pod whose first NIC was configured in underlay mode (it has `veth0`).
    #[error(
        "overlay mode: the pod has veth0, so a previous interface was configured in underlay mode; use underlay or auto for {ifname:?}"
    )]
    CoordinatorOverlayAfterUnderlay {
        /// The interface being configured.
        ifname: String,
    },
    /// The configured default-route NIC is not an interface of the pod.
    #[error("podDefaultRouteNIC: interface {nic:?} does not exist in the pod")]
    CoordinatorDefaultRouteNicMissing {
        /// The configured NIC name.
        nic: String,
    },
    /// Information the plan needs about a link is missing from the pod or host view.
    #[error("{netns} link {link:?}: {reason}")]
    CoordinatorLinkInfoMissing {
        /// `pod` or `host`.
        netns: String,
        /// The link name (or a description of how it was looked up).
        link: String,
        /// What is missing.
        reason: String,
    },
    /// No rule priority is left below the existing rules (they start at 1).
    #[error("no free {family} rule priority below the existing pod rules")]
    CoordinatorRulePriorityExhausted {
        /// `IPv4` or `IPv6`.
        family: String,
    },
    /// The SpiderCoordinator is not `Synced`, so the cluster CIDRs are unknown.
    #[error("spidercoordinator {name} is not ready (phase {phase:?}){reason}")]
    CoordinatorNotReady {
        /// The SpiderCoordinator's name.
        name: String,
        /// Its `status.phase`.
        phase: String,
        /// `: <status.reason>` when it has one, else empty.
        reason: String,
    },
    // --- end coordinator ---

    // --- cni (owned by src/cni) ---
    /// A CNI protocol failure (environment, network configuration, version negotiation or
    /// result conversion), carrying its CNI error code.
    #[error("CNI error {}: {}", .0.code, .0)]
    Cni(Box<crate::cni::CniError>),
    // --- end cni ---

    // --- ipam (owned by src/ipam) ---
    /// A pod or namespace annotation read by the IPAM (`ipam.spidernet.io/ippools`, ...) is
    /// malformed.
    #[error("annotation {key}: {reason}")]
    IpamAnnotation {
        /// The annotation key, e.g. `ipam.spidernet.io/ippools`.
        key: String,
        /// What is wrong (the JSON parser's message with line and column, or the rule broken).
        reason: String,
    },
    /// No pool source applies to the NIC and no cluster default pool exists.
    #[error("no IPPool available for NIC {nic}, no pool selection rules of any type are specified")]
    IpamNoPoolRules {
        /// The NIC being added.
        nic: String,
    },
    /// A pool is named twice for one NIC and family.
    #[error("wrong input, duplicate IPPool {pool} specified for NIC {nic}")]
    IpamDuplicatePool {
        /// The pool name.
        pool: String,
        /// The NIC.
        nic: String,
    },
    /// A pool named by an annotation, a namespace default or the NAD does not exist.
    #[error("failed to get original IPPool {pool} (NIC {nic}): not found")]
    IpamPoolNotFound {
        /// The pool name.
        pool: String,
        /// The NIC.
        nic: String,
    },
    /// Every candidate pool of a family was removed by the filters (affinity, disabled, ...).
    #[error(
        "no IPPool available, all {family} IPPools [{}] of NIC {nic} filtered out: {}",
        crate::ipam::rejected_names(rejections),
        crate::ipam::rejection_reasons(rejections)
    )]
    IpamAllPoolsFiltered {
        /// The NIC.
        nic: String,
        /// The family.
        family: crate::ip::IpFamily,
        /// Each candidate and why it was removed.
        rejections: Vec<crate::ipam::PoolRejection>,
    },
    /// Every eligible pool of a family failed to give an address (exhausted, ...).
    #[error(
        "failed to allocate any {family} IP address to NIC {nic} from IPPools [{}]: {}",
        crate::ipam::rejected_names(rejections),
        crate::ipam::rejection_reasons(rejections)
    )]
    IpamAllocationFailed {
        /// The NIC.
        nic: String,
        /// The family.
        family: crate::ip::IpFamily,
        /// Each pool tried and why it gave nothing.
        rejections: Vec<crate::ipam::PoolRejection>,
    },
    /// A pool's spec cannot be used for allocation (admission would have refused it).
    #[error("IPPool {pool}: invalid spec: {reason}")]
    IpamInvalidPool {
        /// The pool name.
        pool: String,
        /// What is wrong.
        reason: String,
    },
    /// The request itself cannot be served (auto-pool rules, orphan pod, NIC not listed...).
    #[error("cannot allocate for pod {pod} NIC {nic}: {reason}")]
    IpamRequest {
        /// `namespace/name` of the pod.
        pod: String,
        /// The NIC.
        nic: String,
        /// Why.
        reason: String,
    },
    /// A pool record and the endpoint disagree (StatefulSet/KubeVirt re-adoption).
    #[error("IPPool {pool}: record of {ip}: {reason}")]
    IpamRecordMismatch {
        /// The pool name.
        pool: String,
        /// The address.
        ip: String,
        /// What disagrees.
        reason: String,
    },
    /// A compare-and-swap commit found an object changed since the snapshot; re-plan.
    #[error(
        "conflict: {object} changed since the snapshot (expected version {expected}, found {found})"
    )]
    IpamConflict {
        /// The object, e.g. `SpiderIPPool/pool1` or `SpiderEndpoint/ns/name`.
        object: String,
        /// The version the plan was based on (`none` = absent).
        expected: String,
        /// The version found in the store (`none` = absent).
        found: String,
    },
    /// Conflicts persisted through every retry.
    #[error("gave up after {attempts} conflicting attempts: {last}")]
    IpamRetriesExhausted {
        /// How many plans were committed without success.
        attempts: u32,
        /// The last conflict.
        last: Box<Error>,
    },
    /// A store failed for a reason other than a conflict.
    #[error("IPAM store: {reason}")]
    IpamStore {
        /// What failed.
        reason: String,
    },
    // --- end ipam ---
}
