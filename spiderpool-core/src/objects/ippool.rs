//! SpiderIPPool: a cluster-scoped pool of IPs inside one CIDR.

use crate::manifest::ManifestError;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Route, kinds};
use crate::meta::{LabelSelector, ObjectMeta};

kinds::spider_kind! {
    /// A SpiderIPPool (`spiderippools`, short name `sp`, cluster-scoped).
    SpiderIPPool = super::IPPOOL, kind_default = "SpiderIPPool::default_kind", {
        /// Desired state.
        #[serde(default)]
        spec: SpiderIPPoolSpec,
        /// Observed state (allocations, counters).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<SpiderIPPoolStatus>,
    }
}

/// `SpiderIPPool.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderIPPoolSpec {
    /// IP family, 4 or 6; filled from `subnet` by the mutating webhook. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = [4, 6])))]
    pub ip_version: Option<i64>,
    /// Canonical CIDR of the pool, e.g. `10.6.0.0/16`. Immutable.
    pub subnet: String,
    /// Allocatable IPs: single addresses or `a-b` ranges.
    #[serde(default, rename = "ips", skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    /// Addresses or ranges removed from `ips`.
    #[serde(
        default,
        rename = "excludeIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_ips: Option<Vec<String>>,
    /// Gateway address (default route of the NIC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Extra routes. Absent (inherit the subnet's) differs from an explicit empty list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// Pods whose labels match may use the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<LabelSelector>,
    /// Namespaces (by labels) allowed; ignored when `namespaceName` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_affinity: Option<LabelSelector>,
    /// Allowed namespace names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_name: Option<Vec<String>>,
    /// Nodes (by labels) allowed; ignored when `nodeName` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<LabelSelector>,
    /// Allowed node names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<Vec<String>>,
    /// Allowed NADs, `ns/name` or bare `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multus_name: Option<Vec<String>>,
    /// Cluster default pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub default: Option<bool>,
    /// Excluded from allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub disable: Option<bool>,
}

/// `SpiderIPPool.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SpiderIPPoolStatus {
    /// JSON text of a map `IP -> {"pod": "ns/name", "podUid": uid}`; see
    /// [`SpiderIPPoolStatus::allocated_ips`]. Absent when empty, never `"{}"`.
    #[serde(
        default,
        rename = "allocatedIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub allocated_ips: Option<String>,
    /// Number of IPs in `ips − excludeIPs`.
    #[serde(
        default,
        rename = "totalIPCount",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub total_ip_count: Option<i64>,
    /// Number of records in `allocatedIPs`.
    #[serde(
        default,
        rename = "allocatedIPCount",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub allocated_ip_count: Option<i64>,
    /// Which node hands out which addresses (the Kubernetes store's per-node blocks; not
    /// written by upstream, which keeps every record in `allocatedIPs` instead). Each
    /// address is in at most one block; who holds an address is recorded in the
    /// SpiderEndpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<IPBlock>>,
}

/// One node's share of a pool (`SpiderIPPool.status.blocks[]`): only that node's agent
/// allocates these addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IPBlock {
    /// The node whose agent allocates from `ips`.
    pub node: String,
    /// Ranges (`a-b`) or single addresses, as in `spec.ips`; may be empty while the node
    /// waits for addresses.
    #[serde(default)]
    pub ips: Vec<String>,
    /// How many of `ips` are held by SpiderEndpoints, as last written by the node's agent.
    #[serde(
        default,
        rename = "allocatedIPCount",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub allocated_ip_count: Option<i64>,
    /// Set while the node found the pool exhausted and asks other nodes to hand back the
    /// free addresses of their blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<bool>,
    /// How many times the node has asked for addresses while waiting: it asks again each
    /// time it was given some and ran out again, and every node with free addresses answers
    /// each new ask once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub asked: Option<i64>,
}

/// One record of `SpiderIPPool.status.allocatedIPs`: who holds an IP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolIPAllocation {
    /// `namespace/name` of the pod (or of the KubeVirt VMI).
    pub pod: String,
    /// UID of the pod.
    #[serde(rename = "podUid")]
    pub pod_uid: String,
}

impl SpiderIPPool {
    /// A pool named `name` with `spec` and no status.
    pub fn new(name: impl Into<String>, spec: SpiderIPPoolSpec) -> Self {
        Self {
            api_version: super::API_VERSION.to_owned(),
            kind: Self::default_kind(),
            metadata: ObjectMeta::named(name),
            spec,
            status: None,
        }
    }
}

impl SpiderIPPoolSpec {
    /// Whether `spec.default` is true (absent means false).
    pub fn is_default(&self) -> bool {
        self.default == Some(true)
    }

    /// Whether `spec.disable` is true (absent means false).
    pub fn is_disabled(&self) -> bool {
        self.disable == Some(true)
    }
}

impl SpiderIPPoolStatus {
    /// Decodes `allocatedIPs` (absent means empty).
    pub fn allocated_ips(&self) -> Result<BTreeMap<String, PoolIPAllocation>, ManifestError> {
        decode_status_json(self.allocated_ips.as_deref(), "status.allocatedIPs")
    }

    /// Encodes `allocations` into `allocatedIPs`, writing `None` for an empty map as upstream
    /// does. Keys are written sorted, which is also Go's map order.
    pub fn set_allocated_ips(&mut self, allocations: &BTreeMap<String, PoolIPAllocation>) {
        self.allocated_ips = encode_status_json(allocations, |a| {
            let mut m = serde_json::Map::new();
            m.insert("pod".into(), a.pod.clone().into());
            m.insert("podUid".into(), a.pod_uid.clone().into());
            serde_json::Value::Object(m)
        });
    }
}

/// Parses a JSON-in-a-string status field; `None` and `""` mean an empty map.
pub(crate) fn decode_status_json<T: serde::de::DeserializeOwned>(
    text: Option<&str>,
    field: &'static str,
) -> Result<BTreeMap<String, T>, ManifestError> {
    match text {
        None => Ok(BTreeMap::new()),
        Some(t) if t.trim().is_empty() => Ok(BTreeMap::new()),
        Some(t) => serde_json::from_str(t).map_err(|e| ManifestError::BadStatusJson {
            field,
            reason: e.to_string(),
        }),
    }
}

/// Renders a map as compact JSON text, or `None` when empty. Built from `Value`s so it
/// cannot fail (no `Result` for callers to handle).
pub(crate) fn encode_status_json<T>(
    map: &BTreeMap<String, T>,
    to_value: impl Fn(&T) -> serde_json::Value,
) -> Option<String> {
    if map.is_empty() {
        return None;
    }
    let obj: serde_json::Map<String, serde_json::Value> =
        map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
    Some(serde_json::Value::Object(obj).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pool_allocated_ips_helpers() {
        let mut st = SpiderIPPoolStatus::default();
        assert!(st.allocated_ips().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(
            "10.6.212.148".to_owned(),
            PoolIPAllocation {
                pod: "default/b".into(),
                pod_uid: "u2".into(),
            },
        );
        m.insert(
            "10.6.212.145".to_owned(),
            PoolIPAllocation {
                pod: "default/a".into(),
                pod_uid: "u1".into(),
            },
        );
        st.set_allocated_ips(&m);
        assert_eq!(
            st.allocated_ips.as_deref(),
            Some(
                r#"{"10.6.212.145":{"pod":"default/a","podUid":"u1"},"10.6.212.148":{"pod":"default/b","podUid":"u2"}}"#
            )
        );
        assert_eq!(st.allocated_ips().unwrap(), m);
        st.set_allocated_ips(&BTreeMap::new());
        assert_eq!(st.allocated_ips, None);
        st.allocated_ips = Some("{not json".into());
        let err = st.allocated_ips().unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::BadStatusJson {
                    field: "status.allocatedIPs",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn objects_pool_routes_absent_vs_empty() {
        let absent: SpiderIPPoolSpec =
            serde_json::from_value(serde_json::json!({"subnet": "10.6.0.0/16"})).unwrap();
        let empty: SpiderIPPoolSpec =
            serde_json::from_value(serde_json::json!({"subnet": "10.6.0.0/16", "routes": []}))
                .unwrap();
        assert_eq!(absent.routes, None);
        assert_eq!(empty.routes, Some(vec![]));
        assert_eq!(
            serde_json::to_value(&empty).unwrap()["routes"],
            serde_json::json!([])
        );
    }
}
