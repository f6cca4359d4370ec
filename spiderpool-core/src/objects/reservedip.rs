//! SpiderReservedIP: cluster-scoped IPs that no pool may hand out.

use serde::{Deserialize, Serialize};

use super::kinds;
use crate::meta::ObjectMeta;

kinds::spider_kind! {
    /// A SpiderReservedIP (`spiderreservedips`, short name `sr`, cluster-scoped, no status).
    SpiderReservedIP = super::RESERVEDIP, kind_default = "SpiderReservedIP::default_kind", {
        /// Desired state.
        #[serde(default)]
        spec: SpiderReservedIPSpec,
    }
}

/// `SpiderReservedIP.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpiderReservedIPSpec {
    /// IP family, 4 or 6; filled from `ips[0]` by the mutating webhook. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = [4, 6])))]
    pub ip_version: Option<i64>,
    /// Reserved addresses or `a-b` ranges.
    #[serde(default, rename = "ips", skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
}

impl SpiderReservedIP {
    /// A reserved-IP object named `name` with `spec`.
    pub fn new(name: impl Into<String>, spec: SpiderReservedIPSpec) -> Self {
        Self {
            api_version: super::API_VERSION.to_owned(),
            kind: Self::default_kind(),
            metadata: ObjectMeta::named(name),
            spec,
        }
    }
}
