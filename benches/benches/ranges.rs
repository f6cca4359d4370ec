//! Range sets: the interval-based `IpRangeSet` beside upstream's expand-everything approach
//! (`spiderpool_benches::naive_ranges::ExpandedIps`). Results: docs/benchmarks.md, "Range sets".
//!
//! Inputs (`ips` and `excludeIPs` of a pool):
//! * `v4_10k_ranges`: 10 000 ranges of 16 addresses (160 000 addresses) and 2 500 excluded
//!   ranges of 4 addresses.
//! * `v6_slice_2p16`: one range of 2^16 IPv6 addresses and 1 000 excluded ranges of 16: the
//!   largest IPv6 input where the naive baseline is still cheap to build.
//! * `v6_slash64`: `fd00::1-fd00::ffff:ffff:ffff:ffff` (a /64 minus its network address) and
//!   1 000 excluded ranges of 16 spread over it. Interval sets only: expanding 2^64 addresses is
//!   impossible.
//!
//! Each group measures `difference` (ips − excludeIPs on built sets), `contains` (1 000
//! lookups, hits and misses), `count_from_strings` (parse both lists, subtract, count: what a
//! webhook computing `totalIPCount` does) and `len` (count on a built set).
#![allow(missing_docs)] // criterion macros generate undocumented items
#![allow(clippy::unwrap_used)] // fixed, valid inputs

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use spiderpool_benches::naive_ranges::ExpandedIps;
use spiderpool_core::ip::{IpFamily, IpRangeSet, ip_from_u128};

const PROBES: u128 = 1_000;

struct Input {
    family: IpFamily,
    ips: Vec<String>,
    exclude: Vec<String>,
    probes: Vec<IpAddr>,
}

fn text(family: IpFamily, lo: u128, hi: u128) -> String {
    let a = ip_from_u128(family, lo).unwrap();
    let b = ip_from_u128(family, hi).unwrap();
    format!("{a}-{b}")
}

fn v4_10k() -> Input {
    let f = IpFamily::V4;
    let base: u128 = 0x0a00_0000; // 10.0.0.0
    let ips = (0..10_000u128)
        .map(|i| text(f, base + 32 * i, base + 32 * i + 15))
        .collect();
    let exclude = (0..10_000u128)
        .step_by(4)
        .map(|i| text(f, base + 32 * i + 6, base + 32 * i + 9))
        .collect();
    let probes = (0..PROBES)
        .map(|i| ip_from_u128(f, base + (i * 3_203) % 320_000).unwrap())
        .collect();
    Input {
        family: f,
        ips,
        exclude,
        probes,
    }
}

const FD00: u128 = 0xfd00 << 112;

fn v6_slice() -> Input {
    let f = IpFamily::V6;
    let ips = vec![text(f, FD00, FD00 + 0xffff)];
    let exclude = (0..1_000u128)
        .map(|i| text(f, FD00 + 64 * i, FD00 + 64 * i + 15))
        .collect();
    let probes = (0..PROBES)
        .map(|i| ip_from_u128(f, FD00 + (i * 67) % 0x1_0000).unwrap())
        .collect();
    Input {
        family: f,
        ips,
        exclude,
        probes,
    }
}

fn v6_slash64() -> Input {
    let f = IpFamily::V6;
    let ips = vec![text(f, FD00 + 1, FD00 + u128::from(u64::MAX))];
    let exclude = (0..1_000u128)
        .map(|i| text(f, FD00 + (i << 54), FD00 + (i << 54) + 15))
        .collect();
    let probes = (0..PROBES)
        .map(|i| ip_from_u128(f, FD00 + (i << 54) + (i % 32)).unwrap())
        .collect();
    Input {
        family: f,
        ips,
        exclude,
        probes,
    }
}

fn bench_interval(c: &mut Criterion, group: &str, input: &Input) {
    let f = input.family;
    let ips = IpRangeSet::parse(f, &input.ips).unwrap();
    let ex = IpRangeSet::parse(f, &input.exclude).unwrap();
    let total = ips.difference(&ex);
    let mut g = c.benchmark_group(group);
    g.bench_function("difference/interval", |b| {
        b.iter(|| black_box(&ips).difference(black_box(&ex)))
    });
    g.bench_function("contains/interval", |b| {
        b.iter(|| {
            input
                .probes
                .iter()
                .filter(|&&p| total.contains(black_box(p)))
                .count()
        })
    });
    g.bench_function("count_from_strings/interval", |b| {
        b.iter(|| {
            let ips = IpRangeSet::parse(f, black_box(&input.ips)).unwrap();
            let ex = IpRangeSet::parse(f, black_box(&input.exclude)).unwrap();
            ips.difference(&ex).len_saturating_i64()
        })
    });
    g.bench_function("len/interval", |b| b.iter(|| black_box(&total).len()));
    g.finish();
}

fn bench_naive(c: &mut Criterion, group: &str, input: &Input) {
    let f = input.family;
    let ips = ExpandedIps::parse(f, &input.ips).unwrap();
    let ex = ExpandedIps::parse(f, &input.exclude).unwrap();
    let total = ips.difference(&ex);
    let mut g = c.benchmark_group(group);
    g.bench_function("difference/naive", |b| {
        b.iter(|| black_box(&ips).difference(black_box(&ex)))
    });
    g.bench_function("contains/naive", |b| {
        b.iter(|| {
            input
                .probes
                .iter()
                .filter(|&&p| total.contains(black_box(p)))
                .count()
        })
    });
    g.bench_function("count_from_strings/naive", |b| {
        b.iter(|| {
            let ips = ExpandedIps::parse(f, black_box(&input.ips)).unwrap();
            let ex = ExpandedIps::parse(f, black_box(&input.exclude)).unwrap();
            ips.difference(&ex).len()
        })
    });
    g.bench_function("len/naive", |b| b.iter(|| black_box(&total).len()));
    g.finish();
}

/// Both implementations must agree on the inputs they can both handle.
fn check_agreement(input: &Input) {
    let f = input.family;
    let ours = IpRangeSet::parse(f, &input.ips)
        .unwrap()
        .difference(&IpRangeSet::parse(f, &input.exclude).unwrap());
    let naive = ExpandedIps::parse(f, &input.ips)
        .unwrap()
        .difference(&ExpandedIps::parse(f, &input.exclude).unwrap());
    assert_eq!(ours.len(), naive.len() as u128);
    for &p in &input.probes {
        assert_eq!(ours.contains(p), naive.contains(p));
    }
}

fn ranges(c: &mut Criterion) {
    let v4 = v4_10k();
    check_agreement(&v4);
    bench_interval(c, "v4_10k_ranges", &v4);
    bench_naive(c, "v4_10k_ranges", &v4);

    let slice = v6_slice();
    check_agreement(&slice);
    bench_interval(c, "v6_slice_2p16", &slice);
    bench_naive(c, "v6_slice_2p16", &slice);

    let big = v6_slash64();
    let total = IpRangeSet::parse(big.family, &big.ips)
        .unwrap()
        .difference(&IpRangeSet::parse(big.family, &big.exclude).unwrap());
    assert_eq!(total.len(), u128::from(u64::MAX) - 1_000 * 16 + 1);
    bench_interval(c, "v6_slash64", &big);
}

criterion_group!(benches, ranges);
criterion_main!(benches);
