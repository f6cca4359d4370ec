//! Admission of SpiderIPPool objects (spec §1.1; upstream `pkg/ippoolmanager/ippool_*.go`).
//!
//! Mutation: finalizer, `ipVersion` and the `ippool-cidr` label from `subnet`, adoption by the
//! SpiderSubnet of the same CIDR (owner reference, label, inherited gateway/routes), merged
//! `ips`/`excludeIPs`. Validation follows upstream's order of steps but reports every
//! problem it can find (upstream stops at the first failing step), with field paths that
//! index the lists as the user wrote them.
//! All range math is on intervals, so a /64 pool validates as fast as a /24.

use super::common::{
    EXCLUDE_IPS, IPS, SpecView, already_exists, check_cidr, check_disjoint, check_gateway,
    check_name, check_routes, check_subnet_present, check_version, default_cidr_object,
    delete_in_use, go_list, lenient_effective, merge_in_place, not_changeable, parse_entries,
    set_of, stored_family, terminating,
};
use super::{ClusterState, FieldError, Lists, Operation, Switches};
use crate::ip::{Cidr, IpFamily, IpRange, IpRangeSet, cidr_label_value_str, ip_to_u128, parse_ip};
use crate::meta::{ObjectMeta, OwnerReference, SelectorProblemKind};
use crate::objects::keys::{
    AUTO_POOL_AFFINITY_KEYS, LABEL_IPPOOL_CIDR, LABEL_OWNER_APPLICATION_NAME,
    LABEL_OWNER_SPIDER_SUBNET, LABEL_SUBNET_CIDR, SPIDER_FINALIZER,
};
use crate::objects::{API_VERSION, SUBNET as SUBNET_INFO, SpiderIPPool, SpiderSubnet};

use super::Reason;

/// Upstream's message when the mutating webhook could not derive `ipVersion`.
const VERSION_UNSET: &str = "is not generated correctly, 'spec.subnet' may be invalid";
/// Upstream's explanation appended to the range messages.
const TOTAL_IPS_NOTE: &str =
    "total IP addresses of an IPPool are jointly determined by 'spec.ips' and 'spec.excludeIPs'";
/// Kind word in upstream's messages.
const OWNER: &str = "IPPool";

/// Mutating webhook (upstream `mutateIPPool`). Steps that cannot be done are skipped, as
/// upstream swallows mutation errors; the validator then reports the problem.
pub(super) fn mutate(obj: &mut SpiderIPPool, cluster: &ClusterState, switches: &Switches) {
    if obj.metadata.is_terminating() {
        return;
    }
    let Some(family) = default_cidr_object(
        &mut obj.metadata,
        &mut obj.spec.ip_version,
        &obj.spec.subnet,
        LABEL_IPPOOL_CIDR,
    ) else {
        return;
    };
    if switches.enable_spider_subnet {
        adopt(obj, cluster);
    }
    merge_in_place(family, &mut obj.spec.ips);
    merge_in_place(family, &mut obj.spec.exclude_ips);
}

/// The CIDR label of a subnet: its label, or (for objects that never went through the
/// mutating webhook, e.g. hand-written cluster files) the value the webhook would set.
fn subnet_cidr_label(s: &SpiderSubnet) -> Option<String> {
    match s.metadata.label(LABEL_SUBNET_CIDR) {
        Some(v) => Some(v.to_owned()),
        None => Cidr::parse(&s.spec.subnet)
            .ok()
            .map(|_| cidr_label_value_str(&s.spec.subnet)),
    }
}

/// The API group of an `apiVersion` (`""` for the core group).
fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Whether `owner` names `subnet` (same group, kind and name: controller-runtime's rule for
/// "the same object" when setting a controller reference).
fn refers_to(owner: &OwnerReference, subnet: &SpiderSubnet) -> bool {
    group(&owner.api_version) == group(API_VERSION)
        && owner.kind == SUBNET_INFO.kind
        && subnet.metadata.name.as_deref() == Some(owner.name.as_str())
}

/// Upstream `setControllerSubnet` + `InheritSubnetProperties`.
fn adopt(pool: &mut SpiderIPPool, cluster: &ClusterState) {
    let meta = &pool.metadata;
    if let (Some(label), Some(owner)) = (
        meta.label(LABEL_OWNER_SPIDER_SUBNET),
        meta.controller_owner(),
    ) && label == owner.name
    {
        return;
    }
    let cidr_label = cidr_label_value_str(&pool.spec.subnet);
    let Some(subnet) = cluster
        .subnets
        .iter()
        .find(|s| subnet_cidr_label(s).as_deref() == Some(cidr_label.as_str()))
    else {
        return;
    };
    let subnet_name = subnet.metadata.name.clone().unwrap_or_default();
    let subnet_uid = subnet.metadata.uid.clone().unwrap_or_default();
    match meta.controller_owner() {
        // Already controlled by this subnet (upstream compares UIDs).
        Some(o) if refers_to(o, subnet) && o.uid == subnet_uid => {}
        // Controlled by something else: upstream's SetControllerReference fails and the pool
        // is left alone; the rest of the defaulting still runs here.
        Some(o) if !refers_to(o, subnet) => return,
        _ => set_controller(&mut pool.metadata, &subnet_name, &subnet_uid),
    }
    pool.metadata
        .set_label(LABEL_OWNER_SPIDER_SUBNET, subnet_name.as_str());
    if pool.spec.gateway.is_none() {
        pool.spec.gateway.clone_from(&subnet.spec.gateway);
    }
    // An explicit empty `routes` list means "no routes", so only an absent one inherits.
    if pool.spec.routes.is_none() && subnet.spec.routes.as_ref().is_some_and(|r| !r.is_empty()) {
        pool.spec.routes.clone_from(&subnet.spec.routes);
    }
}

/// Adds (or replaces, when it names the same subnet) the controller owner reference.
fn set_controller(meta: &mut ObjectMeta, name: &str, uid: &str) {
    let reference = OwnerReference {
        api_version: API_VERSION.to_owned(),
        kind: SUBNET_INFO.kind.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
        extra: serde_json::Map::new(),
    };
    let refs = meta.owner_references.get_or_insert_with(Vec::new);
    match refs.iter_mut().find(|o| {
        group(&o.api_version) == group(API_VERSION) && o.kind == reference.kind && o.name == name
    }) {
        Some(slot) => *slot = reference,
        None => refs.push(reference),
    }
}

/// Validating webhook (upstream `ValidateCreate`/`ValidateUpdate`/`ValidateDelete`).
///
/// Upstream stops at the first failing step; here every problem that can be found is
/// reported (checks on the effective IPs run only when every entry parses). `lists` says
/// whether the mutating webhook merged `ips`/`excludeIPs` (then overlapping entries are fine).
pub(super) fn validate(
    op: Operation,
    obj: &SpiderIPPool,
    old: Option<&SpiderIPPool>,
    cluster: &ClusterState,
    switches: &Switches,
    lists: Lists,
) -> Vec<FieldError> {
    if op == Operation::Delete {
        return validate_delete(obj, switches);
    }
    let mut errs = check_name(&obj.metadata);
    match op {
        Operation::Create => validate_create(obj, cluster, switches, lists, &mut errs),
        _ => validate_update(obj, old, cluster, switches, lists, &mut errs),
    }
    errs
}

/// CREATE: version, CIDR (format, AlreadyExists, overlap with other pools' CIDRs), the spec
/// and podAffinity checks, then the controller subnet.
fn validate_create(
    pool: &SpiderIPPool,
    cluster: &ClusterState,
    switches: &Switches,
    lists: Lists,
    errs: &mut Vec<FieldError>,
) {
    let (family, cidr) = match version_and_cidr(pool, switches) {
        Ok(v) => v,
        Err(e) => {
            errs.push(e);
            errs.extend(check_pod_affinity(pool));
            return;
        }
    };
    if let Err(e) = check_cidr_overlap(pool, family, &cidr, cluster) {
        errs.push(e);
    }
    let total = check_spec(pool, family, &cidr, cluster, lists, errs);
    errs.extend(check_pod_affinity(pool));
    if let (true, Some(total)) = (switches.enable_spider_subnet, total) {
        errs.extend(check_controller_subnet(pool, family, &total, cluster).err());
    }
}

/// UPDATE: terminating rule, immutable fields, version, spec, podAffinity, IPs in use, then
/// the controller subnet.
fn validate_update(
    pool: &SpiderIPPool,
    old: Option<&SpiderIPPool>,
    cluster: &ClusterState,
    switches: &Switches,
    lists: Lists,
    errs: &mut Vec<FieldError>,
) {
    if pool.metadata.is_terminating() {
        // Removing the finalizer (and other updates once it is gone) must get through, or
        // the pool could never be deleted.
        if pool.metadata.has_finalizer(SPIDER_FINALIZER) {
            errs.push(terminating("cannot update a terminating IPPool"));
        }
        return;
    }
    if let Some(old) = old {
        if let (Some(new_v), Some(old_v)) = (pool.spec.ip_version, old.spec.ip_version)
            && new_v != old_v
        {
            errs.push(not_changeable("spec.ipVersion"));
        }
        if pool.spec.subnet != old.spec.subnet {
            errs.push(not_changeable("spec.subnet"));
        }
    }
    let (family, cidr) = match version_and_cidr(pool, switches) {
        Ok(v) => v,
        Err(e) => {
            errs.push(e);
            errs.extend(check_pod_affinity(pool));
            return;
        }
    };
    let total = check_spec(pool, family, &cidr, cluster, lists, errs);
    errs.extend(check_pod_affinity(pool));
    let Some(total) = total else {
        return;
    };
    errs.extend(check_in_use(pool, old, &total).err());
    if switches.enable_spider_subnet {
        errs.extend(check_controller_subnet(pool, family, &total, cluster).err());
    }
}

/// DELETE, only with `enableValidatingResourcesDeletedWebhook`: no allocated IPs.
fn validate_delete(pool: &SpiderIPPool, switches: &Switches) -> Vec<FieldError> {
    let count = pool.status.as_ref().and_then(|s| s.allocated_ip_count);
    match count {
        Some(n) if switches.validate_deletion && n > 0 => vec![delete_in_use(OWNER, n)],
        _ => Vec::new(),
    }
}

/// Steps 1 and 2: `subnet` present, `ipVersion` valid and enabled, `subnet` a canonical CIDR
/// of that version. (On UPDATE upstream skips the CIDR format because `subnet` is immutable;
/// checking it again costs nothing and covers a bad stored object.)
fn version_and_cidr(
    pool: &SpiderIPPool,
    switches: &Switches,
) -> Result<(IpFamily, Cidr), FieldError> {
    if let Some(e) = check_subnet_present(&pool.spec.subnet) {
        return Err(e);
    }
    let family = check_version(pool.spec.ip_version, switches, VERSION_UNSET)?;
    let cidr = check_cidr(family, &pool.spec.subnet)?;
    Ok((family, cidr))
}

/// The other pools of the cluster (an UPDATE does not compare a pool with itself).
fn others<'a>(
    pool: &'a SpiderIPPool,
    cluster: &'a ClusterState,
) -> impl Iterator<Item = &'a SpiderIPPool> {
    cluster
        .pools
        .iter()
        .filter(move |p| p.metadata.name != pool.metadata.name)
}

/// CREATE step 3: a pool of the same name exists → AlreadyExists (whatever its version, as
/// the apiserver would say); a pool of the same version whose CIDR contains or is contained
/// in ours, but is not the same CIDR → Invalid.
fn check_cidr_overlap(
    pool: &SpiderIPPool,
    family: IpFamily,
    cidr: &Cidr,
    cluster: &ClusterState,
) -> Result<(), FieldError> {
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    if cluster
        .pools
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some(name))
    {
        return Err(already_exists("spiderippools", name));
    }
    for p in others(pool, cluster) {
        if stored_family(p.spec.ip_version, &p.spec.subnet) != Some(family) {
            continue;
        }
        let Ok(other) = Cidr::parse(&p.spec.subnet) else {
            continue;
        };
        if other.trunc() == cidr.trunc() {
            continue;
        }
        if cidr.overlaps(&other) {
            return Err(FieldError::invalid(
                "spec.subnet",
                format!(
                    "overlap with IPPool {} which 'spec.subnet' is {}",
                    p.metadata.name.as_deref().unwrap_or_default(),
                    p.spec.subnet
                ),
            ));
        }
    }
    Ok(())
}

/// Steps 4 to 6: the entries of `ips` and `excludeIPs`, the effective IPs against the other
/// pools of the same CIDR, the gateway, the routes. Pushes every problem on `errs` and
/// returns the effective IPs (`ips − excludeIPs`) when every entry parses.
fn check_spec(
    pool: &SpiderIPPool,
    family: IpFamily,
    cidr: &Cidr,
    cluster: &ClusterState,
    lists: Lists,
    errs: &mut Vec<FieldError>,
) -> Option<IpRangeSet> {
    let spec = &pool.spec;
    let ips_raw = spec.ips.as_deref().unwrap_or_default();
    let exclude_raw = spec.exclude_ips.as_deref().unwrap_or_default();
    let ips = parse_entries(family, cidr, &spec.subnet, IPS, ips_raw, OWNER);
    let exclude = parse_entries(family, cidr, &spec.subnet, EXCLUDE_IPS, exclude_raw, OWNER);
    errs.extend(ips.errors.iter().cloned());
    errs.extend(exclude.errors.iter().cloned());
    let (ips_all, exclude_all) = (ips.all(), exclude.all());
    if let (Lists::AsStored, Some(all)) = (lists, &ips_all) {
        errs.extend(check_disjoint(IPS, ips_raw, all).err());
    }
    let view = SpecView {
        family,
        cidr,
        subnet: &spec.subnet,
        ips: (ips_raw, &ips.ranges),
        exclude: &exclude.ranges,
        gateway: spec.gateway.as_deref(),
        routes: spec.routes.as_deref(),
        owner: OWNER,
    };
    errs.extend(check_gateway(&view).err());
    errs.extend(check_routes(&view));
    let total = set_of(family, &ips_all?).difference(&set_of(family, &exclude_all?));
    errs.extend(check_range_overlap(pool, family, cidr, &total, cluster).err());
    Some(total)
}

/// Step 4, second half: no other pool of the same CIDR may share an effective IP.
fn check_range_overlap(
    pool: &SpiderIPPool,
    family: IpFamily,
    cidr: &Cidr,
    total: &IpRangeSet,
    cluster: &ClusterState,
) -> Result<(), FieldError> {
    let network = cidr.trunc();
    for p in others(pool, cluster) {
        if Cidr::parse(&p.spec.subnet).ok().map(|c| c.trunc()) != Some(network) {
            continue;
        }
        let theirs =
            lenient_effective(family, p.spec.ips.as_deref(), p.spec.exclude_ips.as_deref());
        let shared = total.intersection(&theirs);
        if !shared.is_empty() {
            return Err(FieldError::forbidden(
                IPS,
                format!(
                    "overlap with IPPool {} in IP ranges {}, {TOTAL_IPS_NOTE}",
                    p.metadata.name.as_deref().unwrap_or_default(),
                    go_list(&shared)
                ),
            ));
        }
    }
    Ok(())
}

/// Step 7 (all problems reported): auto-created pools (label `owner-application-name`) may
/// only carry the five application keys; other pools need a valid, non-empty selector.
fn check_pod_affinity(pool: &SpiderIPPool) -> Vec<FieldError> {
    let Some(selector) = &pool.spec.pod_affinity else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if pool.metadata.label(LABEL_OWNER_APPLICATION_NAME).is_some() {
        for key in selector.match_labels.iter().flatten().map(|(k, _)| k) {
            if !AUTO_POOL_AFFINITY_KEYS.contains(&key.as_str()) {
                errs.push(FieldError::invalid(
                    "spec.podAffinity.matchLabels",
                    format!(
                        "{key:?}: it's invalid to add additional podAffinity matchLabels for auto-created SpiderIPPool"
                    ),
                ));
            }
        }
        if selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            errs.push(FieldError::invalid(
                "spec.podAffinity.matchExpressions",
                "it's invalid to add additional podAffinity matchExpressions for auto-created SpiderIPPool",
            ));
        }
        return errs;
    }
    for p in selector.validate() {
        let reason = match p.kind {
            SelectorProblemKind::Required => Reason::Required,
            SelectorProblemKind::Forbidden => Reason::Forbidden,
            SelectorProblemKind::NotSupported => Reason::NotSupported,
            SelectorProblemKind::Invalid => Reason::Invalid,
        };
        let message = match &p.value {
            Some(v) => format!("{v:?}: {}", p.message),
            None => p.message,
        };
        errs.push(FieldError::new(
            format!("spec.podAffinity.{}", p.field),
            reason,
            message,
        ));
    }
    if selector.is_empty() {
        errs.push(FieldError::invalid(
            "spec.podAffinity",
            "empty podAffinity is invalid for SpiderIPPool",
        ));
    }
    errs
}

/// UPDATE: every IP recorded in `status.allocatedIPs` must still be an effective IP. The
/// lowest offending address is reported.
///
/// `status` is a subresource, so an update of the pool carries the stored status: the old
/// object's when it is known (a manifest applied by `spiderpoolctl` usually has none).
fn check_in_use(
    pool: &SpiderIPPool,
    old: Option<&SpiderIPPool>,
    total: &IpRangeSet,
) -> Result<(), FieldError> {
    let status = match old {
        Some(o) => o.status.as_ref(),
        None => pool.status.as_ref(),
    };
    let Some(status) = status else {
        return Ok(());
    };
    let records = status
        .allocated_ips()
        .map_err(|e| FieldError::invalid("status.allocatedIPs", e.to_string()))?;
    let offending = records
        .iter()
        .map(|(ip, rec)| (parse_ip(ip).ok(), ip, rec))
        .filter(|(addr, _, _)| !addr.is_some_and(|a| total.contains(a)))
        .min_by_key(|(addr, _, _)| addr.map(ip_to_u128));
    match offending {
        Some((_, ip, rec)) => Err(FieldError::forbidden(
            IPS,
            format!(
                "remove an IP address {ip} that is being used by Pod {}, {TOTAL_IPS_NOTE}",
                rec.pod
            ),
        )),
        None => Ok(()),
    }
}

/// Step 8 (SpiderSubnet feature on, pool controlled by a SpiderSubnet): the pool's effective
/// IPs lie inside the subnet's; an auto-created pool's equal the subnet's record for it.
fn check_controller_subnet(
    pool: &SpiderIPPool,
    family: IpFamily,
    total: &IpRangeSet,
    cluster: &ClusterState,
) -> Result<(), FieldError> {
    // Upstream takes any controller to be the subnet; a controller of another kind has no
    // subnet to check against.
    let Some(owner) = pool
        .metadata
        .controller_owner()
        .filter(|o| o.kind == SUBNET_INFO.kind)
    else {
        return Ok(());
    };
    if total.is_empty() {
        return Ok(());
    }
    let Some(subnet) = cluster
        .subnets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(owner.name.as_str()))
    else {
        return Err(FieldError::invalid(
            "metadata.ownerReferences",
            format!("failed to get controller Subnet {}: not found", owner.name),
        ));
    };
    let subnet_total = lenient_effective(
        family,
        subnet.spec.ips.as_deref(),
        subnet.spec.exclude_ips.as_deref(),
    );
    let outside = total.difference(&subnet_total);
    if !outside.is_empty() {
        return Err(FieldError::forbidden(
            IPS,
            format!(
                "add some IP ranges {} that are not contained in controller Subnet {}, {TOTAL_IPS_NOTE}",
                go_list(&outside),
                owner.name
            ),
        ));
    }
    if pool.metadata.label(LABEL_OWNER_APPLICATION_NAME).is_some() {
        check_auto_pool_share(pool, family, total, subnet)?;
    }
    Ok(())
}

/// An auto-created pool holds exactly the IPs its subnet pre-allocated to it in
/// `status.controlledIPPools` (only the application controller may change them).
fn check_auto_pool_share(
    pool: &SpiderIPPool,
    family: IpFamily,
    total: &IpRangeSet,
    subnet: &SpiderSubnet,
) -> Result<(), FieldError> {
    let controlled = subnet
        .status
        .as_ref()
        .map(|s| s.controlled_ip_pools())
        .transpose()
        .map_err(|e| {
            FieldError::invalid(
                IPS,
                format!(
                    "failed to read SpiderSubnet {} status.controlledIPPools: {e}",
                    subnet.metadata.name.as_deref().unwrap_or_default()
                ),
            )
        })?
        .unwrap_or_default();
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    // An unreadable record cannot match the pool's IPs, so it fails the comparison.
    let share = controlled
        .get(name)
        .map(|p| p.ips.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| IpRange::parse_in(family, e).ok())
        .collect::<Option<Vec<_>>>()
        .and_then(|ranges| IpRangeSet::from_ranges(family, ranges).ok());
    if share.as_ref() != Some(total) {
        return Err(FieldError::forbidden(
            IPS,
            "it's illegal to update AutoPool.Spec.IPs that are different from corresponding SpiderSubnet.Status.ControlledIPPools",
        ));
    }
    Ok(())
}
