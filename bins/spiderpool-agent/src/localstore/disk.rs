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
const FORMAT: u32 = 1;

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
    /// Size of the snapshot file.
    pub snapshot_len: u64,
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

/// Reads the snapshot file (absent = empty state).
pub(crate) fn read_snapshot(dir: &Path) -> Result<(SnapshotFile, u64), LocalStoreError> {
    let path = dir.join(SNAPSHOT_FILE);
    let Some(data) = read_all(&path)? else {
        return Ok((
            SnapshotFile {
                format: FORMAT,
                ..Default::default()
            },
            0,
        ));
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
    if snap.format != FORMAT {
        return Err(corrupt(
            &path,
            0,
            format!("unknown format {} (this agent reads {FORMAT})", snap.format),
        ));
    }
    Ok((snap, data.len() as u64))
}

/// Loads snapshot + journal. A damaged record with no intact record after it is a torn tail
/// (a crash during an append): it is reported in [`Loaded::torn`], not applied. A damaged
/// record followed by intact ones, or a gap in sequence numbers, is corruption: an error,
/// because acknowledged commits would otherwise be lost silently.
pub(crate) fn load(dir: &Path) -> Result<Loaded, LocalStoreError> {
    let (snap, snapshot_len) = read_snapshot(dir)?;
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
        ..Default::default()
    };
    let path = dir.join(JOURNAL_FILE);
    let data = read_all(&path)?.unwrap_or_default();
    let mut at = 0;
    while at < data.len() {
        let (json, next) = match frame::decode(&data, at) {
            Decoded::Record(json, next) => (json, next),
            Decoded::Bad(why) => {
                if let Some(later) = intact_record_after(&data, at) {
                    return Err(corrupt(
                        &path,
                        at,
                        format!("{why}, yet an intact record follows at byte {later}"),
                    ));
                }
                loaded.torn = Some((at as u64, (data.len() - at) as u64));
                break;
            }
        };
        let rec: JournalRecord = match serde_json::from_slice(json) {
            Ok(r) => r,
            // The checksum matched, so these are the bytes we wrote: a bug or a foreign file.
            Err(e) => return Err(corrupt(&path, at, e.to_string())),
        };
        if rec.seq > loaded.seq {
            if rec.seq != loaded.seq + 1 {
                return Err(corrupt(
                    &path,
                    at,
                    format!("record {} follows {}: records missing", rec.seq, loaded.seq),
                ));
            }
            loaded.apply(rec);
        }
        // Records at or below the snapshot's seq were compacted but not yet cut off (a crash
        // between the snapshot rename and the journal truncation): already in the snapshot.
        at = next;
    }
    loaded.journal_len = at as u64;
    Ok(loaded)
}

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

/// Opens (creating) the journal for appending.
pub(crate) fn open_journal(dir: &Path) -> Result<File, LocalStoreError> {
    let path = dir.join(JOURNAL_FILE);
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))
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
    let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(&line)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    drop(f);
    let path = dir.join(SNAPSHOT_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    sync_dir(dir)?;
    Ok(line.len() as u64)
}

/// Removes a snapshot temp file left by a crash during compaction.
pub(crate) fn remove_stale_tmp(dir: &Path) -> Result<(), LocalStoreError> {
    let tmp = dir.join(SNAPSHOT_TMP);
    match std::fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&tmp, e)),
    }
}

/// The store directory inside a state dir.
pub(crate) fn store_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("localstore")
}
