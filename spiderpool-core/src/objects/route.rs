//! The `{dst, gw}` route shared by pools, subnets, endpoints and coordinator policy routes.

use serde::{Deserialize, Serialize};

/// A route: destination CIDR and gateway, both as text (parsed by [`crate::ip`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination, e.g. `10.7.0.0/16`.
    pub dst: String,
    /// Gateway address, e.g. `10.6.0.1`.
    pub gw: String,
}

impl Route {
    /// A route to `dst` via `gw`.
    pub fn new(dst: impl Into<String>, gw: impl Into<String>) -> Self {
        Self {
            dst: dst.into(),
            gw: gw.into(),
        }
    }
}
