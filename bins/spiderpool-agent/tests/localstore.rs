//! `LocalStore` behaviour: concurrent allocation from many threads, exhaustion, the lock
//! against a second agent, pool definitions changing under recorded allocations (orphans),
//! dump / offline inspect, torn journal tails and real corruption, compaction.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use spiderpool_agent::localstore::{LocalStore, LocalStoreError, LocalStoreOptions, inspect};
use spiderpool_core::ipam::IpamError;
use spiderpool_core::ipam::{
    AllocateRequest, EndpointKey, ReleaseRequest, TopController, allocate_with_retry,
    release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_POD_IPPOOL;
use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};

fn pool(name: &str, subnet: &str, ips: &str) -> SpiderIPPool {
    SpiderIPPool::new(
        name,
        SpiderIPPoolSpec {
            subnet: subnet.into(),
            ips: Some(vec![ips.into()]),
            ..Default::default()
        },
    )
}

fn req(name: &str, pool: &str) -> AllocateRequest {
    let mut r = AllocateRequest {
        ifname: "net1".into(),
        ..Default::default()
    };
    r.pod.namespace = "ns".into();
    r.pod.name = name.into();
    r.pod.uid = format!("uid-{name}");
    r.pod.node = "node1".into();
    r.pod.controller = TopController::orphan("ns", name, &r.pod.uid);
    r.pod
        .annotations
        .insert(ANNO_POD_IPPOOL.into(), format!(r#"{{"ipv4":["{pool}"]}}"#));
    r
}

fn del(name: &str) -> ReleaseRequest {
    ReleaseRequest {
        ifname: "net1".into(),
        endpoint: EndpointKey::new("ns", name),
        pod_uid: Some(format!("uid-{name}")),
        ..Default::default()
    }
}

fn ip_of(d: &spiderpool_core::ipam::AllocationDecision) -> IpAddr {
    d.result.current().unwrap().ipv4.as_ref().unwrap().address
}

fn journal(dir: &Path) -> std::path::PathBuf {
    dir.join("localstore").join("journal")
}

#[test]
fn localstore_concurrent_threads_distinct_then_exhausted_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LocalStore::open(dir.path()).unwrap();
    let store = Arc::new(store);
    store
        .put_pool(pool("p200", "10.9.0.0/16", "10.9.0.1-10.9.0.200"))
        .unwrap();
    let (threads, per_thread) = (8, 25);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let r = req(&format!("t{t}-{i}"), "p200");
                        // Eight writers on one pool conflict often; allow enough attempts.
                        ip_of(&allocate_with_retry(store.as_ref(), &r, 10_000).unwrap())
                    })
                    .collect::<Vec<_>>()
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
    let e = allocate_with_retry(store.as_ref(), &req("one-too-many", "p200"), 16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("IPPool p200: pool exhausted"), "{e}");

    // Everything acknowledged is on disk.
    drop(store);
    let (store, report) = LocalStore::open(dir.path()).unwrap();
    assert_eq!((report.records, report.endpoints), (200, 200));
    store
        .put_pool(pool("p200", "10.9.0.0/16", "10.9.0.1-10.9.0.200"))
        .unwrap();
    let st = store.pool_state("p200").unwrap();
    assert_eq!(
        st.allocations().keys().copied().collect::<BTreeSet<_>>(),
        all
    );
    assert!(st.free().is_empty());
}

#[test]
fn localstore_second_open_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = LocalStore::open(dir.path()).unwrap();
    let e = LocalStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, LocalStoreError::Locked { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("in use by another spiderpool-agent")
            && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // The IPAM error a caller sees names the problem too.
    assert!(IpamError::from(e).to_string().contains("in use"));
    drop(first);
    LocalStore::open(dir.path()).unwrap();
}

#[test]
fn localstore_pool_removed_from_config_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LocalStore::open(dir.path()).unwrap();
    let a = pool("a", "10.0.0.0/24", "10.0.0.1-10.0.0.9");
    let b = pool("b", "10.0.1.0/24", "10.0.1.1-10.0.1.9");
    store.set_pools(&[a.clone(), b.clone()], &[]).unwrap();
    let ip = ip_of(&allocate_with_retry(&store, &req("x", "a"), 16).unwrap());
    allocate_with_retry(&store, &req("y", "b"), 16).unwrap();

    // Pool a leaves the configuration: its record is kept and reported.
    let report = store.set_pools(std::slice::from_ref(&b), &[]).unwrap();
    assert_eq!(report.configured, vec!["b".to_owned()]);
    assert_eq!(report.orphaned.len(), 1);
    assert_eq!(report.orphaned[0].name, "a");
    assert_eq!(report.orphaned[0].allocations[&ip].pod, "ns/x");
    let dump = store.dump();
    assert_eq!(dump["orphanedPools"][0]["name"], "a");
    assert_eq!(dump["pools"][0]["name"], "b");
    assert_eq!(dump["pools"][0]["allocatedIPCount"], 1);
    // ... and survives a restart without its definition.
    drop(store);
    let (store, _) = LocalStore::open(dir.path()).unwrap();
    let report = store.set_pools(std::slice::from_ref(&b), &[]).unwrap();
    assert_eq!(report.orphaned[0].name, "a");

    // A definition that cannot hold its records (other family) is rejected, records kept.
    let a6 = pool("a", "fd00::/120", "fd00::1-fd00::9");
    let report = store.set_pools(&[a6, b.clone()], &[]).unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.orphaned[0].name, "a");

    // When it returns, the address is still taken and the next pod gets another one.
    store.set_pools(&[a, b], &[]).unwrap();
    assert!(store.orphaned_pools().is_empty());
    assert!(!store.pool_state("a").unwrap().is_free(ip));
    let next = ip_of(&allocate_with_retry(&store, &req("z", "a"), 16).unwrap());
    assert_ne!(next, ip);
    // A plan made before a reload conflicts (versions bumped) and is re-planned.
    let d = release_with_retry(&store, &del("x"), 16).unwrap();
    assert_eq!(d.released, vec![("a".to_owned(), ip)]);
}

#[test]
fn localstore_dump_and_offline_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LocalStore::open(dir.path()).unwrap();
    store
        .put_pool(pool("a", "10.0.0.0/24", "10.0.0.1-10.0.0.9"))
        .unwrap();
    for n in ["p1", "p2", "p3"] {
        allocate_with_retry(&store, &req(n, "a"), 16).unwrap();
    }
    release_with_retry(&store, &del("p2"), 16).unwrap();
    let dump = store.dump();
    assert_eq!(dump["pools"][0]["totalIPCount"], 9);
    assert_eq!(
        dump["pools"][0]["allocations"]["10.0.0.1"]["podUid"],
        "uid-p1"
    );
    assert!(dump["pools"][0]["allocations"].get("10.0.0.2").is_none());
    assert_eq!(dump["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(
        store.pool("a").unwrap().status.unwrap().allocated_ip_count,
        Some(2)
    );

    // Offline, while the store is open (no lock taken): the same records.
    let off = inspect(dir.path()).unwrap();
    assert_eq!(off["pools"]["a"], dump["pools"][0]["allocations"]);
    assert_eq!(off["endpoints"], dump["endpoints"]);
    assert_eq!(off["seq"], 4);

    // The journal is readable JSON after the 18-byte frame header: its header line, then one
    // line per commit.
    let text = std::fs::read_to_string(journal(dir.path())).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let header: serde_json::Value = serde_json::from_str(&lines[0][18..]).unwrap();
    assert_eq!(header, serde_json::json!({"journal": 2, "after": 0}));
    let rec: serde_json::Value = serde_json::from_str(&lines[1][18..]).unwrap();
    assert_eq!(rec["pools"][0]["ops"][0]["op"], "allocate");
    assert_eq!(rec["pools"][0]["ops"][0]["ip"], "10.0.0.1");
}

/// Allocates pods `p0..pn` in pool `a`; returns the addresses.
fn fill(dir: &Path, n: usize, compact: u64) -> Vec<IpAddr> {
    let (store, _) = LocalStore::open_with(
        dir,
        LocalStoreOptions {
            compact_after_bytes: compact,
        },
    )
    .unwrap();
    store
        .put_pool(pool("a", "10.0.0.0/16", "10.0.0.1-10.0.255.254"))
        .unwrap();
    (0..n)
        .map(|i| ip_of(&allocate_with_retry(&store, &req(&format!("p{i}"), "a"), 16).unwrap()))
        .collect()
}

fn reopen(dir: &Path) -> (LocalStore, spiderpool_agent::localstore::OpenReport) {
    let (store, report) = LocalStore::open(dir).unwrap();
    store
        .put_pool(pool("a", "10.0.0.0/16", "10.0.0.1-10.0.255.254"))
        .unwrap();
    (store, report)
}

/// Byte offsets where each line of `data` starts.
fn line_starts(data: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        data.iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' && i + 1 < data.len())
            .map(|(i, _)| i + 1),
    );
    starts
}

#[test]
fn localstore_torn_tail_is_cut_and_only_it_is_lost() {
    // What an interrupted append leaves: a prefix of the last record, without its newline,
    // from 1 byte (inside the length field) to everything but the newline.
    let probe = tempfile::tempdir().unwrap();
    fill(probe.path(), 5, u64::MAX);
    let data = std::fs::read(journal(probe.path())).unwrap();
    let last_start = *line_starts(&data).last().unwrap();
    let last_len = data.len() - last_start;
    for keep_bytes in [1, 8, 12, 18, 30, last_len - 1] {
        let dir = tempfile::tempdir().unwrap();
        let ips = fill(dir.path(), 5, u64::MAX);
        let path = journal(dir.path());
        std::fs::write(&path, &data[..last_start + keep_bytes]).unwrap();
        let (store, report) = reopen(dir.path());
        assert_eq!(report.torn_bytes, keep_bytes as u64, "{keep_bytes}");
        let got: Vec<IpAddr> = store
            .pool_state("a")
            .unwrap()
            .allocations()
            .keys()
            .copied()
            .collect();
        assert_eq!(got, ips[..4], "only the torn record is lost ({keep_bytes})");
        // New commits continue after the cut, and the file is clean again.
        let next = ip_of(&allocate_with_retry(&store, &req("after", "a"), 16).unwrap());
        assert!(!got.contains(&next));
        drop(store);
        let (store, report) = reopen(dir.path());
        assert_eq!(report.torn_bytes, 0, "{keep_bytes}");
        assert_eq!(store.pool_state("a").unwrap().allocations().len(), 5);
    }
}

/// Opens `dir`, which must be refused as corrupt at `offset` of `file` with a message holding
/// `words`; the files must be left exactly as they were, and `inspect` refuses too.
fn assert_refused(dir: &Path, file: &str, offset: u64, words: &str) {
    let store_dir = dir.join("localstore");
    let read = |name: &str| std::fs::read(store_dir.join(name)).ok();
    let before = (read("journal"), read("snapshot"));
    let e = LocalStore::open(dir).map(|_| ()).unwrap_err();
    match &e {
        LocalStoreError::Corrupt {
            path,
            offset: at,
            reason,
        } => {
            assert_eq!(path, &store_dir.join(file), "{e}");
            assert_eq!(*at, offset, "{e}");
            assert!(reason.contains(words), "{e}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(e.to_string().contains(&format!("at byte {offset}")), "{e}");
    assert_eq!(
        (read("journal"), read("snapshot")),
        before,
        "nothing was changed"
    );
    assert!(inspect(dir).is_err(), "inspect refuses it too");
}

#[test]
fn localstore_damage_a_crash_cannot_leave_is_refused_with_file_and_offset() {
    // Damages the journal (line starts given) and returns the offset the refusal must name.
    type Damage = fn(&mut Vec<u8>, &[usize]) -> usize;
    // Ten records after the header line: record 9 is line 9.
    let cases: [(&str, Damage, &str); 6] = [
        (
            "zeros over the journal",
            |d, _| {
                d.iter_mut().for_each(|b| *b = 0);
                0
            },
            "not the start of a record",
        ),
        (
            "zeros appended",
            |d, _| {
                d.extend_from_slice(&[0; 100]);
                d.len() - 100
            },
            "not the start of a record",
        ),
        (
            "garbage appended",
            |d, _| {
                d.extend_from_slice(b"0000 not a record");
                d.len() - 17
            },
            "not the start of a record",
        ),
        (
            "lost newline at the end of record 9 of 10",
            |d, starts| {
                d.remove(starts[10] - 1);
                starts[9]
            },
            "complete line",
        ),
        (
            "newline of record 9 of 10 overwritten",
            |d, starts| {
                d[starts[10] - 1] = b' ';
                starts[9]
            },
            "complete line",
        ),
        (
            "flipped byte in the last record",
            |d, starts| {
                d[starts[10] + 40] ^= 0x20;
                starts[10]
            },
            "complete line",
        ),
    ];
    for (name, damage, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 10, u64::MAX);
        let path = journal(dir.path());
        let mut data = std::fs::read(&path).unwrap();
        let starts = line_starts(&data);
        assert_eq!(starts.len(), 11, "header + 10 records");
        let at = damage(&mut data, &starts);
        std::fs::write(&path, &data).unwrap();
        println!("{name}");
        assert_refused(dir.path(), "journal", at as u64, words);
    }
}

#[test]
fn localstore_damage_before_intact_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5, u64::MAX);
    let path = journal(dir.path());
    let mut data = std::fs::read(&path).unwrap();
    let first = line_starts(&data)[1];
    data[first + 40] ^= 0x20; // inside the first record; four intact ones follow
    std::fs::write(&path, &data).unwrap();
    assert_refused(dir.path(), "journal", first as u64, "intact record follows");
}

/// A store with 12 commits: 10 compacted into the snapshot, 2 in the journal after it.
fn compacted(dir: &Path) {
    let (store, _) = LocalStore::open(dir).unwrap();
    store
        .put_pool(pool("a", "10.0.0.0/16", "10.0.0.1-10.0.255.254"))
        .unwrap();
    for i in 0..12 {
        allocate_with_retry(&store, &req(&format!("p{i}"), "a"), 16).unwrap();
        if i == 9 {
            store.compact().unwrap();
        }
    }
}

#[test]
fn localstore_journal_below_its_high_water_mark_is_refused() {
    // Emptied beside a snapshot.
    let dir = tempfile::tempdir().unwrap();
    compacted(dir.path());
    std::fs::write(journal(dir.path()), b"").unwrap();
    assert_refused(dir.path(), "journal", 0, "high-water mark");

    // Deleted beside a snapshot.
    let dir = tempfile::tempdir().unwrap();
    compacted(dir.path());
    std::fs::remove_file(journal(dir.path())).unwrap();
    assert_refused(dir.path(), "journal", 0, "missing");

    // Deleted from a store that never compacted: the snapshot written at creation holds the
    // mark already.
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3, u64::MAX);
    std::fs::remove_file(journal(dir.path())).unwrap();
    assert_refused(dir.path(), "journal", 0, "missing");

    // An older journal put back beside a newer snapshot: it ends below the mark.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LocalStore::open(dir.path()).unwrap();
    store
        .put_pool(pool("a", "10.0.0.0/16", "10.0.0.1-10.0.255.254"))
        .unwrap();
    allocate_with_retry(&store, &req("p0", "a"), 16).unwrap();
    let old = std::fs::read(journal(dir.path())).unwrap();
    allocate_with_retry(&store, &req("p1", "a"), 16).unwrap();
    store.compact().unwrap();
    drop(store);
    std::fs::write(journal(dir.path()), &old).unwrap();
    assert_refused(dir.path(), "journal", old.len() as u64, "high-water mark");

    // The untouched store opens, with every commit.
    let dir = tempfile::tempdir().unwrap();
    compacted(dir.path());
    let (store, _) = reopen(dir.path());
    assert_eq!(store.pool_state("a").unwrap().allocations().len(), 12);
}

#[test]
fn localstore_compaction_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    // Compact after nearly every commit.
    let ips = fill(dir.path(), 40, 200);
    let snap = dir.path().join("localstore").join("snapshot");
    assert!(snap.exists());
    // Compaction waits until the journal outgrows the snapshot (amortised cost), so the
    // journal stays within one snapshot plus one record.
    let snap_len = std::fs::metadata(&snap).unwrap().len();
    assert!(std::fs::metadata(journal(dir.path())).unwrap().len() < snap_len + 2000);
    let (store, report) = reopen(dir.path());
    assert_eq!(report.records, 40);
    let got: Vec<IpAddr> = store
        .pool_state("a")
        .unwrap()
        .allocations()
        .keys()
        .copied()
        .collect();
    assert_eq!(got, ips);
    // A stale temp file from a crash mid-compaction is ignored and removed.
    drop(store);
    std::fs::write(dir.path().join("localstore").join("snapshot.tmp"), b"junk").unwrap();
    let (store, _) = reopen(dir.path());
    assert_eq!(store.pool_state("a").unwrap().allocations().len(), 40);
    assert!(!dir.path().join("localstore").join("snapshot.tmp").exists());
    // A damaged snapshot is corruption, never silently ignored.
    drop(store);
    let mut s = std::fs::read(&snap).unwrap();
    let n = s.len();
    s[n / 2] ^= 0x01;
    std::fs::write(&snap, s).unwrap();
    let e = LocalStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, LocalStoreError::Corrupt { .. }), "{e:?}");
}

#[test]
fn localstore_earlier_format_is_read_and_upgraded() {
    // An earlier version's layout: no snapshot yet, a journal of records without a header.
    let dir = tempfile::tempdir().unwrap();
    let ips = fill(dir.path(), 4, u64::MAX);
    let path = journal(dir.path());
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[line_starts(&data)[1]..]).unwrap();
    std::fs::remove_file(dir.path().join("localstore/snapshot")).unwrap();
    let (store, report) = reopen(dir.path());
    assert_eq!(report.replayed, 4);
    let got: Vec<IpAddr> = store
        .pool_state("a")
        .unwrap()
        .allocations()
        .keys()
        .copied()
        .collect();
    assert_eq!(got, ips);
    drop(store);
    // Upgraded: the snapshot holds the mark and the journal its header, so losing the
    // journal is refused from now on.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("00000017 ") && text.contains(r#"{"journal":2,"after":4}"#));
    std::fs::remove_file(&path).unwrap();
    assert_refused(dir.path(), "journal", 0, "missing");
}
