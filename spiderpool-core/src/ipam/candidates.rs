//! Which pools a NIC may draw from (§3.3–§3.7): the first source that applies, wildcards,
//! family filtering, precheck, filters and the try order.

use crate::ipam::IpamError;
use std::collections::BTreeSet;

use super::affinity::{FilterContext, PoolRejection, RejectReason, priority_key};
use super::annotations::{
    MultiNicPools, PoolNames, glob_match, is_glob, parse_ippool, parse_ippools,
    parse_namespace_pools, parse_subnet, parse_subnets,
};
use super::pool_state::PoolState;
use super::request::AllocateRequest;
use super::store::Snapshot;
use crate::ip::IpFamily;
use crate::objects::keys::{
    ANNO_NS_DEFAULT_IPV4_IPPOOL, ANNO_NS_DEFAULT_IPV6_IPPOOL, ANNO_POD_IPPOOL, ANNO_POD_IPPOOLS,
    ANNO_POD_SUBNET, ANNO_POD_SUBNETS, LABEL_INTERFACE, LABEL_IP_VERSION,
    LABEL_OWNER_APPLICATION_UID, LABEL_OWNER_SPIDER_SUBNET,
};

/// Where a NIC's candidate pools came from (§3.3), highest priority first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolSource {
    /// Pod `ipam.spidernet.io/subnets` / `subnet`: the application's auto-created pool.
    AutoPool,
    /// Pod `ipam.spidernet.io/ippools` (every NIC at once).
    PodIPPools,
    /// Pod `ipam.spidernet.io/ippool`.
    PodIPPool,
    /// Namespace `ipam.spidernet.io/default-ipv4-ippool` / `-ipv6-`.
    NamespaceDefault,
    /// CNI config `default_ipv4_ippool` / `default_ipv6_ippool`.
    NadDefault,
    /// Pools with `spec.default: true`.
    ClusterDefault,
}

/// The candidate pool names of one NIC, after wildcard expansion and family filtering, in
/// the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicCandidates {
    /// The NIC (`"0"`, `"1"`... for positional `ippools` items).
    pub nic: String,
    /// IPv4 pool names.
    pub ipv4: Vec<String>,
    /// IPv6 pool names.
    pub ipv6: Vec<String>,
    /// No default route for this NIC.
    pub clean_gateway: bool,
}

impl NicCandidates {
    /// The names of `family`.
    pub fn of(&self, family: IpFamily) -> &[String] {
        match family {
            IpFamily::V4 => &self.ipv4,
            IpFamily::V6 => &self.ipv6,
        }
    }
}

/// The NICs to allocate in this request and their candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// The source that applied.
    pub source: PoolSource,
    /// For `ipam.spidernet.io/ippools` without interface names: items are positional.
    pub positional: bool,
    /// One entry per NIC; only the request's NIC except for `ippools`.
    pub nics: Vec<NicCandidates>,
}

fn request_error(req: &AllocateRequest, reason: impl Into<String>) -> IpamError {
    IpamError::Request {
        pod: req.pod.key(),
        nic: req.ifname.clone(),
        reason: reason.into(),
    }
}

/// Computes the candidates of the request (§3.3–§3.5 and the precheck of §3.6): the first
/// source that applies; globs replaced by the matching pools of the family (sorted by name);
/// names of a disabled family dropped; a name listed twice or naming no pool is an error.
pub fn pool_candidates(req: &AllocateRequest, snap: &Snapshot) -> Result<Candidates, IpamError> {
    let (source, positional, raw) = raw_candidates(req, snap)?;
    let mut nics = Vec::with_capacity(raw.len());
    for (nic, names, clean_gateway) in raw {
        let mut out = NicCandidates {
            nic: nic.clone(),
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            clean_gateway,
        };
        for family in [IpFamily::V4, IpFamily::V6] {
            if !req.family_enabled(family) {
                continue;
            }
            let list = expand(names.of(family), family, snap);
            let mut seen = BTreeSet::new();
            for name in &list {
                if !seen.insert(name.as_str()) {
                    return Err(IpamError::DuplicatePool {
                        pool: name.clone(),
                        nic: nic.clone(),
                    });
                }
                if snap.pool(name).is_none() {
                    return Err(IpamError::PoolNotFound {
                        pool: name.clone(),
                        nic: nic.clone(),
                    });
                }
            }
            match family {
                IpFamily::V4 => out.ipv4 = list,
                IpFamily::V6 => out.ipv6 = list,
            }
        }
        nics.push(out);
    }
    Ok(Candidates {
        source,
        positional,
        nics,
    })
}

/// Globs become the names of every pool of `family` they match, sorted by name; literal names
/// stay in place.
fn expand(names: &[String], family: IpFamily, snap: &Snapshot) -> Vec<String> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if is_glob(n) {
            out.extend(
                snap.pools()
                    .filter(|p| p.family() == family && glob_match(n, p.name()))
                    .map(|p| p.name().to_owned()),
            );
        } else {
            out.push(n.clone());
        }
    }
    out
}

type RawNic = (String, PoolNames, bool);

fn raw_candidates(
    req: &AllocateRequest,
    snap: &Snapshot,
) -> Result<(PoolSource, bool, Vec<RawNic>), IpamError> {
    let nic = req.ifname.clone();
    let annotations = &req.pod.annotations;
    // 1. subnets / subnet: the application's auto-created pool.
    let has_subnet =
        annotations.contains_key(ANNO_POD_SUBNETS) || annotations.contains_key(ANNO_POD_SUBNET);
    if req.config.enable_spider_subnet && has_subnet {
        if !req.config.enable_auto_pool {
            return Err(request_error(
                req,
                "it's invalid to use ipam.spidernet.io/subnet(s) when Auto-Pool feature is disabled",
            ));
        }
        if req.pod.controller.is_orphan() {
            return Err(request_error(
                req,
                "ipam.spidernet.io/subnet(s) doesn't support no-controller pod",
            ));
        }
        let items = match annotations.get(ANNO_POD_SUBNETS) {
            Some(t) => parse_subnets(t)?,
            None => match annotations.get(ANNO_POD_SUBNET) {
                Some(t) => vec![parse_subnet(t)?],
                None => Vec::new(),
            },
        };
        if let Some(item) = items.into_iter().find(|i| i.interface == nic) {
            let mut names = PoolNames::default();
            for family in [IpFamily::V4, IpFamily::V6] {
                if let Some(subnet) = item.of(family) {
                    let pool = auto_pool(req, snap, &nic, family, subnet)?;
                    match family {
                        IpFamily::V4 => names.ipv4.push(pool),
                        IpFamily::V6 => names.ipv6.push(pool),
                    }
                }
            }
            return Ok((
                PoolSource::AutoPool,
                false,
                vec![(nic, names, req.clean_gateway)],
            ));
        }
    }
    // 2. ippools: every NIC at once.
    if let Some(t) = annotations.get(ANNO_POD_IPPOOLS) {
        let MultiNicPools { named, nics } = parse_ippools(t)?;
        if named && !nics.iter().any(|n| n.interface == nic) {
            return Err(IpamError::Annotation {
                key: ANNO_POD_IPPOOLS.to_owned(),
                reason: format!("interface {nic} must be specified"),
            });
        }
        let raw = nics
            .into_iter()
            .map(|n| (n.interface, n.pools, n.clean_gateway))
            .collect();
        return Ok((PoolSource::PodIPPools, !named, raw));
    }
    // 3. ippool: this NIC.
    if let Some(t) = annotations.get(ANNO_POD_IPPOOL) {
        let names = parse_ippool(t)?;
        return Ok((
            PoolSource::PodIPPool,
            false,
            vec![(nic, names, req.clean_gateway)],
        ));
    }
    // 4. namespace defaults.
    let ns = |key: &str| -> Result<Vec<String>, IpamError> {
        match req.namespace_annotations.get(key) {
            Some(t) if !t.trim().is_empty() => parse_namespace_pools(key, t),
            _ => Ok(Vec::new()),
        }
    };
    let names = PoolNames {
        ipv4: ns(ANNO_NS_DEFAULT_IPV4_IPPOOL)?,
        ipv6: ns(ANNO_NS_DEFAULT_IPV6_IPPOOL)?,
    };
    if !names.is_empty() {
        return Ok((
            PoolSource::NamespaceDefault,
            false,
            vec![(nic, names, req.clean_gateway)],
        ));
    }
    // 5. the CNI config (NAD) defaults.
    let names = PoolNames {
        ipv4: req.default_ipv4_ippool.clone(),
        ipv6: req.default_ipv6_ippool.clone(),
    };
    if !names.is_empty() {
        return Ok((
            PoolSource::NadDefault,
            false,
            vec![(nic, names, req.clean_gateway)],
        ));
    }
    // 6. cluster default pools, by name.
    let mut names = PoolNames::default();
    for p in snap.pools().filter(|p| p.spec().is_default()) {
        match p.family() {
            IpFamily::V4 => names.ipv4.push(p.name().to_owned()),
            IpFamily::V6 => names.ipv6.push(p.name().to_owned()),
        }
    }
    if names.is_empty() {
        return Err(IpamError::NoPoolRules { nic });
    }
    Ok((
        PoolSource::ClusterDefault,
        false,
        vec![(nic, names, req.clean_gateway)],
    ))
}

/// Finds the auto-created pool of the pod's application for `nic`, `family` and `subnet` by
/// its labels (§3.12). Creating and sizing it is the subnet controller's job (not core's); the
/// agent waits for it before planning.
fn auto_pool(
    req: &AllocateRequest,
    snap: &Snapshot,
    nic: &str,
    family: IpFamily,
    subnet: &str,
) -> Result<String, IpamError> {
    let version = family.to_string();
    let found: Vec<&PoolState> = snap
        .pools()
        .filter(|p| {
            let l = p.labels();
            l.get(LABEL_OWNER_APPLICATION_UID) == Some(&req.pod.controller.uid)
                && l.get(LABEL_INTERFACE).map(String::as_str) == Some(nic)
                && l.get(LABEL_IP_VERSION) == Some(&version)
                && l.get(LABEL_OWNER_SPIDER_SUBNET).map(String::as_str) == Some(subnet)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.name().to_owned()),
        [] => Err(IpamError::AutoPoolNotReady {
            pod: req.pod.key(),
            nic: req.ifname.clone(),
            family: family.to_string(),
            subnet: subnet.to_owned(),
        }),
        many => Err(request_error(
            req,
            format!(
                "more than one auto-created {family} IPPool from SpiderSubnet {subnet}: {}",
                many.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Filters (§3.6) and orders (§3.7) the pools of `names` for `nic` and `family`. An empty
/// `names` gives an empty list (the NIC gets no address of that family); if every pool is
/// rejected the error lists each pool and its reason.
///
/// Order: by specificity (podAffinity, nodeName, nodeAffinity, namespaceName,
/// namespaceAffinity, multusName: set before unset), ties in the order written (globs
/// expanded in name order). [QUIRK §3.7] upstream tries equal-priority pools in random order.
pub fn filter_and_order<'s>(
    ctx: &FilterContext<'_>,
    family: IpFamily,
    names: &[String],
    snap: &'s Snapshot,
) -> Result<Vec<&'s PoolState>, IpamError> {
    let mut kept = Vec::with_capacity(names.len());
    let mut rejections = Vec::new();
    for name in names {
        let Some(pool) = snap.pool(name) else {
            rejections.push(PoolRejection {
                pool: name.clone(),
                reason: RejectReason::NotFound,
            });
            continue;
        };
        match ctx.check(pool, family) {
            Ok(()) => kept.push(pool),
            Err(reason) => rejections.push(PoolRejection {
                pool: name.clone(),
                reason,
            }),
        }
    }
    if kept.is_empty() && !rejections.is_empty() {
        return Err(IpamError::AllPoolsFiltered {
            nic: ctx.nic.to_owned(),
            family,
            rejections,
        });
    }
    // `sort_by_key` is stable: ties keep the written order.
    kept.sort_by_key(|p| priority_key(p));
    Ok(kept)
}
