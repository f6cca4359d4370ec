//! The embedded local store: a durable, crash-safe [`IpamStore`] on local disk.
//!
//! [`LocalStore`] behaves exactly like [`spiderpool_core::ipam::MemoryStore`] (same snapshots,
//! same per-pool and per-endpoint compare-and-swap, all-or-nothing commits: both keep their
//! state in a [`spiderpool_core::ipam::StoreState`]) and in addition
//! makes every commit durable before it returns: the change set is appended to a journal as
//! one checksummed JSON line and the journal is fsynced. Now and then the journal is
//! compacted into a snapshot file (write to a temp file, fsync, rename, fsync the directory)
//! and the journal replaced by one holding only a header. On open the snapshot is loaded, the
//! journal replayed, and a torn last record (a crash in the middle of an append: a prefix of
//! one record, without a newline) cut off; any other damage, or a journal that does not reach
//! the snapshot's sequence number (its high-water mark), is refused with the file and offset.
//!
//! What is durable: the pool *records* (address → pod and pod UID, per pool name) and the
//! SpiderEndpoints. Pool, subnet and reserved-IP *definitions* come from the agent's YAML
//! files and are handed in with [`LocalStore::set_pools`] (or [`LocalStore::put_pool`] and
//! friends, mirroring `MemoryStore`); pool states are rebuilt from those specs plus the
//! records, so memory follows the number of allocations, never the size of a pool. Records
//! of a pool that is no longer configured are kept and reported
//! ([`LocalStore::orphaned_pools`]), never dropped.
//!
//! Files, under `<state-dir>/localstore/`: `lock` (held with `flock` while a store is open;
//! holds the owner's pid), `journal`, `snapshot`. See docs/localstore.md.

mod disk;
mod frame;

use spiderpool_core::ipam::{CommitError, IpamError, StoreError};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spiderpool_core::ipam::{
    ChangeSet, Committed, EndpointKey, IpamStore, PoolState, Snapshot, StoreState,
};
use spiderpool_core::objects::{PoolIPAllocation, SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

use disk::{JournalRecord, Records, SnapshotFile, io_err};

/// Why the local store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum LocalStoreError {
    /// A file operation failed.
    #[error("local store {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process (another agent) has the state dir open.
    #[error(
        "state dir {} is in use by another spiderpool-agent ({holder}); stop it or use another --state-dir",
        dir.display()
    )]
    Locked {
        /// The state dir.
        dir: PathBuf,
        /// Who holds it, as written in the lock file (`pid N`), or `unknown`.
        holder: String,
    },
    /// A file is damaged in a way a crash cannot explain (e.g. a bad record followed by good
    /// ones); the store refuses to open rather than lose acknowledged commits silently.
    #[error("local store {} is corrupted at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A pool or reserved-IP definition is invalid.
    #[error(transparent)]
    Ipam(#[from] IpamError),
}

impl From<LocalStoreError> for IpamError {
    fn from(e: LocalStoreError) -> Self {
        match e {
            LocalStoreError::Ipam(e) => e,
            other => IpamError::Store {
                reason: other.to_string(),
            },
        }
    }
}

/// Tuning of a [`LocalStore`].
#[derive(Debug, Clone)]
pub struct LocalStoreOptions {
    /// Compact the journal into the snapshot once it is larger than this many bytes and
    /// larger than the snapshot (so compaction costs stay proportional to the work done).
    pub compact_after_bytes: u64,
}

impl Default for LocalStoreOptions {
    fn default() -> Self {
        LocalStoreOptions {
            compact_after_bytes: 4 << 20,
        }
    }
}

/// What [`LocalStore::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Journal records replayed.
    pub replayed: u64,
    /// Bytes of a torn last journal record that were cut off (a crash during an append; that
    /// commit was never acknowledged).
    pub torn_bytes: u64,
    /// Records loaded (all pools, configured or not).
    pub records: usize,
    /// Endpoints loaded.
    pub endpoints: usize,
}

/// Why a [`LocalStore`] takes no commit right now ([`LocalStore::failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    /// What failed, with the file and the OS error.
    pub reason: String,
    /// The disk or the quota is full (`ENOSPC`, `EDQUOT`): a transient failure. The journal
    /// was cut back to its last acknowledged record, and the store takes commits again by
    /// itself once space is freed. Any other failure lasts until the agent restarts.
    pub disk_full: bool,
}

impl StoreFailure {
    /// The message a refused commit carries.
    pub fn refusal(&self) -> String {
        if self.disk_full {
            format!(
                "local store cannot write, the disk is full ({}); nothing was committed; it \
                 resumes by itself once space is freed",
                self.reason
            )
        } else {
            format!(
                "local store is read-only after a failed write ({}); restart the agent",
                self.reason
            )
        }
    }
}

/// How often a store failed on a full disk checks whether it can write again.
const RECOVERY_INTERVAL: Duration = Duration::from_millis(500);

// A failure and when recovery was last tried.
#[derive(Debug)]
struct Failed {
    failure: StoreFailure,
    last_try: Instant,
}

impl Failed {
    fn new(reason: String, disk_full: bool) -> Self {
        Failed {
            failure: StoreFailure { reason, disk_full },
            last_try: Instant::now(),
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Records of a pool that is not (or no longer) configured, kept until the pool returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedPool {
    /// The pool name.
    pub name: String,
    /// Its records.
    pub allocations: BTreeMap<IpAddr, PoolIPAllocation>,
}

/// A pool definition [`LocalStore::set_pools`] could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedPool {
    /// The pool name.
    pub name: String,
    /// Why (e.g. an invalid spec, or records of another family).
    pub reason: String,
}

/// The outcome of [`LocalStore::set_pools`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolsReport {
    /// Pools now configured.
    pub configured: Vec<String>,
    /// Pools with records but no (usable) definition: records kept, not allocatable.
    pub orphaned: Vec<OrphanedPool>,
    /// Definitions that were refused (their records, if any, are in `orphaned`).
    pub rejected: Vec<RejectedPool>,
}

// The shared in-memory state plus what only this store has: orphaned records and the files.
#[derive(Debug)]
struct Inner {
    // Configured pools, endpoints, reserved IPs and the version counter (durable here, so
    // versions never go back).
    state: StoreState,
    // Records of pools that are not configured (see `set_pools`); MemoryStore drops a removed
    // pool's records, this store never does, so they live here rather than in `StoreState`.
    orphans: Records,
    seq: u64,
    journal: File,
    journal_len: u64,
    snapshot_len: u64,
    // Set after a failed write: no further commit is acknowledged until the failure is
    // over. On a full disk the journal was cut back, and `recover` checks the files before
    // lifting it; after any other failure what is on disk is unknown, so only a reopen
    // (which reads the truth back) does.
    failed: Option<Failed>,
}

impl Inner {
    fn records_of(&self, name: &str) -> BTreeMap<IpAddr, PoolIPAllocation> {
        match self.state.pool_state(name) {
            Some(state) => state.allocations().clone(),
            None => self.orphans.get(name).cloned().unwrap_or_default(),
        }
    }
}

/// The durable local [`IpamStore`] (`Send + Sync`; one mutex, commits serialised).
#[derive(Debug)]
pub struct LocalStore {
    dir: PathBuf,
    options: LocalStoreOptions,
    inner: Mutex<Inner>,
    // Held (flock) for the store's lifetime; released by the kernel when the process dies.
    _lock: File,
    // Whether `Inner::failed` is set, readable without the mutex: the agent's health check
    // asks often and must not wait behind a commit's fsync or a compaction.
    failing: AtomicBool,
}

fn lock_dir(dir: &Path) -> Result<File, LocalStoreError> {
    let path = dir.join(disk::LOCK_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LocalStoreError::Locked {
                dir: dir.parent().unwrap_or(dir).to_owned(),
                holder: if holder.is_empty() {
                    "unknown".to_owned()
                } else {
                    holder.to_owned()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, e)),
    }
    // The pid is only informative (for the error above); the flock is what excludes.
    f.set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| write!(f, "pid {}", std::process::id()))
        .map_err(|e| io_err(&path, e))?;
    Ok(f)
}

impl LocalStore {
    /// Opens (creating if needed) the store under `<state_dir>/localstore/` with default
    /// options. Fails with [`LocalStoreError::Locked`] if another process has it open.
    /// Every record starts as orphaned until [`LocalStore::set_pools`] (or `put_pool`)
    /// supplies the pool definitions.
    pub fn open(state_dir: &Path) -> Result<(Self, OpenReport), LocalStoreError> {
        Self::open_with(state_dir, LocalStoreOptions::default())
    }

    /// [`LocalStore::open`] with `options`.
    pub fn open_with(
        state_dir: &Path,
        options: LocalStoreOptions,
    ) -> Result<(Self, OpenReport), LocalStoreError> {
        let dir = disk::store_dir(state_dir);
        let created = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        if created {
            disk::sync_dir(state_dir)?;
        }
        let lock = lock_dir(&dir)?;
        disk::remove_stale_tmp(&dir)?;
        let loaded = disk::load(&dir)?;
        let jpath = dir.join(disk::JOURNAL_FILE);
        if let Some((offset, bytes)) = loaded.torn {
            log::warn!(
                "local store {}: cutting off a torn last record ({bytes} bytes at byte {offset}); it was never acknowledged",
                jpath.display()
            );
            let journal = disk::open_journal(&dir)?;
            journal
                .set_len(offset)
                .and_then(|()| journal.sync_all())
                .map_err(|e| io_err(&jpath, e))?;
        }
        let (journal, journal_len) = if loaded.has_header || loaded.journal_records {
            (disk::open_journal(&dir)?, loaded.journal_len)
        } else {
            // A new store, or one of an earlier version whose journal holds no record: start
            // a journal with its header (atomically, so it is never seen empty).
            disk::write_journal(&dir, loaded.seq)?
        };
        // The lock may have just been created: make its entry durable.
        disk::sync_dir(&dir)?;
        let report = OpenReport {
            replayed: loaded.seq,
            torn_bytes: loaded.torn.map_or(0, |t| t.1),
            records: loaded.records.values().map(BTreeMap::len).sum(),
            endpoints: loaded.endpoints.len(),
        };
        let inner = Inner {
            state: StoreState::restore(
                loaded.last_version,
                loaded.endpoints.into_iter().map(|(k, (v, e))| (k, v, e)),
            ),
            orphans: loaded.records,
            seq: loaded.seq,
            journal,
            journal_len,
            snapshot_len: loaded.snapshot_len,
            failed: None,
        };
        let store = LocalStore {
            dir,
            options,
            inner: Mutex::new(inner),
            _lock: lock,
            failing: AtomicBool::new(false),
        };
        if !loaded.marked {
            // A new store, or one of an earlier version: from now on the snapshot carries
            // the high-water mark the journal must reach.
            store.compact()?;
        }
        Ok((store, report))
    }

    /// The directory holding the store's files (`<state-dir>/localstore`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    // A panic cannot leave `Inner` half-updated (commits validate before they write and a
    // failed write marks the store failed), so a poisoned mutex is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the whole configuration (the agent's load and SIGHUP reload): every pool and
    /// every SpiderReservedIP. Pools keep their records; pools that disappear keep theirs as
    /// orphaned (reported, not allocatable, not deleted); a definition that cannot be used
    /// (invalid spec, or records of another family) is rejected and reported, its records
    /// kept. Every pool's version is bumped, so plans made on the old configuration
    /// conflict. `status` in the given pools is ignored: the store is the source of truth for
    /// records. Fails (changing nothing) only when a SpiderReservedIP is invalid.
    pub fn set_pools(
        &self,
        pools: &[SpiderIPPool],
        reserved: &[SpiderReservedIP],
    ) -> Result<PoolsReport, LocalStoreError> {
        let reserved: BTreeMap<String, SpiderReservedIP> = reserved
            .iter()
            .map(|r| (r.metadata.name.clone().unwrap_or_default(), r.clone()))
            .collect();
        let mut inner = self.lock();
        let old = inner.state.reset_pools(reserved)?;
        let mut all: Records = std::mem::take(&mut inner.orphans);
        for (name, state) in old {
            if !state.allocations().is_empty() {
                all.insert(name, state.allocations().clone());
            }
        }
        let mut report = PoolsReport::default();
        for pool in pools {
            let name = pool.metadata.name.clone().unwrap_or_default();
            if inner.state.has_pool(&name) {
                report.rejected.push(RejectedPool {
                    name,
                    reason: "defined twice".to_owned(),
                });
                continue;
            }
            let records = all.remove(&name).unwrap_or_default();
            let mut pool = pool.clone();
            pool.status = None;
            match inner
                .state
                .put_pool_with_records(pool, records.iter().map(|(ip, r)| (*ip, r.clone())))
            {
                Ok(_) => report.configured.push(name),
                Err(e) => {
                    if !records.is_empty() {
                        all.insert(name.clone(), records);
                    }
                    report.rejected.push(RejectedPool {
                        name,
                        reason: e.to_string(),
                    });
                }
            }
        }
        for (name, allocations) in &all {
            log::warn!(
                "local store: pool {name} is not configured but holds {} record(s); they are kept",
                allocations.len()
            );
            report.orphaned.push(OrphanedPool {
                name: name.clone(),
                allocations: allocations.clone(),
            });
        }
        inner.orphans = all;
        Ok(report)
    }

    /// Adds or updates one pool (as `MemoryStore::put_pool`): it keeps its records (also
    /// those it had as an orphan) and takes the new spec and metadata; `status` is ignored.
    pub fn put_pool(&self, pool: SpiderIPPool) -> Result<(), IpamError> {
        let mut inner = self.lock();
        let name = pool.metadata.name.clone().unwrap_or_default();
        let records = inner.records_of(&name);
        let mut pool = pool;
        pool.status = None;
        inner.state.put_pool_with_records(pool, records)?;
        inner.orphans.remove(&name);
        Ok(())
    }

    /// Removes a pool definition; returns whether it existed. Its records are kept as an
    /// orphaned pool.
    pub fn remove_pool(&self, name: &str) -> bool {
        let mut inner = self.lock();
        match inner.state.remove_pool(name) {
            Some(state) => {
                if !state.allocations().is_empty() {
                    inner
                        .orphans
                        .insert(name.to_owned(), state.allocations().clone());
                }
                true
            }
            None => false,
        }
    }

    /// Adds or replaces a SpiderReservedIP and rebuilds the pools' free sets (bumping every
    /// pool's version), as `MemoryStore::put_reserved_ip`.
    pub fn put_reserved_ip(&self, r: SpiderReservedIP) -> Result<(), IpamError> {
        self.lock().state.put_reserved_ip(r)
    }

    /// Removes a SpiderReservedIP; returns whether it existed.
    pub fn remove_reserved_ip(&self, name: &str) -> Result<bool, IpamError> {
        self.lock().state.remove_reserved_ip(name)
    }

    /// The configured pool `name` with its current status (`allocatedIPs`, counts).
    pub fn pool(&self, name: &str) -> Option<SpiderIPPool> {
        self.lock().state.pool(name)
    }

    /// Every configured pool with its status, by name.
    pub fn pools(&self) -> Vec<SpiderIPPool> {
        self.lock().state.pools()
    }

    /// The state of configured pool `name`.
    pub fn pool_state(&self, name: &str) -> Option<Arc<PoolState>> {
        self.lock().state.pool_state(name).cloned()
    }

    /// Records of pools that are not configured.
    pub fn orphaned_pools(&self) -> Vec<OrphanedPool> {
        self.lock()
            .orphans
            .iter()
            .map(|(name, a)| OrphanedPool {
                name: name.clone(),
                allocations: a.clone(),
            })
            .collect()
    }

    /// The endpoint `key`.
    pub fn endpoint(&self, key: &EndpointKey) -> Option<SpiderEndpoint> {
        self.lock().state.endpoint(key).cloned()
    }

    /// Every endpoint, by key.
    pub fn endpoints(&self) -> Vec<SpiderEndpoint> {
        self.lock().state.endpoints()
    }

    /// Everything the store holds, for `spiderpool-agent dump` and the agent's API:
    /// `{"stateDir", "seq", "pools": [{name, version, subnet, totalIPCount, allocatedIPCount,
    /// allocations: {ip: {pod, podUid}}}], "orphanedPools": [{name, allocations}],
    /// "endpoints": [SpiderEndpoint...]}`.
    pub fn dump(&self) -> Value {
        let inner = self.lock();
        let pools: Vec<Value> = inner
            .state
            .pool_entries()
            .map(|(name, v, state, pool)| {
                json!({
                    "name": name,
                    "version": v,
                    "subnet": pool.spec.subnet,
                    "totalIPCount": state.usable().len_saturating_i64(),
                    "allocatedIPCount": state.allocations().len(),
                    "allocations": allocations_json(state.allocations()),
                })
            })
            .collect();
        let orphans: Vec<Value> = inner
            .orphans
            .iter()
            .map(|(name, a)| json!({"name": name, "allocations": allocations_json(a)}))
            .collect();
        let endpoints: Vec<Value> = inner
            .state
            .endpoint_entries()
            .map(|(_, _, e)| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        json!({
            "stateDir": self.dir.parent().unwrap_or(&self.dir),
            "seq": inner.seq,
            "pools": pools,
            "orphanedPools": orphans,
            "endpoints": endpoints,
        })
    }

    /// Compacts now: writes the whole state as the new snapshot and empties the journal.
    /// Commits do this on their own when the journal grows past
    /// [`LocalStoreOptions::compact_after_bytes`].
    pub fn compact(&self) -> Result<(), LocalStoreError> {
        let mut inner = self.lock();
        self.compact_locked(&mut inner)
    }

    fn compact_locked(&self, inner: &mut Inner) -> Result<(), LocalStoreError> {
        let mut pools = inner.orphans.clone();
        for (name, _, state, _) in inner.state.pool_entries() {
            if !state.allocations().is_empty() {
                pools.insert(name.to_owned(), state.allocations().clone());
            }
        }
        let snap = SnapshotFile {
            format: disk::FORMAT,
            seq: inner.seq,
            last_version: inner.state.last_version(),
            pools,
            endpoints: inner
                .state
                .endpoint_entries()
                .map(|(k, v, e)| disk::EndpointEntry {
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                    version: v,
                    endpoint: e.clone(),
                })
                .collect(),
        };
        inner.snapshot_len = disk::write_snapshot(&self.dir, &snap)?;
        // From here the snapshot holds every record; a crash before the journal is replaced
        // leaves journal records at or below its seq, which loading skips.
        match disk::write_journal(&self.dir, inner.seq) {
            Ok((journal, len)) => {
                inner.journal = journal;
                inner.journal_len = len;
                Ok(())
            }
            Err(e) => {
                if journal_replaced(&self.dir, &inner.journal) {
                    // Renamed but not reopened or not made durable: appends to the old file
                    // would be lost, so take no more commits.
                    let failed = Failed::new(format!("replacing the journal: {e}"), false);
                    self.fail(inner, failed);
                }
                Err(e)
            }
        }
    }

    /// Why the store takes no commit right now, if it does not. A store that failed on a
    /// full disk first checks whether it can write again (at most twice a second), so this
    /// clears by itself once space is freed.
    pub fn failure(&self) -> Option<StoreFailure> {
        if !self.failing.load(Ordering::SeqCst) {
            return None;
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        self.try_recover(inner);
        inner.failed.as_ref().map(|f| f.failure.clone())
    }

    fn fail(&self, inner: &mut Inner, failed: Failed) {
        inner.failed = Some(failed);
        self.failing.store(true, Ordering::SeqCst);
    }

    fn try_recover(&self, inner: &mut Inner) {
        let Some(failed) = inner.failed.as_mut() else {
            return;
        };
        if !failed.failure.disk_full || failed.last_try.elapsed() < RECOVERY_INTERVAL {
            return;
        }
        failed.last_try = Instant::now();
        match self.recover(inner) {
            Ok(()) => {
                log::info!(
                    "local store {}: writable again, taking commits",
                    self.dir.display()
                );
                inner.failed = None;
                self.failing.store(false, Ordering::SeqCst);
            }
            Err(why) => log::debug!("local store {}: still failed: {why}", self.dir.display()),
        }
    }

    /// Checks that the journal on disk is exactly what was acknowledged and that a record
    /// fits on the disk again.
    fn recover(&self, inner: &mut Inner) -> Result<(), String> {
        let jpath = self.dir.join(disk::JOURNAL_FILE);
        inner
            .journal
            .set_len(inner.journal_len)
            .and_then(|()| inner.journal.sync_all())
            .map_err(|e| format!("cutting {} back: {e}", jpath.display()))?;
        let loaded = disk::load(&self.dir).map_err(|e| e.to_string())?;
        if loaded.seq != inner.seq || loaded.journal_len != inner.journal_len {
            return Err(format!(
                "{} holds seq {} in {} bytes, not the acknowledged seq {} in {} bytes",
                jpath.display(),
                loaded.seq,
                loaded.journal_len,
                inner.seq,
                inner.journal_len
            ));
        }
        probe_space(&self.dir)
    }

    /// Appends `line` to the journal and fsyncs it. On failure the journal is cut back to
    /// its previous length (best effort) and the store marked failed (see [`StoreFailure`]).
    fn append(&self, inner: &mut Inner, line: &[u8]) -> Result<(), StoreError> {
        let jpath = self.dir.join(disk::JOURNAL_FILE);
        let res = inner
            .journal
            .write_all(line)
            .and_then(|()| inner.journal.sync_data());
        if let Err(e) = res {
            let cut = inner.journal.set_len(inner.journal_len);
            let disk_full = is_disk_full(&e) && cut.is_ok();
            let failed = Failed::new(format!("writing {}: {e}", jpath.display()), disk_full);
            let reason = failed.failure.refusal();
            log::error!("{reason}");
            self.fail(inner, failed);
            return Err(StoreError { reason });
        }
        inner.journal_len += line.len() as u64;
        Ok(())
    }
}

/// Whether the journal's path names another file than `journal` (it was replaced).
fn journal_replaced(dir: &Path, journal: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let on_disk = std::fs::metadata(dir.join(disk::JOURNAL_FILE)).map(|m| (m.dev(), m.ino()));
    let ours = journal.metadata().map(|m| (m.dev(), m.ino()));
    match (on_disk, ours) {
        (Ok(a), Ok(b)) => a != b,
        _ => true,
    }
}

/// Whether a journal record fits on the disk again: writes, fsyncs and removes a probe file
/// the size of a large record.
fn probe_space(dir: &Path) -> Result<(), String> {
    let probe = dir.join("space.probe");
    let res = File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    res.map_err(|e| format!("{}: {e}", probe.display()))
}

fn allocations_json(a: &BTreeMap<IpAddr, PoolIPAllocation>) -> Value {
    Value::Object(
        a.iter()
            .map(|(ip, r)| (ip.to_string(), json!({"pod": r.pod, "podUid": r.pod_uid})))
            .collect(),
    )
}

impl IpamStore for LocalStore {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError> {
        Ok(self.lock().state.snapshot(endpoints))
    }

    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        self.try_recover(inner);
        if let Some(failed) = &inner.failed {
            return Err(CommitError::store(failed.failure.refusal()));
        }
        inner.state.check(changes)?;
        // Versions first (as MemoryStore assigns them), so the journal record carries them.
        let out = inner.state.assign_versions(changes);
        let durable =
            changes.pools.iter().any(|p| !p.ops.is_empty()) || !changes.endpoints.is_empty();
        if durable {
            let rec = JournalRecord::new(
                inner.seq + 1,
                inner.state.last_version(),
                changes,
                &out.endpoints,
            );
            let json = serde_json::to_vec(&rec)
                .map_err(|e| CommitError::store(format!("encoding a journal record: {e}")))?;
            self.append(inner, &frame::encode(&json))?;
            inner.seq += 1;
        }
        // Durable now: apply in memory. The checks above make these infallible; should one
        // fail anyway, memory and disk could differ, so poison and let a reopen read the truth.
        if let Err(e) = inner.state.apply(changes, &out) {
            self.fail(inner, Failed::new(e.to_string(), false));
            return Err(e);
        }
        if durable
            && inner.journal_len > self.options.compact_after_bytes
            && inner.journal_len > inner.snapshot_len
            && let Err(e) = self.compact_locked(inner)
        {
            // The commit itself is durable in the journal; a failed compaction only means the
            // journal keeps growing until the next attempt.
            log::warn!("local store: compaction failed: {e}");
        }
        Ok(out)
    }
}

/// Reads the store under `state_dir` without opening it for writing: no lock taken (so it
/// works while an agent runs), nothing truncated. Returns the durable state: `{"seq",
/// "lastVersion", "pools": {name: {ip: {pod, podUid}}}, "endpoints": [...], "tornBytes"}`.
/// Pool definitions are not part of it (they live in the agent's YAML files).
pub fn inspect(state_dir: &Path) -> Result<Value, LocalStoreError> {
    let dir = disk::store_dir(state_dir);
    if !dir.is_dir() {
        return Err(io_err(
            &dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no local store here"),
        ));
    }
    // A compaction between reading the snapshot and the journal would make the pair
    // inconsistent; read again when the snapshot changed meanwhile.
    let mut last_err = None;
    for _ in 0..5 {
        let before = disk::read_snapshot(&dir)?.0.seq;
        let loaded = match disk::load(&dir) {
            Ok(l) => l,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        if disk::read_snapshot(&dir)?.0.seq != before {
            continue;
        }
        let pools: serde_json::Map<String, Value> = loaded
            .records
            .iter()
            .map(|(name, a)| (name.clone(), allocations_json(a)))
            .collect();
        let endpoints: Vec<Value> = loaded
            .endpoints
            .values()
            .map(|(_, e)| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        return Ok(json!({
            "seq": loaded.seq,
            "lastVersion": loaded.last_version,
            "pools": pools,
            "endpoints": endpoints,
            "tornBytes": loaded.torn.map_or(0, |t| t.1),
        }));
    }
    Err(last_err.unwrap_or_else(|| LocalStoreError::Io {
        path: dir,
        source: std::io::Error::other("the store kept changing while being read"),
    }))
}
