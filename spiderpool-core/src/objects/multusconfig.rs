//! SpiderMultusConfig (SMC): a namespaced description of a Multus network, rendered into a
//! NetworkAttachmentDefinition of the same name.

use crate::manifest::ManifestError;
use serde::{Deserialize, Serialize};

use super::{CniType, CoordinatorSpec, LinkState, VlanMode, kinds};
use crate::meta::ObjectMeta;

kinds::spider_kind! {
    /// A SpiderMultusConfig (`spidermultusconfigs`, short name `smc`, namespaced, no status).
    SpiderMultusConfig = super::MULTUSCONFIG, kind_default = "SpiderMultusConfig::default_kind", {
        /// The network description.
        #[serde(default)]
        spec: SpiderMultusConfigSpec,
    }
}

/// `SpiderMultusConfig.spec` (upstream `MultusCNIConfigSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderMultusConfigSpec {
    /// Main CNI: `macvlan`, `ipvlan`, `vlan`, `sriov`, `ovs`, `ib-sriov`, `ipoib` or `custom`
    /// (the default). Kept as text so admission can report an unsupported value; see
    /// [`SpiderMultusConfigSpec::cni_type`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend(
            "enum" = ["macvlan", "ipvlan", "vlan", "sriov", "ovs", "ib-sriov", "ipoib", "custom"],
            "default" = "custom"
        ))
    )]
    pub cni_type: Option<String>,
    /// macvlan settings (`cniType: macvlan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<SpiderMacvlanCniConfig>,
    /// ipvlan settings (`cniType: ipvlan`), same fields as macvlan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvlan: Option<SpiderIPvlanCniConfig>,
    /// vlan settings (`cniType: vlan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<SpiderVlanCniConfig>,
    /// SR-IOV settings (`cniType: sriov`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov: Option<SpiderSriovCniConfig>,
    /// OVS settings (`cniType: ovs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<SpiderOvsCniConfig>,
    /// InfiniBand SR-IOV settings (`cniType: ib-sriov`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ibsriov: Option<SpiderIbSriovCniConfig>,
    /// IPoIB settings (`cniType: ipoib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipoib: Option<SpiderIpoibCniConfig>,
    /// Append the coordinator plugin (forced false for `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub enable_coordinator: Option<bool>,
    /// Omit the `ipam` block of the main plugin.
    #[serde(
        default,
        rename = "disableIPAM",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub disable_ipam: Option<bool>,
    /// Per-network coordinator overrides (same type as `SpiderCoordinator.spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<CoordinatorSpec>,
    /// Extra chained plugins, each a JSON CNI plugin object as text.
    #[serde(
        default,
        rename = "chainCNIJsonData",
        skip_serializing_if = "Option::is_none"
    )]
    pub chain_cni_json_data: Option<Vec<String>>,
    /// Raw CNI config used verbatim for `cniType: custom`.
    #[serde(default, rename = "customCNI", skip_serializing_if = "Option::is_none")]
    pub custom_cni: Option<String>,
}

/// macvlan settings; also the ipvlan settings ([`SpiderIPvlanCniConfig`]), which upstream
/// declares as a separate Go type with identical fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderMacvlanCniConfig {
    /// Parent interface(s); two or more need `bond`.
    pub master: Vec<String>,
    /// MTU (0: kernel default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0), extend("default" = 0)))]
    pub mtu: Option<i32>,
    /// Non-zero: `ifacer` creates `<master>.<vlanID>` first.
    #[serde(default, rename = "vlanID", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub vlan_id: Option<i32>,
    /// Bond built from all masters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<BondConfig>,
    /// RDMA resource injected into pods by the pod webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_resource_name: Option<String>,
    /// Default pools of the network; see [`SpiderpoolPools`].
    #[serde(
        default,
        alias = "spiderpoolConfigPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ippools: Option<SpiderpoolPools>,
}

/// ipvlan settings: the same fields as macvlan.
pub type SpiderIPvlanCniConfig = SpiderMacvlanCniConfig;

/// vlan settings: macvlan's fields plus `vlanMode`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderVlanCniConfig {
    /// Parent interface(s); two or more need `bond`.
    pub master: Vec<String>,
    /// MTU (0: kernel default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0), extend("default" = 0)))]
    pub mtu: Option<i32>,
    /// `manual` (vlanID required, the default) or `auto` (vlanID forbidden); see
    /// [`SpiderVlanCniConfig::vlan_mode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["manual", "auto"], "default" = "manual"))
    )]
    pub vlan_mode: Option<String>,
    /// VLAN id given to the vlan CNI.
    #[serde(default, rename = "vlanID", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub vlan_id: Option<i32>,
    /// Bond built from all masters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<BondConfig>,
    /// RDMA resource injected into pods by the pod webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_resource_name: Option<String>,
    /// Default pools of the network.
    #[serde(
        default,
        alias = "spiderpoolConfigPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ippools: Option<SpiderpoolPools>,
}

/// SR-IOV settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderSriovCniConfig {
    /// Device-plugin resource name of the VFs (must be non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// VLAN id of the VF.
    #[serde(default, rename = "vlanID", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub vlan_id: Option<i32>,
    /// MTU; above 0 appends a `tuning` plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0), extend("default" = 0)))]
    pub mtu: Option<i32>,
    /// Minimum tx rate in Mbps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub min_tx_rate_mbps: Option<i64>,
    /// Maximum tx rate in Mbps (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub max_tx_rate_mbps: Option<i64>,
    /// Append the `rdma` plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub rdma_isolation: Option<bool>,
    /// Default pools of the network.
    #[serde(
        default,
        alias = "spiderpoolConfigPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ippools: Option<SpiderpoolPools>,
}

/// InfiniBand SR-IOV settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderIbSriovCniConfig {
    /// Device-plugin resource name of the VFs (must be non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// InfiniBand pkey of the VF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkey: Option<String>,
    /// VF link state `auto`, `enable` (default) or `disable`; see
    /// [`SpiderIbSriovCniConfig::link_state`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["auto", "enable", "disable"], "default" = "enable"))
    )]
    pub link_state: Option<String>,
    /// Append the `rdma` plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub rdma_isolation: Option<bool>,
    /// Work with ib-kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub enable_ib_kubernetes: Option<bool>,
    /// Default pools of the network.
    #[serde(
        default,
        alias = "spiderpoolConfigPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ippools: Option<SpiderpoolPools>,
}

/// IPoIB settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderIpoibCniConfig {
    /// Host interface the link is created from (must be non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Default pools of the network.
    #[serde(
        default,
        alias = "spiderpoolConfigPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ippools: Option<SpiderpoolPools>,
}

/// OVS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderOvsCniConfig {
    /// OVS bridge name.
    pub bridge: String,
    /// Access VLAN tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub vlan: Option<i32>,
    /// Trunk VLANs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<Vec<Trunk>>,
    /// PCI address of a VF; when set the NAD gets a resourceName annotation.
    #[serde(default, rename = "deviceID", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Default pools of the network.
    #[serde(
        default,
        alias = "spiderpoolConfigPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub ippools: Option<SpiderpoolPools>,
}

/// One OVS trunk entry: a single `id` or a `minID`..`maxID` range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    /// First VLAN of a range.
    #[serde(default, rename = "minID", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub min_id: Option<u64>,
    /// Last VLAN of a range.
    #[serde(default, rename = "maxID", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub max_id: Option<u64>,
    /// A single VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 4094)))]
    pub id: Option<u64>,
}

/// Bond built by `ifacer` from the masters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BondConfig {
    /// Bond interface name.
    pub name: String,
    /// Linux bonding mode, 0–6.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 6)))]
    pub mode: i32,
    /// Extra bonding options, e.g. `primary=ens192`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// Default pools of an SMC network (`ippools`).
///
/// Reading also accepts the pre-v2beta1 spellings seen in older YAML, such as the seed's
/// `spiderpoolConfigPools: {IPv4IPPool: [..]}`: the object key `spiderpoolConfigPools` (an
/// alias of `ippools` on every CNI block) and the list keys `IPv4IPPool` / `IPv6IPPool`
/// (aliases of `ipv4` / `ipv6`). Writing always uses the current names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderpoolPools {
    /// IPv4 pool names (wildcards allowed).
    #[serde(default, alias = "IPv4IPPool", skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Vec<String>>,
    /// IPv6 pool names (wildcards allowed).
    #[serde(default, alias = "IPv6IPPool", skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Vec<String>>,
    /// Ask IPAM to check the pools against the master's subnet (not for macvlan/ipvlan/vlan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = [true, false], "default" = false))
    )]
    pub match_master_subnet: Option<bool>,
}

impl SpiderpoolPools {
    /// Whether at least one IPv4 or IPv6 pool is listed.
    pub fn has_pools(&self) -> bool {
        self.ipv4.as_ref().is_some_and(|v| !v.is_empty())
            || self.ipv6.as_ref().is_some_and(|v| !v.is_empty())
    }
}

impl SpiderMultusConfig {
    /// An SMC `namespace/name` with `spec`.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        spec: SpiderMultusConfigSpec,
    ) -> Self {
        let mut metadata = ObjectMeta::named(name);
        metadata.namespace = Some(namespace.into());
        Self {
            api_version: super::API_VERSION.to_owned(),
            kind: Self::default_kind(),
            metadata,
            spec,
        }
    }
}

impl SpiderMultusConfigSpec {
    /// Typed `cniType` (`Ok(None)` when absent; the webhook then defaults it to `custom`).
    pub fn cni_type(&self) -> Result<Option<CniType>, ManifestError> {
        CniType::parse_opt(self.cni_type.as_deref())
    }

    /// The JSON keys of the CNI blocks that are set (`macvlan`, `ipvlan`, `vlan`, `sriov`,
    /// `ovs`, `ibsriov`, `ipoib`), in that order.
    pub fn present_cni_blocks(&self) -> Vec<&'static str> {
        let flags = [
            ("macvlan", self.macvlan.is_some()),
            ("ipvlan", self.ipvlan.is_some()),
            ("vlan", self.vlan.is_some()),
            ("sriov", self.sriov.is_some()),
            ("ovs", self.ovs.is_some()),
            ("ibsriov", self.ibsriov.is_some()),
            ("ipoib", self.ipoib.is_some()),
        ];
        flags
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect()
    }

    /// The `ippools` of the block that belongs to `cni` (None for `custom` or a missing block).
    pub fn ippools_for(&self, cni: CniType) -> Option<&SpiderpoolPools> {
        match cni {
            CniType::Macvlan => self.macvlan.as_ref()?.ippools.as_ref(),
            CniType::Ipvlan => self.ipvlan.as_ref()?.ippools.as_ref(),
            CniType::Vlan => self.vlan.as_ref()?.ippools.as_ref(),
            CniType::Sriov => self.sriov.as_ref()?.ippools.as_ref(),
            CniType::Ovs => self.ovs.as_ref()?.ippools.as_ref(),
            CniType::IbSriov => self.ibsriov.as_ref()?.ippools.as_ref(),
            CniType::Ipoib => self.ipoib.as_ref()?.ippools.as_ref(),
            CniType::Custom => None,
        }
    }
}

impl CniType {
    /// The JSON key of this type's settings block in the spec (`ib-sriov` → `ibsriov`;
    /// `None` for `custom`).
    pub const fn block_key(self) -> Option<&'static str> {
        match self {
            Self::Macvlan => Some("macvlan"),
            Self::Ipvlan => Some("ipvlan"),
            Self::Vlan => Some("vlan"),
            Self::Sriov => Some("sriov"),
            Self::Ovs => Some("ovs"),
            Self::IbSriov => Some("ibsriov"),
            Self::Ipoib => Some("ipoib"),
            Self::Custom => None,
        }
    }
}

impl SpiderVlanCniConfig {
    /// Typed `vlanMode` (`Ok(None)` when absent).
    pub fn vlan_mode(&self) -> Result<Option<VlanMode>, ManifestError> {
        VlanMode::parse_opt(self.vlan_mode.as_deref())
    }
}

impl SpiderIbSriovCniConfig {
    /// Typed `linkState` (`Ok(None)` when absent).
    pub fn link_state(&self) -> Result<Option<LinkState>, ManifestError> {
        LinkState::parse_opt(self.link_state.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_smc_old_pool_spelling_is_accepted() {
        let spec: SpiderMultusConfigSpec = serde_json::from_value(serde_json::json!({
            "cniType": "macvlan",
            "macvlan": {"master": ["ens192"], "spiderpoolConfigPools": {"IPv4IPPool": ["10-6-v4"]}, "vlanID": 0}
        }))
        .unwrap();
        let pools = spec.ippools_for(CniType::Macvlan).unwrap();
        assert_eq!(pools.ipv4.as_deref(), Some(&["10-6-v4".to_owned()][..]));
        assert!(pools.has_pools());
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["macvlan"]["ippools"],
            serde_json::json!({"ipv4": ["10-6-v4"]})
        );
    }

    #[test]
    fn objects_smc_typed_accessors() {
        let spec: SpiderMultusConfigSpec = serde_json::from_value(serde_json::json!({
            "cniType": "bridge",
            "vlan": {"master": ["eth0"], "vlanMode": "auto"},
            "ibsriov": {"resourceName": "r", "linkState": "up"}
        }))
        .unwrap();
        assert!(matches!(
            spec.cni_type(),
            Err(ManifestError::UnsupportedValue {
                field: "spec.cniType",
                ..
            })
        ));
        assert_eq!(spec.present_cni_blocks(), ["vlan", "ibsriov"]);
        assert_eq!(
            spec.vlan.as_ref().unwrap().vlan_mode().unwrap(),
            Some(VlanMode::Auto)
        );
        assert!(spec.ibsriov.as_ref().unwrap().link_state().is_err());
        assert_eq!(CniType::IbSriov.block_key(), Some("ibsriov"));
    }
}
