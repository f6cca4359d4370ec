//! The writes of the garbage collector, each with a precondition so that it never undoes a
//! newer write: an endpoint is released only at the resourceVersion it was judged at, a
//! dead node's block is removed by a compare-and-swap on the pool's status.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use spiderpool_core::objects::{IPPOOL, SpiderIPPool};
use spiderpool_k8s::kinds::{api_resource, from_dynamic, to_dynamic};
use spiderpool_k8s::store::PoolBlocks;

/// How many times a pool status edit is retried after a 409 (each retry re-reads the pool).
const STATUS_ATTEMPTS: u32 = 16;

/// Why a write was not made.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The object changed since it was judged (409): judged again at the next round.
    #[error("{0} changed since it was judged")]
    Changed(String),
    /// The pool cannot be read as blocks (its spec or status is invalid).
    #[error(transparent)]
    Blocks(#[from] spiderpool_k8s::store::BlockError),
    /// The apiserver refused or failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be converted.
    #[error(transparent)]
    K8s(#[from] spiderpool_k8s::Error),
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> ActError {
    move |source| ActError::Api { what, source }
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Releases endpoint `ns/name` judged at `version`: removes its finalizer with the
/// resourceVersion as precondition (409 if it changed: re-created, re-adopted, another NIC),
/// then deletes it with its UID as precondition. Already gone is success.
pub async fn release_endpoint(
    endpoints: &Api<DynamicObject>,
    name: &str,
    version: &str,
) -> Result<(), ActError> {
    let what = format!(
        "SpiderEndpoint {}/{name}",
        endpoints.namespace().unwrap_or_default()
    );
    let patch = json!({"metadata": {"finalizers": null, "resourceVersion": version}});
    let uid = match endpoints
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(obj) => obj.metadata.uid,
        Err(e) if code(&e) == Some(404) => return Ok(()),
        Err(e) if code(&e) == Some(409) => return Err(ActError::Changed(what)),
        Err(e) => return Err(api_err(format!("remove the finalizer of {what}"))(e)),
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match endpoints.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some(404) => Ok(()),
        Err(e) if code(&e) == Some(409) => Err(ActError::Changed(what)),
        Err(e) => Err(api_err(format!("delete {what}"))(e)),
    }
}

/// Removes the block (and waiting flag, and count) of `node` from pool `name`, so its
/// addresses are unclaimed again. Written with the pool's resourceVersion; on 409 the pool
/// is read again and the edit re-applied. Returns whether anything changed.
pub async fn drop_node_block(
    client: &kube::Client,
    name: &str,
    node: &str,
) -> Result<bool, ActError> {
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&IPPOOL));
    for _ in 0..STATUS_ATTEMPTS {
        let obj = match pools.get_opt(name).await {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(false),
            Err(e) => return Err(api_err(format!("get SpiderIPPool {name}"))(e)),
        };
        let mut pool: SpiderIPPool = from_dynamic(&obj)?;
        let mut layout = PoolBlocks::from_pool(&pool)?;
        if !layout.blocks().any(|(n, _)| n == node) {
            return Ok(false);
        }
        let block = layout.block(node);
        layout.hand_back(node, &block);
        layout.set_waiting(node, false);
        layout.set_count(node, 0);
        let mut status = pool.status.clone().unwrap_or_default();
        layout.write_into(&mut status);
        pool.status = Some(status);
        let next = to_dynamic(&pool)?;
        match pools
            .replace_status(
                name,
                &PostParams {
                    field_manager: Some("spiderpool-controller".to_owned()),
                    ..PostParams::default()
                },
                &next,
            )
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if code(&e) == Some(409) => continue,
            Err(e) => return Err(api_err(format!("update SpiderIPPool {name} status"))(e)),
        }
    }
    Err(ActError::Changed(format!("SpiderIPPool {name}")))
}

/// Removes upstream records `(address, pod UID)` from `status.allocatedIPs` of pool `name`
/// (each only while it still carries that UID), recomputing `allocatedIPCount`; written with
/// the pool's resourceVersion, re-read on 409. Returns the addresses removed.
pub async fn drop_legacy_records(
    client: &kube::Client,
    name: &str,
    records: &[(String, String)],
) -> Result<Vec<String>, ActError> {
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&IPPOOL));
    for _ in 0..STATUS_ATTEMPTS {
        let obj = match pools.get_opt(name).await {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(api_err(format!("get SpiderIPPool {name}"))(e)),
        };
        let mut pool: SpiderIPPool = from_dynamic(&obj)?;
        let mut status = pool.status.clone().unwrap_or_default();
        let mut map = status.allocated_ips().map_err(|e| {
            ActError::Blocks(spiderpool_k8s::store::BlockError::Invalid {
                pool: name.to_owned(),
                reason: e.to_string(),
            })
        })?;
        let mut removed = Vec::new();
        for (ip, uid) in records {
            if map.get(ip).is_some_and(|r| &r.pod_uid == uid) {
                map.remove(ip);
                removed.push(ip.clone());
            }
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        status.set_allocated_ips(&map);
        pool.status = Some(status);
        // allocatedIPCount and totalIPCount as every writer derives them.
        let layout = PoolBlocks::from_pool(&pool)?;
        let mut status = pool.status.clone().unwrap_or_default();
        layout.write_into(&mut status);
        pool.status = Some(status);
        let next = to_dynamic(&pool)?;
        match pools
            .replace_status(
                name,
                &PostParams {
                    field_manager: Some("spiderpool-controller".to_owned()),
                    ..PostParams::default()
                },
                &next,
            )
            .await
        {
            Ok(_) => return Ok(removed),
            Err(e) if code(&e) == Some(409) => continue,
            Err(e) => return Err(api_err(format!("update SpiderIPPool {name} status"))(e)),
        }
    }
    Err(ActError::Changed(format!("SpiderIPPool {name}")))
}
