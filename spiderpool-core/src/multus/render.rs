//! SpiderMultusConfig → NetworkAttachmentDefinition (spec §6.1, §6.2).

use crate::multus::RenderError;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::nad::NetworkAttachmentDefinition;
use super::plugins;
use crate::meta::{ObjectMeta, OwnerReference};
use crate::objects::keys::{
    ANNO_CNI_CONFIG_NAME, ANNO_MULTUS_CNI_VERSION, ANNO_MULTUS_CR_NAME, ANNO_NAD_RESOURCE_NAME,
    DEFAULT_CNI_VERSION,
};
use crate::objects::{
    API_VERSION, BondConfig, CniType, MULTUSCONFIG, SpiderMultusConfig, SpiderMultusConfigSpec,
};

/// Namespace of a SpiderMultusConfig written without one: `kubectl apply` puts it in
/// `default`, so the NAD goes there too.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Prefix of the NAD `resourceName` annotation of an OVS network with a `deviceID`; the
/// bridge name follows.
const OVS_RESOURCE_PREFIX: &str = "ovs-cni.network.kubevirt.io";

/// The name of the NAD `smc` generates: annotation `multus.spidernet.io/cr-name`, else the
/// SMC's name (`None` when neither is set).
pub fn nad_name(smc: &SpiderMultusConfig) -> Option<&str> {
    smc.metadata
        .annotation(ANNO_MULTUS_CR_NAME)
        .or(smc.metadata.name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The namespace of `smc` and of its NAD ([`DEFAULT_NAMESPACE`] when unset).
pub fn nad_namespace(smc: &SpiderMultusConfig) -> &str {
    smc.metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// Renders the NetworkAttachmentDefinition of a defaulted and validated SpiderMultusConfig
/// (run [`crate::admission::admit`] first).
///
/// * name: annotation `multus.spidernet.io/cr-name` or the SMC name; namespace: the SMC's
///   ([`DEFAULT_NAMESPACE`] when unset);
/// * annotations: all of the SMC's, plus `k8s.v1.cni.cncf.io/resourceName` for sriov,
///   ib-sriov and ovs with a `deviceID`;
/// * a controller owner reference to the SMC when its `uid` is known (offline renders of an
///   SMC never applied have none, and get no owner reference);
/// * `spec.config`: `{"cniVersion","name","plugins":[...]}` with upstream's exact key order,
///   or `customCNI` verbatim for `cniType: custom` (absent when empty).
///
/// Fields the cniType needs but that are missing (a block, a master, the bond of several
/// masters, a chained plugin that is not a JSON object) give an error instead of a guess.
pub fn render_nad(smc: &SpiderMultusConfig) -> Result<NetworkAttachmentDefinition, RenderError> {
    let namespace = nad_namespace(smc);
    let smc_name = smc.metadata.name.as_deref().unwrap_or_default();
    let ctx = Ctx {
        id: format!("{namespace}/{smc_name}"),
    };
    if smc_name.is_empty() {
        return Err(ctx.err("metadata.name", "the SpiderMultusConfig has no name"));
    }
    let name = nad_name(smc).unwrap_or(smc_name).to_owned();
    let spec = &smc.spec;
    let mut annotations: BTreeMap<String, String> =
        smc.metadata.annotations.clone().unwrap_or_default();

    let cni_type = spec.cni_type()?.unwrap_or(CniType::Custom);
    let config = if cni_type == CniType::Custom {
        spec.custom_cni.clone().filter(|c| !c.is_empty())
    } else {
        let plugins = plugin_chain(&ctx, cni_type, spec, &mut annotations)?;
        let cni_version = annotations
            .get(ANNO_MULTUS_CNI_VERSION)
            .map_or(DEFAULT_CNI_VERSION, String::as_str);
        let config_name = annotations
            .get(ANNO_CNI_CONFIG_NAME)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&name);
        let mut top = Map::new();
        top.insert("cniVersion".to_owned(), cni_version.into());
        top.insert("name".to_owned(), config_name.into());
        top.insert("plugins".to_owned(), Value::Array(plugins));
        let text = crate::gojson::to_go_json(&Value::Object(top), false)
            .map_err(|e| ctx.err("spec", &e.to_string()))?;
        Some(text)
    };

    // An owner reference needs the SMC's uid; offline (no uid yet) it is left out rather
    // than written with an empty uid, which the apiserver would refuse.
    let owner = smc
        .metadata
        .uid
        .as_deref()
        .filter(|uid| !uid.is_empty())
        .map(|uid| OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: MULTUSCONFIG.kind.to_owned(),
            name: smc_name.to_owned(),
            uid: uid.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
            extra: Map::new(),
        });
    let metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    let mut nad = NetworkAttachmentDefinition::new(metadata);
    nad.spec.config = config;
    Ok(nad)
}

/// Identifies the SMC in errors.
struct Ctx {
    id: String,
}

impl Ctx {
    fn err(&self, field: &str, reason: &str) -> RenderError {
        RenderError::Config {
            smc: self.id.clone(),
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn missing_block(&self, cni: CniType, key: &str) -> RenderError {
        self.err(
            &format!("spec.{key}"),
            &format!("required for cniType {cni}"),
        )
    }
}

/// The `plugins` array (spec §6.2), adding the `resourceName` annotation where needed.
fn plugin_chain(
    ctx: &Ctx,
    cni: CniType,
    spec: &SpiderMultusConfigSpec,
    annotations: &mut BTreeMap<String, String>,
) -> Result<Vec<Value>, RenderError> {
    let disable_ipam = spec.disable_ipam.unwrap_or(false);
    // `enableCoordinator` defaults to true in the CRD schema.
    let coordinator = spec
        .enable_coordinator
        .unwrap_or(true)
        .then(|| plugins::coordinator(spec.coordinator.as_ref()));
    let chain = chained_plugins(ctx, spec)?;

    let mut out = Vec::new();
    let mut tail = Vec::new();
    match cni {
        CniType::Macvlan | CniType::Ipvlan => {
            let (key, c) = if cni == CniType::Macvlan {
                ("macvlan", spec.macvlan.as_ref())
            } else {
                ("ipvlan", spec.ipvlan.as_ref())
            };
            let c = c.ok_or_else(|| ctx.missing_block(cni, key))?;
            let vlan_id = c.vlan_id.unwrap_or(0);
            let mut master = base_master(ctx, key, &c.master, c.bond.as_ref())?.to_owned();
            if vlan_id != 0 {
                master = format!("{master}.{vlan_id}");
            }
            if vlan_id != 0 || c.master.len() >= 2 {
                out.push(plugins::ifacer(&c.master, vlan_id, c.bond.as_ref()));
            }
            let ipam = plugins::ipam(disable_ipam, c.ippools.as_ref(), false);
            out.push(if cni == CniType::Macvlan {
                plugins::macvlan(&master, c.mtu, ipam)
            } else {
                plugins::ipvlan(&master, c.mtu, ipam)
            });
        }
        CniType::Vlan => {
            let c = spec
                .vlan
                .as_ref()
                .ok_or_else(|| ctx.missing_block(cni, "vlan"))?;
            let master = base_master(ctx, "vlan", &c.master, c.bond.as_ref())?;
            // The vlan CNI tags the frames itself, so ifacer only builds the bond.
            if c.master.len() >= 2 {
                out.push(plugins::ifacer(&c.master, 0, c.bond.as_ref()));
            }
            let ipam = plugins::ipam(disable_ipam, c.ippools.as_ref(), false);
            out.push(plugins::vlan(
                master,
                c.vlan_mode.as_deref(),
                c.vlan_id,
                c.mtu,
                ipam,
            ));
        }
        CniType::Sriov => {
            let c = spec
                .sriov
                .as_ref()
                .ok_or_else(|| ctx.missing_block(cni, "sriov"))?;
            annotations.insert(
                ANNO_NAD_RESOURCE_NAME.to_owned(),
                c.resource_name.clone().unwrap_or_default(),
            );
            let ipam = plugins::ipam(disable_ipam, c.ippools.as_ref(), true);
            out.push(plugins::sriov(c, ipam));
            if c.rdma_isolation == Some(true) {
                out.push(plugins::rdma());
            }
            if let Some(mtu) = c.mtu.filter(|m| *m > 0) {
                tail.push(plugins::tuning(mtu));
            }
        }
        CniType::IbSriov => {
            let c = spec
                .ibsriov
                .as_ref()
                .ok_or_else(|| ctx.missing_block(cni, "ibsriov"))?;
            annotations.insert(
                ANNO_NAD_RESOURCE_NAME.to_owned(),
                c.resource_name.clone().unwrap_or_default(),
            );
            let ipam = plugins::ipam(disable_ipam, c.ippools.as_ref(), false);
            out.push(plugins::ib_sriov(c, ipam));
        }
        CniType::Ipoib => {
            let c = spec
                .ipoib
                .as_ref()
                .ok_or_else(|| ctx.missing_block(cni, "ipoib"))?;
            let ipam = plugins::ipam(disable_ipam, c.ippools.as_ref(), false);
            out.push(plugins::ipoib(c, ipam));
        }
        CniType::Ovs => {
            let c = spec
                .ovs
                .as_ref()
                .ok_or_else(|| ctx.missing_block(cni, "ovs"))?;
            if c.device_id.as_deref().is_some_and(|d| !d.is_empty()) {
                annotations.insert(
                    ANNO_NAD_RESOURCE_NAME.to_owned(),
                    format!("{OVS_RESOURCE_PREFIX}/{}", c.bridge),
                );
            }
            let ipam = plugins::ipam(disable_ipam, c.ippools.as_ref(), false);
            out.push(plugins::ovs(c, ipam));
        }
        // Rendered verbatim by the caller.
        CniType::Custom => return Ok(Vec::new()),
    }
    // Upstream puts chained plugins before the coordinator (spec §6.2 [DOC≠CODE]).
    out.extend(chain);
    out.extend(coordinator);
    out.extend(tail);
    Ok(out)
}

/// The interface the main plugin attaches to: the single master, or the bond of several.
fn base_master<'a>(
    ctx: &Ctx,
    key: &str,
    masters: &'a [String],
    bond: Option<&'a BondConfig>,
) -> Result<&'a str, RenderError> {
    match masters {
        [] => Err(ctx.err(&format!("spec.{key}.master"), "master can't be empty")),
        [one] => Ok(one),
        _ => match bond {
            Some(b) if !b.name.is_empty() => Ok(&b.name),
            _ => Err(ctx.err(
                &format!("spec.{key}.bond"),
                "several masters need a bond with a name",
            )),
        },
    }
}

/// `chainCNIJsonData` parsed and re-serialised as Go's `json.Marshal` of a
/// `map[string]interface{}` would: keys in alphabetical order at every level, and integral
/// floats written as integers.
fn chained_plugins(ctx: &Ctx, spec: &SpiderMultusConfigSpec) -> Result<Vec<Value>, RenderError> {
    let entries = spec.chain_cni_json_data.as_deref().unwrap_or_default();
    entries
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let fail = |reason: String| RenderError::ChainPlugin {
                smc: ctx.id.clone(),
                index,
                reason,
            };
            let value: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
            if !value.is_object() {
                return Err(fail("not a JSON object".to_owned()));
            }
            Ok(go_normalise(value))
        })
        .collect()
}

fn go_normalise(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, go_normalise(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(go_normalise).collect()),
        Value::Number(n) => Value::Number(go_number(n)),
        other => other,
    }
}

/// Go decodes every JSON number into a float64 and prints integral values without a
/// fraction (`1500.0` → `1500`).
fn go_number(n: serde_json::Number) -> serde_json::Number {
    const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < EXACT_LIMIT => {
            // Exact by the bound above, so the cast loses nothing.
            #[allow(clippy::cast_possible_truncation)]
            let i = f as i64;
            serde_json::Number::from(i)
        }
        _ => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multus_go_escape_and_normalise() {
        assert_eq!(
            crate::gojson::to_go_json(&serde_json::json!({"a": "<&>"}), false).unwrap(),
            r#"{"a":"\u003c\u0026\u003e"}"#
        );
        let v: Value = serde_json::from_str(r#"{"z":1.0,"a":{"y":[2.5,3],"b":true}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&go_normalise(v)).unwrap(),
            r#"{"a":{"b":true,"y":[2.5,3]},"z":1}"#
        );
    }
}
