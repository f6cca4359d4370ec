//! Admission of SpiderMultusConfig objects (spec §1.5).
//!
//! Field paths name the JSON fields (`spec.macvlan.vlanID`), where upstream reports Go
//! struct names (`spec.macvlanConfig`) for the whole block; messages keep upstream's text.

use super::coordinator::validate_spec;
use super::{ClusterState, FieldError, Operation};
use crate::meta::validation::dns1123_subdomain_problems;
use crate::multus::{nad_name, nad_namespace};
use crate::objects::keys::{
    ANNO_MULTUS_CNI_VERSION, ANNO_MULTUS_CR_NAME, ANNO_NETWORK_RESOURCE_INJECT,
    ANNO_RDMA_RESOURCE_INJECT, SUPPORTED_CNI_VERSIONS,
};
use crate::objects::{
    BondConfig, CniType, CoordinatorSpec, MULTUSCONFIG, SpiderMultusConfig, SpiderMultusConfigSpec,
    SpiderpoolPools, VlanMode,
};

/// Mutating webhook, preceded by the CRD schema defaults the apiserver applies first
/// (`enableCoordinator: true`, `disableIPAM: false`, and inside a given `coordinator` block
/// `mode`, `tunePodRoutes`, `podRPFilter`, `hostRuleTable`, `txQueueLen`).
pub(super) fn mutate(obj: &mut SpiderMultusConfig) {
    let spec = &mut obj.spec;
    spec.enable_coordinator.get_or_insert(true);
    spec.disable_ipam.get_or_insert(false);
    let cni = CniType::parse(spec.cni_type.get_or_insert_with(|| "custom".to_owned()));
    match cni {
        Ok(CniType::Macvlan) => default_vlan_like(spec.macvlan.as_mut().map(VlanLikeMut::mac)),
        Ok(CniType::Ipvlan) => default_vlan_like(spec.ipvlan.as_mut().map(VlanLikeMut::mac)),
        Ok(CniType::Vlan) => default_vlan_like(spec.vlan.as_mut().map(|c| {
            let mode = c.vlan_mode.get_or_insert_with(|| "manual".to_owned());
            if mode == VlanMode::Manual.as_str() {
                c.vlan_id.get_or_insert(0);
            }
            VlanLikeMut {
                mtu: &mut c.mtu,
                bond: &mut c.bond,
                rdma_resource_name: &mut c.rdma_resource_name,
                ippools: &mut c.ippools,
            }
        })),
        Ok(CniType::Sriov) => {
            if let Some(c) = spec.sriov.as_mut() {
                c.vlan_id.get_or_insert(0);
                c.mtu.get_or_insert(0);
                c.min_tx_rate_mbps.get_or_insert(0);
                c.max_tx_rate_mbps.get_or_insert(0);
                c.rdma_isolation.get_or_insert(false);
                c.resource_name.get_or_insert_with(String::new);
                let pools = c.ippools.get_or_insert_with(empty_pools);
                pools.match_master_subnet.get_or_insert(false);
            }
        }
        Ok(CniType::IbSriov) => {
            if let Some(c) = spec.ibsriov.as_mut() {
                c.pkey.get_or_insert_with(String::new);
                c.enable_ib_kubernetes.get_or_insert(false);
                c.rdma_isolation.get_or_insert(true);
                c.resource_name.get_or_insert_with(String::new);
                c.link_state.get_or_insert_with(|| "enable".to_owned());
                c.ippools.get_or_insert_with(empty_pools);
            }
        }
        Ok(CniType::Ipoib) => {
            if let Some(c) = spec.ipoib.as_mut() {
                c.ippools.get_or_insert_with(empty_pools);
            }
        }
        Ok(CniType::Ovs) => {
            if let Some(c) = spec.ovs.as_mut() {
                c.vlan.get_or_insert(0);
                c.ippools.get_or_insert_with(empty_pools);
            }
        }
        Ok(CniType::Custom) => {
            spec.custom_cni.get_or_insert_with(String::new);
        }
        // Left for the validator to report.
        Err(_) => {}
    }

    if cni == Ok(CniType::Custom) {
        // A custom config is used verbatim: there is nothing to chain the coordinator to.
        spec.coordinator = None;
        spec.enable_coordinator = Some(false);
    } else {
        spec.coordinator = Some(default_coordinator(spec.coordinator.take()));
    }
    spec.chain_cni_json_data.get_or_insert_with(Vec::new);

    // The pod webhook finds SMCs by label, so the inject annotations become labels.
    for key in [ANNO_RDMA_RESOURCE_INJECT, ANNO_NETWORK_RESOURCE_INJECT] {
        if let Some(value) = obj.metadata.annotation(key).map(str::to_owned) {
            obj.metadata.set_label(key, value);
        }
    }
}

fn empty_pools() -> SpiderpoolPools {
    SpiderpoolPools {
        ipv4: Some(Vec::new()),
        ipv6: Some(Vec::new()),
        match_master_subnet: None,
    }
}

/// The fields macvlan, ipvlan and vlan share, borrowed for defaulting.
struct VlanLikeMut<'a> {
    mtu: &'a mut Option<i32>,
    bond: &'a mut Option<BondConfig>,
    rdma_resource_name: &'a mut Option<String>,
    ippools: &'a mut Option<SpiderpoolPools>,
}

impl<'a> VlanLikeMut<'a> {
    fn mac(c: &'a mut crate::objects::SpiderMacvlanCniConfig) -> Self {
        c.vlan_id.get_or_insert(0);
        Self {
            mtu: &mut c.mtu,
            bond: &mut c.bond,
            rdma_resource_name: &mut c.rdma_resource_name,
            ippools: &mut c.ippools,
        }
    }
}

fn default_vlan_like(c: Option<VlanLikeMut<'_>>) {
    let Some(c) = c else { return };
    c.mtu.get_or_insert(0);
    c.rdma_resource_name.get_or_insert_with(String::new);
    if let Some(bond) = c.bond.as_mut() {
        bond.options.get_or_insert_with(String::new);
    }
    c.ippools.get_or_insert_with(empty_pools);
}

/// Coordinator defaults: a whole default object when absent; otherwise the CRD schema
/// defaults and then the webhook's, field by field.
fn default_coordinator(given: Option<CoordinatorSpec>) -> CoordinatorSpec {
    let Some(mut c) = given else {
        return CoordinatorSpec {
            mode: Some("auto".to_owned()),
            hijack_cidr: Some(Vec::new()),
            policy_routes: Some(Vec::new()),
            veth_link_address: Some(String::new()),
            pod_mac_prefix: Some(String::new()),
            pod_default_route_nic: Some(String::new()),
            pod_rp_filter: Some(0),
            tune_pod_routes: Some(true),
            ..CoordinatorSpec::default()
        };
    };
    // [QUIRK] upstream's webhook would default tunePodRoutes to false for a given block, but
    // the apiserver has already applied the CRD default `true` by then, so `true` is what
    // clusters see; we apply the schema default first, as the apiserver does.
    c.mode.get_or_insert_with(|| "auto".to_owned());
    c.tune_pod_routes.get_or_insert(true);
    c.pod_rp_filter.get_or_insert(0);
    c.host_rule_table.get_or_insert(500);
    c.tx_queue_len.get_or_insert(0);
    c.hijack_cidr.get_or_insert_with(Vec::new);
    c.policy_routes.get_or_insert_with(Vec::new);
    c.pod_mac_prefix.get_or_insert_with(String::new);
    c.pod_default_route_nic.get_or_insert_with(String::new);
    c
}

/// Validating webhook (create and update; delete is always allowed).
pub(super) fn validate(
    op: Operation,
    obj: &SpiderMultusConfig,
    old: Option<&SpiderMultusConfig>,
    cluster: &ClusterState,
) -> Vec<FieldError> {
    if op == Operation::Delete {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for p in dns1123_subdomain_problems(name) {
            errs.push(FieldError::invalid("metadata.name", p));
        }
    }
    if op == Operation::Update
        && let Some(old) = old
    {
        errs.extend(cr_name_unchanged(old, obj));
    }
    errs.extend(validate_annotations(obj, cluster));
    errs.extend(validate_cni(obj));
    if let Some(c) = obj.spec.coordinator.as_ref() {
        errs.extend(validate_spec(c, "spec.coordinator", false));
    }
    for (i, text) in obj.spec.chain_cni_json_data.iter().flatten().enumerate() {
        if let Some(problem) = cni_plugin_problem(text) {
            errs.push(FieldError::forbidden(
                format!("spec.chainCNIJsonData[{i}]"),
                format!("invalid {text}: error parsing configuration: {problem}"),
            ));
        }
    }
    errs
}

fn anno_path(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

/// The NAD name annotation may not be added or changed on update (removing it is not
/// checked, as upstream).
fn cr_name_unchanged(old: &SpiderMultusConfig, new: &SpiderMultusConfig) -> Option<FieldError> {
    let before = old.metadata.annotation(ANNO_MULTUS_CR_NAME);
    let after = new.metadata.annotation(ANNO_MULTUS_CR_NAME)?;
    let msg = match before {
        Some(b) if b != after => format!(
            "it's unsupported to change customized Multus net-attach-def resource name from '{b}' to '{after}'"
        ),
        Some(_) => return None,
        None => format!(
            "it's unsupported to changed Multus net-attach-def '{}' to customized name '{after}'",
            old.metadata.name.as_deref().unwrap_or_default()
        ),
    };
    Some(FieldError::invalid(anno_path(ANNO_MULTUS_CR_NAME), msg))
}

fn validate_annotations(obj: &SpiderMultusConfig, cluster: &ClusterState) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let cr_name = obj.metadata.annotation(ANNO_MULTUS_CR_NAME);
    let name_path = match cr_name {
        Some(_) => anno_path(ANNO_MULTUS_CR_NAME),
        None => "metadata.name".to_owned(),
    };
    let problems = cr_name.map(dns1123_subdomain_problems).unwrap_or_default();
    if !problems.is_empty() {
        errs.push(FieldError::invalid(
            name_path,
            format!(
                "invalid custom net-attach-def resource name, err: [{}]",
                problems.join(" ")
            ),
        ));
    } else if let Some(owner) = nad_owned_by_other(obj, cluster) {
        let ns = nad_namespace(obj);
        let nad = nad_name(obj).unwrap_or_default();
        errs.push(FieldError::invalid(
            name_path,
            format!(
                "the net-attach-def {ns}/{nad} already exists and is managed by SpiderMultusConfig {ns}/{owner}."
            ),
        ));
    }
    if let Some(v) = obj.metadata.annotation(ANNO_MULTUS_CNI_VERSION)
        && !SUPPORTED_CNI_VERSIONS.contains(&v)
    {
        errs.push(FieldError::invalid(
            anno_path(ANNO_MULTUS_CNI_VERSION),
            format!("unsupported CNI version {v}"),
        ));
    }
    errs
}

/// The name of another SMC that manages the NAD this one would write: an existing NAD
/// controlled by a different SMC (an unowned NAD is taken over), or, for offline cluster
/// files without NADs, another SMC of the namespace that renders the same NAD name.
fn nad_owned_by_other(obj: &SpiderMultusConfig, cluster: &ClusterState) -> Option<String> {
    let ns = nad_namespace(obj);
    let nad = nad_name(obj)?;
    let me = obj.metadata.name.as_deref().unwrap_or_default();
    let in_ns = |n: Option<&str>| n.filter(|n| !n.is_empty()).unwrap_or("default") == ns;
    let from_nads = cluster
        .nads
        .iter()
        .filter(|m| in_ns(m.namespace.as_deref()) && m.name.as_deref() == Some(nad))
        .flat_map(|m| m.owner_references.iter().flatten())
        .find(|o| o.kind == MULTUSCONFIG.kind && o.name != me)
        .map(|o| o.name.clone());
    from_nads.or_else(|| {
        cluster
            .multus_configs
            .iter()
            .find(|other| {
                let other_name = other.metadata.name.as_deref().unwrap_or_default();
                other_name != me
                    && nad_namespace(other) == ns
                    && nad_name(other) == Some(nad)
                    && !other.metadata.is_terminating()
            })
            .and_then(|other| other.metadata.name.clone())
    })
}

/// The fields macvlan, ipvlan and vlan share, borrowed for validation.
struct VlanLike<'a> {
    key: &'static str,
    master: &'a [String],
    mtu: Option<i32>,
    vlan_id: Option<i32>,
    bond: Option<&'a BondConfig>,
    rdma_resource_name: Option<&'a str>,
    ippools: Option<&'a SpiderpoolPools>,
}

/// The resource the inject annotations need (path, name) and the pools that go with it.
struct Resource<'a> {
    /// Field path of the resource name, e.g. `spec.sriov.resourceName`.
    path: String,
    /// The resource name (`""` when unset).
    name: &'a str,
    /// The block's `ippools`.
    pools: Option<&'a SpiderpoolPools>,
}

impl<'a> Resource<'a> {
    fn new(path: &str, name: &'a str, pools: Option<&'a SpiderpoolPools>) -> Self {
        Self {
            path: path.to_owned(),
            name,
            pools,
        }
    }
}

/// The CNI type and its block: the type is known, its block present and valid, no other
/// block given, and the inject annotations have what they need. Every problem is reported,
/// except that nothing about the type can be checked without a known type and its block.
fn validate_cni(obj: &SpiderMultusConfig) -> Vec<FieldError> {
    let spec = &obj.spec;
    let cni = match cni_type(spec) {
        Ok(cni) => cni,
        Err(e) => return vec![e],
    };
    let own_key = cni.block_key().unwrap_or("customCNI");
    let present = cni == CniType::Custom || spec.present_cni_blocks().contains(&own_key);
    if !present {
        return vec![FieldError::required(
            format!("spec.{own_key}"),
            format!("no spec.{own_key} specified"),
        )];
    }
    let mut errs = Vec::new();
    let resource = block_problems(spec, cni, &mut errs);
    errs.extend(other_blocks_problem(spec, cni, own_key));
    errs.extend(inject_problems(obj, cni, resource));
    errs
}

/// `spec.cniType`: given and supported.
fn cni_type(spec: &SpiderMultusConfigSpec) -> Result<CniType, FieldError> {
    let Some(raw) = spec.cni_type.as_deref() else {
        return Err(FieldError::required(
            "spec.cniType",
            "CniType must not be nil",
        ));
    };
    CniType::parse(raw)
        .map_err(|_| FieldError::not_supported("spec.cniType", raw, CniType::SUPPORTED))
}

/// The checks of the type's own block (pushed on `errs`); returns the resource the inject
/// annotations need, for the types that have one.
fn block_problems<'a>(
    spec: &'a SpiderMultusConfigSpec,
    cni: CniType,
    errs: &mut Vec<FieldError>,
) -> Option<Resource<'a>> {
    match cni {
        CniType::Macvlan | CniType::Ipvlan | CniType::Vlan => {
            let v = vlan_like(spec, cni)?;
            if cni == CniType::Vlan {
                errs.extend(vlan_mode_problems(spec));
            }
            errs.extend(vlan_like_problems(cni, &v));
            let path = format!("spec.{}.rdmaResourceName", v.key);
            let name = v.rdma_resource_name.unwrap_or_default();
            Some(Resource::new(&path, name, v.ippools))
        }
        CniType::Sriov => spec.sriov.as_ref().map(|c| sriov_problems(c, errs)),
        CniType::IbSriov => spec.ibsriov.as_ref().map(|c| ibsriov_problems(c, errs)),
        CniType::Ipoib => spec.ipoib.as_ref().map(|c| ipoib_problems(c, errs)),
        CniType::Ovs => {
            errs.extend(spec.ovs.as_ref().map(ovs_problems).unwrap_or_default());
            None
        }
        CniType::Custom => {
            errs.extend(custom_cni_problem(spec));
            None
        }
    }
}

/// `spec.sriov`: VLAN ID, MTU and rates in range, a resource name.
fn sriov_problems<'a>(
    c: &'a crate::objects::SpiderSriovCniConfig,
    errs: &mut Vec<FieldError>,
) -> Resource<'a> {
    errs.extend(vlan_id_problem("spec.sriov.vlanID", c.vlan_id));
    if let Some(mtu) = c.mtu.filter(|m| *m < 0) {
        errs.push(FieldError::invalid(
            "spec.sriov.mtu",
            format!("MTU must be greater than or equal to 0 (got {mtu})"),
        ));
    }
    for (field, v) in [
        ("minTxRateMbps", c.min_tx_rate_mbps),
        ("maxTxRateMbps", c.max_tx_rate_mbps),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            errs.push(FieldError::invalid(
                format!("spec.sriov.{field}"),
                format!("{field} must be greater than or equal to 0 (got {v})"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (c.min_tx_rate_mbps, c.max_tx_rate_mbps)
        && min > max
    {
        errs.push(FieldError::invalid(
            "spec.sriov.minTxRateMbps",
            format!("minTxRateMbps must be less than maxTxRateMbps ({min} > {max})"),
        ));
    }
    let rn = c.resource_name.as_deref().unwrap_or_default();
    if rn.is_empty() {
        errs.push(FieldError::required(
            "spec.sriov.resourceName",
            "no spec.sriov.resourceName specified",
        ));
    }
    Resource::new("spec.sriov.resourceName", rn, c.ippools.as_ref())
}

/// `spec.ibsriov`: a resource name, a supported link state.
fn ibsriov_problems<'a>(
    c: &'a crate::objects::SpiderIbSriovCniConfig,
    errs: &mut Vec<FieldError>,
) -> Resource<'a> {
    let rn = c.resource_name.as_deref().unwrap_or_default();
    if rn.is_empty() {
        errs.push(FieldError::required(
            "spec.ibsriov.resourceName",
            "no spec.ibsriov.resourceName specified",
        ));
    }
    if let Some(ls) = c.link_state.as_deref()
        && c.link_state().is_err()
    {
        errs.push(FieldError::not_supported(
            "spec.ibsriov.linkState",
            ls,
            crate::objects::LinkState::SUPPORTED,
        ));
    }
    Resource::new("spec.ibsriov.resourceName", rn, c.ippools.as_ref())
}

/// `spec.ipoib`: a master.
fn ipoib_problems<'a>(
    c: &'a crate::objects::SpiderIpoibCniConfig,
    errs: &mut Vec<FieldError>,
) -> Resource<'a> {
    let master = c.master.as_deref().unwrap_or_default();
    if master.is_empty() {
        errs.push(FieldError::required(
            "spec.ipoib.master",
            "no spec.ipoib.master specified",
        ));
    }
    Resource::new("spec.ipoib.master", master, c.ippools.as_ref())
}

/// `spec.customCNI`, when given, is JSON.
fn custom_cni_problem(spec: &SpiderMultusConfigSpec) -> Option<FieldError> {
    let text = spec.custom_cni.as_deref().filter(|t| !t.is_empty())?;
    serde_json::from_str::<serde_json::Value>(text)
        .is_err()
        .then(|| {
            FieldError::forbidden(
                "spec.customCNI",
                "customCniConfig isn't a valid JSON encoding",
            )
        })
}

/// Only the type's own block may be given.
fn other_blocks_problem(
    spec: &SpiderMultusConfigSpec,
    cni: CniType,
    own_key: &str,
) -> Option<FieldError> {
    let custom_too = cni != CniType::Custom && spec.custom_cni.is_some();
    let others = spec.present_cni_blocks().into_iter().any(|k| k != own_key);
    (others || custom_too).then(|| {
        FieldError::forbidden(
            "spec.cniType",
            format!(
                "the cniType {cni} only supports spec.{own_key}, please remove other CNI configs"
            ),
        )
    })
}

/// The RDMA / network resource inject annotations: refused for ovs and custom; otherwise
/// they need the block's resource name and pools.
fn inject_problems(
    obj: &SpiderMultusConfig,
    cni: CniType,
    resource: Option<Resource<'_>>,
) -> Option<FieldError> {
    let rdma_inject = obj.metadata.annotation(ANNO_RDMA_RESOURCE_INJECT).is_some();
    let net_inject = obj
        .metadata
        .annotation(ANNO_NETWORK_RESOURCE_INJECT)
        .is_some();
    if matches!(cni, CniType::Ovs | CniType::Custom) {
        return (rdma_inject || net_inject).then(|| {
            FieldError::forbidden(
                "metadata.annotations",
                format!(
                    "the cniType {cni} does not support RDMA resource or network resource injected"
                ),
            )
        });
    }
    let r = resource?;
    let id = format!(
        "{}/{}",
        nad_namespace(obj),
        obj.metadata.name.as_deref().unwrap_or_default()
    );
    let has_pools = r.pools.is_some_and(SpiderpoolPools::has_pools);
    let no_pools = || {
        let block = r.path.rsplit_once('.').map_or("", |(block, _)| block);
        FieldError::invalid(
            format!("{block}.ippools"),
            format!("no any ippools configured for spidermultusconfig {id}"),
        )
    };
    if rdma_inject && r.name.is_empty() {
        Some(FieldError::invalid(
            r.path.clone(),
            format!("rdmaResourceName can not empty for spidermultusconfig {id}"),
        ))
    } else if (rdma_inject || (net_inject && !r.name.is_empty())) && !has_pools {
        Some(no_pools())
    } else {
        None
    }
}

fn vlan_like(spec: &SpiderMultusConfigSpec, cni: CniType) -> Option<VlanLike<'_>> {
    match cni {
        CniType::Macvlan | CniType::Ipvlan => {
            let (key, c) = if cni == CniType::Macvlan {
                ("macvlan", spec.macvlan.as_ref()?)
            } else {
                ("ipvlan", spec.ipvlan.as_ref()?)
            };
            Some(VlanLike {
                key,
                master: &c.master,
                mtu: c.mtu,
                vlan_id: c.vlan_id,
                bond: c.bond.as_ref(),
                rdma_resource_name: c.rdma_resource_name.as_deref(),
                ippools: c.ippools.as_ref(),
            })
        }
        CniType::Vlan => {
            let c = spec.vlan.as_ref()?;
            Some(VlanLike {
                key: "vlan",
                master: &c.master,
                mtu: c.mtu,
                vlan_id: c.vlan_id,
                bond: c.bond.as_ref(),
                rdma_resource_name: c.rdma_resource_name.as_deref(),
                ippools: c.ippools.as_ref(),
            })
        }
        _ => None,
    }
}

fn vlan_id_problem(path: &str, vlan_id: Option<i32>) -> Option<FieldError> {
    let id = vlan_id.filter(|id| !(0..=4094).contains(id))?;
    Some(FieldError::invalid(
        path,
        format!("invalid vlanId {id}, please make sure vlanId in range [0,4094]"),
    ))
}

fn vlan_like_problems(cni: CniType, v: &VlanLike<'_>) -> Vec<FieldError> {
    let key = v.key;
    let mut errs = Vec::new();
    errs.extend(vlan_id_problem(&format!("spec.{key}.vlanID"), v.vlan_id));
    if let Some(mtu) = v.mtu.filter(|m| *m < 0) {
        errs.push(FieldError::invalid(
            format!("spec.{key}.mtu"),
            format!("MTU must be greater than or equal to 0 (got {mtu})"),
        ));
    }
    if v.ippools.and_then(|p| p.match_master_subnet) == Some(true) {
        errs.push(FieldError::invalid(
            format!("spec.{key}.ippools.matchMasterSubnet"),
            format!("MatchMasterSubnet feature is not supported for {cni}"),
        ));
    }
    if v.master.is_empty() {
        errs.push(FieldError::invalid(
            format!("spec.{key}.master"),
            "master can't be empty",
        ));
    } else if v.master.len() >= 2 {
        match v.bond {
            None => errs.push(FieldError::invalid(
                format!("spec.{key}.bond"),
                "the bond property is nil with multiple Interfaces",
            )),
            Some(b) if b.name.is_empty() => errs.push(FieldError::invalid(
                format!("spec.{key}.bond.name"),
                "bond name can't be empty",
            )),
            Some(_) => {}
        }
    }
    // A CRD schema rule (mode 0-6), checked here so offline validation sees it.
    if let Some(mode) = v.bond.map(|b| b.mode).filter(|m| !(0..=6).contains(m)) {
        errs.push(FieldError::invalid(
            format!("spec.{key}.bond.mode"),
            format!("bond mode {mode} must be in range [0,6]"),
        ));
    }
    errs
}

fn vlan_mode_problems(spec: &SpiderMultusConfigSpec) -> Vec<FieldError> {
    let Some(c) = spec.vlan.as_ref() else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    match (c.vlan_mode.as_deref(), c.vlan_mode()) {
        (None, _) => errs.push(FieldError::required(
            "spec.vlan.vlanMode",
            "vlanMode must not be nil",
        )),
        (Some(_), Ok(Some(VlanMode::Manual))) if c.vlan_id.is_none() => {
            errs.push(FieldError::required(
                "spec.vlan.vlanID",
                "vlanId must not be nil when vlanMode is manual",
            ));
        }
        (Some(_), Ok(Some(VlanMode::Auto))) if c.vlan_id.is_some() => {
            errs.push(FieldError::forbidden(
                "spec.vlan.vlanID",
                "vlanId must not be specified when vlanMode is auto",
            ));
        }
        (Some(m), Err(_)) => errs.push(FieldError::not_supported(
            "spec.vlan.vlanMode",
            m,
            VlanMode::SUPPORTED,
        )),
        _ => {}
    }
    errs
}

fn ovs_problems(c: &crate::objects::SpiderOvsCniConfig) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.bridge.is_empty() {
        errs.push(FieldError::required(
            "spec.ovs.bridge",
            "no spec.ovs.bridge specified",
        ));
    }
    errs.extend(vlan_id_problem("spec.ovs.vlan", c.vlan));
    for (i, t) in c.trunk.iter().flatten().enumerate() {
        let at = |f: &str| format!("spec.ovs.trunk[{i}].{f}");
        if t.min_id.is_some_and(|v| v > 4094) {
            errs.push(FieldError::invalid(
                at("minID"),
                "incorrect trunk minID parameter",
            ));
        }
        if t.max_id.is_some_and(|v| v > 4094) {
            errs.push(FieldError::invalid(
                at("maxID"),
                "incorrect trunk maxID parameter",
            ));
        }
        // Upstream compares only when both are set (it would crash on a lone maxID).
        if let (Some(min), Some(max)) = (t.min_id, t.max_id)
            && max < min
        {
            errs.push(FieldError::invalid(
                format!("spec.ovs.trunk[{i}]"),
                "minID is greater than maxID in trunk parameter",
            ));
        }
        // Upstream's webhook allows up to 4096 [sic]; the CRD schema (and 802.1Q) stop at 4094.
        if t.id.is_some_and(|v| v > 4094) {
            errs.push(FieldError::invalid(
                at("id"),
                "incorrect trunk id parameter",
            ));
        }
    }
    errs
}

/// Why `text` is not a CNI plugin config as libcni's `ConfFromBytes` reads it (a JSON
/// object whose `type` is a non-empty string), in Go's words where they matter.
fn cni_plugin_problem(text: &str) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(e.to_string()),
    };
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    };
    // Go decodes `null` into an empty struct, which then lacks a type.
    if value.is_null() {
        return Some("missing 'type'".to_owned());
    }
    let serde_json::Value::Object(map) = &value else {
        return Some(format!(
            "json: cannot unmarshal {} into Go value of type types.NetConf",
            kind(&value)
        ));
    };
    match map.get("type") {
        None | Some(serde_json::Value::Null) => Some("missing 'type'".to_owned()),
        Some(serde_json::Value::String(s)) if s.is_empty() => Some("missing 'type'".to_owned()),
        Some(serde_json::Value::String(_)) => None,
        Some(other) => Some(format!(
            "json: cannot unmarshal {} into Go struct field NetConf.type of type string",
            kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::Reason;
    use crate::meta::{ObjectMeta, OwnerReference};

    fn smc(spec: serde_json::Value) -> SpiderMultusConfig {
        SpiderMultusConfig::new("kube-system", "net1", serde_json::from_value(spec).unwrap())
    }

    fn with_annos(mut s: SpiderMultusConfig, annos: &[(&str, &str)]) -> SpiderMultusConfig {
        for (k, v) in annos {
            s.metadata.set_annotation(*k, *v);
        }
        s
    }

    fn defaulted(mut s: SpiderMultusConfig) -> SpiderMultusConfig {
        mutate(&mut s);
        s
    }

    fn check_in(s: SpiderMultusConfig, cluster: &ClusterState) -> Vec<FieldError> {
        validate(Operation::Create, &defaulted(s), None, cluster)
    }

    fn check(s: SpiderMultusConfig) -> Vec<FieldError> {
        check_in(s, &ClusterState::default())
    }

    #[track_caller]
    fn assert_ok(errs: &[FieldError]) {
        assert!(errs.is_empty(), "unexpected: {errs:?}");
    }

    #[track_caller]
    fn assert_err(errs: &[FieldError], path: &str, reason: Reason, msg: &str) {
        assert!(
            errs.iter()
                .any(|e| e.path == path && e.reason == reason && e.message.contains(msg)),
            "expected {path}: {reason}: ..{msg}.. in {errs:?}"
        );
    }

    fn macvlan(block: serde_json::Value) -> SpiderMultusConfig {
        smc(json!({"cniType": "macvlan", "macvlan": block}))
    }

    // --- mutating webhook ---

    #[test]
    fn admission_smc_mutate_custom_default() {
        let s = defaulted(smc(json!({"coordinator": {"mode": "underlay"}})));
        assert_eq!(s.spec.cni_type.as_deref(), Some("custom"));
        assert_eq!(s.spec.custom_cni.as_deref(), Some(""));
        assert_eq!(s.spec.coordinator, None);
        assert_eq!(s.spec.enable_coordinator, Some(false));
        assert_eq!(s.spec.chain_cni_json_data.as_deref(), Some(&[][..]));
        assert_eq!(s.spec.disable_ipam, Some(false));
    }

    #[test]
    fn admission_smc_mutate_macvlan_and_absent_coordinator() {
        let s = defaulted(macvlan(json!({
            "master": ["a", "b"], "bond": {"name": "bond0", "mode": 1}
        })));
        let m = s.spec.macvlan.as_ref().unwrap();
        assert_eq!((m.vlan_id, m.mtu), (Some(0), Some(0)));
        assert_eq!(m.rdma_resource_name.as_deref(), Some(""));
        assert_eq!(m.bond.as_ref().unwrap().options.as_deref(), Some(""));
        assert_eq!(m.ippools, Some(empty_pools()));
        assert_eq!(s.spec.enable_coordinator, Some(true));
        let c = s.spec.coordinator.unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"mode": "auto", "hijackCIDR": [], "policyRoutes": [], "podMACPrefix": "",
                   "tunePodRoutes": true, "podDefaultRouteNIC": "", "podRPFilter": 0,
                   "vethLinkAddress": ""})
        );
    }

    #[test]
    fn admission_smc_mutate_given_coordinator() {
        let s = defaulted(macvlan(json!({"master": ["a"]})));
        assert_eq!(s.spec.coordinator.as_ref().unwrap().tx_queue_len, None);
        let mut s = macvlan(json!({"master": ["a"]}));
        s.spec.coordinator = Some(serde_json::from_value(json!({"podCIDRType": "none"})).unwrap());
        let c = defaulted(s).spec.coordinator.unwrap();
        // The CRD default `true`, not the webhook's `false` (see default_coordinator).
        assert_eq!(c.tune_pod_routes, Some(true));
        assert_eq!(c.tx_queue_len, Some(0));
        assert_eq!(c.host_rule_table, Some(500));
        assert_eq!(c.pod_rp_filter, Some(0));
        assert_eq!(c.mode.as_deref(), Some("auto"));
        assert_eq!(c.veth_link_address, None);
        assert_eq!(c.veth_mtu, None);
    }

    #[test]
    fn admission_smc_mutate_per_type_defaults() {
        let s = defaulted(smc(json!({"cniType": "vlan", "vlan": {"master": ["a"]}})));
        let v = s.spec.vlan.unwrap();
        assert_eq!(
            (v.vlan_mode.as_deref(), v.vlan_id),
            (Some("manual"), Some(0))
        );
        let s = defaulted(smc(
            json!({"cniType": "vlan", "vlan": {"master": ["a"], "vlanMode": "auto"}}),
        ));
        assert_eq!(s.spec.vlan.unwrap().vlan_id, None);

        let s = defaulted(smc(
            json!({"cniType": "sriov", "sriov": {"ippools": {"ipv4": ["p"]}}}),
        ));
        let c = s.spec.sriov.unwrap();
        assert_eq!((c.vlan_id, c.mtu), (Some(0), Some(0)));
        assert_eq!((c.min_tx_rate_mbps, c.max_tx_rate_mbps), (Some(0), Some(0)));
        assert_eq!(c.rdma_isolation, Some(false));
        assert_eq!(c.resource_name.as_deref(), Some(""));
        let pools = c.ippools.unwrap();
        assert_eq!(pools.match_master_subnet, Some(false));
        assert_eq!(pools.ipv4.unwrap(), ["p"]);

        let s = defaulted(smc(json!({"cniType": "ib-sriov", "ibsriov": {}})));
        let c = s.spec.ibsriov.unwrap();
        assert_eq!(c.pkey.as_deref(), Some(""));
        assert_eq!(c.link_state.as_deref(), Some("enable"));
        assert_eq!(c.rdma_isolation, Some(true));
        assert_eq!(c.enable_ib_kubernetes, Some(false));

        let s = defaulted(smc(json!({"cniType": "ovs", "ovs": {"bridge": "br1"}})));
        assert_eq!(s.spec.ovs.unwrap().vlan, Some(0));
        let s = defaulted(smc(json!({"cniType": "ipoib", "ipoib": {"master": "ib0"}})));
        assert_eq!(s.spec.ipoib.unwrap().ippools, Some(empty_pools()));
    }

    #[test]
    fn admission_smc_mutate_inject_labels() {
        let s = defaulted(with_annos(
            macvlan(json!({"master": ["a"]})),
            &[(ANNO_RDMA_RESOURCE_INJECT, "rdma-net"), ("other", "x")],
        ));
        assert_eq!(
            s.metadata.label(ANNO_RDMA_RESOURCE_INJECT),
            Some("rdma-net")
        );
        assert_eq!(s.metadata.label("other"), None);
    }

    // --- validating webhook: metadata and annotations ---

    #[test]
    fn admission_smc_name_required_and_delete_allowed() {
        let mut s = macvlan(json!({"master": ["a"]}));
        s.metadata.name = None;
        assert_err(
            &check(s.clone()),
            "metadata.name",
            Reason::Required,
            "required",
        );
        assert_ok(&validate(
            Operation::Delete,
            &s,
            None,
            &ClusterState::default(),
        ));
        let mut s = macvlan(json!({"master": ["a"]}));
        s.metadata.name = Some("Net_1".to_owned());
        assert_err(&check(s), "metadata.name", Reason::Invalid, "RFC 1123");
    }

    #[test]
    fn admission_smc_cr_name_immutable() {
        let path = "metadata.annotations[multus.spidernet.io/cr-name]";
        let old = defaulted(with_annos(
            macvlan(json!({"master": ["a"]})),
            &[(ANNO_MULTUS_CR_NAME, "nad-a")],
        ));
        let upd = |new: &SpiderMultusConfig, old: &SpiderMultusConfig| {
            validate(Operation::Update, new, Some(old), &ClusterState::default())
        };
        let changed = with_annos(old.clone(), &[(ANNO_MULTUS_CR_NAME, "nad-b")]);
        assert_err(
            &upd(&changed, &old),
            path,
            Reason::Invalid,
            "it's unsupported to change customized Multus net-attach-def resource name from 'nad-a' to 'nad-b'",
        );
        assert_ok(&upd(&old, &old));
        let plain = defaulted(macvlan(json!({"master": ["a"]})));
        assert_err(
            &upd(&old, &plain),
            path,
            Reason::Invalid,
            "it's unsupported to changed Multus net-attach-def 'net1' to customized name 'nad-a'",
        );
        // Removing it is not checked upstream either.
        assert_ok(&upd(&plain, &old));
    }

    #[test]
    fn admission_smc_cr_name_must_be_dns_subdomain() {
        let s = with_annos(
            macvlan(json!({"master": ["a"]})),
            &[(ANNO_MULTUS_CR_NAME, "Bad_Name")],
        );
        assert_err(
            &check(s),
            "metadata.annotations[multus.spidernet.io/cr-name]",
            Reason::Invalid,
            "invalid custom net-attach-def resource name, err: [a lowercase RFC 1123 subdomain",
        );
    }

    fn nad_meta(ns: &str, name: &str, owner: Option<&str>) -> ObjectMeta {
        let mut m = ObjectMeta::named(name);
        m.namespace = Some(ns.to_owned());
        m.owner_references = owner.map(|o| {
            vec![OwnerReference {
                api_version: "spiderpool.spidernet.io/v2beta1".to_owned(),
                kind: "SpiderMultusConfig".to_owned(),
                name: o.to_owned(),
                uid: "u".to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
                extra: serde_json::Map::new(),
            }]
        });
        m
    }

    #[test]
    fn admission_smc_nad_owned_by_another_smc() {
        let cluster = ClusterState {
            nads: vec![
                nad_meta("kube-system", "net1", Some("other")),
                nad_meta("kube-system", "free", None),
                nad_meta("default", "taken", Some("x")),
            ],
            ..ClusterState::default()
        };
        assert_err(
            &check_in(macvlan(json!({"master": ["a"]})), &cluster),
            "metadata.name",
            Reason::Invalid,
            "the net-attach-def kube-system/net1 already exists and is managed by SpiderMultusConfig kube-system/other.",
        );
        // An unowned NAD is taken over; a same-named NAD in another namespace is irrelevant.
        for target in ["free", "taken"] {
            let s = with_annos(
                macvlan(json!({"master": ["a"]})),
                &[(ANNO_MULTUS_CR_NAME, target)],
            );
            assert_ok(&check_in(s, &cluster));
        }
        // Our own NAD is fine.
        let cluster = ClusterState {
            nads: vec![nad_meta("kube-system", "net1", Some("net1"))],
            ..ClusterState::default()
        };
        assert_ok(&check_in(macvlan(json!({"master": ["a"]})), &cluster));
    }

    #[test]
    fn admission_smc_nad_name_claimed_by_another_smc_in_cluster() {
        let other = with_annos(
            SpiderMultusConfig::new("kube-system", "first", Default::default()),
            &[(ANNO_MULTUS_CR_NAME, "shared")],
        );
        let cluster = ClusterState {
            multus_configs: vec![other],
            ..ClusterState::default()
        };
        let s = with_annos(
            macvlan(json!({"master": ["a"]})),
            &[(ANNO_MULTUS_CR_NAME, "shared")],
        );
        assert_err(
            &check_in(s, &cluster),
            "metadata.annotations[multus.spidernet.io/cr-name]",
            Reason::Invalid,
            "already exists and is managed by SpiderMultusConfig kube-system/first.",
        );
    }

    #[test]
    fn admission_smc_cni_version() {
        for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
            let s = with_annos(
                macvlan(json!({"master": ["a"]})),
                &[(ANNO_MULTUS_CNI_VERSION, v)],
            );
            assert_ok(&check(s));
        }
        let s = with_annos(
            macvlan(json!({"master": ["a"]})),
            &[(ANNO_MULTUS_CNI_VERSION, "1.1.0")],
        );
        assert_err(
            &check(s),
            "metadata.annotations[multus.spidernet.io/cni-version]",
            Reason::Invalid,
            "unsupported CNI version 1.1.0",
        );
    }

    // --- validating webhook: per-type rules ---

    #[test]
    fn admission_smc_cni_type_and_required_block() {
        assert_err(
            &check(smc(json!({"cniType": "bridge"}))),
            "spec.cniType",
            Reason::NotSupported,
            "\"bridge\": supported values:",
        );
        for (t, key) in [
            ("macvlan", "macvlan"),
            ("ipvlan", "ipvlan"),
            ("vlan", "vlan"),
            ("sriov", "sriov"),
            ("ib-sriov", "ibsriov"),
            ("ipoib", "ipoib"),
            ("ovs", "ovs"),
        ] {
            assert_err(
                &check(smc(json!({"cniType": t}))),
                &format!("spec.{key}"),
                Reason::Required,
                &format!("no spec.{key} specified"),
            );
        }
        let mut raw = macvlan(json!({"master": ["a"]}));
        raw.spec.cni_type = None;
        let errs = validate(Operation::Create, &raw, None, &ClusterState::default());
        assert_err(
            &errs,
            "spec.cniType",
            Reason::Required,
            "CniType must not be nil",
        );
    }

    #[test]
    fn admission_smc_vlan_like_rules() {
        for t in ["macvlan", "ipvlan", "vlan"] {
            let mk = |block: serde_json::Value| smc(json!({"cniType": t, t: block}));
            assert_ok(&check(mk(
                json!({"master": ["a"], "vlanID": 4094, "mtu": 9000}),
            )));
            assert_err(
                &check(mk(json!({"master": ["a"], "vlanID": 4095}))),
                &format!("spec.{t}.vlanID"),
                Reason::Invalid,
                "invalid vlanId 4095, please make sure vlanId in range [0,4094]",
            );
            assert_err(
                &check(mk(json!({"master": ["a"], "vlanID": -1}))),
                &format!("spec.{t}.vlanID"),
                Reason::Invalid,
                "invalid vlanId -1",
            );
            assert_err(
                &check(mk(json!({"master": ["a"], "mtu": -1}))),
                &format!("spec.{t}.mtu"),
                Reason::Invalid,
                "MTU must be greater than or equal to 0",
            );
            assert_err(
                &check(mk(json!({"master": []}))),
                &format!("spec.{t}.master"),
                Reason::Invalid,
                "master can't be empty",
            );
            assert_err(
                &check(mk(json!({"master": ["a", "b"]}))),
                &format!("spec.{t}.bond"),
                Reason::Invalid,
                "the bond property is nil with multiple Interfaces",
            );
            assert_err(
                &check(mk(
                    json!({"master": ["a", "b"], "bond": {"name": "", "mode": 1}}),
                )),
                &format!("spec.{t}.bond.name"),
                Reason::Invalid,
                "bond name can't be empty",
            );
            assert_err(
                &check(mk(
                    json!({"master": ["a", "b"], "bond": {"name": "b0", "mode": 7}}),
                )),
                &format!("spec.{t}.bond.mode"),
                Reason::Invalid,
                "must be in range [0,6]",
            );
            assert_ok(&check(mk(
                json!({"master": ["a", "b"], "bond": {"name": "b0", "mode": 6}}),
            )));
            assert_err(
                &check(mk(
                    json!({"master": ["a"], "ippools": {"matchMasterSubnet": true}}),
                )),
                &format!("spec.{t}.ippools.matchMasterSubnet"),
                Reason::Invalid,
                &format!("MatchMasterSubnet feature is not supported for {t}"),
            );
        }
    }

    #[test]
    fn admission_smc_other_blocks_forbidden() {
        let s = smc(json!({"cniType": "macvlan", "macvlan": {"master": ["a"]},
                           "sriov": {"resourceName": "r"}}));
        assert_err(
            &check(s),
            "spec.cniType",
            Reason::Forbidden,
            "the cniType macvlan only supports spec.macvlan, please remove other CNI configs",
        );
        let s = smc(
            json!({"cniType": "ib-sriov", "ibsriov": {"resourceName": "r"},
                           "customCNI": ""}),
        );
        assert_err(
            &check(s),
            "spec.cniType",
            Reason::Forbidden,
            "the cniType ib-sriov only supports spec.ibsriov",
        );
        let s = smc(json!({"cniType": "custom", "ovs": {"bridge": "br"}}));
        assert_err(
            &check(s),
            "spec.cniType",
            Reason::Forbidden,
            "the cniType custom only supports spec.customCNI, please remove other CNI configs",
        );
    }

    #[test]
    fn admission_smc_vlan_mode() {
        let mk = |block: serde_json::Value| smc(json!({"cniType": "vlan", "vlan": block}));
        assert_ok(&check(mk(json!({"master": ["a"], "vlanMode": "auto"}))));
        assert_err(
            &check(mk(
                json!({"master": ["a"], "vlanMode": "auto", "vlanID": 5}),
            )),
            "spec.vlan.vlanID",
            Reason::Forbidden,
            "vlanId must not be specified when vlanMode is auto",
        );
        assert_err(
            &check(mk(json!({"master": ["a"], "vlanMode": "trunk"}))),
            "spec.vlan.vlanMode",
            Reason::NotSupported,
            r#""trunk": supported values: "manual", "auto""#,
        );
        // Only reachable without defaulting (the webhook fills vlanID 0 in manual mode).
        let raw = mk(json!({"master": ["a"], "vlanMode": "manual"}));
        let errs = validate(Operation::Create, &raw, None, &ClusterState::default());
        assert_err(
            &errs,
            "spec.vlan.vlanID",
            Reason::Required,
            "vlanId must not be nil when vlanMode is manual",
        );
    }

    #[test]
    fn admission_smc_sriov_and_ib_sriov() {
        let mk = |block: serde_json::Value| smc(json!({"cniType": "sriov", "sriov": block}));
        assert_ok(&check(mk(json!({"resourceName": "r", "minTxRateMbps": 10,
                                    "maxTxRateMbps": 10,
                                    "ippools": {"matchMasterSubnet": true}}))));
        assert_err(
            &check(mk(json!({}))),
            "spec.sriov.resourceName",
            Reason::Required,
            "no spec.sriov.resourceName specified",
        );
        assert_err(
            &check(mk(
                json!({"resourceName": "r", "minTxRateMbps": 100, "maxTxRateMbps": 10}),
            )),
            "spec.sriov.minTxRateMbps",
            Reason::Invalid,
            "minTxRateMbps must be less than maxTxRateMbps",
        );
        assert_err(
            &check(mk(json!({"resourceName": "r", "vlanID": 4095, "mtu": -5}))),
            "spec.sriov.mtu",
            Reason::Invalid,
            "MTU must be greater than or equal to 0",
        );
        assert_err(
            &check(mk(json!({"resourceName": "r", "vlanID": 4095}))),
            "spec.sriov.vlanID",
            Reason::Invalid,
            "invalid vlanId 4095",
        );

        let mk = |block: serde_json::Value| smc(json!({"cniType": "ib-sriov", "ibsriov": block}));
        assert_ok(&check(mk(
            json!({"resourceName": "r", "linkState": "auto"}),
        )));
        assert_err(
            &check(mk(json!({"resourceName": ""}))),
            "spec.ibsriov.resourceName",
            Reason::Required,
            "no spec.ibsriov.resourceName specified",
        );
        assert_err(
            &check(mk(json!({"resourceName": "r", "linkState": "up"}))),
            "spec.ibsriov.linkState",
            Reason::NotSupported,
            "\"up\"",
        );
    }

    #[test]
    fn admission_smc_ipoib_master() {
        assert_ok(&check(smc(
            json!({"cniType": "ipoib", "ipoib": {"master": "ib0"}}),
        )));
        assert_err(
            &check(smc(json!({"cniType": "ipoib", "ipoib": {}}))),
            "spec.ipoib.master",
            Reason::Required,
            "no spec.ipoib.master specified",
        );
    }

    #[test]
    fn admission_smc_ovs() {
        let mk = |block: serde_json::Value| smc(json!({"cniType": "ovs", "ovs": block}));
        assert_ok(&check(mk(json!({"bridge": "br1", "vlan": 4094,
            "trunk": [{"minID": 0, "maxID": 4094}, {"id": 4094}, {"minID": 7}]}))));
        assert_err(
            &check(mk(json!({"bridge": ""}))),
            "spec.ovs.bridge",
            Reason::Required,
            "no spec.ovs.bridge specified",
        );
        assert_err(
            &check(mk(json!({"bridge": "br1", "vlan": 4095}))),
            "spec.ovs.vlan",
            Reason::Invalid,
            "invalid vlanId 4095",
        );
        let errs = check(mk(json!({"bridge": "br1", "trunk": [
            {"minID": 4095}, {"maxID": 5000}, {"minID": 20, "maxID": 10}, {"id": 4095}
        ]})));
        assert_err(
            &errs,
            "spec.ovs.trunk[0].minID",
            Reason::Invalid,
            "incorrect trunk minID parameter",
        );
        assert_err(
            &errs,
            "spec.ovs.trunk[1].maxID",
            Reason::Invalid,
            "incorrect trunk maxID parameter",
        );
        assert_err(
            &errs,
            "spec.ovs.trunk[2]",
            Reason::Invalid,
            "minID is greater than maxID in trunk parameter",
        );
        assert_err(
            &errs,
            "spec.ovs.trunk[3].id",
            Reason::Invalid,
            "incorrect trunk id parameter",
        );
        let s = with_annos(
            mk(json!({"bridge": "br1"})),
            &[(ANNO_NETWORK_RESOURCE_INJECT, "x")],
        );
        assert_err(
            &check(s),
            "metadata.annotations",
            Reason::Forbidden,
            "the cniType ovs does not support RDMA resource or network resource injected",
        );
    }

    #[test]
    fn admission_smc_custom() {
        assert_ok(&check(smc(
            json!({"cniType": "custom", "customCNI": "{\"type\":\"x\"}"}),
        )));
        assert_ok(&check(smc(json!({"cniType": "custom"}))));
        assert_err(
            &check(smc(json!({"cniType": "custom", "customCNI": "{not json"}))),
            "spec.customCNI",
            Reason::Forbidden,
            "customCniConfig isn't a valid JSON encoding",
        );
        let s = with_annos(
            smc(json!({"cniType": "custom"})),
            &[(ANNO_RDMA_RESOURCE_INJECT, "x")],
        );
        assert_err(
            &check(s),
            "metadata.annotations",
            Reason::Forbidden,
            "the cniType custom does not support",
        );
    }

    #[test]
    fn admission_smc_rdma_resource_inject() {
        let id = "spidermultusconfig kube-system/net1";
        let anno = [(ANNO_RDMA_RESOURCE_INJECT, "rdma-net")];
        let s = with_annos(
            macvlan(json!({"master": ["a"], "ippools": {"ipv4": ["p"]}})),
            &anno,
        );
        assert_err(
            &check(s),
            "spec.macvlan.rdmaResourceName",
            Reason::Invalid,
            &format!("rdmaResourceName can not empty for {id}"),
        );
        let s = with_annos(
            macvlan(json!({"master": ["a"], "rdmaResourceName": "r"})),
            &anno,
        );
        assert_err(
            &check(s),
            "spec.macvlan.ippools",
            Reason::Invalid,
            &format!("no any ippools configured for {id}"),
        );
        let s = with_annos(
            macvlan(json!({"master": ["a"], "rdmaResourceName": "r", "ippools": {"ipv6": ["p"]}})),
            &anno,
        );
        assert_ok(&check(s));
        // sriov uses resourceName, ipoib its master.
        let s = with_annos(
            smc(json!({"cniType": "sriov", "sriov": {"resourceName": "r"}})),
            &anno,
        );
        assert_err(
            &check(s),
            "spec.sriov.ippools",
            Reason::Invalid,
            "no any ippools",
        );
        let s = with_annos(
            smc(
                json!({"cniType": "ipoib", "ipoib": {"master": "ib0", "ippools": {"ipv4": ["p"]}}}),
            ),
            &anno,
        );
        assert_ok(&check(s));
    }

    #[test]
    fn admission_smc_network_resource_inject() {
        let anno = [(ANNO_NETWORK_RESOURCE_INJECT, "net")];
        // No resource: nothing to check.
        assert_ok(&check(with_annos(macvlan(json!({"master": ["a"]})), &anno)));
        let s = with_annos(
            smc(json!({"cniType": "ib-sriov", "ibsriov": {"resourceName": "r"}})),
            &anno,
        );
        assert_err(
            &check(s),
            "spec.ibsriov.ippools",
            Reason::Invalid,
            "no any ippools configured for spidermultusconfig kube-system/net1",
        );
    }

    #[test]
    fn admission_smc_coordinator_spec() {
        let mut s = macvlan(json!({"master": ["a"]}));
        s.spec.coordinator = Some(
            serde_json::from_value(json!({"podMACPrefix": "01:00", "mode": "disable",
                                          "hijackCIDR": ["x"], "podRPFilter": 5}))
            .unwrap(),
        );
        let errs = check(s);
        assert_err(
            &errs,
            "spec.coordinator.podMACPrefix",
            Reason::Invalid,
            "not a unicast MAC",
        );
        assert_err(
            &errs,
            "spec.coordinator.hijackCIDR[0]",
            Reason::Invalid,
            "\"x\"",
        );
        assert_err(
            &errs,
            "spec.coordinator.podRPFilter",
            Reason::NotSupported,
            "5:",
        );
        assert_eq!(errs.len(), 3, "{errs:?}");
        // podCIDRType is optional here.
        let mut s = macvlan(json!({"master": ["a"]}));
        s.spec.coordinator = Some(serde_json::from_value(json!({"mode": "disabled"})).unwrap());
        assert_ok(&check(s));
    }

    #[test]
    fn admission_smc_chain_cni_json_data() {
        let mk = |entries: &[&str]| {
            smc(json!({"cniType": "macvlan", "macvlan": {"master": ["a"]},
                       "chainCNIJsonData": entries}))
        };
        assert_ok(&check(mk(&[
            r#"{"type":"tuning","mtu":1500}"#,
            r#"{"type":"sbr"}"#,
        ])));
        let errs = check(mk(&[
            r#"{"type":"sbr"}"#,
            r#"{"name":"x"}"#,
            "{nope",
            "[1]",
            r#"{"type":7}"#,
            r#"{"type":""}"#,
        ]));
        assert_err(
            &errs,
            "spec.chainCNIJsonData[1]",
            Reason::Forbidden,
            r#"invalid {"name":"x"}: error parsing configuration: missing 'type'"#,
        );
        assert_err(
            &errs,
            "spec.chainCNIJsonData[2]",
            Reason::Forbidden,
            "invalid {nope: error parsing configuration:",
        );
        assert_err(
            &errs,
            "spec.chainCNIJsonData[3]",
            Reason::Forbidden,
            "cannot unmarshal array into Go value of type types.NetConf",
        );
        assert_err(
            &errs,
            "spec.chainCNIJsonData[4]",
            Reason::Forbidden,
            "cannot unmarshal number into Go struct field NetConf.type of type string",
        );
        assert_err(
            &errs,
            "spec.chainCNIJsonData[5]",
            Reason::Forbidden,
            "missing 'type'",
        );
        assert_eq!(errs.len(), 5, "{errs:?}");
    }
}
