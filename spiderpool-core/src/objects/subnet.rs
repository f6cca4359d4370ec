//! SpiderSubnet: a cluster-scoped CIDR from which pools (and auto-pools) take their IPs.

use crate::manifest::ManifestError;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ippool::{decode_status_json, encode_status_json};
use super::{Route, kinds};
use crate::meta::ObjectMeta;

kinds::spider_kind! {
    /// A SpiderSubnet (`spidersubnets`, short name `ss`, cluster-scoped).
    SpiderSubnet = super::SUBNET, kind_default = "SpiderSubnet::default_kind", {
        /// Desired state.
        #[serde(default)]
        spec: SpiderSubnetSpec,
        /// Observed state (controlled pools, counters).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<SpiderSubnetStatus>,
    }
}

/// `SpiderSubnet.spec`: same formats and meanings as the pool fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderSubnetSpec {
    /// IP family, 4 or 6; filled from `subnet` by the mutating webhook. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = [4, 6])))]
    pub ip_version: Option<i64>,
    /// Canonical CIDR. Immutable.
    pub subnet: String,
    /// IPs pools may take: single addresses or `a-b` ranges.
    #[serde(default, rename = "ips", skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    /// Addresses or ranges removed from `ips`.
    #[serde(
        default,
        rename = "excludeIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_ips: Option<Vec<String>>,
    /// Gateway inherited by pools that have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Routes inherited by pools whose `routes` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
}

/// `SpiderSubnet.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SpiderSubnetStatus {
    /// JSON text of a map `pool name -> {"ips": [ranges], "application": appKey}`; see
    /// [`SpiderSubnetStatus::controlled_ip_pools`]. Absent when empty, never `"{}"`.
    #[serde(
        default,
        rename = "controlledIPPools",
        skip_serializing_if = "Option::is_none"
    )]
    pub controlled_ip_pools: Option<String>,
    /// Number of IPs in `ips − excludeIPs`.
    #[serde(
        default,
        rename = "totalIPCount",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub total_ip_count: Option<i64>,
    /// Sum of the IPs of all controlled pools.
    #[serde(
        default,
        rename = "allocatedIPCount",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub allocated_ip_count: Option<i64>,
}

/// One entry of `SpiderSubnet.status.controlledIPPools`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolIPPreAllocation {
    /// The pool's share of the subnet, as ranges.
    pub ips: Vec<String>,
    /// Application key (`apps_v1_Deployment_default_nginx`), for auto-created pools only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
}

impl SpiderSubnet {
    /// A subnet named `name` with `spec` and no status.
    pub fn new(name: impl Into<String>, spec: SpiderSubnetSpec) -> Self {
        Self {
            api_version: super::API_VERSION.to_owned(),
            kind: Self::default_kind(),
            metadata: ObjectMeta::named(name),
            spec,
            status: None,
        }
    }
}

impl SpiderSubnetStatus {
    /// Decodes `controlledIPPools` (absent means empty).
    pub fn controlled_ip_pools(
        &self,
    ) -> Result<BTreeMap<String, PoolIPPreAllocation>, ManifestError> {
        decode_status_json(
            self.controlled_ip_pools.as_deref(),
            "status.controlledIPPools",
        )
    }

    /// Encodes `pools` into `controlledIPPools`, writing `None` for an empty map.
    pub fn set_controlled_ip_pools(&mut self, pools: &BTreeMap<String, PoolIPPreAllocation>) {
        self.controlled_ip_pools = encode_status_json(pools, |p| {
            let mut m = serde_json::Map::new();
            m.insert(
                "ips".into(),
                serde_json::Value::Array(p.ips.iter().cloned().map(Into::into).collect()),
            );
            if let Some(app) = &p.application {
                m.insert("application".into(), app.clone().into());
            }
            serde_json::Value::Object(m)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_subnet_controlled_pools_helpers() {
        let mut st = SpiderSubnetStatus::default();
        assert!(st.controlled_ip_pools().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(
            "auto4-nginx-eth0-1a2b3".to_owned(),
            PoolIPPreAllocation {
                ips: vec!["10.6.0.10-10.6.0.12".into()],
                application: Some("apps_v1_Deployment_default_nginx".into()),
            },
        );
        m.insert(
            "manual".to_owned(),
            PoolIPPreAllocation {
                ips: vec!["10.6.0.20".into()],
                application: None,
            },
        );
        st.set_controlled_ip_pools(&m);
        assert_eq!(
            st.controlled_ip_pools.as_deref(),
            Some(
                r#"{"auto4-nginx-eth0-1a2b3":{"ips":["10.6.0.10-10.6.0.12"],"application":"apps_v1_Deployment_default_nginx"},"manual":{"ips":["10.6.0.20"]}}"#
            )
        );
        assert_eq!(st.controlled_ip_pools().unwrap(), m);
        st.set_controlled_ip_pools(&BTreeMap::new());
        assert_eq!(st.controlled_ip_pools, None);
        st.controlled_ip_pools = Some(r#"{"p": {"ips": "nope"}}"#.into());
        assert!(matches!(
            st.controlled_ip_pools(),
            Err(ManifestError::BadStatusJson {
                field: "status.controlledIPPools",
                ..
            })
        ));
    }
}
