//! The in-memory state of one pool: what it may hand out, what is free, who holds what.
//!
//! Upstream recomputes "unavailable = excludeIPs ∪ reserved ∪ allocated" and walks the
//! expanded `ips` on every allocation (O(pool size)). Here the free addresses are kept as
//! disjoint intervals in a `BTreeMap` (start → end), so:
//! * the lowest free address is the first key: O(log n);
//! * taking an address splits at most one interval, returning one merges at most two:
//!   O(log n);
//! * memory is proportional to the number of intervals, which is at most the pool's ranges
//!   plus its allocations and reserved ranges, never the pool size (a /64 with no allocation
//!   is one interval).
//!
//! A `Vec`-backed [`IpRangeSet`] would search in O(log n) too, but every split or merge shifts
//! the tail of the vector, which is O(intervals) for a fragmented pool.

use crate::ipam::{IpamError, PoolOp};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::ip::{Cidr, IpFamily, IpRangeSet, ip_from_u128, ip_to_u128, parse_ip, parse_ip_in};
use crate::meta::ObjectMeta;
use crate::objects::{PoolIPAllocation, Route, SpiderIPPool, SpiderIPPoolSpec, SpiderIPPoolStatus};

/// Free addresses of one family as disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeSet {
    ranges: BTreeMap<u128, u128>,
    count: u128,
}

impl FreeSet {
    /// The addresses of `set`.
    pub fn from_set(set: &IpRangeSet) -> Self {
        let mut ranges = BTreeMap::new();
        for r in set.ranges() {
            let (lo, hi) = r.bounds();
            ranges.insert(lo, hi);
        }
        FreeSet {
            ranges,
            count: set.len(),
        }
    }

    /// Number of free addresses (saturating).
    pub fn len(&self) -> u128 {
        self.count
    }

    /// Whether no address is free.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of intervals (the memory cost).
    pub fn interval_count(&self) -> usize {
        self.ranges.len()
    }

    /// The lowest free value.
    pub fn first(&self) -> Option<u128> {
        self.ranges.first_key_value().map(|(lo, _)| *lo)
    }

    /// Whether `v` is free.
    pub fn contains(&self, v: u128) -> bool {
        self.ranges
            .range(..=v)
            .next_back()
            .is_some_and(|(_, hi)| *hi >= v)
    }

    /// The lowest free value that is not in `taken` (addresses already chosen by the plan
    /// being built). Cost: O(log n) plus the number of `taken` values skipped.
    pub fn first_excluding(&self, taken: &BTreeSet<u128>) -> Option<u128> {
        for (&lo, &hi) in &self.ranges {
            let mut c = lo;
            for &t in taken.range(lo..=hi) {
                if t == c {
                    c = c.checked_add(1)?;
                } else {
                    break;
                }
            }
            if c <= hi {
                return Some(c);
            }
        }
        None
    }

    /// The lowest member of `lo..=hi` not in `taken`.
    pub fn first_excluding_in(&self, taken: &BTreeSet<u128>, lo: u128, hi: u128) -> Option<u128> {
        // The free interval holding `lo` (if any), then those starting inside the window.
        let before = self
            .ranges
            .range(..lo)
            .next_back()
            .filter(|(_, h)| **h >= lo)
            .map(|(a, b)| (*a, *b));
        let inside = self.ranges.range(lo..=hi).map(|(a, b)| (*a, *b));
        for (a, b) in before.into_iter().chain(inside) {
            let (a, b) = (a.max(lo), b.min(hi));
            let mut c = a;
            for &t in taken.range(a..=b) {
                if t == c {
                    c = c.checked_add(1)?;
                } else {
                    break;
                }
            }
            if c <= b {
                return Some(c);
            }
        }
        None
    }

    /// Takes `v` out; returns whether it was free.
    pub fn remove(&mut self, v: u128) -> bool {
        let Some((&lo, &hi)) = self.ranges.range(..=v).next_back() else {
            return false;
        };
        if hi < v {
            return false;
        }
        self.ranges.remove(&lo);
        if lo < v {
            self.ranges.insert(lo, v - 1);
        }
        if v < hi {
            self.ranges.insert(v + 1, hi);
        }
        self.count = self.count.saturating_sub(1);
        true
    }

    /// Puts `v` back; returns whether it was not free before.
    pub fn insert(&mut self, v: u128) -> bool {
        if self.contains(v) {
            return false;
        }
        let mut lo = v;
        let mut hi = v;
        if let Some(prev) = v.checked_sub(1)
            && let Some((&plo, &phi)) = self.ranges.range(..=prev).next_back()
            && phi == prev
        {
            self.ranges.remove(&plo);
            lo = plo;
        }
        if let Some(next) = v.checked_add(1)
            && let Some(nhi) = self.ranges.remove(&next)
        {
            hi = nhi;
        }
        self.ranges.insert(lo, hi);
        self.count = self.count.saturating_add(1);
        true
    }

    /// The intervals in ascending order.
    pub fn intervals(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.ranges.iter().map(|(a, b)| (*a, *b))
    }
}

/// One pool as the allocator sees it: parsed spec, free addresses and records.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolState {
    name: String,
    family: IpFamily,
    subnet: Cidr,
    gateway: Option<IpAddr>,
    spec: Arc<SpiderIPPoolSpec>,
    labels: BTreeMap<String, String>,
    terminating: bool,
    usable: IpRangeSet,
    reserved: IpRangeSet,
    free: FreeSet,
    allocations: BTreeMap<IpAddr, PoolIPAllocation>,
    by_uid: BTreeMap<String, BTreeSet<IpAddr>>,
    // Handed out first, tier by tier (a Kubernetes agent's own blocks, then its share of the
    // unclaimed addresses; see `set_preferred`).
    preferred: Vec<IpRangeSet>,
}

fn invalid(pool: &str, reason: impl Into<String>) -> IpamError {
    IpamError::InvalidPool {
        pool: pool.to_owned(),
        reason: reason.into(),
    }
}

impl PoolState {
    /// Builds the state of `pool` (spec and `status.allocatedIPs`) with `reserved` the
    /// addresses of every non-terminating SpiderReservedIP (of either family; the other
    /// family is ignored).
    pub fn from_pool(pool: &SpiderIPPool, reserved: &[IpRangeSet]) -> Result<Self, IpamError> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let records = pool
            .status
            .as_ref()
            .map(SpiderIPPoolStatus::allocated_ips)
            .transpose()
            .map_err(|e| invalid(&name, e.to_string()))?
            .unwrap_or_default();
        let mut parsed = Vec::with_capacity(records.len());
        for (ip, rec) in records {
            let addr = parse_ip(&ip)
                .map_err(|e| invalid(&name, format!("status.allocatedIPs key: {e}")))?;
            parsed.push((addr, rec));
        }
        Self::new(&name, &pool.spec, &pool.metadata, reserved, parsed)
    }

    /// Builds the state from parts: `allocations` are the current records.
    pub fn new(
        name: &str,
        spec: &SpiderIPPoolSpec,
        metadata: &ObjectMeta,
        reserved: &[IpRangeSet],
        allocations: impl IntoIterator<Item = (IpAddr, PoolIPAllocation)>,
    ) -> Result<Self, IpamError> {
        let subnet =
            Cidr::parse(&spec.subnet).map_err(|e| invalid(name, format!("spec.subnet: {e}")))?;
        let family = match spec.ip_version {
            Some(v) => IpFamily::from_version(v)
                .ok_or_else(|| invalid(name, format!("spec.ipVersion {v} is not 4 or 6")))?,
            None => subnet.family(),
        };
        if family != subnet.family() {
            return Err(invalid(
                name,
                format!("spec.subnet {} is not {family}", spec.subnet),
            ));
        }
        let ips = IpRangeSet::parse(family, spec.ips.as_deref().unwrap_or_default())
            .map_err(|e| invalid(name, format!("spec.ips: {e}")))?;
        let exclude = IpRangeSet::parse(family, spec.exclude_ips.as_deref().unwrap_or_default())
            .map_err(|e| invalid(name, format!("spec.excludeIPs: {e}")))?;
        let gateway = spec
            .gateway
            .as_deref()
            .filter(|g| !g.is_empty())
            .map(|g| parse_ip_in(family, g))
            .transpose()
            .map_err(|e| invalid(name, format!("spec.gateway: {e}")))?;
        let usable = ips.difference(&exclude);
        let mut reserved_set = IpRangeSet::new(family);
        for r in reserved.iter().filter(|r| r.family() == family) {
            reserved_set = reserved_set.union(&usable.intersection(r))?;
        }
        let mut state = PoolState {
            name: name.to_owned(),
            family,
            subnet,
            gateway,
            spec: Arc::new(spec.clone()),
            labels: metadata.labels.clone().unwrap_or_default(),
            terminating: metadata.deletion_timestamp.is_some(),
            free: FreeSet::from_set(&usable.difference(&reserved_set)),
            usable,
            reserved: reserved_set,
            allocations: BTreeMap::new(),
            by_uid: BTreeMap::new(),
            preferred: Vec::new(),
        };
        for (ip, rec) in allocations {
            if IpFamily::of(&ip) != family {
                return Err(invalid(
                    name,
                    format!("status.allocatedIPs holds {ip}, not an {family} address"),
                ));
            }
            state.insert_record(ip, rec);
        }
        Ok(state)
    }

    /// Replaces the reserved addresses (a SpiderReservedIP changed).
    pub fn set_reserved(&mut self, reserved: &[IpRangeSet]) -> Result<(), IpamError> {
        let mut reserved_set = IpRangeSet::new(self.family);
        for r in reserved.iter().filter(|r| r.family() == self.family) {
            reserved_set = reserved_set.union(&self.usable.intersection(r))?;
        }
        let mut free = FreeSet::from_set(&self.usable.difference(&reserved_set));
        for ip in self.allocations.keys() {
            free.remove(ip_to_u128(*ip));
        }
        self.free = free;
        self.reserved = reserved_set;
        Ok(())
    }

    /// Sets the holder of `ip` as another source of truth reports it (a Kubernetes agent's
    /// endpoint index): `Some` records it (taking it off the free set), `None` removes any
    /// record (freeing it when allocatable). Unlike [`PoolState::allocate`] it does not
    /// require the address to be free. Returns whether anything changed.
    pub fn set_record(&mut self, ip: IpAddr, rec: Option<PoolIPAllocation>) -> bool {
        match rec {
            Some(r) => {
                if self.allocations.get(&ip) == Some(&r) {
                    return false;
                }
                self.insert_record(ip, r);
                true
            }
            None => self.release(ip, None),
        }
    }

    fn insert_record(&mut self, ip: IpAddr, rec: PoolIPAllocation) {
        self.free.remove(ip_to_u128(ip));
        if let Some(old) = self.allocations.insert(ip, rec.clone())
            && let Some(set) = self.by_uid.get_mut(&old.pod_uid)
        {
            set.remove(&ip);
            if set.is_empty() {
                self.by_uid.remove(&old.pod_uid);
            }
        }
        self.by_uid.entry(rec.pod_uid).or_default().insert(ip);
    }

    /// The pool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool family.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// `spec.subnet`.
    pub fn subnet(&self) -> &Cidr {
        &self.subnet
    }

    /// `spec.gateway`.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }

    /// `spec.routes` (absent = none).
    pub fn routes(&self) -> &[Route] {
        self.spec.routes.as_deref().unwrap_or_default()
    }

    /// The spec.
    pub fn spec(&self) -> &SpiderIPPoolSpec {
        &self.spec
    }

    /// The pool's labels (auto-created pools are found by them).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// Whether the pool is being deleted.
    pub fn is_terminating(&self) -> bool {
        self.terminating
    }

    /// `ips − excludeIPs` (reserved addresses included, as `totalIPCount`).
    pub fn usable(&self) -> &IpRangeSet {
        &self.usable
    }

    /// The reserved addresses inside [`PoolState::usable`].
    pub fn reserved(&self) -> &IpRangeSet {
        &self.reserved
    }

    /// The free addresses.
    pub fn free(&self) -> &FreeSet {
        &self.free
    }

    /// The lowest free address (§3.8: `ips` walked in ascending order), taken from the
    /// preferred addresses first when the pool has some (see [`PoolState::set_preferred`]).
    pub fn lowest_free(&self) -> Option<IpAddr> {
        self.lowest_free_excluding(&BTreeSet::new())
    }

    /// The lowest free address not in `taken`, preferred addresses first (tier by tier).
    pub fn lowest_free_excluding(&self, taken: &BTreeSet<u128>) -> Option<IpAddr> {
        let preferred = self.preferred.iter().find_map(|set| {
            set.ranges().find_map(|r| {
                let (lo, hi) = r.bounds();
                self.free.first_excluding_in(taken, lo, hi)
            })
        });
        preferred
            .or_else(|| self.free.first_excluding(taken))
            .and_then(|v| ip_from_u128(self.family, v))
    }

    /// Makes the free addresses of `tiers` the first ones handed out: the lowest free address
    /// of the first tier that has one, then of the next, and the other free addresses only
    /// after them. A Kubernetes agent prefers its own blocks, then a share of the unclaimed
    /// addresses of its own (so agents claiming at once pick different addresses). An empty
    /// list restores plain lowest-first order. Sets of the other family are ignored.
    pub fn set_preferred(&mut self, tiers: Vec<IpRangeSet>) {
        self.preferred = tiers
            .into_iter()
            .filter(|p| p.family() == self.family && !p.is_empty())
            .collect();
    }

    /// The preferred tiers.
    pub fn preferred(&self) -> &[IpRangeSet] {
        &self.preferred
    }

    /// Whether `ip` is free.
    pub fn is_free(&self, ip: IpAddr) -> bool {
        IpFamily::of(&ip) == self.family && self.free.contains(ip_to_u128(ip))
    }

    /// The record of `ip`.
    pub fn record(&self, ip: IpAddr) -> Option<&PoolIPAllocation> {
        self.allocations.get(&ip)
    }

    /// Every record, by address.
    pub fn allocations(&self) -> &BTreeMap<IpAddr, PoolIPAllocation> {
        &self.allocations
    }

    /// Addresses recorded for pod UID `uid`.
    pub fn addresses_of_uid(&self, uid: &str) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_uid.get(uid).into_iter().flatten().copied()
    }

    /// Records `ip` for `rec`. Fails when `ip` is not free (taken, reserved, excluded or
    /// outside `ips`): the caller's plan was stale.
    pub fn allocate(&mut self, ip: IpAddr, rec: PoolIPAllocation) -> Result<(), IpamError> {
        if !self.is_free(ip) {
            return Err(IpamError::RecordMismatch {
                pool: self.name.clone(),
                ip: ip.to_string(),
                reason: match self.allocations.get(&ip) {
                    Some(r) => format!("already allocated to {} ({})", r.pod, r.pod_uid),
                    None => "not an allocatable address of the pool".to_owned(),
                },
            });
        }
        self.insert_record(ip, rec);
        Ok(())
    }

    /// Applies one change of a commit: allocate, re-adopt or release (see [`PoolOp`]).
    pub fn apply_op(&mut self, op: &PoolOp) -> Result<(), IpamError> {
        match op {
            PoolOp::Allocate { ip, record } => self.allocate(*ip, record.clone()),
            PoolOp::Readopt { ip, record } => self.update_record(*ip, record.clone()),
            PoolOp::Release { ip, uid } => {
                self.release(*ip, Some(uid));
                Ok(())
            }
        }
    }

    /// Takes the lowest free address for `rec`; `None` when exhausted.
    pub fn allocate_lowest(&mut self, rec: PoolIPAllocation) -> Option<IpAddr> {
        let ip = self.lowest_free()?;
        self.insert_record(ip, rec);
        Some(ip)
    }

    /// Changes the holder of `ip` (StatefulSet/KubeVirt re-adoption). Fails when `ip` has no
    /// record.
    pub fn update_record(&mut self, ip: IpAddr, rec: PoolIPAllocation) -> Result<(), IpamError> {
        if !self.allocations.contains_key(&ip) {
            return Err(IpamError::RecordMismatch {
                pool: self.name.clone(),
                ip: ip.to_string(),
                reason: "no record to update".to_owned(),
            });
        }
        self.insert_record(ip, rec);
        Ok(())
    }

    /// Removes the record of `ip` if it belongs to `uid` (any holder when `None`), making the
    /// address free again unless it is no longer allocatable (spec shrank, now reserved).
    /// Returns whether a record was removed.
    pub fn release(&mut self, ip: IpAddr, uid: Option<&str>) -> bool {
        match self.allocations.get(&ip) {
            Some(r) if uid.is_none_or(|u| u == r.pod_uid) => {}
            _ => return false,
        }
        let Some(rec) = self.allocations.remove(&ip) else {
            return false;
        };
        if let Some(set) = self.by_uid.get_mut(&rec.pod_uid) {
            set.remove(&ip);
            if set.is_empty() {
                self.by_uid.remove(&rec.pod_uid);
            }
        }
        if self.usable.contains(ip) && !self.reserved.contains(ip) {
            self.free.insert(ip_to_u128(ip));
        }
        true
    }

    /// The pool's status as upstream writes it: `allocatedIPs` JSON, `allocatedIPCount`,
    /// `totalIPCount` (= |ips − excludeIPs|, reserved not subtracted).
    pub fn to_status(&self) -> SpiderIPPoolStatus {
        let mut status = SpiderIPPoolStatus::default();
        let map: BTreeMap<String, PoolIPAllocation> = self
            .allocations
            .iter()
            .map(|(ip, r)| (ip.to_string(), r.clone()))
            .collect();
        status.set_allocated_ips(&map);
        status.allocated_ip_count = Some(i64::try_from(self.allocations.len()).unwrap_or(i64::MAX));
        status.total_ip_count = Some(self.usable.len_saturating_i64());
        status
    }

    /// The prefix length of `spec.subnet`, used to write addresses as `ip/prefix`.
    pub fn prefix_len(&self) -> u8 {
        self.subnet.prefix_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ips: &[&str], exclude: &[&str]) -> SpiderIPPoolSpec {
        SpiderIPPoolSpec {
            subnet: "10.0.0.0/24".into(),
            ips: Some(ips.iter().map(|s| s.to_string()).collect()),
            exclude_ips: Some(exclude.iter().map(|s| s.to_string()).collect()),
            gateway: Some("10.0.0.1".into()),
            ..Default::default()
        }
    }

    fn rec(uid: &str) -> PoolIPAllocation {
        PoolIPAllocation {
            pod: format!("ns/{uid}"),
            pod_uid: uid.into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipam_free_set_split_and_merge() {
        let set = IpRangeSet::parse(IpFamily::V4, &["10.0.0.1-10.0.0.5"]).unwrap();
        let mut f = FreeSet::from_set(&set);
        let v = |s: &str| ip_to_u128(ip(s));
        assert!(f.remove(v("10.0.0.3")));
        assert!(!f.remove(v("10.0.0.3")));
        assert_eq!(f.interval_count(), 2);
        assert_eq!(f.len(), 4);
        assert!(f.insert(v("10.0.0.3")));
        assert_eq!(f.interval_count(), 1);
        assert_eq!(f.len(), 5);
        let taken: BTreeSet<u128> = [v("10.0.0.1"), v("10.0.0.2"), v("10.0.0.4")].into();
        assert_eq!(f.first_excluding(&taken), Some(v("10.0.0.3")));
    }

    #[test]
    fn ipam_pool_state_lowest_first_skips_exclude_reserved_allocated() {
        let reserved = [IpRangeSet::parse(IpFamily::V4, &["10.0.0.12"]).unwrap()];
        let s = spec(&["10.0.0.10-10.0.0.20"], &["10.0.0.10"]);
        let mut p = PoolState::new(
            "p",
            &s,
            &ObjectMeta::named("p"),
            &reserved,
            [(ip("10.0.0.11"), rec("a"))],
        )
        .unwrap();
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.13")));
        assert_eq!(p.allocate_lowest(rec("b")), Some(ip("10.0.0.13")));
        assert!(p.release(ip("10.0.0.11"), Some("a")));
        assert!(!p.release(ip("10.0.0.13"), Some("a")), "uid must match");
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.11")));
        assert!(p.allocate(ip("10.0.0.12"), rec("c")).is_err(), "reserved");
        let st = p.to_status();
        assert_eq!(st.allocated_ip_count, Some(1));
        assert_eq!(st.total_ip_count, Some(10));
    }

    #[test]
    fn ipam_pool_state_preferred_addresses_first() {
        let mut p = PoolState::new(
            "p",
            &spec(&["10.0.0.10-10.0.0.20"], &[]),
            &ObjectMeta::default(),
            &[],
            [],
        )
        .unwrap();
        let own = IpRangeSet::parse(IpFamily::V4, &["10.0.0.15-10.0.0.16"]).unwrap();
        p.set_preferred(vec![own]);
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.15")));
        let taken = BTreeSet::from([ip_to_u128(ip("10.0.0.15"))]);
        assert_eq!(p.lowest_free_excluding(&taken), Some(ip("10.0.0.16")));
        p.allocate(ip("10.0.0.15"), rec("a")).unwrap();
        p.allocate(ip("10.0.0.16"), rec("b")).unwrap();
        // Preferred addresses all taken: the lowest other free address.
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.10")));
        assert!(p.release(ip("10.0.0.16"), Some("b")));
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.16")));
        p.set_preferred(Vec::new());
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.10")));
    }

    #[test]
    fn ipam_free_set_first_excluding_in_window() {
        let set =
            IpRangeSet::parse(IpFamily::V4, &["10.0.0.1-10.0.0.5", "10.0.0.9-10.0.0.12"]).unwrap();
        let f = FreeSet::from_set(&set);
        let v = |s: &str| ip_to_u128(ip(s));
        let none = BTreeSet::new();
        assert_eq!(
            f.first_excluding_in(&none, v("10.0.0.3"), v("10.0.0.10")),
            Some(v("10.0.0.3"))
        );
        assert_eq!(
            f.first_excluding_in(&none, v("10.0.0.6"), v("10.0.0.10")),
            Some(v("10.0.0.9"))
        );
        assert_eq!(
            f.first_excluding_in(&none, v("10.0.0.6"), v("10.0.0.8")),
            None
        );
        let taken = BTreeSet::from([v("10.0.0.4"), v("10.0.0.5")]);
        assert_eq!(
            f.first_excluding_in(&taken, v("10.0.0.4"), v("10.0.0.12")),
            Some(v("10.0.0.9"))
        );
    }

    #[test]
    fn ipam_pool_state_from_pool_status() {
        let mut pool = SpiderIPPool::new("p", spec(&["10.0.0.10-10.0.0.12"], &[]));
        pool.status = Some(SpiderIPPoolStatus {
            allocated_ips: Some(r#"{"10.0.0.10":{"pod":"ns/a","podUid":"a"}}"#.into()),
            ..Default::default()
        });
        let p = PoolState::from_pool(&pool, &[]).unwrap();
        assert_eq!(
            p.addresses_of_uid("a").collect::<Vec<_>>(),
            [ip("10.0.0.10")]
        );
        assert_eq!(p.lowest_free(), Some(ip("10.0.0.11")));
        pool.spec.subnet = "bad".into();
        let e = PoolState::from_pool(&pool, &[]).unwrap_err().to_string();
        assert!(e.starts_with("IPPool p: invalid spec: spec.subnet"), "{e}");
    }
}
