//! Property tests of `LocalStore` against core's reference `MemoryStore`: the interleavings of
//! core's `ipam_props` (allocate, retried allocate, release, pod re-creation, stale commits
//! over v4 and v6 pools with excludeIPs and reserved IPs), run through one generic helper on
//! both stores in lockstep. After every op both stores must hold the same records and
//! endpoints and satisfy the same invariants; every N ops the local store is closed and
//! reopened from disk (sometimes with aggressive compaction) and must still equal the model.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use spiderpool_agent::localstore::{LocalStore, LocalStoreOptions};
use spiderpool_core::Error;
use spiderpool_core::ip::{IpFamily, IpRangeSet};
use spiderpool_core::ipam::{
    AllocateRequest, EndpointKey, IpamStore, MemoryStore, PoolState, ReleaseOutcome,
    ReleaseRequest, TopController, allocate_with_retry, endpoint_key, plan_allocation,
    release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_POD_IPPOOL;
use spiderpool_core::objects::{
    SpiderIPPool, SpiderIPPoolSpec, SpiderReservedIP, SpiderReservedIPSpec,
};

const PODS: usize = 8;

/// What the tests need from a store beyond the trait: the same shape on both.
trait TestStore: IpamStore {
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), Error>;
    fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), Error>;
    fn pool_state(&self, name: &str) -> Option<Arc<PoolState>>;
}

impl TestStore for MemoryStore {
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), Error> {
        MemoryStore::put_pool(self, pool)
    }
    fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), Error> {
        MemoryStore::put_reserved_ip(self, r)
    }
    fn pool_state(&self, name: &str) -> Option<Arc<PoolState>> {
        MemoryStore::pool_state(self, name)
    }
}

impl TestStore for LocalStore {
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), Error> {
        LocalStore::put_pool(self, pool)
    }
    fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), Error> {
        LocalStore::put_reserved_ip(self, r)
    }
    fn pool_state(&self, name: &str) -> Option<Arc<PoolState>> {
        LocalStore::pool_state(self, name)
    }
}

fn pool(name: &str, subnet: &str, ips: &[&str], exclude: &[&str]) -> SpiderIPPool {
    SpiderIPPool::new(
        name,
        SpiderIPPoolSpec {
            subnet: subnet.into(),
            ips: Some(ips.iter().map(|s| s.to_string()).collect()),
            exclude_ips: Some(exclude.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        },
    )
}

fn pools() -> Vec<SpiderIPPool> {
    vec![
        pool("a", "10.0.0.0/24", &["10.0.0.1-10.0.0.6"], &["10.0.0.3"]),
        pool("b", "10.0.1.0/24", &["10.0.1.1-10.0.1.3"], &[]),
        pool("c", "fd00::/120", &["fd00::1-fd00::6"], &["fd00::2"]),
    ]
}

fn reserved() -> Vec<SpiderReservedIP> {
    [("r4", 4, "10.0.0.5"), ("r6", 6, "fd00::4")]
        .into_iter()
        .map(|(name, v, ips)| {
            SpiderReservedIP::new(
                name,
                SpiderReservedIPSpec {
                    ip_version: Some(v),
                    ips: Some(vec![ips.into()]),
                },
            )
        })
        .collect()
}

fn configure<S: TestStore>(s: &S) {
    for p in pools() {
        s.put_pool(p).unwrap();
    }
    for r in reserved() {
        s.put_reserved_ip(r).unwrap();
    }
}

/// Addresses a pool may ever hand out: ips − excludeIPs − reserved.
fn allowed() -> BTreeMap<&'static str, IpRangeSet> {
    let p = |f, ips: &[&str], ex: &[&str]| {
        IpRangeSet::parse(f, ips)
            .unwrap()
            .difference(&IpRangeSet::parse(f, ex).unwrap())
    };
    BTreeMap::from([
        (
            "a",
            p(
                IpFamily::V4,
                &["10.0.0.1-10.0.0.6"],
                &["10.0.0.3", "10.0.0.5"],
            ),
        ),
        ("b", p(IpFamily::V4, &["10.0.1.1-10.0.1.3"], &[])),
        (
            "c",
            p(IpFamily::V6, &["fd00::1-fd00::6"], &["fd00::2", "fd00::4"]),
        ),
    ])
}

fn req(pod: usize, uid: u32) -> AllocateRequest {
    let mut r = AllocateRequest {
        ifname: "net1".into(),
        ..Default::default()
    };
    r.pod.namespace = "ns".into();
    r.pod.name = format!("pod{pod}");
    r.pod.uid = format!("uid{pod}-{uid}");
    r.pod.node = "node1".into();
    r.pod.controller = TopController::orphan("ns", &r.pod.name, &r.pod.uid);
    r.pod.annotations.insert(
        ANNO_POD_IPPOOL.into(),
        r#"{"ipv4":["a","b"],"ipv6":["c"]}"#.into(),
    );
    r
}

fn del(pod: usize, uid: u32) -> ReleaseRequest {
    ReleaseRequest {
        ifname: "net1".into(),
        endpoint: EndpointKey::new("ns", format!("pod{pod}")),
        pod_uid: Some(format!("uid{pod}-{uid}")),
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize),
    Release(usize),
    Recreate(usize),
    /// Plan pod X on a snapshot, let pod Y allocate, then commit X's stale plan.
    Stale(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PODS).prop_map(Op::Allocate),
        2 => (0..PODS).prop_map(Op::Release),
        1 => (0..PODS).prop_map(Op::Recreate),
        2 => (0..PODS, 0..PODS).prop_map(|(a, b)| Op::Stale(a, b)),
    ]
}

/// Per pod, its current UID generation and the addresses it holds.
#[derive(Default, Clone)]
struct Model {
    uid: [u32; PODS],
    held: BTreeMap<usize, Vec<(String, IpAddr)>>,
}

fn addresses(d: &spiderpool_core::ipam::AllocationDecision) -> Vec<(String, IpAddr)> {
    d.result
        .current()
        .unwrap()
        .ips()
        .map(|c| (c.pool.clone(), c.address))
        .collect()
}

fn allocate<S: TestStore>(s: &S, m: &mut Model, pod: usize) -> Result<(), TestCaseError> {
    let r = req(pod, m.uid[pod]);
    match allocate_with_retry(s, &r, 16) {
        Ok(d) => {
            let got = addresses(&d);
            if let Some(prev) = m.held.get(&pod) {
                prop_assert_eq!(prev, &got, "a retried ADD returns the same addresses");
                prop_assert!(d.changes.is_empty());
            }
            m.held.insert(pod, got);
        }
        Err(Error::IpamAllocationFailed { family, .. }) => {
            prop_assert!(!m.held.contains_key(&pod));
            let pools: &[&str] = if family == IpFamily::V4 {
                &["a", "b"]
            } else {
                &["c"]
            };
            for p in pools {
                prop_assert!(s.pool_state(p).unwrap().free().is_empty(), "{p} not full");
            }
        }
        Err(e) => return Err(TestCaseError::fail(e.to_string())),
    }
    Ok(())
}

fn release<S: TestStore>(s: &S, m: &mut Model, pod: usize) -> Result<(), TestCaseError> {
    let d = release_with_retry(s, &del(pod, m.uid[pod]), 16).unwrap();
    match m.held.remove(&pod) {
        Some(held) => {
            prop_assert_eq!(d.outcome, ReleaseOutcome::Released);
            for (p, ip) in held {
                prop_assert!(s.pool_state(&p).unwrap().is_free(ip), "released, free");
            }
        }
        None => prop_assert_ne!(d.outcome, ReleaseOutcome::Released),
    }
    Ok(())
}

/// One op of the interleaving, on any store.
fn run_op<S: TestStore>(s: &S, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Allocate(p) => allocate(s, m, p)?,
        Op::Release(p) => release(s, m, p)?,
        Op::Recreate(p) => {
            release(s, m, p)?;
            m.uid[p] += 1;
            allocate(s, m, p)?;
        }
        Op::Stale(x, y) => {
            let rx = req(x, m.uid[x]);
            let snap = s.snapshot(&[endpoint_key(&rx)]).unwrap();
            let planned = plan_allocation(&rx, &snap);
            drop(snap);
            allocate(s, m, y)?;
            if let Ok(d) = planned {
                match s.commit(&d.changes) {
                    Ok(_) => {
                        if !d.changes.is_empty() {
                            m.held.insert(x, addresses(&d));
                        }
                    }
                    Err(Error::IpamConflict { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }
    }
    Ok(())
}

fn check_invariants<S: TestStore>(s: &S, m: &Model) -> Result<(), TestCaseError> {
    let allowed = allowed();
    let mut seen = BTreeSet::new();
    let mut records = 0;
    for (name, set) in &allowed {
        let st = s.pool_state(name).unwrap();
        for (ip, rec) in st.allocations() {
            prop_assert!(set.contains(*ip), "{ip} of {name} outside the allowed set");
            prop_assert!(seen.insert(*ip), "{ip} recorded twice");
            prop_assert!(!st.is_free(*ip));
            records += 1;
            let pod: usize = rec.pod.trim_start_matches("ns/pod").parse().unwrap();
            prop_assert_eq!(&rec.pod_uid, &format!("uid{pod}-{}", m.uid[pod]));
        }
        prop_assert_eq!(st.free().len() + st.allocations().len() as u128, set.len());
    }
    let held: usize = m.held.values().map(Vec::len).sum();
    prop_assert_eq!(records, held, "every record belongs to a held address");
    Ok(())
}

/// The local store must hold exactly what the model store holds.
fn same_state(local: &LocalStore, model: &MemoryStore) -> Result<(), TestCaseError> {
    for name in allowed().keys() {
        let l = local.pool_state(name).unwrap();
        let r = model.pool_state(name).unwrap();
        prop_assert_eq!(l.allocations(), r.allocations(), "records of {}", name);
        prop_assert_eq!(l.free(), r.free(), "free set of {}", name);
    }
    prop_assert_eq!(local.endpoints(), model.endpoints());
    prop_assert!(local.orphaned_pools().is_empty());
    Ok(())
}

fn open(dir: &Path, compact: u64) -> LocalStore {
    let (s, report) = LocalStore::open_with(
        dir,
        LocalStoreOptions {
            compact_after_bytes: compact,
        },
    )
    .unwrap();
    assert_eq!(report.torn_bytes, 0, "a clean close leaves no torn tail");
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn localstore_props_lockstep_with_memory_store_and_reopen(
        ops in proptest::collection::vec(op(), 1..60),
        reopen_every in 1usize..10,
        compact in prop_oneof![Just(u64::MAX), 0u64..4096],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let model = MemoryStore::new();
        configure(&model);
        let mut local = open(dir.path(), compact);
        configure(&local);
        let (mut mm, mut ml) = (Model::default(), Model::default());
        for (i, op) in ops.iter().enumerate() {
            run_op(&model, &mut mm, op)?;
            run_op(&local, &mut ml, op)?;
            check_invariants(&local, &ml)?;
            same_state(&local, &model)?;
            if (i + 1) % reopen_every == 0 {
                drop(local);
                local = open(dir.path(), compact);
                // Reload the definitions the way the agent does on start.
                let report = local.set_pools(&pools(), &reserved()).unwrap();
                prop_assert!(report.rejected.is_empty() && report.orphaned.is_empty());
                check_invariants(&local, &ml)?;
                same_state(&local, &model)?;
            }
        }
    }
}

#[test]
fn localstore_props_set_pools_equals_put_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = LocalStore::open(&dir.path().join("a")).unwrap();
    configure(&a);
    let (b, _) = LocalStore::open(&dir.path().join("b")).unwrap();
    b.set_pools(&pools(), &reserved()).unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(
            a.pool_state(name).unwrap().free(),
            b.pool_state(name).unwrap().free()
        );
    }
}
