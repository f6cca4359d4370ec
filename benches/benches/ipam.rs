//! IPAM allocation: one allocate (lowest free address) + release of that address on a pool
//! that is 50% or 99% full, for pools of 256, 65 536 and 2^20 IPv4 addresses.
//!
//! * `ours`: `spiderpool_core::ipam::PoolState` (free addresses as intervals in a `BTreeMap`).
//! * `naive`: `spiderpool_benches::naive_alloc::NaivePool`, upstream's approach (expand
//!   `ips`, build the unavailable set from exclude + reserved + records, take the first free).
//!
//! Allocated addresses are scattered (a fixed pseudo-random choice), the worst case for the
//! interval set: about one interval per free run. Results: docs/benchmarks.md, "IPAM
//! allocation".
#![allow(missing_docs)] // criterion macros generate undocumented items
#![allow(clippy::unwrap_used)] // fixed, valid inputs

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use spiderpool_benches::naive_alloc::NaivePool;
use spiderpool_core::ip::{IpFamily, ip_from_u128};
use spiderpool_core::ipam::PoolState;
use spiderpool_core::meta::ObjectMeta;
use spiderpool_core::objects::{PoolIPAllocation, SpiderIPPoolSpec};

const BASE: u128 = 0x0a00_0000; // 10.0.0.0

fn rec(i: u128) -> PoolIPAllocation {
    PoolIPAllocation {
        pod: format!("ns/pod-{i}"),
        pod_uid: if i == u128::MAX {
            "uid-max".to_owned()
        } else {
            format!("uid-{i}")
        },
    }
}

/// Offsets of the allocated addresses: `full` percent of `size`, chosen by a fixed LCG.
fn filled(size: u128, full: u128) -> Vec<u128> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut picked = Vec::new();
    for off in 0..size {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        if u128::from(x >> 33) % 100 < full {
            picked.push(off);
        }
    }
    picked
}

fn bench(c: &mut Criterion) {
    for (label, bits) in [("256", 8u32), ("65536", 16), ("2^20", 20)] {
        let size = 1u128 << bits;
        let last = ip_from_u128(IpFamily::V4, BASE + size - 1).unwrap();
        let first = ip_from_u128(IpFamily::V4, BASE).unwrap();
        let range = format!("{first}-{last}");
        let subnet = format!("{first}/{}", 32 - bits);
        let mut group = c.benchmark_group(format!("ipam_alloc_release/{label}"));
        if bits >= 16 {
            // The baseline takes tens of milliseconds per call on the large pools.
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
        }
        for full in [50u128, 99] {
            let used = filled(size, full);
            let spec = SpiderIPPoolSpec {
                subnet: subnet.clone(),
                ips: Some(vec![range.clone()]),
                ..Default::default()
            };
            let allocs = used
                .iter()
                .map(|&o| (ip_from_u128(IpFamily::V4, BASE + o).unwrap(), rec(o)));
            let mut ours =
                PoolState::new("p", &spec, &ObjectMeta::named("p"), &[], allocs).unwrap();
            let mut naive = NaivePool::new(IpFamily::V4, &[range.as_str()], &[], &[]);
            for &o in &used {
                naive.insert(ip_from_u128(IpFamily::V4, BASE + o).unwrap(), rec(o));
            }
            let r = rec(u128::MAX);
            group.bench_with_input(BenchmarkId::new("ours", format!("{full}%")), &(), |b, _| {
                b.iter(|| {
                    let ip = ours.allocate_lowest(black_box(r.clone())).unwrap();
                    ours.release(black_box(ip), Some("uid-max"));
                    ip
                })
            });
            assert_eq!(ours.allocations().len(), used.len());
            group.bench_with_input(
                BenchmarkId::new("naive", format!("{full}%")),
                &(),
                |b, _| {
                    b.iter(|| {
                        let ip = naive.allocate(black_box(r.clone())).unwrap().unwrap();
                        naive.release(black_box(ip));
                        ip
                    })
                },
            );
            assert_eq!(naive.allocated(), used.len());
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
