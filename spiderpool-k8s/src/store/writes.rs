//! The store's writes to the apiserver, each with its compare-and-swap precondition, and the
//! counters the benchmark reports (writes, 409 conflicts).

use spiderpool_core::ipam::CommitError;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use spiderpool_core::ipam::EndpointKey;
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderEndpoint, SpiderIPPool};

use super::blocks::{BlockError, PoolBlocks};
use crate::error::Error;
use crate::kinds::{api_resource, from_dynamic, resource_version, to_dynamic};

/// How many times a block edit is retried on 409 before giving up (each retry reads the pool
/// again; another agent wrote in between).
pub const STATUS_ATTEMPTS: u32 = 32;

/// Apiserver traffic of one store.
#[derive(Debug, Default)]
pub struct Stats {
    /// Writes sent (create, update, patch, delete).
    pub writes: AtomicU64,
    /// Writes refused with 409 Conflict / AlreadyExists.
    pub conflicts: AtomicU64,
    /// Reads sent outside the watches (GET after a conflict...).
    pub reads: AtomicU64,
}

impl Stats {
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
    fn conflicted(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The object changed (409) or already exists; the caller re-plans.
    #[error("{0} changed concurrently")]
    Conflict(String),
    /// The block edit is no longer possible on the current status.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The apiserver failed or is unreachable.
    #[error(transparent)]
    Api(#[from] Error),
}

impl WriteError {
    /// As the store contract's error: conflicts make the engine re-plan, the rest fail the
    /// request.
    pub fn into_commit(self) -> CommitError {
        match self {
            WriteError::Conflict(object)
            | WriteError::Block(BlockError::Taken { pool: object, .. }) => CommitError::Conflict {
                object,
                expected: "the version planned on".to_owned(),
                found: "a newer one in the cluster".to_owned(),
            },
            other => CommitError::store(other.to_string()),
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The apiserver side of a [`super::KubeStore`].
#[derive(Clone)]
pub struct Writer {
    client: Client,
    pools: Api<DynamicObject>,
    field_manager: String,
}

impl Writer {
    /// A writer with `client`.
    pub fn new(client: Client, field_manager: &str) -> Self {
        let pools = Api::all_with(client.clone(), &api_resource(&IPPOOL));
        Writer {
            client,
            pools,
            field_manager: field_manager.to_owned(),
        }
    }

    fn endpoints(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &api_resource(&ENDPOINT))
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        }
    }

    /// Reads pool `name`.
    pub async fn get_pool(&self, name: &str, stats: &Stats) -> Result<(u64, SpiderIPPool), Error> {
        stats.read();
        let obj = self
            .pools
            .get(name)
            .await
            .map_err(|e| Error::api(format!("get SpiderIPPool {name}"), e))?;
        Ok((resource_version(&obj), from_dynamic(&obj)?))
    }

    /// Applies `edit` to the blocks of `pool` and writes the status back with its
    /// resourceVersion; on 409 reads the pool again and re-applies `edit` to it. Returns the
    /// written pool (with its new version) and `edit`'s output.
    pub async fn edit_pool_status<R>(
        &self,
        pool: SpiderIPPool,
        attempts: u32,
        stats: &Stats,
        mut edit: impl FnMut(&mut PoolBlocks) -> Result<R, BlockError>,
    ) -> Result<(u64, SpiderIPPool, R), WriteError> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let mut current = pool;
        for _ in 0..attempts.max(1) {
            let mut layout = PoolBlocks::from_pool(&current)?;
            let out = edit(&mut layout)?;
            let mut status = current.status.clone().unwrap_or_default();
            layout.write_into(&mut status);
            if current.status.as_ref() == Some(&status) {
                let v = current
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                return Ok((v, current, out));
            }
            let mut next = current.clone();
            next.status = Some(status);
            let obj = to_dynamic(&next)?;
            stats.wrote();
            match self
                .pools
                .replace_status(&name, &self.post_params(), &obj)
                .await
            {
                Ok(written) => {
                    return Ok((resource_version(&written), from_dynamic(&written)?, out));
                }
                Err(e) if is_conflict(&e) => {
                    stats.conflicted();
                    current = self.get_pool(&name, stats).await?.1;
                }
                Err(e) => {
                    return Err(Error::api(format!("update SpiderIPPool {name} status"), e).into());
                }
            }
        }
        Err(WriteError::Conflict(format!("SpiderIPPool/{name}")))
    }

    /// Reads endpoint `key`, if it exists.
    pub async fn get_endpoint(
        &self,
        key: &EndpointKey,
        stats: &Stats,
    ) -> Result<Option<(u64, SpiderEndpoint)>, Error> {
        stats.read();
        match self.endpoints(&key.namespace).get_opt(&key.name).await {
            Ok(Some(obj)) => {
                let mut ep: SpiderEndpoint = from_dynamic(&obj)?;
                super::index::normalize(&mut ep);
                Ok(Some((resource_version(&obj), ep)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Error::api(format!("get SpiderEndpoint {key}"), e)),
        }
    }

    /// Creates `ep` (it must not exist) or replaces it at `expected` resourceVersion.
    /// Returns the written object and its version.
    pub async fn put_endpoint(
        &self,
        ep: &SpiderEndpoint,
        expected: Option<u64>,
        stats: &Stats,
    ) -> Result<(u64, SpiderEndpoint), WriteError> {
        let key = super::index::key_of(ep);
        let api = self.endpoints(&key.namespace);
        let mut ep = ep.clone();
        ep.metadata.resource_version = expected.map(|v| v.to_string());
        // Read-only fields the apiserver sets; never sent back.
        ep.metadata.extra.remove("managedFields");
        let obj = to_dynamic(&ep)?;
        stats.wrote();
        let res = match expected {
            None => api.create(&self.post_params(), &obj).await,
            Some(_) => api.replace(&key.name, &self.post_params(), &obj).await,
        };
        match res {
            Ok(written) => Ok((resource_version(&written), from_dynamic(&written)?)),
            Err(e) if is_conflict(&e) => {
                stats.conflicted();
                Err(WriteError::Conflict(format!("SpiderEndpoint/{key}")))
            }
            // Replacing an endpoint that is gone: the plan read a version that no longer
            // exists, which is a conflict too (re-plan on what is there now).
            Err(kube::Error::Api(s)) if s.code == 404 && expected.is_some() => {
                Err(WriteError::Conflict(format!("SpiderEndpoint/{key}")))
            }
            Err(e) => Err(Error::api(format!("write SpiderEndpoint {key}"), e).into()),
        }
    }

    /// Removes endpoint `key` at `expected` resourceVersion: its finalizer first (upstream's
    /// release), then the object. Gone already is success.
    pub async fn delete_endpoint(
        &self,
        key: &EndpointKey,
        expected: u64,
        stats: &Stats,
    ) -> Result<(), WriteError> {
        let api = self.endpoints(&key.namespace);
        let patch =
            json!({"metadata": {"finalizers": null, "resourceVersion": expected.to_string()}});
        stats.wrote();
        let uid = match api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(obj) => obj.metadata.uid,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) if is_conflict(&e) => {
                stats.conflicted();
                return Err(WriteError::Conflict(format!("SpiderEndpoint/{key}")));
            }
            Err(e) => {
                return Err(
                    Error::api(format!("remove finalizer of SpiderEndpoint {key}"), e).into(),
                );
            }
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        stats.wrote();
        match api.delete(&key.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::api(format!("delete SpiderEndpoint {key}"), e).into()),
        }
    }
}

/// Counter value.
pub fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
