//! Crash safety of `LocalStore` under `kill -9`.
//!
//! The parent test runs this same test binary as a child (selected by an env var) that opens
//! the store in a shared state dir and allocates (and now and then releases) in a loop,
//! printing each step before it starts and after it is acknowledged. The parent SIGKILLs the
//! child at a random moment, 30 times, and after each kill reopens the store and checks: it
//! opens (no corruption); every acknowledged allocation is recorded for its pod and every
//! acknowledged release is gone; the only records nobody acknowledged belong to the one step
//! in flight; no address is recorded twice and no pod holds two; endpoints agree with the
//! records; and new allocations continue from there. Compaction is set very low in the child,
//! so kills also land in the middle of snapshot writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spiderpool_agent::localstore::{LocalStore, LocalStoreOptions};
use spiderpool_core::ipam::{
    AllocateRequest, EndpointKey, ReleaseRequest, TopController, allocate_with_retry,
    release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_POD_IPPOOL;
use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};

const CHILD_DIR: &str = "SPIDERPOOL_LOCALSTORE_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "SPIDERPOOL_LOCALSTORE_CRASH_CHILD_ROUND";
const ROUNDS: u64 = 30;

fn pools() -> Vec<SpiderIPPool> {
    vec![SpiderIPPool::new(
        "big",
        SpiderIPPoolSpec {
            subnet: "10.64.0.0/16".into(),
            ips: Some(vec!["10.64.0.1-10.64.255.254".into()]),
            ..Default::default()
        },
    )]
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
        .insert(ANNO_POD_IPPOOL.into(), r#"{"ipv4":["big"]}"#.into());
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

/// The child role: allocate in a loop until killed (or, as a safety net, for 60 s).
#[test]
fn localstore_crash_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return; // not the child: nothing to do
    };
    let (store, _) = LocalStore::open_with(
        Path::new(&dir),
        LocalStoreOptions {
            compact_after_bytes: 16 << 10,
        },
    )
    .unwrap();
    store.set_pools(&pools(), &[]).unwrap();
    let mut out = std::io::stdout().lock();
    // libtest printed `test localstore_crash_child ... ` without a newline: end that line.
    writeln!(out).unwrap();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        let pod = format!("r{round}-{i}");
        writeln!(out, "A {pod}").unwrap();
        out.flush().unwrap();
        let d = allocate_with_retry(&store, &req(&pod), 16).unwrap();
        let ip = d.result.current().unwrap().ipv4.as_ref().unwrap().address;
        writeln!(out, "ACK {pod} {ip}").unwrap();
        out.flush().unwrap();
        if i % 3 == 2 {
            let victim = format!("r{round}-{}", i - 1);
            writeln!(out, "R {victim}").unwrap();
            out.flush().unwrap();
            release_with_retry(&store, &del(&victim), 16).unwrap();
            writeln!(out, "REL {victim}").unwrap();
            out.flush().unwrap();
        }
        i += 1;
    }
}

/// A small xorshift generator: the kill moments need to vary, not be cryptographic.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn localstore_crash_kill9_rounds_never_lose_or_duplicate() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill moments seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    // pod -> address for every acknowledged allocation not yet acknowledged as released.
    let mut held: BTreeMap<String, IpAddr> = BTreeMap::new();
    let (mut acks, mut rels, mut torn_rounds) = (0u64, 0u64, 0u64);
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "localstore_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Anywhere from during start-up (open, replay, tail cut) to deep in the loop.
        std::thread::sleep(Duration::from_millis(1 + rng.next(300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let mut in_flight: BTreeSet<String> = BTreeSet::new();
        for line in &lines {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["A", pod] | ["R", pod] => {
                    in_flight.insert((*pod).to_owned());
                }
                ["ACK", pod, ip] => {
                    in_flight.remove(*pod);
                    held.insert((*pod).to_owned(), ip.parse().unwrap());
                    acks += 1;
                }
                ["REL", pod] => {
                    in_flight.remove(*pod);
                    held.remove(*pod);
                    rels += 1;
                }
                _ => {} // the test harness's own lines
            }
        }
        assert!(in_flight.len() <= 1, "one step at a time: {in_flight:?}");

        // The store opens: no corruption after a kill at any instant.
        let (store, report) = LocalStore::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        torn_rounds += u64::from(report.torn_bytes > 0);
        let report_pools = store.set_pools(&pools(), &[]).unwrap();
        assert!(report_pools.rejected.is_empty() && report_pools.orphaned.is_empty());
        let st = store.pool_state("big").unwrap();
        let records = st.allocations();
        // Every acknowledged allocation is there, for its pod; acknowledged releases are gone.
        for (pod, ip) in &held {
            if in_flight.contains(pod) {
                continue;
            }
            let rec = records
                .get(ip)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {pod} {ip} lost"));
            assert_eq!(rec.pod, format!("ns/{pod}"), "round {round}: {ip}");
        }
        // Nothing unacknowledged except the step in flight; no pod holds two addresses.
        let mut by_pod: BTreeMap<&str, IpAddr> = BTreeMap::new();
        for (ip, rec) in records {
            let pod = rec.pod.trim_start_matches("ns/");
            assert!(
                by_pod.insert(pod, *ip).is_none(),
                "round {round}: {pod} holds two addresses"
            );
            assert!(
                held.get(pod) == Some(ip) || in_flight.contains(pod),
                "round {round}: {ip} recorded for {pod}, never acknowledged"
            );
            assert!(!st.is_free(*ip));
        }
        assert_eq!(
            st.free().len() + records.len() as u128,
            st.usable().len(),
            "round {round}: free + allocated = usable"
        );
        // Endpoints and records agree (one commit wrote both, so a kill splits neither).
        let endpoints = store.endpoints();
        assert_eq!(endpoints.len(), records.len(), "round {round}");
        for ep in &endpoints {
            let status = ep.status.as_ref().unwrap();
            let ip: IpAddr = status.current.ips[0]
                .ipv4
                .as_deref()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(records[&ip].pod_uid, status.current.uid, "round {round}");
        }
        // Settle the step in flight to what the store says, for the next round's checks.
        for pod in &in_flight {
            match by_pod.get(pod.as_str()) {
                Some(ip) => held.insert(pod.clone(), *ip),
                None => held.remove(pod),
            };
        }
        assert_eq!(held.len(), records.len(), "round {round}");
        // New allocations continue from there.
        let pod = format!("parent-{round}");
        let d = allocate_with_retry(&store, &req(&pod), 16).unwrap();
        let ip = d.result.current().unwrap().ipv4.as_ref().unwrap().address;
        assert!(!held.values().any(|h| *h == ip), "{ip} handed out twice");
        held.insert(pod, ip);
    }
    eprintln!(
        "{ROUNDS} kills: {acks} acknowledged allocations, {rels} releases, {} held, {torn_rounds} torn tails cut",
        held.len()
    );
    assert!(acks > 0, "the child never got to allocate");
    // Offline inspection sees the same final state.
    let off = spiderpool_agent::localstore::inspect(dir.path()).unwrap();
    assert_eq!(
        off["pools"]["big"].as_object().unwrap().len(),
        held.len(),
        "inspect"
    );
}
