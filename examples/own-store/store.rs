//! [`JsonFileStore`]: an [`IpamStore`] over one JSON file, in about fifty lines.
//!
//! Core's [`StoreState`] does the work: it keeps the pools, records and endpoints with one
//! version per pool and per endpoint, and refuses a change set whose objects moved on since
//! the plan read them (compare-and-swap). This store adds persistence: every commit is
//! checked, applied, then written to a temporary file that replaces the JSON file (`rename`
//! is atomic, so a crash leaves the old or the new file, never half of one).
//!
//! One process owns the file at a time: a CNI plugin takes a lock around its whole run
//! (`third-party-ipam` does). Inside the process, the mutex plus the versions make concurrent
//! plans safe.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use spiderpool_core::ipam::{
    ChangeSet, CommitError, Committed, EndpointKey, IpamError, IpamStore, Snapshot, StoreError,
    StoreState, Version,
};
use spiderpool_core::objects::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP};

/// The file's content: pools carry their records in `status.allocatedIPs`.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    last_version: Version,
    pools: Vec<SpiderIPPool>,
    reserved: BTreeMap<String, SpiderReservedIP>,
    endpoints: Vec<(Version, SpiderEndpoint)>,
}

struct Inner {
    state: StoreState,
    reserved: BTreeMap<String, SpiderReservedIP>,
}

/// An [`IpamStore`] persisted in one JSON file.
pub struct JsonFileStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

fn store_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("{what} {}: {e}", path.display()))
}

/// Reads `path` (a missing file is an empty store); versions continue after `floor`.
fn load(path: &Path, floor: Version) -> Result<Inner, IpamError> {
    let saved: Saved = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| store_error("parse", path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
        Err(e) => return Err(store_error("read", path, e).into()),
    };
    let endpoints = saved.endpoints.into_iter().map(|(v, e)| {
        let key = EndpointKey::new(
            e.metadata.namespace.clone().unwrap_or_default(),
            e.metadata.name.clone().unwrap_or_default(),
        );
        (key, v, e)
    });
    let mut state = StoreState::restore(saved.last_version.max(floor), endpoints);
    state.set_reserved(saved.reserved.clone())?;
    for pool in saved.pools {
        state.put_pool(pool)?; // a new pool takes its records from status.allocatedIPs
    }
    Ok(Inner {
        state,
        reserved: saved.reserved,
    })
}

/// Writes `inner` to a temporary file, syncs it, and renames it over `path`.
fn save(path: &Path, inner: &Inner) -> Result<(), StoreError> {
    let saved = Saved {
        last_version: inner.state.last_version(),
        pools: inner.state.pools(),
        reserved: inner.reserved.clone(),
        endpoints: (inner.state.endpoint_entries())
            .map(|(_, v, e)| (v, e.clone()))
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&saved).map_err(|e| store_error("encode", path, e))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| store_error("write", path, e))
}

impl JsonFileStore {
    /// Opens the store in `path` (created by the first write).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, IpamError> {
        let path = path.into();
        let inner = Mutex::new(load(&path, 0)?);
        Ok(JsonFileStore { path, inner })
    }

    // Commits check before they write, so a panic never leaves the state half changed.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` (which changes nothing when it fails) and saves; when the save fails,
    /// memory goes back to what the file holds, so it never runs ahead of the disk.
    fn write<T, E: From<StoreError>>(
        &self,
        change: impl FnOnce(&mut Inner) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut inner = self.lock();
        let out = change(&mut inner)?;
        if let Err(e) = save(&self.path, &inner) {
            let floor = inner.state.last_version(); // never hand a version out twice
            *inner = load(&self.path, floor).map_err(|e| match e {
                IpamError::Store { reason } => StoreError::new(reason),
                other => StoreError::new(other.to_string()),
            })?;
            return Err(e.into());
        }
        Ok(out)
    }

    /// Adds a pool, or updates its spec keeping its records.
    pub fn put_pool(&self, pool: SpiderIPPool) -> Result<(), IpamError> {
        self.write(|inner| inner.state.put_pool(pool).map(drop))
    }

    /// Adds or replaces a SpiderReservedIP (its addresses are never handed out).
    #[allow(dead_code)] // this example reserves nothing; the conformance test does
    pub fn put_reserved_ip(&self, reserved: SpiderReservedIP) -> Result<(), IpamError> {
        self.write(|inner| {
            let mut all = inner.reserved.clone();
            all.insert(reserved.metadata.name.clone().unwrap_or_default(), reserved);
            inner.state.set_reserved(all.clone())?;
            inner.reserved = all;
            Ok(())
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl IpamStore for JsonFileStore {
    fn snapshot(&self, endpoints: &[EndpointKey]) -> Result<Snapshot, StoreError> {
        Ok(self.lock().state.snapshot(endpoints))
    }

    /// Compare-and-swap: [`StoreState::commit`] refuses stale versions with
    /// [`CommitError::Conflict`] and writes nothing; then the file is replaced.
    fn commit(&self, changes: &ChangeSet) -> Result<Committed, CommitError> {
        self.write(|inner| inner.state.commit(changes))
    }
}
