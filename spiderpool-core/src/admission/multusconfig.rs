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

fn validate_cni(obj: &SpiderMultusConfig) -> Vec<FieldError> {
    let spec = &obj.spec;
    let mut errs = Vec::new();
    let Some(raw) = spec.cni_type.as_deref() else {
        errs.push(FieldError::required(
            "spec.cniType",
            "CniType must not be nil",
        ));
        return errs;
    };
    let Ok(cni) = CniType::parse(raw) else {
        errs.push(FieldError::not_supported(
            "spec.cniType",
            raw,
            CniType::SUPPORTED,
        ));
        return errs;
    };
    let rdma_inject = obj.metadata.annotation(ANNO_RDMA_RESOURCE_INJECT).is_some();
    let net_inject = obj
        .metadata
        .annotation(ANNO_NETWORK_RESOURCE_INJECT)
        .is_some();
    let id = format!(
        "{}/{}",
        nad_namespace(obj),
        obj.metadata.name.as_deref().unwrap_or_default()
    );

    // Block presence first: nothing else about the type can be checked without it.
    let own_key = cni.block_key().unwrap_or("customCNI");
    let present = match cni {
        CniType::Custom => true,
        _ => spec.present_cni_blocks().contains(&own_key),
    };
    if !present {
        errs.push(FieldError::required(
            format!("spec.{own_key}"),
            format!("no spec.{own_key} specified"),
        ));
        return errs;
    }

    // The resource whose presence the inject annotations need, and the pools that go with it.
    let mut resource: Option<(String, &str, Option<&SpiderpoolPools>)> = None;
    match cni {
        CniType::Macvlan | CniType::Ipvlan | CniType::Vlan => {
            let v = vlan_like(spec, cni);
            if let Some(v) = v {
                if cni == CniType::Vlan {
                    errs.extend(vlan_mode_problems(spec));
                }
                errs.extend(vlan_like_problems(cni, &v));
                resource = Some((
                    format!("spec.{}.rdmaResourceName", v.key),
                    v.rdma_resource_name.unwrap_or_default(),
                    v.ippools,
                ));
            }
        }
        CniType::Sriov => {
            if let Some(c) = spec.sriov.as_ref() {
                if let Some(e) = vlan_id_problem("spec.sriov.vlanID", c.vlan_id) {
                    errs.push(e);
                }
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
                resource = Some(("spec.sriov.resourceName".to_owned(), rn, c.ippools.as_ref()));
            }
        }
        CniType::IbSriov => {
            if let Some(c) = spec.ibsriov.as_ref() {
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
                resource = Some((
                    "spec.ibsriov.resourceName".to_owned(),
                    rn,
                    c.ippools.as_ref(),
                ));
            }
        }
        CniType::Ipoib => {
            if let Some(c) = spec.ipoib.as_ref() {
                let master = c.master.as_deref().unwrap_or_default();
                if master.is_empty() {
                    errs.push(FieldError::required(
                        "spec.ipoib.master",
                        "no spec.ipoib.master specified",
                    ));
                }
                resource = Some(("spec.ipoib.master".to_owned(), master, c.ippools.as_ref()));
            }
        }
        CniType::Ovs => {
            if let Some(c) = spec.ovs.as_ref() {
                errs.extend(ovs_problems(c));
            }
        }
        CniType::Custom => {
            if let Some(text) = spec.custom_cni.as_deref().filter(|t| !t.is_empty())
                && serde_json::from_str::<serde_json::Value>(text).is_err()
            {
                errs.push(FieldError::forbidden(
                    "spec.customCNI",
                    "customCniConfig isn't a valid JSON encoding",
                ));
            }
        }
    }

    let others: Vec<&str> = spec
        .present_cni_blocks()
        .into_iter()
        .filter(|k| *k != own_key)
        .chain((cni != CniType::Custom && spec.custom_cni.is_some()).then_some("customCNI"))
        .collect();
    if !others.is_empty() {
        errs.push(FieldError::forbidden(
            "spec.cniType",
            format!(
                "the cniType {cni} only supports spec.{own_key}, please remove other CNI configs"
            ),
        ));
    }

    if matches!(cni, CniType::Ovs | CniType::Custom) {
        if rdma_inject || net_inject {
            errs.push(FieldError::forbidden(
                "metadata.annotations",
                format!(
                    "the cniType {cni} does not support RDMA resource or network resource injected"
                ),
            ));
        }
    } else if let Some((path, name, pools)) = resource {
        let has_pools = pools.is_some_and(SpiderpoolPools::has_pools);
        let pools_path = path
            .rsplit_once('.')
            .map(|(block, _)| format!("{block}.ippools"))
            .unwrap_or_default();
        let no_pools = || {
            FieldError::invalid(
                pools_path.clone(),
                format!("no any ippools configured for spidermultusconfig {id}"),
            )
        };
        if rdma_inject {
            if name.is_empty() {
                errs.push(FieldError::invalid(
                    path,
                    format!("rdmaResourceName can not empty for spidermultusconfig {id}"),
                ));
            } else if !has_pools {
                errs.push(no_pools());
            }
        } else if net_inject && !name.is_empty() && !has_pools {
            errs.push(no_pools());
        }
    }
    errs
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
