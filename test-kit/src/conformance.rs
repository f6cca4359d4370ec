//! The [`IpamStore`] conformance suite: any store (in memory, the durable local store, the
//! Kubernetes store) is driven through generated interleavings of allocate, retried allocate,
//! release, pod re-creation, a DEL under another pod UID, stale commits and deliberately
//! conflicting commits, and must keep the IPAM's invariants after every step.
//!
//! # Using it
//!
//! Wrap the store in a type implementing [`ConformanceStore`] (the store itself, plus how to
//! put pools and reserved IPs through *its own* API, and optionally how to close and reopen
//! it), then call [`run`] with a factory that returns a fresh, empty one per case:
//!
//! ```
//! use spiderpool_core::ipam::MemoryStore;
//! use spiderpool_test_kit::conformance::{self, Config};
//!
//! // MemoryStore implements ConformanceStore already.
//! conformance::run(&Config::with_cases(8), MemoryStore::new);
//! ```
//!
//! [`run`] panics with the shrunk (smallest) failing sequence of [`Op`]s; [`run_ops`] replays
//! one sequence (for a regression test). [`Config::cases`] sets the number of generated
//! sequences: a slow store (Kubernetes) takes few, [`Config::max_ops`] their length.
//! [`run_concurrent`] checks that threads allocating from one pool never share an address.
//!
//! # The fixture
//!
//! Every case puts, through [`ConformanceStore::put_pool`] and
//! [`ConformanceStore::put_reserved_ip`]: pool `a` (10.0.0.0/24, ips 10.0.0.1-10.0.0.6,
//! excludeIPs 10.0.0.3), pool `b` (10.0.1.0/24, 10.0.1.1-10.0.1.3), pool `c` (fd00::/120,
//! fd00::1-fd00::6, excludeIPs fd00::2), and reserved IPs 10.0.0.5 and fd00::4; names are
//! prefixed with [`ConformanceStore::prefix`] (for a store shared between cases, e.g. one
//! cluster). [`PODS`] pods `pod0`… in [`ConformanceStore::namespace`] ask for interface
//! `net1` from `a` then `b` (IPv4) and `c` (IPv6), so pools fill up and allocation fails.
//!
//! # The invariants, checked after every op
//!
//! - no address is recorded twice, and every record lies in `ips − excludeIPs − reserved`;
//! - free + allocated = `ips − excludeIPs − reserved` in every pool (nothing leaks), and the
//!   pool status counts are exact (`allocatedIPCount`, `totalIPCount`);
//! - the records are exactly the model's: each held address is recorded for its pod and
//!   current UID, nothing else is recorded; a pod's SpiderEndpoint exists exactly while it
//!   holds addresses, with its UID and addresses;
//! - a retried ADD returns the same addresses and writes nothing; allocation fails only when
//!   every candidate pool of the family is full; a DEL of a holder reports `Released` and
//!   frees its addresses; a DEL carrying another pod UID releases and writes nothing;
//! - a commit that conflicts (a stale plan, or one object of a multi-object change set at a
//!   wrong version) fails with `CommitError::Conflict` and leaves every pool, version and
//!   endpoint as it was;
//! - with [`Config::compare_with_reference`], the store holds the same records, free sets
//!   and endpoint statuses as core's `MemoryStore` run through the same ops (planning is
//!   deterministic, so a conforming store allocates the same addresses).

use spiderpool_core::ipam::{CommitError, IpamError};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult, TestRunner};
use spiderpool_core::ip::{IpFamily, IpRangeSet};
use spiderpool_core::ipam::{
    AllocateRequest, AllocationDecision, ChangeSet, EndpointChange, EndpointKey, FreeSet,
    IpamStore, MemoryStore, ReleaseOutcome, ReleaseRequest, Snapshot, TopController, Version,
    allocate_with_retry, endpoint_key, plan_allocation, release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_POD_IPPOOL;
use spiderpool_core::objects::{
    PoolIPAllocation, SpiderEndpointStatus, SpiderIPPool, SpiderIPPoolSpec, SpiderReservedIP,
    SpiderReservedIPSpec,
};

/// Any error of a store's own API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Number of pods the generated ops act on.
pub const PODS: usize = 8;

/// Attempts the retry helpers get (conflicts only arise from the suite's own stale commits).
const ATTEMPTS: u32 = 16;

/// A store under test, as the suite drives it.
pub trait ConformanceStore {
    /// The store itself.
    fn store(&self) -> &dyn IpamStore;

    /// Creates (or replaces) a pool through the store's own API.
    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), BoxError>;

    /// Creates (or replaces) a SpiderReservedIP through the store's own API.
    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), BoxError>;

    /// Closes the store and opens it again from what it persisted ([`Op::Reopen`]); a store
    /// that reloads pool definitions on start does so here. Default: nothing to do.
    fn reopen(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Prefix of the fixture's pool and reserved-IP names (default none): lets a store that
    /// cannot be emptied between cases (one cluster) keep cases apart.
    fn prefix(&self) -> String {
        String::new()
    }

    /// Namespace of the fixture's pods and endpoints (default `ns`).
    fn namespace(&self) -> String {
        "ns".to_owned()
    }
}

impl ConformanceStore for MemoryStore {
    fn store(&self) -> &dyn IpamStore {
        self
    }

    fn put_pool(&self, pool: SpiderIPPool) -> Result<(), BoxError> {
        Ok(MemoryStore::put_pool(self, pool)?)
    }

    fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), BoxError> {
        Ok(MemoryStore::put_reserved_ip(self, reserved)?)
    }
}

/// How [`run`] generates cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of generated op sequences (each on a fresh store).
    pub cases: u32,
    /// Longest op sequence.
    pub max_ops: usize,
    /// Also run every op on a `MemoryStore` and require the same records, free sets and
    /// endpoint statuses (see the module docs).
    pub compare_with_reference: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cases: 128,
            max_ops: 60,
            compare_with_reference: true,
        }
    }
}

impl Config {
    /// The default configuration with `cases` cases.
    pub fn with_cases(cases: u32) -> Self {
        Config {
            cases,
            ..Config::default()
        }
    }
}

/// Which object of a change set [`Op::Conflict`] puts at a wrong version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoil {
    /// The last pool change (earlier ones stay valid: the commit must still write nothing).
    Pool,
    /// The endpoint change.
    Endpoint,
}

/// One step of a generated sequence; `usize` values are pod indexes (`0..PODS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// CNI ADD of the pod (a retry when it already holds addresses).
    Allocate(usize),
    /// CNI DEL of the pod.
    Release(usize),
    /// DEL, then ADD under a new pod UID.
    Recreate(usize),
    /// Plan pod X's ADD on a snapshot, let pod Y allocate, then commit X's (maybe stale) plan.
    Stale(usize, usize),
    /// Plan pod X's ADD, put one written object at a wrong version, commit: must conflict.
    Conflict(usize, Spoil),
    /// CNI DEL of the pod carrying another pod UID (an old sandbox's late DEL): must release
    /// nothing and write nothing.
    ForeignRelease(usize),
    /// Close and reopen the store ([`ConformanceStore::reopen`]).
    Reopen,
}

/// The generator of single ops.
pub fn op_strategy() -> impl Strategy<Value = Op> {
    let spoil = prop_oneof![Just(Spoil::Pool), Just(Spoil::Endpoint)];
    prop_oneof![
        4 => (0..PODS).prop_map(Op::Allocate),
        2 => (0..PODS).prop_map(Op::Release),
        1 => (0..PODS).prop_map(Op::Recreate),
        2 => (0..PODS, 0..PODS).prop_map(|(a, b)| Op::Stale(a, b)),
        1 => (0..PODS, spoil).prop_map(|(a, s)| Op::Conflict(a, s)),
        1 => (0..PODS).prop_map(Op::ForeignRelease),
        1 => Just(Op::Reopen),
    ]
}

/// Runs `config.cases` generated op sequences, each on a store from `fresh`.
///
/// # Panics
///
/// When an invariant breaks: the message holds the smallest failing op sequence found.
pub fn run<S: ConformanceStore>(config: &Config, fresh: impl FnMut() -> S) {
    let proptest_config = ProptestConfig {
        cases: config.cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let fresh = RefCell::new(fresh);
    let ops = proptest::collection::vec(op_strategy(), 1..=config.max_ops.max(1));
    let result = TestRunner::new(proptest_config).run(&ops, |ops| {
        let mut store = (fresh.borrow_mut())();
        run_ops(&mut store, &ops, config.compare_with_reference)
    });
    if let Err(e) = result {
        panic!("IpamStore conformance: {e}");
    }
}

/// Sets up the fixture on `store` and runs `ops`, checking the invariants after each.
pub fn run_ops<S: ConformanceStore>(
    store: &mut S,
    ops: &[Op],
    compare_with_reference: bool,
) -> TestCaseResult {
    let fx = Fixture::new(store.prefix(), store.namespace());
    fx.install(store)?;
    let mut reference = compare_with_reference.then(|| (MemoryStore::new(), Model::default()));
    if let Some((r, _)) = &reference {
        fx.install(r)?;
    }
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        let step = |e: TestCaseError| fail(format!("op {i} ({op:?}): {e}"));
        apply(store, &fx, &mut model, *op).map_err(step)?;
        check_invariants(store.store(), &fx, &model).map_err(step)?;
        if let Some((r, rm)) = &mut reference {
            apply(r, &fx, rm, *op).map_err(step)?;
            same_state(store.store(), r, &fx).map_err(step)?;
        }
    }
    Ok(())
}

/// `threads` threads each allocate `per_thread` pods from one pool of exactly
/// `threads × per_thread` addresses (through a store from `fresh`): every address must be
/// handed out once, and one more pod must then fail with the pool exhausted.
///
/// # Panics
///
/// When an address is handed out twice, an allocation fails early, or the extra one does
/// not fail.
pub fn run_concurrent<S: ConformanceStore>(fresh: impl FnOnce() -> S, threads: u8, per_thread: u8) {
    let s = fresh();
    let fx = Fixture::new(s.prefix(), s.namespace());
    let total = u32::from(threads) * u32::from(per_thread);
    let name = format!("{}conc", fx.prefix);
    let last = format!("10.9.{}.{}", total / 256, total % 256);
    let pool = pool(&name, "10.9.0.0/16", &[&format!("10.9.0.1-{last}")], &[]);
    s.put_pool(pool)
        .unwrap_or_else(|e| panic!("put_pool {name}: {e}"));
    let store = s.store();
    let mut all = BTreeSet::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (fx, name) = (&fx, &name);
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| fx.concurrent_add(store, name, &format!("t{t}-{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for ip in h
                .join()
                .unwrap_or_else(|_| panic!("an allocating thread panicked"))
            {
                assert!(all.insert(ip), "{ip} handed out twice");
            }
        }
    });
    assert_eq!(all.len(), total as usize);
    let e = allocate_with_retry(
        store,
        &fx.pod_req("one-too-many", "u-extra", &[&name], &[]),
        16,
    );
    match e {
        Err(e) => assert!(e.to_string().contains("pool exhausted"), "{e}"),
        Ok(d) => panic!("allocated beyond the pool's size: {:?}", addresses(&d)),
    }
}

fn fail(msg: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(msg.to_string())
}

/// The fixture's names and requests.
struct Fixture {
    prefix: String,
    namespace: String,
}

impl Fixture {
    fn new(prefix: String, namespace: String) -> Self {
        Fixture { prefix, namespace }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// (pool, subnet, ips, excludeIPs, reserved in it).
    fn pools(
        &self,
    ) -> [(
        String,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ); 3] {
        [
            (
                self.name("a"),
                "10.0.0.0/24",
                "10.0.0.1-10.0.0.6",
                "10.0.0.3",
                "10.0.0.5",
            ),
            (self.name("b"), "10.0.1.0/24", "10.0.1.1-10.0.1.3", "", ""),
            (
                self.name("c"),
                "fd00::/120",
                "fd00::1-fd00::6",
                "fd00::2",
                "fd00::4",
            ),
        ]
    }

    fn install<S: ConformanceStore + ?Sized>(&self, s: &S) -> TestCaseResult {
        for (name, subnet, ips, exclude, _) in self.pools() {
            let ex: &[&str] = if exclude.is_empty() { &[] } else { &[exclude] };
            s.put_pool(pool(&name, subnet, &[ips], ex))
                .map_err(|e| fail(format!("put_pool {name}: {e}")))?;
        }
        for (base, version, ip) in [("r4", 4, "10.0.0.5"), ("r6", 6, "fd00::4")] {
            let r = SpiderReservedIP::new(
                self.name(base),
                SpiderReservedIPSpec {
                    ip_version: Some(version),
                    ips: Some(vec![ip.into()]),
                },
            );
            s.put_reserved_ip(r)
                .map_err(|e| fail(format!("put_reserved_ip {base}: {e}")))?;
        }
        Ok(())
    }

    /// Per pool: the addresses it may hand out (ips − excludeIPs − reserved) and its
    /// `totalIPCount` (ips − excludeIPs).
    fn allowed(&self) -> Result<Vec<(String, IpRangeSet, i64)>, TestCaseError> {
        let set = |f, items: &[&str]| {
            let items: Vec<&str> = items.iter().copied().filter(|s| !s.is_empty()).collect();
            IpRangeSet::parse(f, &items).map_err(fail)
        };
        self.pools()
            .into_iter()
            .map(|(name, subnet, ips, exclude, reserved)| {
                let f = if subnet.contains(':') {
                    IpFamily::V6
                } else {
                    IpFamily::V4
                };
                let usable = set(f, &[ips])?.difference(&set(f, &[exclude])?);
                let total = i64::try_from(usable.len()).map_err(fail)?;
                Ok((name, usable.difference(&set(f, &[reserved])?), total))
            })
            .collect()
    }

    fn family_pools(&self, family: IpFamily) -> Vec<String> {
        match family {
            IpFamily::V4 => vec![self.name("a"), self.name("b")],
            _ => vec![self.name("c")],
        }
    }

    fn pod_req(&self, pod: &str, uid: &str, v4: &[&str], v6: &[&str]) -> AllocateRequest {
        let mut r = AllocateRequest {
            ifname: "net1".into(),
            ..Default::default()
        };
        r.pod.namespace = self.namespace.clone();
        r.pod.name = pod.to_owned();
        r.pod.uid = uid.to_owned();
        r.pod.node = "node1".into();
        r.pod.controller = TopController::orphan(&self.namespace, pod, uid);
        let pools = serde_json::json!({ "ipv4": v4, "ipv6": v6 });
        r.pod
            .annotations
            .insert(ANNO_POD_IPPOOL.into(), pools.to_string());
        r
    }

    fn req(&self, pod: usize, uid: u32) -> AllocateRequest {
        let (a, b, c) = (self.name("a"), self.name("b"), self.name("c"));
        self.pod_req(&format!("pod{pod}"), &uid_of(pod, uid), &[&a, &b], &[&c])
    }

    fn del(&self, pod: usize, uid: u32) -> ReleaseRequest {
        ReleaseRequest {
            ifname: "net1".into(),
            endpoint: self.key(pod),
            pod_uid: Some(uid_of(pod, uid)),
            ..Default::default()
        }
    }

    fn key(&self, pod: usize) -> EndpointKey {
        EndpointKey::new(self.namespace.clone(), format!("pod{pod}"))
    }

    fn keys(&self) -> Vec<EndpointKey> {
        (0..PODS).map(|p| self.key(p)).collect()
    }

    fn concurrent_add(&self, store: &dyn IpamStore, pool: &str, pod: &str) -> IpAddr {
        let r = self.pod_req(pod, &format!("u-{pod}"), &[pool], &[]);
        // Many threads on one pool conflict often: allow plenty of attempts.
        let d = allocate_with_retry(store, &r, 10_000)
            .unwrap_or_else(|e| panic!("{pod} failed while addresses remain: {e}"));
        match d.result.current().and_then(|n| n.ipv4.as_ref()) {
            Some(c) => c.address,
            None => panic!("{pod}: no IPv4 address in the result"),
        }
    }
}

fn uid_of(pod: usize, generation: u32) -> String {
    format!("uid{pod}-{generation}")
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

/// Per pod: its current UID generation and the (pool, address) pairs it holds.
#[derive(Debug, Default, Clone)]
struct Model {
    uid: [u32; PODS],
    held: BTreeMap<usize, Vec<(String, IpAddr)>>,
}

fn addresses(d: &AllocationDecision) -> Vec<(String, IpAddr)> {
    d.result
        .current()
        .map(|n| n.ips().map(|c| (c.pool.clone(), c.address)).collect())
        .unwrap_or_default()
}

fn snapshot(s: &dyn IpamStore, fx: &Fixture) -> Result<Snapshot, TestCaseError> {
    s.snapshot(&fx.keys())
        .map_err(|e| fail(format!("snapshot: {e}")))
}

fn apply<S: ConformanceStore + ?Sized>(
    s: &mut S,
    fx: &Fixture,
    m: &mut Model,
    op: Op,
) -> TestCaseResult {
    match op {
        Op::Allocate(p) => allocate(s.store(), fx, m, p),
        Op::Release(p) => release(s.store(), fx, m, p),
        Op::Recreate(p) => {
            release(s.store(), fx, m, p)?;
            m.uid[p] += 1;
            allocate(s.store(), fx, m, p)
        }
        Op::Stale(x, y) => stale(s.store(), fx, m, x, y),
        Op::Conflict(x, spoil) => conflict(s.store(), fx, m, x, spoil),
        Op::ForeignRelease(p) => foreign_release(s.store(), fx, m, p),
        Op::Reopen => s.reopen().map_err(|e| fail(format!("reopen: {e}"))),
    }
}

fn allocate(s: &dyn IpamStore, fx: &Fixture, m: &mut Model, pod: usize) -> TestCaseResult {
    match allocate_with_retry(s, &fx.req(pod, m.uid[pod]), ATTEMPTS) {
        Ok(d) => {
            let got = addresses(&d);
            prop_assert_eq!(got.len(), 2, "one IPv4 and one IPv6 address");
            if let Some(prev) = m.held.get(&pod) {
                prop_assert_eq!(prev, &got, "a retried ADD returns the same addresses");
                prop_assert!(d.changes.is_empty(), "a retried ADD writes nothing");
            }
            m.held.insert(pod, got);
        }
        Err(IpamError::AllocationFailed { family, .. }) => {
            prop_assert!(!m.held.contains_key(&pod), "a holder's retried ADD failed");
            let snap = snapshot(s, fx)?;
            for p in fx.family_pools(family) {
                let st = snap
                    .pool(&p)
                    .ok_or_else(|| fail(format!("pool {p} gone")))?;
                prop_assert!(st.free().is_empty(), "allocation failed but {} has room", p);
            }
        }
        Err(e) => return Err(fail(format!("ADD pod{pod}: {e}"))),
    }
    Ok(())
}

fn release(s: &dyn IpamStore, fx: &Fixture, m: &mut Model, pod: usize) -> TestCaseResult {
    let d = release_with_retry(s, &fx.del(pod, m.uid[pod]), ATTEMPTS)
        .map_err(|e| fail(format!("DEL pod{pod}: {e}")))?;
    match m.held.remove(&pod) {
        Some(held) => {
            prop_assert_eq!(d.outcome, ReleaseOutcome::Released);
            let snap = snapshot(s, fx)?;
            for (p, ip) in held {
                let st = snap
                    .pool(&p)
                    .ok_or_else(|| fail(format!("pool {p} gone")))?;
                prop_assert!(st.is_free(ip), "{} released but not free in {}", ip, p);
            }
        }
        None => prop_assert_ne!(d.outcome, ReleaseOutcome::Released),
    }
    Ok(())
}

fn foreign_release(s: &dyn IpamStore, fx: &Fixture, m: &Model, pod: usize) -> TestCaseResult {
    let before = State::read(s, fx)?;
    // A generation the pod never had.
    let d = release_with_retry(s, &fx.del(pod, u32::MAX), ATTEMPTS)
        .map_err(|e| fail(format!("foreign DEL pod{pod}: {e}")))?;
    prop_assert_ne!(
        d.outcome,
        ReleaseOutcome::Released,
        "pod{} held {:?}",
        pod,
        m.held.get(&pod)
    );
    before.unchanged(s, fx, "a DEL with another pod UID")
}

fn stale(s: &dyn IpamStore, fx: &Fixture, m: &mut Model, x: usize, y: usize) -> TestCaseResult {
    let rx = fx.req(x, m.uid[x]);
    let planned = {
        let snap = s
            .snapshot(&[endpoint_key(&rx)])
            .map_err(|e| fail(format!("snapshot: {e}")))?;
        plan_allocation(&rx, &snap)
    };
    allocate(s, fx, m, y)?;
    let Ok(d) = planned else { return Ok(()) };
    let before = State::read(s, fx)?;
    match s.commit(&d.changes) {
        Ok(_) => {
            if !d.changes.is_empty() {
                m.held.insert(x, addresses(&d));
            }
            Ok(())
        }
        Err(CommitError::Conflict { .. }) => before.unchanged(s, fx, "a conflicting stale commit"),
        Err(e) => Err(fail(format!("stale commit of pod{x}: {e}"))),
    }
}

/// A version no store is at (stores count up from small numbers).
fn wrong(v: Version) -> Version {
    v.wrapping_add(1 << 62)
}

fn spoiled(changes: &ChangeSet, spoil: Spoil) -> Option<ChangeSet> {
    let mut c = changes.clone();
    match spoil {
        Spoil::Pool => {
            let last = c.pools.last_mut()?;
            last.expected_version = wrong(last.expected_version);
        }
        Spoil::Endpoint => match c.endpoints.first_mut()? {
            EndpointChange::Put {
                expected_version, ..
            } => *expected_version = Some(expected_version.map_or(1 << 62, wrong)),
            EndpointChange::Delete {
                expected_version, ..
            } => *expected_version = wrong(*expected_version),
        },
    }
    Some(c)
}

fn conflict(s: &dyn IpamStore, fx: &Fixture, m: &Model, x: usize, spoil: Spoil) -> TestCaseResult {
    let rx = fx.req(x, m.uid[x]);
    let planned = {
        let snap = s
            .snapshot(&[endpoint_key(&rx)])
            .map_err(|e| fail(format!("snapshot: {e}")))?;
        plan_allocation(&rx, &snap)
    };
    let Ok(d) = planned else { return Ok(()) };
    let Some(changes) = spoiled(&d.changes, spoil) else {
        return Ok(());
    };
    let before = State::read(s, fx)?;
    match s.commit(&changes) {
        Err(CommitError::Conflict { .. }) => before.unchanged(s, fx, "a conflicting commit"),
        Err(e) => Err(fail(format!(
            "a wrong version must be a conflict, got: {e}"
        ))),
        Ok(_) => Err(fail(format!(
            "a commit at a wrong version succeeded: {changes:?}"
        ))),
    }
}

/// Everything a commit could change: per fixture pool its version, records and free set;
/// the endpoints of the fixture's pods with their versions.
#[derive(Debug, PartialEq)]
struct State {
    pools: Vec<(String, Option<Version>, PoolView)>,
    endpoints: Vec<Option<(Version, Option<SpiderEndpointStatus>)>>,
}

type PoolView = Option<(BTreeMap<IpAddr, PoolIPAllocation>, FreeSet)>;

impl State {
    fn read(s: &dyn IpamStore, fx: &Fixture) -> Result<State, TestCaseError> {
        let snap = snapshot(s, fx)?;
        let pools = fx
            .pools()
            .into_iter()
            .map(|(name, ..)| {
                let view = snap
                    .pool(&name)
                    .map(|p| (p.allocations().clone(), p.free().clone()));
                (name.clone(), snap.pool_version(&name), view)
            })
            .collect();
        let endpoints = fx
            .keys()
            .iter()
            .map(|k| snap.endpoint(k).map(|(v, e)| (v, e.status.clone())))
            .collect();
        Ok(State { pools, endpoints })
    }

    fn unchanged(&self, s: &dyn IpamStore, fx: &Fixture, what: &str) -> TestCaseResult {
        let after = State::read(s, fx)?;
        prop_assert_eq!(self, &after, "{} wrote something", what);
        Ok(())
    }
}

fn check_invariants(s: &dyn IpamStore, fx: &Fixture, m: &Model) -> TestCaseResult {
    let snap = snapshot(s, fx)?;
    let mut seen = BTreeSet::new();
    let mut records = 0;
    for (name, allowed, total) in fx.allowed()? {
        let st = snap
            .pool(&name)
            .ok_or_else(|| fail(format!("pool {name} gone")))?;
        for (ip, rec) in st.allocations() {
            prop_assert!(
                allowed.contains(*ip),
                "{} of {} outside ips − exclude − reserved",
                ip,
                name
            );
            prop_assert!(seen.insert(*ip), "{} recorded twice", ip);
            prop_assert!(!st.is_free(*ip), "{} recorded and free", ip);
            records += 1;
            let pod = holder(fx, &rec.pod)?;
            prop_assert_eq!(&rec.pod_uid, &uid_of(pod, m.uid[pod]), "record of {}", ip);
            let held = m
                .held
                .get(&pod)
                .is_some_and(|h| h.contains(&(name.clone(), *ip)));
            prop_assert!(
                held,
                "{} recorded for pod{} which does not hold it",
                ip,
                pod
            );
        }
        let counted = st.free().len() + st.allocations().len() as u128;
        prop_assert_eq!(
            counted,
            allowed.len(),
            "free + allocated ≠ allowed in {}",
            name
        );
        let status = st.to_status();
        prop_assert_eq!(
            status.allocated_ip_count,
            Some(st.allocations().len() as i64)
        );
        prop_assert_eq!(
            status.total_ip_count,
            Some(total),
            "totalIPCount of {}",
            name
        );
    }
    let held: usize = m.held.values().map(Vec::len).sum();
    prop_assert_eq!(
        records,
        held,
        "every held address is recorded, nothing else"
    );
    check_endpoints(&snap, fx, m)
}

/// The pod index of a record's `namespace/name`.
fn holder(fx: &Fixture, pod: &str) -> Result<usize, TestCaseError> {
    let prefix = format!("{}/pod", fx.namespace);
    pod.strip_prefix(&prefix)
        .and_then(|n| n.parse().ok())
        .filter(|n| *n < PODS)
        .ok_or_else(|| fail(format!("a record for an unknown pod {pod}")))
}

fn check_endpoints(snap: &Snapshot, fx: &Fixture, m: &Model) -> TestCaseResult {
    for pod in 0..PODS {
        let ep = snap.endpoint(&fx.key(pod));
        let Some(held) = m.held.get(&pod) else {
            prop_assert!(ep.is_none(), "pod{} holds nothing but has an endpoint", pod);
            continue;
        };
        let Some((_, ep)) = ep else {
            return Err(fail(format!("pod{pod} holds {held:?} but has no endpoint")));
        };
        let current = ep.status.as_ref().map(|s| &s.current);
        prop_assert_eq!(
            current.map(|c| c.uid.clone()),
            Some(uid_of(pod, m.uid[pod]))
        );
        let nic = current.and_then(|c| c.ips.iter().find(|d| d.interface == "net1"));
        let mut recorded: Vec<String> = nic
            .iter()
            .flat_map(|d| [d.ipv4.as_deref(), d.ipv6.as_deref()])
            .flatten()
            .map(|a| a.split('/').next().unwrap_or(a).to_owned())
            .collect();
        let mut expected: Vec<String> = held.iter().map(|(_, ip)| ip.to_string()).collect();
        recorded.sort();
        expected.sort();
        prop_assert_eq!(recorded, expected, "endpoint addresses of pod{}", pod);
    }
    Ok(())
}

/// The store must hold what the reference `MemoryStore` holds after the same ops.
fn same_state(s: &dyn IpamStore, reference: &MemoryStore, fx: &Fixture) -> TestCaseResult {
    let (a, b) = (State::read(s, fx)?, State::read(reference, fx)?);
    for ((name, _, got), (_, _, want)) in a.pools.iter().zip(&b.pools) {
        prop_assert_eq!(
            got,
            want,
            "records and free set of {} differ from MemoryStore's",
            name
        );
    }
    let status = |st: &State| -> Vec<Option<Option<SpiderEndpointStatus>>> {
        st.endpoints
            .iter()
            .map(|e| e.as_ref().map(|(_, s)| s.clone()))
            .collect()
    };
    prop_assert_eq!(
        status(&a),
        status(&b),
        "endpoints differ from MemoryStore's"
    );
    Ok(())
}
