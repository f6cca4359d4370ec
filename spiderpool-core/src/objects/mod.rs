//! The six Spiderpool kinds with upstream's JSON (`spiderpool.spidernet.io/v2beta1`).
//!
//! | kind | scope | short | status |
//! |---|---|---|---|
//! | [`SpiderIPPool`] | Cluster | `sp` | subresource |
//! | [`SpiderSubnet`] | Cluster | `ss` | subresource |
//! | [`SpiderEndpoint`] | Namespaced | `se` | plain field, no spec |
//! | [`SpiderReservedIP`] | Cluster | `sr` | none |
//! | [`SpiderMultusConfig`] | Namespaced | `smc` | none |
//! | [`SpiderCoordinator`] | Cluster | `scc` | subresource |
//!
//! Conventions, so upstream YAML round-trips unchanged:
//! * every optional upstream field is an `Option`, omitted when `None`, so "absent" and
//!   "empty list" stay distinct (pool `routes` depends on it);
//! * IPs, ranges and CIDRs are `String`s, parsed by [`crate::ip`] where they are used;
//! * enumerated strings (`cniType`, `mode`, ...) stay `Option<String>` with typed accessors
//!   ([`CniType`], [`CoordinatorMode`], ...), so a bad value reaches admission, which
//!   reports it as NotSupported with the accepted values;
//! * unknown spec fields are rejected when reading (like `kubectl apply`'s strict field
//!   validation), while unknown `metadata` fields are kept in [`ObjectMeta::extra`].
//!
//! With the `schema` feature, the `crd` module builds the CustomResourceDefinitions.

mod coordinator;
#[cfg(feature = "schema")]
pub mod crd;
mod endpoint;
mod enums;
mod ippool;
pub mod keys;
mod kinds;
mod multusconfig;
mod reservedip;
mod route;
mod subnet;

use crate::meta::ObjectMeta;

pub use coordinator::{
    CoordinatorSpec, CoordinatorStatus, PHASE_NOT_READY, PHASE_SYNCED, SpiderCoordinator,
};
pub use endpoint::{IPAllocationDetail, PodIPAllocation, SpiderEndpoint, SpiderEndpointStatus};
pub use enums::{CniType, CoordinatorMode, LinkState, PodCidrType, VlanMode};
pub use ippool::{IPBlock, PoolIPAllocation, SpiderIPPool, SpiderIPPoolSpec, SpiderIPPoolStatus};
pub use kinds::KindInfo;
pub use multusconfig::{
    BondConfig, SpiderIPvlanCniConfig, SpiderIbSriovCniConfig, SpiderIpoibCniConfig,
    SpiderMacvlanCniConfig, SpiderMultusConfig, SpiderMultusConfigSpec, SpiderOvsCniConfig,
    SpiderSriovCniConfig, SpiderVlanCniConfig, SpiderpoolPools, Trunk,
};
pub use reservedip::{SpiderReservedIP, SpiderReservedIPSpec};
pub use route::Route;
pub use subnet::{PoolIPPreAllocation, SpiderSubnet, SpiderSubnetSpec, SpiderSubnetStatus};

/// API group of every Spiderpool kind.
pub const GROUP: &str = "spiderpool.spidernet.io";
/// The only served and stored version.
pub const VERSION: &str = "v2beta1";
/// `apiVersion` of every Spiderpool object.
pub const API_VERSION: &str = "spiderpool.spidernet.io/v2beta1";
/// CRD category shared by all kinds (`kubectl get spiderpool`).
pub const CATEGORY: &str = "spiderpool";
/// The six kinds, in the order used throughout this crate.
pub const KINDS: &[&str] = &[
    IPPOOL.kind,
    SUBNET.kind,
    ENDPOINT.kind,
    RESERVEDIP.kind,
    MULTUSCONFIG.kind,
    COORDINATOR.kind,
];

/// Facts about SpiderIPPool.
pub const IPPOOL: KindInfo = KindInfo {
    kind: "SpiderIPPool",
    plural: "spiderippools",
    singular: "spiderippool",
    short_name: "sp",
    namespaced: false,
    status_subresource: true,
};
/// Facts about SpiderSubnet.
pub const SUBNET: KindInfo = KindInfo {
    kind: "SpiderSubnet",
    plural: "spidersubnets",
    singular: "spidersubnet",
    short_name: "ss",
    namespaced: false,
    status_subresource: true,
};
/// Facts about SpiderEndpoint.
pub const ENDPOINT: KindInfo = KindInfo {
    kind: "SpiderEndpoint",
    plural: "spiderendpoints",
    singular: "spiderendpoint",
    short_name: "se",
    namespaced: true,
    status_subresource: false,
};
/// Facts about SpiderReservedIP.
pub const RESERVEDIP: KindInfo = KindInfo {
    kind: "SpiderReservedIP",
    plural: "spiderreservedips",
    singular: "spiderreservedip",
    short_name: "sr",
    namespaced: false,
    status_subresource: false,
};
/// Facts about SpiderMultusConfig.
pub const MULTUSCONFIG: KindInfo = KindInfo {
    kind: "SpiderMultusConfig",
    plural: "spidermultusconfigs",
    singular: "spidermultusconfig",
    short_name: "smc",
    namespaced: true,
    status_subresource: false,
};
/// Facts about SpiderCoordinator.
pub const COORDINATOR: KindInfo = KindInfo {
    kind: "SpiderCoordinator",
    plural: "spidercoordinators",
    singular: "spidercoordinator",
    short_name: "scc",
    namespaced: false,
    status_subresource: true,
};
/// All six, in [`KINDS`] order.
pub const KIND_INFOS: [KindInfo; 6] = [
    IPPOOL,
    SUBNET,
    ENDPOINT,
    RESERVEDIP,
    MULTUSCONFIG,
    COORDINATOR,
];

/// What every Spiderpool kind offers: its static facts and its metadata.
pub trait SpiderResource {
    /// Kind, plural, short name, scope.
    const INFO: KindInfo;

    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;

    /// The object's metadata, mutably.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// The object's name (`""` when unset).
    fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace, for namespaced kinds.
    fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }
}

/// The [`KindInfo`] of `kind`, if it is a Spiderpool kind.
pub fn kind_info(kind: &str) -> Option<&'static KindInfo> {
    KIND_INFOS.iter().find(|k| k.kind == kind)
}
