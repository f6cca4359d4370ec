//! Property tests of the IPAM engine against `MemoryStore`: arbitrary interleavings of
//! allocate, retried allocate, release, pod re-creation and stale commits over several small
//! pools (v4 and v6, with excludeIPs and reserved IPs). Plus concurrent allocation from many
//! threads.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use spiderpool_core::Error;
use spiderpool_core::ip::{IpFamily, IpRangeSet};
use spiderpool_core::ipam::{
    AllocateRequest, EndpointKey, IpamStore, MemoryStore, ReleaseOutcome, ReleaseRequest,
    TopController, allocate_with_retry, endpoint_key, plan_allocation, release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_POD_IPPOOL;
use spiderpool_core::objects::{
    SpiderIPPool, SpiderIPPoolSpec, SpiderReservedIP, SpiderReservedIPSpec,
};

const PODS: usize = 8;

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

fn setup() -> MemoryStore {
    let s = MemoryStore::new();
    s.put_pool(pool(
        "a",
        "10.0.0.0/24",
        &["10.0.0.1-10.0.0.6"],
        &["10.0.0.3"],
    ))
    .unwrap();
    s.put_pool(pool("b", "10.0.1.0/24", &["10.0.1.1-10.0.1.3"], &[]))
        .unwrap();
    s.put_pool(pool("c", "fd00::/120", &["fd00::1-fd00::6"], &["fd00::2"]))
        .unwrap();
    for (name, v, ips) in [("r4", 4, "10.0.0.5"), ("r6", 6, "fd00::4")] {
        s.put_reserved_ip(SpiderReservedIP::new(
            name,
            SpiderReservedIPSpec {
                ip_version: Some(v),
                ips: Some(vec![ips.into()]),
            },
        ))
        .unwrap();
    }
    s
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

/// The model: per pod, its current UID generation and the addresses it holds.
#[derive(Default)]
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

fn allocate(s: &MemoryStore, m: &mut Model, pod: usize) -> Result<(), TestCaseError> {
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
            // Failure only when every candidate pool of that family is really full.
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

fn release(s: &MemoryStore, m: &mut Model, pod: usize) -> Result<(), TestCaseError> {
    let d = release_with_retry(s, &del(pod, m.uid[pod]), 16).unwrap();
    match m.held.remove(&pod) {
        Some(held) => {
            prop_assert_eq!(d.outcome, ReleaseOutcome::Released);
            for (p, ip) in held {
                prop_assert!(
                    s.pool_state(&p).unwrap().is_free(ip),
                    "released address free"
                );
            }
        }
        None => prop_assert_ne!(d.outcome, ReleaseOutcome::Released),
    }
    Ok(())
}

fn check_invariants(s: &MemoryStore, m: &Model) -> Result<(), TestCaseError> {
    let allowed = allowed();
    let mut seen = BTreeSet::new();
    let mut records = 0;
    for (name, set) in &allowed {
        let st = s.pool_state(name).unwrap();
        for (ip, rec) in st.allocations() {
            prop_assert!(
                set.contains(*ip),
                "{ip} of {name} outside ips − exclude − reserved"
            );
            prop_assert!(seen.insert(*ip), "{ip} recorded twice");
            prop_assert!(!st.is_free(*ip));
            records += 1;
            let pod: usize = rec.pod.trim_start_matches("ns/pod").parse().unwrap();
            prop_assert_eq!(&rec.pod_uid, &format!("uid{pod}-{}", m.uid[pod]));
        }
        // Free + allocated = allowed: nothing leaks.
        prop_assert_eq!(st.free().len() + st.allocations().len() as u128, set.len());
    }
    let held: usize = m.held.values().map(Vec::len).sum();
    prop_assert_eq!(records, held, "every record belongs to a held address");
    for (pod, addrs) in &m.held {
        for (p, ip) in addrs {
            let rec = s.pool_state(p).unwrap().record(*ip).cloned().unwrap();
            prop_assert_eq!(rec.pod, format!("ns/pod{pod}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ipam_props_interleavings(ops in proptest::collection::vec(op(), 1..60)) {
        let s = setup();
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Allocate(p) => allocate(&s, &mut m, p)?,
                Op::Release(p) => release(&s, &mut m, p)?,
                Op::Recreate(p) => {
                    release(&s, &mut m, p)?;
                    m.uid[p] += 1;
                    allocate(&s, &mut m, p)?;
                }
                Op::Stale(x, y) => {
                    let rx = req(x, m.uid[x]);
                    let snap = s.snapshot(&[endpoint_key(&rx)]).unwrap();
                    let planned = plan_allocation(&rx, &snap);
                    drop(snap);
                    allocate(&s, &mut m, y)?;
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
            check_invariants(&s, &m)?;
        }
    }
}

#[test]
fn ipam_props_concurrent_threads_distinct_then_exhausted() {
    let store = Arc::new(MemoryStore::new());
    store
        .put_pool(pool("p200", "10.9.0.0/16", &["10.9.0.1-10.9.0.200"], &[]))
        .unwrap();
    let threads = 8;
    let per_thread = 25;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..per_thread {
                    let mut r = req(0, 0);
                    r.pod.name = format!("t{t}-{i}");
                    r.pod.uid = format!("u{t}-{i}");
                    r.pod
                        .annotations
                        .insert(ANNO_POD_IPPOOL.into(), r#"{"ipv4":["p200"]}"#.into());
                    // Many threads on one pool conflict often; allow enough attempts.
                    let d = allocate_with_retry(store.as_ref(), &r, 10_000).unwrap();
                    got.push(d.result.current().unwrap().ipv4.as_ref().unwrap().address);
                }
                got
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for h in handles {
        for ip in h.join().unwrap() {
            assert!(all.insert(ip), "{ip} handed out twice");
        }
    }
    assert_eq!(all.len(), 200);
    assert_eq!(store.pool_state("p200").unwrap().allocations().len(), 200);
    let mut r = req(0, 0);
    r.pod.name = "one-too-many".into();
    r.pod
        .annotations
        .insert(ANNO_POD_IPPOOL.into(), r#"{"ipv4":["p200"]}"#.into());
    let e = allocate_with_retry(store.as_ref(), &r, 16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("IPPool p200: pool exhausted"), "{e}");
    let dyn_store: &dyn IpamStore = store.as_ref();
    assert!(dyn_store.snapshot(&[]).is_ok(), "the trait is object-safe");
}
