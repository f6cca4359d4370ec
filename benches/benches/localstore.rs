//! Local store commit latency: one CNI-ADD-shaped allocation (plan on a snapshot, commit the
//! pool record and the SpiderEndpoint) and one CNI-DEL-shaped release, through
//! `allocate_with_retry` / `release_with_retry`, on a 65 536-address pool holding 1 000
//! allocations.
//!
//! * `memory`: `spiderpool_core::ipam::MemoryStore` (no I/O), the baseline.
//! * `local`: `spiderpool_agent::localstore::LocalStore` in a temp dir (journal append +
//!   fdatasync per commit).
//! * `fdatasync`: a bare append of a line of the same size plus `fdatasync`, the floor any
//!   durable per-commit store pays on this disk.
//!
//! Each measured step is paired with its inverse outside the timing, so the pool stays at 1 000
//! allocations. Results: docs/benchmarks.md, "Local store".
#![allow(missing_docs)] // criterion macros generate undocumented items
#![allow(clippy::unwrap_used)] // fixed, valid inputs

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use spiderpool_agent::localstore::LocalStore;
use spiderpool_core::ipam::{
    AllocateRequest, EndpointKey, IpamStore, MemoryStore, ReleaseRequest, TopController,
    allocate_with_retry, release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_POD_IPPOOL;
use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};

const PREFILL: usize = 1000;

fn pool() -> SpiderIPPool {
    SpiderIPPool::new(
        "p",
        SpiderIPPoolSpec {
            subnet: "10.0.0.0/16".into(),
            ips: Some(vec!["10.0.0.1-10.0.255.254".into()]),
            gateway: Some("10.0.0.0".into()),
            ..Default::default()
        },
    )
}

fn req(pod: &str) -> AllocateRequest {
    let mut r = AllocateRequest {
        ifname: "net1".into(),
        ..Default::default()
    };
    r.pod.namespace = "ns".into();
    r.pod.name = pod.into();
    r.pod.uid = format!("uid-{pod}");
    r.pod.node = "node1".into();
    r.pod.controller = TopController::orphan("ns", pod, &r.pod.uid);
    r.pod
        .annotations
        .insert(ANNO_POD_IPPOOL.into(), r#"{"ipv4":["p"]}"#.into());
    r
}

fn del(pod: &str) -> ReleaseRequest {
    ReleaseRequest {
        ifname: "net1".into(),
        endpoint: EndpointKey::new("ns", pod),
        pod_uid: Some(format!("uid-{pod}")),
        ..Default::default()
    }
}

fn prefill(store: &dyn IpamStore) {
    for i in 0..PREFILL {
        allocate_with_retry(store, &req(&format!("pre-{i}")), 16).unwrap();
    }
}

/// Times `iters` allocations (each released untimed) or releases (each allocated untimed).
fn run(store: &dyn IpamStore, iters: u64, time_release: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (a, d) = (req("bench"), del("bench"));
        let t = Instant::now();
        allocate_with_retry(store, &a, 16).unwrap();
        if !time_release {
            total += t.elapsed();
        }
        let t = Instant::now();
        release_with_retry(store, &d, 16).unwrap();
        if time_release {
            total += t.elapsed();
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let memory = MemoryStore::new();
    memory.put_pool(pool()).unwrap();
    prefill(&memory);
    let dir = tempfile::tempdir().unwrap();
    let (local, _) = LocalStore::open(dir.path()).unwrap();
    local.set_pools(&[pool()], &[]).unwrap();
    prefill(&local);
    let stores: [(&str, &dyn IpamStore); 2] = [("memory", &memory), ("local", &local)];

    let mut group = c.benchmark_group("localstore_commit");
    group.sample_size(30);
    for (name, store) in stores {
        group.bench_function(format!("{name}/allocate+commit"), |b| {
            b.iter_custom(|iters| run(store, iters, false))
        });
        group.bench_function(format!("{name}/release+commit"), |b| {
            b.iter_custom(|iters| run(store, iters, true))
        });
    }
    // The floor: one append of a typical allocation record, then fdatasync.
    let line = std::fs::read_to_string(local.dir().join("journal"))
        .ok()
        .and_then(|j| j.lines().last().map(|l| format!("{l}\n")))
        .unwrap_or_else(|| "x".repeat(600));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.path().join("floor"))
        .unwrap();
    group.bench_function("fdatasync/append-one-record", |b| {
        b.iter(|| {
            f.write_all(line.as_bytes()).unwrap();
            f.sync_data().unwrap();
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
