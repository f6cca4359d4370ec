//! Property tests: the interval-based `IpRangeSet` against a naive model (a `BTreeSet<u128>`
//! of addresses) on small ranges, for both families and at several places in the address
//! space, including the very top where `end + 1` would overflow.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::net::IpAddr;

use proptest::prelude::*;
use spiderpool_core::ip::{
    IpFamily, IpRange, IpRangeSet, ip_from_u128, ip_to_u128, merge_ip_ranges,
};

/// Offsets are drawn from a window of this many addresses above the base.
const WINDOW: u128 = 200;

type Model = BTreeSet<u128>;

/// A family and the first address of the window the ranges live in.
fn place() -> impl Strategy<Value = (IpFamily, u128)> {
    let v4_max = u128::from(u32::MAX);
    prop_oneof![
        Just((IpFamily::V4, 0)),
        Just((IpFamily::V4, 0x0a00_00f0)), // 10.0.0.240: crosses an octet boundary
        Just((IpFamily::V4, v4_max - (WINDOW - 1))),
        Just((IpFamily::V6, 0)),
        Just((IpFamily::V6, 0xfd00_0000_0000_0000_0000_0000_0000_ff80)),
        Just((IpFamily::V6, (1u128 << 64) - 100)), // crosses a /64 boundary
        Just((IpFamily::V6, u128::MAX - (WINDOW - 1))),
    ]
}

/// Ranges as offset pairs inside the window (possibly empty list).
fn offsets() -> impl Strategy<Value = Vec<(u128, u128)>> {
    prop::collection::vec((0..WINDOW, 0..WINDOW), 0..8)
        .prop_map(|v| v.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect())
}

fn ip(family: IpFamily, base: u128, off: u128) -> IpAddr {
    ip_from_u128(family, base + off).unwrap()
}

fn ranges(family: IpFamily, base: u128, offs: &[(u128, u128)]) -> Vec<IpRange> {
    offs.iter()
        .map(|&(a, b)| IpRange::new(ip(family, base, a), ip(family, base, b)).unwrap())
        .collect()
}

fn build(family: IpFamily, base: u128, offs: &[(u128, u128)]) -> (IpRangeSet, Model) {
    let set = IpRangeSet::from_ranges(family, ranges(family, base, offs)).unwrap();
    let model = offs
        .iter()
        .flat_map(|&(a, b)| a..=b)
        .map(|o| base + o)
        .collect();
    (set, model)
}

fn model_of(set: &IpRangeSet) -> Model {
    set.iter().map(ip_to_u128).collect()
}

/// Checks the representation invariant through the public API: maximal ranges are sorted,
/// disjoint and non-adjacent.
fn assert_canonical(set: &IpRangeSet) {
    let bounds: Vec<(u128, u128)> = set
        .ranges()
        .map(|r| (ip_to_u128(r.start()), ip_to_u128(r.end())))
        .collect();
    for w in bounds.windows(2) {
        assert!(
            w[0].1 < w[1].0 && w[1].0 - w[0].1 >= 2,
            "not merged: {bounds:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn algebra_matches_model(
        (family, base) in place(),
        a in offsets(),
        b in offsets(),
    ) {
        let (sa, ma) = build(family, base, &a);
        let (sb, mb) = build(family, base, &b);
        prop_assert_eq!(model_of(&sa), ma.clone());

        let u = sa.union(&sb).unwrap();
        let i = sa.intersection(&sb);
        let d = sa.difference(&sb);
        for s in [&sa, &u, &i, &d] {
            assert_canonical(s);
        }
        prop_assert_eq!(model_of(&u), ma.union(&mb).copied().collect::<Model>());
        prop_assert_eq!(model_of(&i), ma.intersection(&mb).copied().collect::<Model>());
        prop_assert_eq!(model_of(&d), ma.difference(&mb).copied().collect::<Model>());
        prop_assert_eq!(sa.overlaps(&sb), !ma.is_disjoint(&mb));
        prop_assert_eq!(sa.contains_set(&sb), mb.is_subset(&ma));
        prop_assert_eq!(sa.is_subset(&sb), ma.is_subset(&mb));
    }

    #[test]
    fn algebra_laws(
        (family, base) in place(),
        a in offsets(),
        b in offsets(),
    ) {
        let (sa, _) = build(family, base, &a);
        let (sb, _) = build(family, base, &b);
        prop_assert_eq!(sa.union(&sb).unwrap(), sb.union(&sa).unwrap());
        prop_assert_eq!(sa.intersection(&sb), sb.intersection(&sa));
        let d = sa.difference(&sb);
        prop_assert!(d.intersection(&sb).is_empty());
        prop_assert!(!d.overlaps(&sb));
        prop_assert_eq!(d.union(&sa.intersection(&sb)).unwrap(), sa.clone());
        prop_assert_eq!(sa.union(&sa).unwrap(), sa.clone());
        prop_assert_eq!(sa.intersection(&sa), sa.clone());
        prop_assert!(sa.difference(&sa).is_empty());
    }

    #[test]
    fn counts_membership_and_first_free_match_model(
        (family, base) in place(),
        a in offsets(),
        used in offsets(),
    ) {
        let (sa, ma) = build(family, base, &a);
        let (su, mu) = build(family, base, &used);
        prop_assert_eq!(sa.len(), ma.len() as u128);
        prop_assert_eq!(sa.len_saturating_i64(), ma.len() as i64);
        prop_assert_eq!(sa.is_empty(), ma.is_empty());
        prop_assert_eq!(sa.iter().size_hint(), (ma.len(), Some(ma.len())));
        for off in 0..WINDOW {
            let addr = ip(family, base, off);
            prop_assert_eq!(sa.contains(addr), ma.contains(&(base + off)));
        }
        let expected = ma.difference(&mu).next().map(|&v| ip_from_u128(family, v).unwrap());
        prop_assert_eq!(sa.first_not_in(&su), expected);
        prop_assert_eq!(sa.first(), ma.first().map(|&v| ip_from_u128(family, v).unwrap()));
        prop_assert_eq!(sa.last(), ma.last().map(|&v| ip_from_u128(family, v).unwrap()));
    }

    #[test]
    fn insert_and_remove_match_model(
        (family, base) in place(),
        a in offsets(),
        ops in prop::collection::vec((any::<bool>(), 0..WINDOW), 0..40),
    ) {
        let (mut s, mut m) = build(family, base, &a);
        for (add, off) in ops {
            let addr = ip(family, base, off);
            if add {
                prop_assert_eq!(s.insert(addr).unwrap(), m.insert(base + off));
            } else {
                prop_assert_eq!(s.remove(addr), m.remove(&(base + off)));
            }
            assert_canonical(&s);
        }
        prop_assert_eq!(model_of(&s), m);
    }

    #[test]
    fn merge_is_idempotent_and_order_independent(
        ((family, base), a, shuffled) in (place(), offsets()).prop_flat_map(|(p, a)| {
            (Just(p), Just(a.clone()), Just(a).prop_shuffle())
        }),
    ) {
        let text: Vec<String> = ranges(family, base, &a).iter().map(|r| r.to_string()).collect();
        let text_shuffled: Vec<String> =
            ranges(family, base, &shuffled).iter().map(|r| r.to_string()).collect();
        let merged = merge_ip_ranges(family, &text).unwrap();
        prop_assert_eq!(merge_ip_ranges(family, &merged).unwrap(), merged.clone());
        prop_assert_eq!(merge_ip_ranges(family, &text_shuffled).unwrap(), merged.clone());
        // The merged text describes the same addresses as the input.
        let (_, model) = build(family, base, &a);
        prop_assert_eq!(model_of(&IpRangeSet::parse(family, &merged).unwrap()), model);
    }

    #[test]
    fn parse_format_round_trip(
        (family, base) in place(),
        a in offsets(),
    ) {
        for r in ranges(family, base, &a) {
            let text = r.to_string();
            prop_assert_eq!(IpRange::parse(&text).unwrap(), r);
            prop_assert_eq!(IpRange::parse_in(family, &text).unwrap(), r);
            // A single address is printed without a dash, a run with exactly one.
            prop_assert_eq!(text.contains('-'), r.start() != r.end());
        }
        let (s, _) = build(family, base, &a);
        prop_assert_eq!(IpRangeSet::parse(family, &s.to_strings()).unwrap(), s);
    }

    #[test]
    fn other_family_is_disjoint(
        (family, base) in place(),
        a in offsets(),
    ) {
        let (s, _) = build(family, base, &a);
        let other = match family {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        };
        let o = IpRangeSet::from_ranges(other, [IpRange::single(ip(other, 0, 1))]).unwrap();
        prop_assert_eq!(s.difference(&o), s.clone());
        prop_assert!(s.intersection(&o).is_empty());
        prop_assert!(!s.overlaps(&o));
        prop_assert!(s.union(&o).is_err());
        prop_assert!(!s.contains(ip(other, 0, 1)));
    }
}
