//! Admission of SpiderSubnet objects (spec §1.2; upstream `pkg/subnetmanager/subnet_*.go`).
//!
//! Mutation: finalizer, `ipVersion` and the `subnet-cidr` label from `subnet`, merged
//! `ips`/`excludeIPs`. Validation: subnets never share or nest CIDRs, a subnet must be able
//! to control the IPs of the pools already in its CIDR, and an UPDATE keeps every IP its
//! controlled pools hold.

use super::common::{
    EXCLUDE_IPS, IPS, SpecView, already_exists, check_cidr, check_gateway, check_name,
    check_routes, check_subnet_present, check_version, default_cidr_object, delete_in_use, go_list,
    lenient_effective, merge_in_place, not_changeable, parse_entries, set_of, stored_family,
    terminating,
};
use super::{ClusterState, FieldError, Operation, Switches};
use crate::ip::{Cidr, IpFamily, IpRange, IpRangeSet};
use crate::objects::SpiderSubnet;
use crate::objects::keys::{LABEL_SUBNET_CIDR, SPIDER_FINALIZER};

/// Upstream's message when the mutating webhook could not derive `ipVersion`.
const VERSION_UNSET: &str = "is not generated correctly, 'spec.subnet' may be invalid";
/// Kind word in upstream's messages ("not pertains to the 'spec.subnet' S of IPPool" is
/// upstream's text for subnets too; here it names the right kind).
const OWNER: &str = "Subnet";

/// Mutating webhook (upstream `mutateSubnet`); skipped steps are reported by the validator.
pub(super) fn mutate(obj: &mut SpiderSubnet, _cluster: &ClusterState, _switches: &Switches) {
    if obj.metadata.is_terminating() {
        return;
    }
    let Some(family) = default_cidr_object(
        &mut obj.metadata,
        &mut obj.spec.ip_version,
        &obj.spec.subnet,
        LABEL_SUBNET_CIDR,
    ) else {
        return;
    };
    merge_in_place(family, &mut obj.spec.ips);
    merge_in_place(family, &mut obj.spec.exclude_ips);
}

/// Validating webhook (upstream `ValidateCreate`/`ValidateUpdate`/`ValidateDelete`).
pub(super) fn validate(
    op: Operation,
    obj: &SpiderSubnet,
    old: Option<&SpiderSubnet>,
    cluster: &ClusterState,
    switches: &Switches,
) -> Vec<FieldError> {
    if op == Operation::Delete {
        let count = obj.status.as_ref().and_then(|s| s.allocated_ip_count);
        return match count {
            Some(n) if switches.validate_deletion && n > 0 => vec![delete_in_use(OWNER, n)],
            _ => Vec::new(),
        };
    }
    let mut errs = check_name(&obj.metadata);
    match op {
        Operation::Create => validate_create(obj, cluster, switches, &mut errs),
        _ => validate_update(obj, old, switches, &mut errs),
    }
    errs
}

/// CREATE: version, CIDR (format, AlreadyExists, overlap with other subnets, orphan pools),
/// then `ips`/`excludeIPs`, gateway and routes; every problem found is pushed on `errs`.
fn validate_create(
    subnet: &SpiderSubnet,
    cluster: &ClusterState,
    switches: &Switches,
    errs: &mut Vec<FieldError>,
) {
    let (family, cidr) = match version_and_cidr(subnet, switches) {
        Ok(v) => v,
        Err(e) => return errs.push(e),
    };
    errs.extend(check_other_subnets(subnet, family, &cidr, cluster).err());
    // The orphan-pool check needs the subnet's effective IPs, so it runs only when every
    // entry parses (upstream fails that step when it cannot assemble them).
    let total = check_spec(subnet, family, &cidr, errs);
    errs.extend(check_orphan_pools(subnet, family, &cidr, total.as_ref(), cluster).err());
}

/// UPDATE: terminating rule, immutable fields, version, spec, then the controlled pools'
/// IPs must stay inside the subnet's effective IPs.
fn validate_update(
    subnet: &SpiderSubnet,
    old: Option<&SpiderSubnet>,
    switches: &Switches,
    errs: &mut Vec<FieldError>,
) {
    if subnet.metadata.is_terminating() {
        if subnet.metadata.has_finalizer(SPIDER_FINALIZER) {
            // Upstream's text, typo included: users grep for it.
            errs.push(terminating("cannot update a terminaing Subnet"));
        }
        return;
    }
    if let Some(old) = old {
        if let (Some(new_v), Some(old_v)) = (subnet.spec.ip_version, old.spec.ip_version)
            && new_v != old_v
        {
            errs.push(not_changeable("spec.ipVersion"));
        }
        if subnet.spec.subnet != old.spec.subnet {
            errs.push(not_changeable("spec.subnet"));
        }
    }
    let (family, cidr) = match version_and_cidr(subnet, switches) {
        Ok(v) => v,
        Err(e) => return errs.push(e),
    };
    if let Some(total) = check_spec(subnet, family, &cidr, errs) {
        errs.extend(check_in_use(subnet, old, family, &total).err());
    }
}

/// `subnet` present, `ipVersion` valid and enabled, `subnet` a canonical CIDR of it.
fn version_and_cidr(
    subnet: &SpiderSubnet,
    switches: &Switches,
) -> Result<(IpFamily, Cidr), FieldError> {
    if let Some(e) = check_subnet_present(&subnet.spec.subnet) {
        return Err(e);
    }
    let family = check_version(subnet.spec.ip_version, switches, VERSION_UNSET)?;
    let cidr = check_cidr(family, &subnet.spec.subnet)?;
    Ok((family, cidr))
}

/// CREATE step 2: same name → AlreadyExists; any overlap with a subnet of the same version,
/// identical CIDR included → Invalid (two subnets never share addresses).
fn check_other_subnets(
    subnet: &SpiderSubnet,
    family: IpFamily,
    cidr: &Cidr,
    cluster: &ClusterState,
) -> Result<(), FieldError> {
    let name = subnet.metadata.name.as_deref().unwrap_or_default();
    if cluster
        .subnets
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(name))
    {
        return Err(already_exists("spidersubnets", name));
    }
    for s in &cluster.subnets {
        if stored_family(s.spec.ip_version, &s.spec.subnet) != Some(family) {
            continue;
        }
        if Cidr::parse(&s.spec.subnet).is_ok_and(|other| cidr.overlaps(&other)) {
            return Err(FieldError::invalid(
                "spec.subnet",
                format!(
                    "overlap with Subnet {} which 'spec.subnet' is {}",
                    s.metadata.name.as_deref().unwrap_or_default(),
                    s.spec.subnet
                ),
            ));
        }
    }
    Ok(())
}

/// CREATE step 3, against every pool of the same version: a different but overlapping CIDR
/// is refused; a pool with the same CIDR must have all its effective IPs inside the
/// subnet's (`total`, `None` when the subnet's own entries are bad).
fn check_orphan_pools(
    subnet: &SpiderSubnet,
    family: IpFamily,
    cidr: &Cidr,
    total: Option<&IpRangeSet>,
    cluster: &ClusterState,
) -> Result<(), FieldError> {
    let network = cidr.trunc();
    for p in &cluster.pools {
        if stored_family(p.spec.ip_version, &p.spec.subnet) != Some(family) {
            continue;
        }
        let Ok(pool_cidr) = Cidr::parse(&p.spec.subnet) else {
            continue;
        };
        let pool_name = p.metadata.name.as_deref().unwrap_or_default();
        if pool_cidr.trunc() != network {
            if cidr.overlaps(&pool_cidr) {
                return Err(FieldError::invalid(
                    "spec.subnet",
                    format!(
                        "overlap with SpiderIPPool '{pool_name}' resource 'spec.subnet' {}",
                        p.spec.subnet
                    ),
                ));
            }
            continue;
        }
        let Some(total) = total else {
            // The subnet's own entry errors are reported by the caller.
            continue;
        };
        let pool_ips =
            lenient_effective(family, p.spec.ips.as_deref(), p.spec.exclude_ips.as_deref());
        if !pool_ips.is_subset(total) {
            return Err(FieldError::invalid(
                IPS,
                format!(
                    "SpiderIPPool '{pool_name}' owns some IP addresses that SpiderSubnet '{}' can't control",
                    subnet.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Steps 4 and 5: every `ips` and `excludeIPs` entry a range inside `subnet`, gateway and
/// routes as for pools. Pushes every problem on `errs`; returns the effective IPs
/// (`ips − excludeIPs`) when every entry parses.
fn check_spec(
    subnet: &SpiderSubnet,
    family: IpFamily,
    cidr: &Cidr,
    errs: &mut Vec<FieldError>,
) -> Option<IpRangeSet> {
    let spec = &subnet.spec;
    let ips_raw = spec.ips.as_deref().unwrap_or_default();
    let exclude_raw = spec.exclude_ips.as_deref().unwrap_or_default();
    let ips = parse_entries(family, cidr, &spec.subnet, IPS, ips_raw, OWNER);
    let exclude = parse_entries(family, cidr, &spec.subnet, EXCLUDE_IPS, exclude_raw, OWNER);
    errs.extend(ips.errors.iter().cloned());
    errs.extend(exclude.errors.iter().cloned());
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
    Some(set_of(family, &ips.all()?).difference(&set_of(family, &exclude.all()?)))
}

/// UPDATE: each pool's share in `status.controlledIPPools` stays inside the effective IPs.
/// The status is a subresource, so the stored (old) one is what the update carries.
fn check_in_use(
    subnet: &SpiderSubnet,
    old: Option<&SpiderSubnet>,
    family: IpFamily,
    total: &IpRangeSet,
) -> Result<(), FieldError> {
    let status = match old {
        Some(o) => o.status.as_ref(),
        None => subnet.status.as_ref(),
    };
    let Some(status) = status else {
        return Ok(());
    };
    let field = "status.controlledIPPools";
    let pools = status
        .controlled_ip_pools()
        .map_err(|e| FieldError::invalid(field, e.to_string()))?;
    for (pool, share) in &pools {
        let mut held = IpRangeSet::new(family);
        for entry in &share.ips {
            let r = IpRange::parse_in(family, entry)
                .map_err(|e| FieldError::invalid(field, format!("IPPool {pool}: {e}")))?;
            held.insert_range(r)
                .map_err(|e| FieldError::invalid(field, format!("IPPool {pool}: {e}")))?;
        }
        let removed = held.difference(total);
        if !removed.is_empty() {
            return Err(FieldError::forbidden(
                IPS,
                format!(
                    "remove some IP ranges {} that is being used by IPPool {pool}, total IP addresses of an Subnet are jointly determined by 'spec.ips' and 'spec.excludeIPs'",
                    go_list(&removed)
                ),
            ));
        }
    }
    Ok(())
}
