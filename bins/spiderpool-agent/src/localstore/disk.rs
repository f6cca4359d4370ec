//! The files of the local store and their record types: the journal (one framed JSON line per
//! commit) and the snapshot (one framed JSON line holding the whole durable state as of a
//! journal sequence number). Loading replays the journal over the snapshot on plain records,
//! independent of pool specs, so a changed pool definition never changes what was recorded.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spiderpool_core::ipam::{ChangeSet, EndpointChange, EndpointKey, PoolOp, Version};
use spiderpool_core::objects::{PoolIPAllocation, SpiderEndpoint};

use super::LocalStoreError;
use super::frame::{self, Decoded};

/// Name of the lock file inside the store directory.
pub(crate) const LOCK_FILE: &str = "lock";
/// Name of the journal inside the store directory.
pub(crate) const JOURNAL_FILE: &str = "journal";
/// Name of the snapshot inside the store directory.
pub(crate) const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
const JOURNAL_TMP: &str = "journal.tmp";
/// Snapshot format of this version: its journal starts with a [`JournalHeader`] and must
/// reach the snapshot's `seq` (the high-water mark).
pub(crate) const FORMAT: u32 = 2;
/// Snapshots of earlier versions: no high-water mark (the journal may be empty or absent).
const LEGACY_FORMAT: u32 = 1;

/// The records of every pool name: address → holder.
pub(crate) type Records = BTreeMap<String, BTreeMap<IpAddr, PoolIPAllocation>>;

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> LocalStoreError {
    LocalStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One pool-record change as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum OpRecord {
    /// `ip` now held by `pod` / `podUid`.
    Allocate {
        ip: IpAddr,
        #[serde(flatten)]
        record: PoolIPAllocation,
    },
    /// The holder of `ip` replaced.
    Readopt {
        ip: IpAddr,
        #[serde(flatten)]
        record: PoolIPAllocation,
    },
    /// The record of `ip` removed if it carries `podUid`.
    Release {
        ip: IpAddr,
        #[serde(rename = "podUid")]
        uid: String,
    },
}

/// The changes of one pool in one commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PoolRecord {
    pool: String,
    ops: Vec<OpRecord>,
}

/// One endpoint change as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum EndpointRecord {
    /// Created or replaced at `version`.
    Put {
        namespace: String,
        name: String,
        version: Version,
        endpoint: Box<SpiderEndpoint>,
    },
    /// Deleted.
    Delete { namespace: String, name: String },
}

/// One journal line: a committed change set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JournalRecord {
    /// Sequence number, 1 + the previous record's (or the snapshot's).
    pub seq: u64,
    /// The store's version counter after this commit.
    pub last_version: Version,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pools: Vec<PoolRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<EndpointRecord>,
}

impl JournalRecord {
    /// The record of `changes`, whose endpoint puts got `versions` (in order).
    pub(crate) fn new(
        seq: u64,
        last_version: Version,
        changes: &ChangeSet,
        versions: &BTreeMap<EndpointKey, Option<Version>>,
    ) -> Self {
        let pools = changes
            .pools
            .iter()
            .filter(|p| !p.ops.is_empty())
            .map(|p| PoolRecord {
                pool: p.pool.clone(),
                ops: p
                    .ops
                    .iter()
                    .map(|op| match op {
                        PoolOp::Allocate { ip, record } => OpRecord::Allocate {
                            ip: *ip,
                            record: record.clone(),
                        },
                        PoolOp::Readopt { ip, record } => OpRecord::Readopt {
                            ip: *ip,
                            record: record.clone(),
                        },
                        PoolOp::Release { ip, uid } => OpRecord::Release {
                            ip: *ip,
                            uid: uid.clone(),
                        },
                    })
                    .collect(),
            })
            .collect();
        let endpoints = changes
            .endpoints
            .iter()
            .map(|ec| match ec {
                EndpointChange::Put { key, endpoint, .. } => EndpointRecord::Put {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    version: versions.get(key).copied().flatten().unwrap_or_default(),
                    endpoint: endpoint.clone(),
                },
                EndpointChange::Delete { key, .. } => EndpointRecord::Delete {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                },
            })
            .collect();
        JournalRecord {
            seq,
            last_version,
            pools,
            endpoints,
        }
    }
}

/// An endpoint in the snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointEntry {
    pub namespace: String,
    pub name: String,
    pub version: Version,
    pub endpoint: SpiderEndpoint,
}

/// The snapshot file: the durable state as of journal record `seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SnapshotFile {
    pub format: u32,
    pub seq: u64,
    pub last_version: Version,
    /// Pool name → address → holder (pools of any name, configured or not).
    pub pools: Records,
    pub endpoints: Vec<EndpointEntry>,
}

/// The durable state after loading.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub seq: u64,
    pub last_version: Version,
    pub records: Records,
    pub endpoints: BTreeMap<EndpointKey, (Version, SpiderEndpoint)>,
    /// Length of the valid journal prefix.
    pub journal_len: u64,
    /// A torn tail found after the valid prefix: (offset, bytes).
    pub torn: Option<(u64, u64)>,
    /// Size of the snapshot file (0: none).
    pub snapshot_len: u64,
    /// The snapshot is of this version's format (so the journal must reach its `seq`).
    pub marked: bool,
    /// The journal file exists.
    pub journal_exists: bool,
    /// The journal starts with a [`JournalHeader`].
    pub has_header: bool,
    /// The journal holds at least one record after its header.
    pub journal_records: bool,
}

impl Loaded {
    fn apply(&mut self, rec: JournalRecord) {
        for p in rec.pools {
            let records = self.records.entry(p.pool).or_default();
            for op in p.ops {
                match op {
                    OpRecord::Allocate { ip, record } | OpRecord::Readopt { ip, record } => {
                        records.insert(ip, record);
                    }
                    OpRecord::Release { ip, uid } => {
                        if records.get(&ip).is_some_and(|r| r.pod_uid == uid) {
                            records.remove(&ip);
                        }
                    }
                }
            }
        }
        self.records.retain(|_, r| !r.is_empty());
        for e in rec.endpoints {
            match e {
                EndpointRecord::Put {
                    namespace,
                    name,
                    version,
                    endpoint,
                } => {
                    self.endpoints
                        .insert(EndpointKey::new(namespace, name), (version, *endpoint));
                }
                EndpointRecord::Delete { namespace, name } => {
                    self.endpoints.remove(&EndpointKey::new(namespace, name));
                }
            }
        }
        self.seq = rec.seq;
        self.last_version = self.last_version.max(rec.last_version);
    }
}

fn read_all(path: &Path) -> Result<Option<Vec<u8>>, LocalStoreError> {
    match File::open(path) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(|e| io_err(path, e))?;
            Ok(Some(buf))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> LocalStoreError {
    LocalStoreError::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Reads the snapshot file (absent = empty state, length 0).
pub(crate) fn read_snapshot(dir: &Path) -> Result<(SnapshotFile, u64), LocalStoreError> {
    let path = dir.join(SNAPSHOT_FILE);
    let Some(data) = read_all(&path)? else {
        return Ok((SnapshotFile::default(), 0));
    };
    // The snapshot is replaced by rename only, so it is always whole: any damage is real
    // corruption, never a crash artefact.
    let json = match frame::decode(&data, 0) {
        Decoded::Record(json, end) if end == data.len() => json,
        Decoded::Record(..) => return Err(corrupt(&path, 0, "trailing bytes after the record")),
        Decoded::Bad(why) => return Err(corrupt(&path, 0, why)),
    };
    let snap: SnapshotFile =
        serde_json::from_slice(json).map_err(|e| corrupt(&path, 0, e.to_string()))?;
    if !(LEGACY_FORMAT..=FORMAT).contains(&snap.format) {
        return Err(corrupt(
            &path,
            0,
            format!(
                "unknown format {} (this agent reads {LEGACY_FORMAT} to {FORMAT})",
                snap.format
            ),
        ));
    }
    Ok((snap, data.len() as u64))
}

/// The first line of every journal this version writes: the journal continues the snapshot
/// of sequence number `after`. It lets an emptied journal be told from a compacted one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalHeader {
    /// The journal format.
    journal: u32,
    /// The sequence number the journal's first record follows.
    after: u64,
}

/// The journal's header record and the offset after it, when the journal starts with one.
fn journal_header(data: &[u8]) -> Option<(u64, usize)> {
    match frame::decode(data, 0) {
        Decoded::Record(json, end) => serde_json::from_slice::<JournalHeader>(json)
            .ok()
            .map(|h| (h.after, end)),
        Decoded::Bad(_) => None,
    }
}

/// Whether `tail` (everything from a damaged record to the end of the journal) is what an
/// interrupted append leaves: a non-empty prefix of ONE framed record, without a newline,
/// whose JSON so far matches the start of record `next_seq`. Anything else (zeros, garbage,
/// a complete line with a bad checksum, two records run together) is corruption.
pub(crate) fn is_torn_append(tail: &[u8], next_seq: Option<u64>) -> bool {
    if tail.is_empty() || tail.contains(&b'\n') {
        return false;
    }
    let header_ok = tail
        .iter()
        .take(frame::HEADER_LEN)
        .enumerate()
        .all(|(i, &b)| match i {
            8 | 17 => b == b' ',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if !header_ok {
        return false;
    }
    let Some(json) = tail.get(frame::HEADER_LEN..) else {
        return true;
    };
    let len = std::str::from_utf8(&tail[..8])
        .ok()
        .and_then(|h| usize::from_str_radix(h, 16).ok());
    if len.is_none_or(|len| json.len() > len) {
        return false;
    }
    // Every record starts `{"seq":N,` (field order of `JournalRecord`).
    let expected = match next_seq {
        Some(n) => format!("{{\"seq\":{n},"),
        None => "{\"seq\":".to_owned(),
    };
    let n = json.len().min(expected.len());
    json[..n] == expected.as_bytes()[..n]
}

/// Loads snapshot + journal, refusing anything a crash cannot explain (see docs/localstore.md,
/// "Torn tail and corruption"):
/// * a damaged record is a torn tail (reported in [`Loaded::torn`], not applied) only when
///   [`is_torn_append`] says so; any other damage is [`LocalStoreError::Corrupt`] at its
///   offset;
/// * sequence numbers must follow each other, from the header's `after` on;
/// * beside a snapshot of this version's format, the journal must exist and reach the
///   snapshot's sequence number (its high-water mark): an emptied, deleted or cut journal is
///   refused instead of silently forgetting acknowledged commits.
pub(crate) fn load(dir: &Path) -> Result<Loaded, LocalStoreError> {
    let (snap, snapshot_len) = read_snapshot(dir)?;
    let marked = snapshot_len > 0 && snap.format >= FORMAT;
    let snap_seq = snap.seq;
    let mut loaded = Loaded {
        seq: snap.seq,
        last_version: snap.last_version,
        records: snap.pools,
        endpoints: snap
            .endpoints
            .into_iter()
            .map(|e| {
                (
                    EndpointKey::new(e.namespace, e.name),
                    (e.version, e.endpoint),
                )
            })
            .collect(),
        snapshot_len,
        marked,
        ..Default::default()
    };
    let path = dir.join(JOURNAL_FILE);
    let Some(data) = read_all(&path)? else {
        if marked {
            return Err(corrupt(
                &path,
                0,
                format!(
                    "the journal is missing, but the snapshot records commits up to seq \
                     {snap_seq} and every journal starts with a header: it was deleted"
                ),
            ));
        }
        return Ok(loaded);
    };
    let (start, after) = match journal_header(&data) {
        Some((after, end)) => (end, Some(after)),
        None => (0, None),
    };
    loaded.journal_exists = true;
    loaded.has_header = after.is_some();
    if let Some(after) = after
        && after > snap_seq
    {
        return Err(corrupt(
            &path,
            0,
            format!(
                "the journal continues seq {after}, but the snapshot is at seq {snap_seq}: \
                 the snapshot is older than the journal"
            ),
        ));
    }
    let last = replay(&data, start, after, &path, &mut loaded)?;
    let end = last.or(after);
    if marked && end.is_none_or(|end| end < snap_seq) {
        let end = end.map_or_else(|| "no record".to_owned(), |e| format!("seq {e}"));
        return Err(corrupt(
            &path,
            data.len(),
            format!(
                "the journal is shorter than its high-water mark: it ends at {end}, but the \
                 snapshot records commits up to seq {snap_seq} (the journal was emptied or cut)"
            ),
        ));
    }
    Ok(loaded)
}

/// Replays the journal records of `data` from `start`; returns the last record's seq.
fn replay(
    data: &[u8],
    start: usize,
    after: Option<u64>,
    path: &Path,
    loaded: &mut Loaded,
) -> Result<Option<u64>, LocalStoreError> {
    let mut at = start;
    let mut last = after;
    let mut records = None;
    while at < data.len() {
        let (json, next) = match frame::decode(data, at) {
            Decoded::Record(json, next) => (json, next),
            Decoded::Bad(why) => {
                if is_torn_append(&data[at..], last.map(|s| s + 1)) {
                    loaded.torn = Some((at as u64, (data.len() - at) as u64));
                    break;
                }
                return Err(corrupt(path, at, damage_reason(data, at, why)));
            }
        };
        let rec: JournalRecord = match serde_json::from_slice(json) {
            Ok(r) => r,
            // The checksum matched, so these are the bytes we wrote: a bug or a foreign file.
            Err(e) => return Err(corrupt(path, at, e.to_string())),
        };
        if let Some(prev) = last
            && rec.seq != prev + 1
        {
            return Err(corrupt(
                path,
                at,
                format!("record {} follows {prev}: records missing", rec.seq),
            ));
        }
        last = Some(rec.seq);
        records = Some(rec.seq);
        // Records at or below the snapshot's seq were compacted but the journal not yet
        // replaced (a crash between the two steps): already in the snapshot.
        if rec.seq > loaded.seq {
            loaded.apply(rec);
        }
        at = next;
    }
    loaded.journal_len = at as u64;
    loaded.journal_records = records.is_some();
    Ok(records)
}

/// Why the damaged record at `at` is corruption, for the error message.
fn damage_reason(data: &[u8], at: usize, why: &str) -> String {
    let what = match intact_record_after(data, at) {
        Some(later) => format!("{why}, yet an intact record follows at byte {later}"),
        None if data[at..].contains(&b'\n') => {
            format!("{why}, and the damage holds a complete line")
        }
        None => format!("{why}, and the rest is not the start of a record"),
    };
    format!(
        "{what}: a crash can only leave part of one record without a newline at the very \
         end, so acknowledged commits would be lost; nothing was changed"
    )
}

/// The offset of the first intact record after the damaged one at `bad`, if any.
fn intact_record_after(data: &[u8], bad: usize) -> Option<usize> {
    let mut at = bad;
    while let Some(nl) = data[at..].iter().position(|&b| b == b'\n') {
        at += nl + 1;
        if let Decoded::Record(..) = frame::decode(data, at) {
            return Some(at);
        }
    }
    None
}

/// Fsyncs directory `dir`, making created, renamed or removed entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LocalStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Opens the existing journal for appending.
pub(crate) fn open_journal(dir: &Path) -> Result<File, LocalStoreError> {
    let path = dir.join(JOURNAL_FILE);
    OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))
}

/// Replaces the journal with one holding only its header (`after`): temp file, fsync, rename,
/// fsync of the directory, so the journal is never seen empty or half-written. Returns the
/// new journal opened for appending, and its length.
pub(crate) fn write_journal(dir: &Path, after: u64) -> Result<(File, u64), LocalStoreError> {
    let tmp = dir.join(JOURNAL_TMP);
    let header = JournalHeader {
        journal: FORMAT,
        after,
    };
    let json = serde_json::to_vec(&header).map_err(|e| io_err(&tmp, std::io::Error::other(e)))?;
    let line = frame::encode(&json);
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(&line).and_then(|()| f.sync_all()))
        .map_err(|e| io_err(&tmp, e));
    if let Err(e) = written {
        // Frees the space on a full disk.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let path = dir.join(JOURNAL_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    sync_dir(dir)?;
    Ok((open_journal(dir)?, line.len() as u64))
}

/// Writes `snap` as the new snapshot: temp file, fsync, rename over the old one, fsync of
/// the directory. Returns its size.
pub(crate) fn write_snapshot(dir: &Path, snap: &SnapshotFile) -> Result<u64, LocalStoreError> {
    let tmp = dir.join(SNAPSHOT_TMP);
    let json = serde_json::to_vec(snap).map_err(|e| LocalStoreError::Io {
        path: tmp.clone(),
        source: std::io::Error::other(e),
    })?;
    let line = frame::encode(&json);
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(&line).and_then(|()| f.sync_all()))
        .map_err(|e| io_err(&tmp, e));
    if let Err(e) = written {
        // Frees the space on a full disk.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let path = dir.join(SNAPSHOT_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    sync_dir(dir)?;
    Ok(line.len() as u64)
}

/// Removes temp files left by a crash during compaction or creation.
pub(crate) fn remove_stale_tmp(dir: &Path) -> Result<(), LocalStoreError> {
    for name in [SNAPSHOT_TMP, JOURNAL_TMP] {
        let tmp = dir.join(name);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp, e)),
        }
    }
    Ok(())
}

/// The store directory inside a state dir.
pub(crate) fn store_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("localstore")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_prefix_of_the_next_record_is_a_torn_append() {
        let line = frame::encode(br#"{"seq":7,"lastVersion":3}"#);
        for n in 1..line.len() {
            assert!(is_torn_append(&line[..n], Some(7)), "prefix of {n} bytes");
        }
        // The whole line has its newline: a complete record, never torn.
        assert!(!is_torn_append(&line, Some(7)));
        // Another record's prefix (wrong seq), zeros, garbage, nothing.
        assert!(!is_torn_append(&line[..line.len() - 1], Some(8)));
        assert!(!is_torn_append(&[0; 40], Some(7)));
        assert!(!is_torn_append(b"0000 not a record", None));
        assert!(!is_torn_append(b"", Some(7)));
        // JSON longer than the length field announces.
        let mut long = line[..line.len() - 1].to_vec();
        long.push(b'x');
        assert!(!is_torn_append(&long, None));
    }
}
