//! The admission webhooks of upstream Spiderpool as pure functions.
//!
//! Upstream runs a mutating webhook (defaulting) and then a validating webhook for each kind.
//! Here both are plain functions on data, so the controller's webhook server and the offline
//! `spiderpoolctl validate` share them. Checks that need other objects (overlapping pools,
//! subnet ownership, NAD ownership) read them from a [`ClusterState`] given by the caller.
//!
//! [`admit`] is the entry point: it defaults the object (as the mutating webhook would), then
//! validates it for the [`Operation`], and returns either the defaulted object or every
//! [`FieldError`] found.

mod common;
mod coordinator;
mod field;
mod ippool;
mod multusconfig;
mod reservedip;
mod subnet;

pub use field::{FieldError, Reason};

use crate::manifest::SpiderObject;
use crate::meta::ObjectMeta;
use crate::objects::{
    SpiderCoordinator, SpiderIPPool, SpiderMultusConfig, SpiderReservedIP, SpiderSubnet,
};

/// The admission operation, as in an AdmissionReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A change to an existing object (the old one is given).
    Update,
    /// A deletion (the old object is given; checked only where upstream checks it).
    Delete,
}

/// Cluster-wide switches that change admission, from upstream's `spiderpool-conf` ConfigMap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// `enableIPv4`: IPv4 pools, subnets and reserved IPs are allowed.
    pub enable_ipv4: bool,
    /// `enableIPv6`: IPv6 pools, subnets and reserved IPs are allowed.
    pub enable_ipv6: bool,
    /// `enableSpiderSubnet`: pools are adopted by and checked against SpiderSubnets.
    pub enable_spider_subnet: bool,
    /// `enableValidatingResourcesDeletedWebhook`: refuse deleting pools/subnets still in use.
    pub validate_deletion: bool,
}

impl Default for Switches {
    /// Upstream's Helm defaults: both families, subnets on, deletion not validated.
    fn default() -> Self {
        Self {
            enable_ipv4: true,
            enable_ipv6: true,
            enable_spider_subnet: true,
            validate_deletion: false,
        }
    }
}

/// The objects already in the cluster that admission compares against.
///
/// Objects with the same kind and name as the one being admitted are ignored by the
/// per-kind checks where upstream ignores them (an UPDATE does not overlap itself).
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// Existing SpiderIPPools.
    pub pools: Vec<SpiderIPPool>,
    /// Existing SpiderSubnets.
    pub subnets: Vec<SpiderSubnet>,
    /// Existing SpiderReservedIPs.
    pub reserved_ips: Vec<SpiderReservedIP>,
    /// Existing SpiderMultusConfigs.
    pub multus_configs: Vec<SpiderMultusConfig>,
    /// Existing SpiderCoordinators.
    pub coordinators: Vec<SpiderCoordinator>,
    /// Metadata of existing NetworkAttachmentDefinitions (name, namespace, owner references
    /// are what the SpiderMultusConfig checks need).
    pub nads: Vec<ObjectMeta>,
}

impl ClusterState {
    /// Adds or replaces (same kind, namespace and name) an object.
    pub fn upsert(&mut self, obj: SpiderObject) {
        fn put<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
            match list.iter_mut().find(|x| same(x)) {
                Some(slot) => *slot = item,
                None => list.push(item),
            }
        }
        let (ns, name) = (obj.namespace().map(str::to_owned), obj.name().to_owned());
        let same = |m: &ObjectMeta| m.namespace == ns && m.name.as_deref() == Some(name.as_str());
        match obj {
            SpiderObject::IPPool(o) => put(&mut self.pools, o, |x| same(&x.metadata)),
            SpiderObject::Subnet(o) => put(&mut self.subnets, o, |x| same(&x.metadata)),
            SpiderObject::ReservedIP(o) => put(&mut self.reserved_ips, o, |x| same(&x.metadata)),
            SpiderObject::MultusConfig(o) => {
                put(&mut self.multus_configs, o, |x| same(&x.metadata))
            }
            SpiderObject::Coordinator(o) => put(&mut self.coordinators, o, |x| same(&x.metadata)),
            // Endpoints take part in no admission check.
            SpiderObject::Endpoint(_) => {}
        }
    }

    /// Finds an existing object with the same kind, namespace and name as `obj`.
    pub fn find(&self, obj: &SpiderObject) -> Option<SpiderObject> {
        let ns = obj.namespace();
        let name = obj.name();
        let same = |m: &ObjectMeta| m.namespace.as_deref() == ns && m.name.as_deref() == Some(name);
        match obj {
            SpiderObject::IPPool(_) => self
                .pools
                .iter()
                .find(|x| same(&x.metadata))
                .cloned()
                .map(SpiderObject::IPPool),
            SpiderObject::Subnet(_) => self
                .subnets
                .iter()
                .find(|x| same(&x.metadata))
                .cloned()
                .map(SpiderObject::Subnet),
            SpiderObject::ReservedIP(_) => self
                .reserved_ips
                .iter()
                .find(|x| same(&x.metadata))
                .cloned()
                .map(SpiderObject::ReservedIP),
            SpiderObject::MultusConfig(_) => self
                .multus_configs
                .iter()
                .find(|x| same(&x.metadata))
                .cloned()
                .map(SpiderObject::MultusConfig),
            SpiderObject::Coordinator(_) => self
                .coordinators
                .iter()
                .find(|x| same(&x.metadata))
                .cloned()
                .map(SpiderObject::Coordinator),
            SpiderObject::Endpoint(_) => None,
        }
    }
}

/// Runs the mutating webhook of `obj`'s kind. Upstream swallows mutation errors (the
/// validator reports the problem), so this never fails.
pub fn mutate(obj: &mut SpiderObject, cluster: &ClusterState, switches: &Switches) {
    match obj {
        SpiderObject::IPPool(o) => ippool::mutate(o, cluster, switches),
        SpiderObject::Subnet(o) => subnet::mutate(o, cluster, switches),
        SpiderObject::ReservedIP(o) => reservedip::mutate(o),
        SpiderObject::MultusConfig(o) => multusconfig::mutate(o),
        SpiderObject::Coordinator(o) => coordinator::mutate(o),
        // SpiderEndpoint has no webhook upstream.
        SpiderObject::Endpoint(_) => {}
    }
}

/// Runs the validating webhook of `obj`'s kind for `op`. `old` is the existing object for
/// UPDATE and DELETE. Returns every problem found (empty = admitted).
pub fn validate(
    op: Operation,
    obj: &SpiderObject,
    old: Option<&SpiderObject>,
    cluster: &ClusterState,
    switches: &Switches,
) -> Vec<FieldError> {
    match (obj, old) {
        (SpiderObject::IPPool(o), old) => {
            let old = match old {
                Some(SpiderObject::IPPool(p)) => Some(p),
                _ => None,
            };
            ippool::validate(op, o, old, cluster, switches)
        }
        (SpiderObject::Subnet(o), old) => {
            let old = match old {
                Some(SpiderObject::Subnet(p)) => Some(p),
                _ => None,
            };
            subnet::validate(op, o, old, cluster, switches)
        }
        (SpiderObject::ReservedIP(o), old) => {
            let old = match old {
                Some(SpiderObject::ReservedIP(p)) => Some(p),
                _ => None,
            };
            reservedip::validate(op, o, old, switches)
        }
        (SpiderObject::MultusConfig(o), old) => {
            let old = match old {
                Some(SpiderObject::MultusConfig(p)) => Some(p),
                _ => None,
            };
            multusconfig::validate(op, o, old, cluster)
        }
        (SpiderObject::Coordinator(o), _) => coordinator::validate(op, o),
        (SpiderObject::Endpoint(_), _) => Vec::new(),
    }
}

/// Admission as the apiserver runs it: mutate, then validate. Returns the defaulted object,
/// or every field error. For DELETE nothing is defaulted and `obj` is the object deleted.
pub fn admit(
    op: Operation,
    mut obj: SpiderObject,
    old: Option<&SpiderObject>,
    cluster: &ClusterState,
    switches: &Switches,
) -> Result<SpiderObject, Vec<FieldError>> {
    if op != Operation::Delete {
        mutate(&mut obj, cluster, switches);
    }
    let errors = validate(op, &obj, old, cluster, switches);
    if errors.is_empty() {
        Ok(obj)
    } else {
        Err(errors)
    }
}
