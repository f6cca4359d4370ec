//! Sets of addresses of one family, stored as merged inclusive intervals.
//!
//! Upstream expands every range into a list of addresses; that makes a /64 pool impossible to
//! handle. Here a set is a sorted vector of disjoint, non-adjacent `u128` intervals, so size is
//! proportional to the number of ranges, lookups are binary searches and the set algebra is a
//! linear merge.

use crate::ip::IpError;
use std::fmt;
use std::net::IpAddr;

use super::IpFamily;
use super::IpRange;
use super::addr::{ip_from_u128_sat, ip_to_u128};

/// Merges intervals sorted by start into `out`, coalescing overlapping and adjacent ones.
fn push_merged(out: &mut Vec<(u128, u128)>, (lo, hi): (u128, u128)) {
    if let Some(last) = out.last_mut() {
        // `saturating_add` keeps an interval ending at u128::MAX absorbing everything after it.
        if lo <= last.1.saturating_add(1) {
            last.1 = last.1.max(hi);
            return;
        }
    }
    out.push((lo, hi));
}

fn normalize(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort_unstable();
    let mut out = Vec::with_capacity(v.len());
    for iv in v {
        push_merged(&mut out, iv);
    }
    out
}

/// A set of addresses of one family (for example a pool's `ips` minus `excludeIPs`).
///
/// Invariant: `ranges` is sorted, and its intervals are disjoint and non-adjacent, so equal
/// sets have equal representations and derived `PartialEq` is set equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpRangeSet {
    family: IpFamily,
    ranges: Vec<(u128, u128)>,
}

impl IpRangeSet {
    /// The empty set of `family`.
    pub fn new(family: IpFamily) -> Self {
        IpRangeSet {
            family,
            ranges: Vec::new(),
        }
    }

    /// The union of `ranges`; every range must be of `family`.
    pub fn from_ranges(
        family: IpFamily,
        ranges: impl IntoIterator<Item = IpRange>,
    ) -> Result<Self, IpError> {
        let mut v = Vec::new();
        for r in ranges {
            if r.family() != family {
                return Err(IpError::FamilyMismatch {
                    input: r.to_string(),
                    expected: family,
                });
            }
            v.push(r.bounds());
        }
        Ok(IpRangeSet {
            family,
            ranges: normalize(v),
        })
    }

    /// Parses a list of range strings (such as `spec.ips`) of `family` and unions them.
    /// Overlapping entries are merged, not rejected (as upstream's `MergeIPRanges`). The error
    /// names the zero-based index of the first bad entry.
    pub fn parse(family: IpFamily, entries: &[impl AsRef<str>]) -> Result<Self, IpError> {
        let mut v = Vec::with_capacity(entries.len());
        for (index, e) in entries.iter().enumerate() {
            let r =
                IpRange::parse_in(family, e.as_ref()).map_err(|err| IpError::InvalidListEntry {
                    index,
                    source: Box::new(err),
                })?;
            v.push(r.bounds());
        }
        Ok(IpRangeSet {
            family,
            ranges: normalize(v),
        })
    }

    /// The family of every address in the set.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// Whether the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of addresses; saturates at `u128::MAX` (only reachable for the whole IPv6 space).
    pub fn len(&self) -> u128 {
        self.ranges.iter().fold(0u128, |acc, (lo, hi)| {
            acc.saturating_add((hi - lo).saturating_add(1))
        })
    }

    /// Number of addresses clamped to `i64::MAX`, as upstream reports `TotalIPCount`.
    pub fn len_saturating_i64(&self) -> i64 {
        i64::try_from(self.len()).unwrap_or(i64::MAX)
    }

    /// Number of maximal ranges (after merging).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The maximal ranges in ascending order.
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = IpRange> + '_ {
        let family = self.family;
        self.ranges
            .iter()
            .map(move |&(lo, hi)| IpRange::from_bounds(family, lo, hi))
    }

    /// Every address in ascending order, produced lazily.
    pub fn iter(&self) -> Addresses<'_> {
        Addresses {
            family: self.family,
            ranges: &self.ranges,
            idx: 0,
            cur: self.ranges.first().map_or(0, |r| r.0),
        }
    }

    /// The lowest address, if any.
    pub fn first(&self) -> Option<IpAddr> {
        self.ranges
            .first()
            .map(|r| ip_from_u128_sat(self.family, r.0))
    }

    /// The highest address, if any.
    pub fn last(&self) -> Option<IpAddr> {
        self.ranges
            .last()
            .map(|r| ip_from_u128_sat(self.family, r.1))
    }

    /// Upstream's merged text form: one string per maximal range, a single address without
    /// dash, e.g. `["172.18.40.1-172.18.40.3", "172.18.40.10"]`.
    pub fn to_strings(&self) -> Vec<String> {
        self.ranges().map(|r| r.to_string()).collect()
    }

    /// Whether `ip` is in the set (binary search). An address of the other family never is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        IpFamily::of(&ip) == self.family && self.contains_value(ip_to_u128(ip))
    }

    fn contains_value(&self, v: u128) -> bool {
        let idx = self.ranges.partition_point(|r| r.0 <= v);
        idx > 0 && self.ranges[idx - 1].1 >= v
    }

    /// Whether every address of `range` is in the set.
    pub fn contains_range(&self, range: &IpRange) -> bool {
        if range.family() != self.family {
            return false;
        }
        let (lo, hi) = range.bounds();
        let idx = self.ranges.partition_point(|r| r.0 <= lo);
        idx > 0 && self.ranges[idx - 1].1 >= hi
    }

    /// Whether `other ⊆ self`. The empty set is a subset of every set, whatever its family.
    pub fn contains_set(&self, other: &IpRangeSet) -> bool {
        if other.is_empty() {
            return true;
        }
        other.family == self.family && other.ranges().all(|r| self.contains_range(&r))
    }

    /// Whether `self ⊆ other`.
    pub fn is_subset(&self, other: &IpRangeSet) -> bool {
        other.contains_set(self)
    }

    /// Whether the two sets share at least one address (sets of different families never do).
    pub fn overlaps(&self, other: &IpRangeSet) -> bool {
        if self.family != other.family {
            return false;
        }
        let (a, b) = (&self.ranges, &other.ranges);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i].0.max(b[j].0) <= a[i].1.min(b[j].1) {
                return true;
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// `self ∪ other`. Fails if the families differ: such a union is not a set of one family.
    pub fn union(&self, other: &IpRangeSet) -> Result<IpRangeSet, IpError> {
        if self.family != other.family && !other.is_empty() {
            return Err(IpError::FamilyMismatch {
                input: other.to_string(),
                expected: self.family,
            });
        }
        let (a, b) = (&self.ranges, &other.ranges);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let take_a = j >= b.len() || (i < a.len() && a[i].0 <= b[j].0);
            if take_a {
                push_merged(&mut out, a[i]);
                i += 1;
            } else {
                push_merged(&mut out, b[j]);
                j += 1;
            }
        }
        Ok(IpRangeSet {
            family: self.family,
            ranges: out,
        })
    }

    /// `self ∩ other` (empty when the families differ).
    pub fn intersection(&self, other: &IpRangeSet) -> IpRangeSet {
        let mut out = Vec::new();
        if self.family == other.family {
            let (a, b) = (&self.ranges, &other.ranges);
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                let lo = a[i].0.max(b[j].0);
                let hi = a[i].1.min(b[j].1);
                if lo <= hi {
                    // Pieces cannot touch: touching pieces would lie in one range of each input.
                    out.push((lo, hi));
                }
                if a[i].1 < b[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        }
        IpRangeSet {
            family: self.family,
            ranges: out,
        }
    }

    /// `self − other`, e.g. a pool's `ips` minus its `excludeIPs` (unchanged when the
    /// families differ).
    pub fn difference(&self, other: &IpRangeSet) -> IpRangeSet {
        if self.family != other.family {
            return self.clone();
        }
        let b = &other.ranges;
        let mut out = Vec::with_capacity(self.ranges.len());
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            while j < b.len() && b[j].1 < lo {
                j += 1;
            }
            let mut cur = lo;
            let mut covered_to_end = false;
            while j < b.len() && b[j].0 <= hi {
                if b[j].0 > cur {
                    out.push((cur, b[j].0 - 1));
                }
                if b[j].1 >= hi {
                    // b[j] may reach into the next range of self: keep j.
                    covered_to_end = true;
                    break;
                }
                cur = b[j].1 + 1;
                j += 1;
            }
            if !covered_to_end {
                out.push((cur, hi));
            }
        }
        IpRangeSet {
            family: self.family,
            ranges: out,
        }
    }

    /// The lowest address of `self` that is not in `other` (the allocator's "first free
    /// address"). One binary search per range of `self` at most.
    pub fn first_not_in(&self, other: &IpRangeSet) -> Option<IpAddr> {
        if self.family != other.family {
            return self.first();
        }
        let b = &other.ranges;
        for &(lo, hi) in &self.ranges {
            let idx = b.partition_point(|r| r.0 <= lo);
            let candidate = if idx > 0 && b[idx - 1].1 >= lo {
                // Ranges of `other` are non-adjacent, so the address after this one is free
                // in `other`.
                b[idx - 1].1.checked_add(1)?
            } else {
                lo
            };
            if candidate <= hi {
                return Some(ip_from_u128_sat(self.family, candidate));
            }
        }
        None
    }

    /// Adds `ip`; returns whether it was new. Fails for an address of the other family.
    pub fn insert(&mut self, ip: IpAddr) -> Result<bool, IpError> {
        if self.contains(ip) {
            return Ok(false);
        }
        self.insert_range(IpRange::single(ip))?;
        Ok(true)
    }

    /// Removes `ip`; returns whether it was present.
    pub fn remove(&mut self, ip: IpAddr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        self.remove_range(&IpRange::single(ip));
        true
    }

    /// Adds every address of `range` (binary search, then one splice). Fails for a range of
    /// the other family.
    pub fn insert_range(&mut self, range: IpRange) -> Result<(), IpError> {
        if range.family() != self.family {
            return Err(IpError::FamilyMismatch {
                input: range.to_string(),
                expected: self.family,
            });
        }
        let (mut lo, mut hi) = range.bounds();
        // Ranges that overlap or touch [lo, hi] form one contiguous run [start, end).
        let start = self.ranges.partition_point(|r| r.1.saturating_add(1) < lo);
        let end = self.ranges.partition_point(|r| r.0 <= hi.saturating_add(1));
        if start < end {
            lo = lo.min(self.ranges[start].0);
            hi = hi.max(self.ranges[end - 1].1);
        }
        self.ranges.splice(start..end, [(lo, hi)]);
        Ok(())
    }

    /// Removes every address of `range` (no-op for the other family).
    pub fn remove_range(&mut self, range: &IpRange) {
        if range.family() != self.family {
            return;
        }
        let (lo, hi) = range.bounds();
        let start = self.ranges.partition_point(|r| r.1 < lo);
        let end = self.ranges.partition_point(|r| r.0 <= hi);
        if start >= end {
            return;
        }
        let mut keep = Vec::with_capacity(2);
        let first = self.ranges[start];
        let last = self.ranges[end - 1];
        if first.0 < lo {
            keep.push((first.0, lo - 1));
        }
        if last.1 > hi {
            keep.push((hi + 1, last.1));
        }
        self.ranges.splice(start..end, keep);
    }
}

impl fmt::Display for IpRangeSet {
    /// The [`IpRangeSet::to_strings`] form joined by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl From<IpRange> for IpRangeSet {
    fn from(r: IpRange) -> Self {
        IpRangeSet {
            family: r.family(),
            ranges: vec![r.bounds()],
        }
    }
}

impl<'a> IntoIterator for &'a IpRangeSet {
    type Item = IpAddr;
    type IntoIter = Addresses<'a>;
    fn into_iter(self) -> Addresses<'a> {
        self.iter()
    }
}

/// Lazy ascending iterator over the addresses of an [`IpRangeSet`] (see [`IpRangeSet::iter`]).
#[derive(Debug, Clone)]
pub struct Addresses<'a> {
    family: IpFamily,
    ranges: &'a [(u128, u128)],
    idx: usize,
    cur: u128,
}

impl Iterator for Addresses<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        let &(_, hi) = self.ranges.get(self.idx)?;
        let v = self.cur;
        if v >= hi {
            // Move on without computing `hi + 1`, which would overflow at the top of IPv6.
            self.idx += 1;
            if let Some(r) = self.ranges.get(self.idx) {
                self.cur = r.0;
            }
        } else {
            self.cur = v + 1;
        }
        Some(ip_from_u128_sat(self.family, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let Some(&(_, hi)) = self.ranges.get(self.idx) else {
            return (0, Some(0));
        };
        let rest = self.ranges[self.idx + 1..]
            .iter()
            .fold((hi - self.cur).saturating_add(1), |acc, (lo, hi)| {
                acc.saturating_add((hi - lo).saturating_add(1))
            });
        match usize::try_from(rest) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

/// Upstream `MergeIPRanges`: parses `entries` of `family`, unions them and returns the merged
/// ranges in ascending order as canonical text.
pub fn merge_ip_ranges(
    family: IpFamily,
    entries: &[impl AsRef<str>],
) -> Result<Vec<String>, IpError> {
    Ok(IpRangeSet::parse(family, entries)?.to_strings())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::parse_ip;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).unwrap()
    }

    fn set(family: IpFamily, entries: &[&str]) -> IpRangeSet {
        IpRangeSet::parse(family, entries).unwrap()
    }

    #[test]
    fn merge_ip_ranges_upstream_examples() {
        assert_eq!(
            merge_ip_ranges(
                IpFamily::V4,
                &[
                    "172.18.40.10",
                    "172.18.40.1-172.18.40.2",
                    "172.18.40.2-172.18.40.3"
                ]
            )
            .unwrap(),
            ["172.18.40.1-172.18.40.3", "172.18.40.10"]
        );
        assert_eq!(
            merge_ip_ranges(
                IpFamily::V6,
                &[
                    "abcd:1234::a",
                    "abcd:1234::1-abcd:1234::2",
                    "abcd:1234::2-abcd:1234::3"
                ]
            )
            .unwrap(),
            ["abcd:1234::1-abcd:1234::3", "abcd:1234::a"]
        );
    }

    #[test]
    fn merge_rejects_bad_entries_with_index() {
        let e =
            merge_ip_ranges(IpFamily::V4, &["172.18.40.1", "172.18.40.2-172.18.40.1"]).unwrap_err();
        assert!(matches!(e, IpError::InvalidListEntry { index: 1, .. }));
        assert_eq!(
            e.to_string(),
            "entry [1]: invalid IP range \"172.18.40.2-172.18.40.1\": start address is greater than end address"
        );
        let e = merge_ip_ranges(IpFamily::V4, &["abcd::1"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "entry [0]: \"abcd::1\" is not an IPv4 address or range"
        );
        let e = merge_ip_ranges(IpFamily::V6, &["::ffff:1.2.3.4", "1.2.3.5"]).unwrap_err();
        assert!(matches!(e, IpError::InvalidListEntry { index: 1, .. }));
    }

    #[test]
    fn merge_joins_adjacent_and_dedupes() {
        assert_eq!(
            merge_ip_ranges(IpFamily::V4, &["10.0.0.5", "10.0.0.1-10.0.0.4", "10.0.0.5"]).unwrap(),
            ["10.0.0.1-10.0.0.5"]
        );
        assert_eq!(
            merge_ip_ranges(IpFamily::V4, &Vec::<String>::new()).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            merge_ip_ranges(IpFamily::V4, &["10.0.0.255", "10.0.1.0"]).unwrap(),
            ["10.0.0.255-10.0.1.0"]
        );
    }

    #[test]
    fn total_ip_clamps_for_a_v6_slash_64() {
        let include = set(
            IpFamily::V6,
            &["fd12:3456:789a:baba::1-fd12:3456:789a:baba:ffff:ffff:ffff:ffff"],
        );
        let exclude = set(
            IpFamily::V6,
            &["fd12:3456:789a:baba::1-fd12:3456:789a:baba::10"],
        );
        let total = include.difference(&exclude);
        assert_eq!(total.len(), (1u128 << 64) - 17);
        assert_eq!(total.len_saturating_i64(), 9_223_372_036_854_775_807);
        assert_eq!(total.first(), Some(ip("fd12:3456:789a:baba::11")));
        assert!(total.contains(ip("fd12:3456:789a:baba:8000::")));
        assert!(!total.contains(ip("fd12:3456:789a:baba::10")));
    }

    #[test]
    fn difference_splits_ranges() {
        let ips = set(IpFamily::V4, &["10.0.0.1-10.0.0.20", "10.0.0.30-10.0.0.40"]);
        let ex = set(
            IpFamily::V4,
            &[
                "10.0.0.1",
                "10.0.0.5-10.0.0.6",
                "10.0.0.18-10.0.0.32",
                "10.0.0.40",
            ],
        );
        assert_eq!(
            ips.difference(&ex).to_strings(),
            [
                "10.0.0.2-10.0.0.4",
                "10.0.0.7-10.0.0.17",
                "10.0.0.33-10.0.0.39"
            ]
        );
        // Different families never share addresses.
        let v6 = set(IpFamily::V6, &["::1"]);
        assert_eq!(ips.difference(&v6), ips);
        assert!(ips.intersection(&v6).is_empty());
        assert!(ips.union(&v6).is_err());
        assert!(!ips.overlaps(&v6));
    }

    #[test]
    fn union_intersection_overlaps() {
        let a = set(IpFamily::V4, &["10.0.0.1-10.0.0.10"]);
        let b = set(IpFamily::V4, &["10.0.0.11-10.0.0.12", "10.0.0.5"]);
        assert_eq!(a.union(&b).unwrap().to_strings(), ["10.0.0.1-10.0.0.12"]);
        assert_eq!(a.intersection(&b).to_strings(), ["10.0.0.5"]);
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&set(IpFamily::V4, &["10.0.0.11"])));
        assert!(a.contains_set(&set(IpFamily::V4, &["10.0.0.2-10.0.0.3", "10.0.0.10"])));
        assert!(!a.contains_set(&b));
        assert!(set(IpFamily::V4, &["10.0.0.3"]).is_subset(&a));
        assert!(a.contains_set(&IpRangeSet::new(IpFamily::V6)));
    }

    #[test]
    fn first_not_in_skips_used() {
        let pool = set(IpFamily::V4, &["10.0.0.1-10.0.0.3", "10.0.0.10-10.0.0.11"]);
        let used = set(IpFamily::V4, &["10.0.0.1-10.0.0.3", "10.0.0.10"]);
        assert_eq!(pool.first_not_in(&used), Some(ip("10.0.0.11")));
        let used = pool.clone();
        assert_eq!(pool.first_not_in(&used), None);
        let empty = IpRangeSet::new(IpFamily::V4);
        assert_eq!(pool.first_not_in(&empty), Some(ip("10.0.0.1")));
        let top = set(
            IpFamily::V6,
            &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
        );
        assert_eq!(top.first_not_in(&top), None);
    }

    #[test]
    fn insert_and_remove() {
        let mut s = IpRangeSet::new(IpFamily::V4);
        assert!(s.insert(ip("10.0.0.1")).unwrap());
        assert!(s.insert(ip("10.0.0.3")).unwrap());
        assert!(!s.insert(ip("10.0.0.3")).unwrap());
        assert_eq!(s.to_strings(), ["10.0.0.1", "10.0.0.3"]);
        assert!(s.insert(ip("10.0.0.2")).unwrap());
        assert_eq!(s.to_strings(), ["10.0.0.1-10.0.0.3"]);
        assert!(s.remove(ip("10.0.0.2")));
        assert!(!s.remove(ip("10.0.0.2")));
        assert_eq!(s.to_strings(), ["10.0.0.1", "10.0.0.3"]);
        assert!(s.insert(ip("::1")).is_err());
        assert!(!s.remove(ip("::1")));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn iteration_is_lazy_and_ordered() {
        let s = set(IpFamily::V4, &["10.0.0.9-10.0.0.10", "10.0.0.1"]);
        let v: Vec<String> = s.iter().map(|a| a.to_string()).collect();
        assert_eq!(v, ["10.0.0.1", "10.0.0.9", "10.0.0.10"]);
        assert_eq!(s.iter().size_hint(), (3, Some(3)));
        let huge = set(
            IpFamily::V6,
            &["::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
        );
        assert_eq!(huge.len(), u128::MAX);
        assert_eq!(huge.iter().nth(2), Some(ip("::2")));
        let top = set(
            IpFamily::V6,
            &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
        );
        assert_eq!(top.iter().count(), 2);
    }

    #[test]
    fn display_joins_ranges() {
        let s = set(IpFamily::V6, &["ABCD::1-abcd::3", "abcd::a"]);
        assert_eq!(s.to_string(), "abcd::1-abcd::3,abcd::a");
    }
}
