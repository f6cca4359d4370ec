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

/// How the range lists (`ips`, `excludeIPs`) being validated relate to the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lists {
    /// They are what will be stored: overlapping `ips` entries are refused.
    AsStored,
    /// They are as the user wrote them, and the mutating webhook merged them for storing:
    /// overlapping entries are fine (they were joined).
    MergedOnStore,
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
    validate_lists(op, obj, old, cluster, switches, Lists::AsStored)
}

/// [`validate`], with what the range lists of `obj` are.
fn validate_lists(
    op: Operation,
    obj: &SpiderObject,
    old: Option<&SpiderObject>,
    cluster: &ClusterState,
    switches: &Switches,
    lists: Lists,
) -> Vec<FieldError> {
    match (obj, old) {
        (SpiderObject::IPPool(o), old) => {
            let old = match old {
                Some(SpiderObject::IPPool(p)) => Some(p),
                _ => None,
            };
            ippool::validate(op, o, old, cluster, switches, lists)
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

/// The defaulted object with its range lists put back as the user wrote them, when the
/// mutating webhook changed (sorted, merged) them; `None` when it did not.
///
/// Validating the lists as written checks the same addresses (the merge only sorts and
/// joins entries) while the field paths (`spec.ips[2]`) and quoted entries are the user's.
fn with_lists_as_written(defaulted: &SpiderObject, written: &SpiderObject) -> Option<SpiderObject> {
    let mut view = defaulted.clone();
    let changed = match (&mut view, written) {
        (SpiderObject::IPPool(v), SpiderObject::IPPool(w)) => {
            let changed = v.spec.ips != w.spec.ips || v.spec.exclude_ips != w.spec.exclude_ips;
            v.spec.ips.clone_from(&w.spec.ips);
            v.spec.exclude_ips.clone_from(&w.spec.exclude_ips);
            changed
        }
        (SpiderObject::Subnet(v), SpiderObject::Subnet(w)) => {
            let changed = v.spec.ips != w.spec.ips || v.spec.exclude_ips != w.spec.exclude_ips;
            v.spec.ips.clone_from(&w.spec.ips);
            v.spec.exclude_ips.clone_from(&w.spec.exclude_ips);
            changed
        }
        (SpiderObject::ReservedIP(v), SpiderObject::ReservedIP(w)) => {
            let changed = v.spec.ips != w.spec.ips;
            v.spec.ips.clone_from(&w.spec.ips);
            changed
        }
        _ => false,
    };
    changed.then_some(view)
}

/// Admission as the apiserver runs it: mutate, then validate. Returns the defaulted object,
/// or every field error. For DELETE nothing is defaulted and `obj` is the object deleted.
///
/// Field errors name list entries by the index the user wrote, even when defaulting sorted
/// and merged `ips` / `excludeIPs`.
pub fn admit(
    op: Operation,
    mut obj: SpiderObject,
    old: Option<&SpiderObject>,
    cluster: &ClusterState,
    switches: &Switches,
) -> Result<SpiderObject, Vec<FieldError>> {
    let errors = if op == Operation::Delete {
        validate(op, &obj, old, cluster, switches)
    } else {
        let written = obj.clone();
        mutate(&mut obj, cluster, switches);
        match with_lists_as_written(&obj, &written) {
            Some(view) => validate_lists(op, &view, old, cluster, switches, Lists::MergedOnStore),
            None => validate(op, &obj, old, cluster, switches),
        }
    };
    if errors.is_empty() {
        Ok(obj)
    } else {
        Err(errors)
    }
}
