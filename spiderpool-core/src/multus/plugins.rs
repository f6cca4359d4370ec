//! One JSON object per CNI plugin of a rendered NAD, with upstream's key order (spec §6.3).
//!
//! Upstream marshals Go structs, so the key order is the struct field order and `omitempty`
//! decides presence: a pointer set to zero is emitted, an empty string or list is not. Each
//! builder below inserts keys into an order-preserving map in that same order.

use serde_json::{Map, Value, json};

use crate::objects::{
    BondConfig, CoordinatorSpec, SpiderIbSriovCniConfig, SpiderIpoibCniConfig, SpiderOvsCniConfig,
    SpiderSriovCniConfig, SpiderpoolPools, Trunk,
};

/// An ordered JSON object under construction.
#[derive(Default)]
pub(super) struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self::default()
    }

    fn put(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    fn put_opt<T: Into<Value>>(self, key: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    /// Go's `omitempty` on a string: only non-empty values.
    fn put_str(self, key: &str, value: Option<&str>) -> Self {
        self.put_opt(key, value.filter(|s| !s.is_empty()))
    }

    /// Go's `omitempty` on a slice: only non-empty lists.
    fn put_list<T: Into<Value> + Clone>(self, key: &str, value: Option<&[T]>) -> Self {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => self.put(key, v.iter().cloned().map(Into::into).collect::<Vec<_>>()),
            None => self,
        }
    }

    pub(super) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// The `spiderpool` IPAM block, or `None` when `disableIPAM` is set. `match_master_subnet`
/// is rendered only for sriov (`with_match_master`) and only when true.
pub(super) fn ipam(
    disable_ipam: bool,
    pools: Option<&SpiderpoolPools>,
    with_match_master: bool,
) -> Option<Value> {
    if disable_ipam {
        return None;
    }
    let mut o = Obj::new().put("type", "spiderpool");
    if let Some(p) = pools {
        o = o
            .put_list("default_ipv4_ippool", p.ipv4.as_deref())
            .put_list("default_ipv6_ippool", p.ipv6.as_deref());
        if with_match_master && p.match_master_subnet == Some(true) {
            o = o.put("match_master_subnet", true);
        }
    }
    Some(o.into_value())
}

/// macvlan: `{"type","master","mode":"bridge","mtu"?,"ipam"?}`.
pub(super) fn macvlan(master: &str, mtu: Option<i32>, ipam: Option<Value>) -> Value {
    Obj::new()
        .put("type", "macvlan")
        .put("master", master)
        .put("mode", "bridge")
        .put_opt("mtu", mtu)
        .put_opt("ipam", ipam)
        .into_value()
}

/// ipvlan: `{"type","master","mtu"?,"ipam"?}` (no `mode`: the plugin's default l2).
pub(super) fn ipvlan(master: &str, mtu: Option<i32>, ipam: Option<Value>) -> Value {
    Obj::new()
        .put("type", "ipvlan")
        .put("master", master)
        .put_opt("mtu", mtu)
        .put_opt("ipam", ipam)
        .into_value()
}

/// vlan: `{"type","master","vlanMode"?,"vlanId"?,"mtu"?,"ipam"?}`; `vlanId` only in manual
/// mode.
pub(super) fn vlan(
    master: &str,
    vlan_mode: Option<&str>,
    vlan_id: Option<i32>,
    mtu: Option<i32>,
    ipam: Option<Value>,
) -> Value {
    let vlan_id = if vlan_mode == Some("manual") {
        vlan_id
    } else {
        None
    };
    Obj::new()
        .put("type", "vlan")
        .put("master", master)
        .put_opt("vlanMode", vlan_mode)
        .put_opt("vlanId", vlan_id)
        .put_opt("mtu", mtu)
        .put_opt("ipam", ipam)
        .into_value()
}

/// sriov: `{"vlan"?,"min_tx_rate"?,"max_tx_rate"?,"type","ipam"?}`.
pub(super) fn sriov(c: &SpiderSriovCniConfig, ipam: Option<Value>) -> Value {
    Obj::new()
        .put_opt("vlan", c.vlan_id)
        .put_opt("min_tx_rate", c.min_tx_rate_mbps)
        .put_opt("max_tx_rate", c.max_tx_rate_mbps)
        .put("type", "sriov")
        .put_opt("ipam", ipam)
        .into_value()
}

/// ib-sriov: `{"type","pkey"?,"link_state"?,"rdmaIsolation"?,"ibKubernetesEnabled"?,"ipam"?}`
/// (pointers upstream, so `""` and `false` are emitted once defaulted).
pub(super) fn ib_sriov(c: &SpiderIbSriovCniConfig, ipam: Option<Value>) -> Value {
    Obj::new()
        .put("type", "ib-sriov")
        .put_opt("pkey", c.pkey.as_deref())
        .put_opt("link_state", c.link_state.as_deref())
        .put_opt("rdmaIsolation", c.rdma_isolation)
        .put_opt("ibKubernetesEnabled", c.enable_ib_kubernetes)
        .put_opt("ipam", ipam)
        .into_value()
}

/// ipoib: `{"type","master"?,"ipam"?}`.
pub(super) fn ipoib(c: &SpiderIpoibCniConfig, ipam: Option<Value>) -> Value {
    Obj::new()
        .put("type", "ipoib")
        .put_str("master", c.master.as_deref())
        .put_opt("ipam", ipam)
        .into_value()
}

/// ovs: `{"vlan"?,"type","bridge","deviceID"?,"ipam"?,"trunk"?}`.
pub(super) fn ovs(c: &SpiderOvsCniConfig, ipam: Option<Value>) -> Value {
    let trunk = c
        .trunk
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| t.iter().map(trunk_entry).collect::<Vec<_>>());
    Obj::new()
        .put_opt("vlan", c.vlan)
        .put("type", "ovs")
        .put("bridge", c.bridge.as_str())
        .put_str("deviceID", c.device_id.as_deref())
        .put_opt("ipam", ipam)
        .put_opt("trunk", trunk)
        .into_value()
}

fn trunk_entry(t: &Trunk) -> Value {
    Obj::new()
        .put_opt("minID", t.min_id)
        .put_opt("maxID", t.max_id)
        .put_opt("id", t.id)
        .into_value()
}

/// ifacer: `{"vlanID"?,"type","interfaces"?,"bond"?}` (`vlanID` omitted when 0).
pub(super) fn ifacer(masters: &[String], vlan_id: i32, bond: Option<&BondConfig>) -> Value {
    Obj::new()
        .put_opt("vlanID", (vlan_id != 0).then_some(vlan_id))
        .put("type", "ifacer")
        .put_list("interfaces", Some(masters))
        .put_opt("bond", bond.map(bond_obj))
        .into_value()
}

fn bond_obj(b: &BondConfig) -> Value {
    Obj::new()
        .put("name", b.name.as_str())
        .put("mode", b.mode)
        .put_opt("options", b.options.as_deref())
        .into_value()
}

/// `{"type":"rdma"}`, chained after sriov when `rdmaIsolation` is set.
pub(super) fn rdma() -> Value {
    json!({"type": "rdma"})
}

/// `{"type":"tuning","mtu":N}`, last in an sriov chain when `mtu > 0`.
pub(super) fn tuning(mtu: i32) -> Value {
    Obj::new()
        .put("type", "tuning")
        .put("mtu", mtu)
        .into_value()
}

/// coordinator: `{"txQueueLen"?,"vethLinkAddress"?,"vethMTU"?,"tunePodRoutes"?,
/// "podMACPrefix"?,"mode"?,"type","podDefaultRouteNic"?,"podRPFilter"?,"hijackCIDR"?,
/// "policyRoutes"?}`. `hostRuleTable` and `podCIDRType` are never emitted (the plugin takes
/// them from the SpiderCoordinator).
pub(super) fn coordinator(spec: Option<&CoordinatorSpec>) -> Value {
    let Some(c) = spec else {
        return Obj::new().put("type", "coordinator").into_value();
    };
    // The plugin understands `disable`, not the CRD's `disabled` (spec §10.1): render the
    // spelling every coordinator build accepts.
    let mode = c
        .mode
        .as_deref()
        .map(|m| if m == "disabled" { "disable" } else { m });
    // Upstream emits podRPFilter only when podCIDRType is set, so the SMC's defaulted 0 does
    // not override the SpiderCoordinator's value. We keep that, but also emit a value the
    // user set to something other than the default rather than dropping it silently
    // (docs/compatibility.md).
    let rp_filter = c
        .pod_rp_filter
        .filter(|v| c.pod_cidr_type.is_some() || *v != 0);
    let routes = c
        .policy_routes
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.iter()
                .map(|r| {
                    Obj::new()
                        .put("dst", r.dst.as_str())
                        .put("gw", r.gw.as_str())
                        .into_value()
                })
                .collect::<Vec<_>>()
        });
    Obj::new()
        .put_opt("txQueueLen", c.tx_queue_len)
        .put_str("vethLinkAddress", c.veth_link_address.as_deref())
        .put_opt("vethMTU", c.veth_mtu)
        .put_opt("tunePodRoutes", c.tune_pod_routes)
        .put_str("podMACPrefix", c.pod_mac_prefix.as_deref())
        .put_str("mode", mode)
        .put("type", "coordinator")
        .put_str("podDefaultRouteNic", c.pod_default_route_nic.as_deref())
        .put_opt("podRPFilter", rp_filter)
        .put_list("hijackCIDR", c.hijack_cidr.as_deref())
        .put_opt("policyRoutes", routes)
        .into_value()
}
