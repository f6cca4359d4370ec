//! The store's writes to the apiserver, each with its compare-and-swap precondition, and the
//! counters the benchmark reports (writes, 409 conflicts).

use spiderpool_core::ipam::CommitError;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use spiderpool_core::ipam::EndpointKey;
use spiderpool_core::objects::{
    ENDPOINT, IPPOOL, SpiderEndpoint, SpiderIPPool, SpiderIPPoolStatus,
};

use super::blocks::{BlockError, PoolBlocks};
use crate::error::Error;
use crate::kinds::{RawObject, api_resource};

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
    /// Pool status writes by purpose: `[sent, refused with 409]`.
    pub pool_writes: std::sync::Mutex<std::collections::BTreeMap<Purpose, [u64; 2]>>,
}

/// Why the store writes a pool's status (the benchmark reports writes per purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// Claiming addresses for this node's block (or re-adopting one), count included.
    Claim,
    /// This node's block count, behind the ADDs.
    Count,
    /// Setting or clearing this node's waiting flag.
    Waiting,
    /// Handing free addresses of this node's block back to the pool for waiting nodes.
    HandBack,
    /// Giving up addresses another node claimed at the same moment.
    GiveUp,
}

impl Purpose {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Claim => "claim",
            Purpose::Count => "count",
            Purpose::Waiting => "waiting",
            Purpose::HandBack => "hand-back",
            Purpose::GiveUp => "give-up",
        }
    }
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
    fn pool_write(&self, purpose: Purpose, conflict: bool) {
        let mut m = self
            .pool_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = m.entry(purpose).or_default();
        e[usize::from(conflict)] += 1;
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

/// A JSON patch whose `test` operation failed: kube-apiserver answers 422 with its generic
/// message and no causes (a schema violation names the object and lists causes).
fn is_failed_test(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422
        && s.details.as_ref().is_none_or(|d| d.causes.is_empty() && d.name.is_empty())
        && s.message == "the server rejected our request due to an error in our request")
}

/// The JSON patch (RFC 6902) that turns pool status `before` into `after` when they have the
/// same block entries (same nodes, same order) and differ only in the entries' fields and
/// the counts: for every changed field, a `test` of its old value (`null` for an absent one,
/// which kube-apiserver's patcher treats as "absent") and an `add` or `remove`; each changed
/// entry is also tested to still be the same node's. Entries added after the existing ones
/// (a node's first claim or ask) are appended (`add` at `/status/blocks/-`, no test): appends
/// of different nodes commute, and one agent never has two appends in flight (its claims and
/// first asks are made under its store's lock, from a view that holds its own last write).
/// None when a whole-object write is needed (entries dropped or reordered, the first entry of
/// a pool, another status field changed).
pub(super) fn status_patch(
    before: &SpiderIPPoolStatus,
    after: &SpiderIPPoolStatus,
) -> Option<serde_json::Value> {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return None;
    };
    let mut ops = Vec::new();
    let null = serde_json::Value::Null;
    let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    for key in keys {
        let (old, new) = (b.get(key).unwrap_or(&null), a.get(key));
        match key.as_str() {
            "blocks" => {}
            "allocatedIPCount" | "totalIPCount" => {
                field(&mut ops, format!("/status/{key}"), old, new);
            }
            _ if Some(old) == new || (old.is_null() && new.is_none()) => {}
            _ => return None,
        }
    }
    let empty = Vec::new();
    let (bb, ab) = (
        entries(b.get("blocks"), &empty)?,
        entries(a.get("blocks"), &empty)?,
    );
    // `add /status/blocks/-` needs the list to exist: a pool's first entry is written whole.
    if ab.len() < bb.len() || (bb.is_empty() && !ab.is_empty()) {
        return None;
    }
    for (i, (old, new)) in bb.iter().zip(ab).enumerate() {
        if old == new {
            continue;
        }
        let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
            return None;
        };
        if o.get("node") != n.get("node") {
            return None;
        }
        ops.push(json!({"op": "test", "path": format!("/status/blocks/{i}/node"), "value": o.get("node")}));
        let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
        for key in keys.into_iter().filter(|k| k.as_str() != "node") {
            field(
                &mut ops,
                format!("/status/blocks/{i}/{key}"),
                o.get(key).unwrap_or(&null),
                n.get(key),
            );
        }
    }
    for new in &ab[bb.len()..] {
        ops.push(json!({"op": "add", "path": "/status/blocks/-", "value": new}));
    }
    Some(serde_json::Value::Array(ops))
}

/// Appends to `ops` a test of `old` at `path` and the `add` (or `remove`) that sets `new`,
/// when they differ.
fn field(
    ops: &mut Vec<serde_json::Value>,
    path: String,
    old: &serde_json::Value,
    new: Option<&serde_json::Value>,
) {
    if Some(old) == new || (old.is_null() && new.is_none_or(serde_json::Value::is_null)) {
        return;
    }
    ops.push(json!({"op": "test", "path": path, "value": old}));
    match new.filter(|v| !v.is_null()) {
        Some(v) => ops.push(json!({"op": "add", "path": path, "value": v})),
        None => ops.push(json!({"op": "remove", "path": path})),
    }
}

/// The block entries of a status field (absent = none); None when it is not a list.
fn entries<'a>(
    v: Option<&'a serde_json::Value>,
    empty: &'a Vec<serde_json::Value>,
) -> Option<&'a Vec<serde_json::Value>> {
    match v {
        None | Some(serde_json::Value::Null) => Some(empty),
        Some(serde_json::Value::Array(a)) => Some(a),
        Some(_) => None,
    }
}

/// The apiserver side of a [`super::KubeStore`].
#[derive(Clone)]
pub struct Writer {
    client: Client,
    pools: Api<RawObject>,
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

    fn endpoints(&self, namespace: &str) -> Api<RawObject> {
        Api::namespaced_with(self.client.clone(), namespace, &api_resource(&ENDPOINT))
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        }
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
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
        Ok((obj.version(), obj.decode()?))
    }

    /// Applies `edit` to the blocks of `pool` and writes the status back with its
    /// resourceVersion; on 409 reads the pool again and re-applies `edit` to it. Returns the
    /// written pool (with its new version) and `edit`'s output.
    pub async fn edit_pool_status<R>(
        &self,
        pool: SpiderIPPool,
        purpose: Purpose,
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
            // A patch that tests exactly the fields it changes where the edit allows one: it
            // conflicts only with writes of the same fields, and the apiserver re-applies it
            // itself when the object changed meanwhile. A whole-object compare-and-swap
            // otherwise (an entry added or dropped).
            let patch = current
                .status
                .as_ref()
                .and_then(|b| status_patch(b, &status));
            let mut next = current.clone();
            next.status = Some(status);
            stats.wrote();
            stats.pool_write(purpose, false);
            let res = match patch {
                Some(ops) => {
                    let ops = serde_json::from_value(ops)
                        .map_err(|e| Error::Config(format!("status patch: {e}")))?;
                    self.pools
                        .patch_status(&name, &self.patch_params(), &Patch::Json::<()>(ops))
                        .await
                }
                None => {
                    let obj = RawObject::encode(&next)?;
                    self.pools
                        .replace_status(&name, &self.post_params(), &obj)
                        .await
                }
            };
            match res {
                Ok(written) => {
                    return Ok((written.version(), written.decode()?, out));
                }
                Err(e) if is_conflict(&e) || is_failed_test(&e) => {
                    stats.conflicted();
                    stats.pool_write(purpose, true);
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
                let mut ep: SpiderEndpoint = obj.decode()?;
                super::index::normalize(&mut ep);
                Ok(Some((obj.version(), ep)))
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
        let obj = RawObject::encode(&ep)?;
        stats.wrote();
        let res = match expected {
            None => api.create(&self.post_params(), &obj).await,
            Some(_) => api.replace(&key.name, &self.post_params(), &obj).await,
        };
        match res {
            Ok(written) => Ok((written.version(), written.decode()?)),
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
            Ok(obj) => obj.uid().map(str::to_owned),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use spiderpool_core::objects::IPBlock;

    fn block(node: &str, ips: &[&str], count: Option<i64>, waiting: bool) -> IPBlock {
        IPBlock {
            node: node.into(),
            ips: ips.iter().map(|s| (*s).to_owned()).collect(),
            allocated_ip_count: count,
            waiting: waiting.then_some(true),
            asked: None,
        }
    }

    fn status(blocks: Vec<IPBlock>, allocated: Option<i64>) -> SpiderIPPoolStatus {
        SpiderIPPoolStatus {
            blocks: Some(blocks),
            allocated_ip_count: allocated,
            total_ip_count: Some(100),
            ..Default::default()
        }
    }

    #[test]
    fn k8s_status_patch_tests_exactly_what_it_changes() {
        let before = status(
            vec![
                block("a", &["10.6.0.10-10.6.0.25"], Some(3), false),
                block("b", &["10.6.0.26-10.6.0.41"], None, true),
            ],
            Some(3),
        );
        // b claims more, clears its flag and writes its first count; a is untouched.
        let after = status(
            vec![
                block("a", &["10.6.0.10-10.6.0.25"], Some(3), false),
                block("b", &["10.6.0.26-10.6.0.57"], Some(2), false),
            ],
            Some(5),
        );
        let ops = status_patch(&before, &after).unwrap();
        assert_eq!(
            ops,
            json!([
                {"op": "test", "path": "/status/allocatedIPCount", "value": 3},
                {"op": "add", "path": "/status/allocatedIPCount", "value": 5},
                {"op": "test", "path": "/status/blocks/1/node", "value": "b"},
                {"op": "test", "path": "/status/blocks/1/allocatedIPCount", "value": null},
                {"op": "add", "path": "/status/blocks/1/allocatedIPCount", "value": 2},
                {"op": "test", "path": "/status/blocks/1/ips", "value": ["10.6.0.26-10.6.0.41"]},
                {"op": "add", "path": "/status/blocks/1/ips", "value": ["10.6.0.26-10.6.0.57"]},
                {"op": "test", "path": "/status/blocks/1/waiting", "value": true},
                {"op": "remove", "path": "/status/blocks/1/waiting"},
            ])
        );
        // Nothing changed: nothing to do.
        assert_eq!(status_patch(&before, &before).unwrap(), json!([]));
    }

    #[test]
    fn k8s_status_patch_appends_a_new_entry_without_testing_the_list() {
        let before = status(
            vec![block("a", &["10.6.0.10-10.6.0.25"], Some(3), false)],
            Some(3),
        );
        // b's first claim, while a's entry is unchanged: one append, nothing tested, so it
        // commutes with a's edits and with other nodes' appends.
        let after = status(
            vec![
                block("a", &["10.6.0.10-10.6.0.25"], Some(3), false),
                block("b", &["10.6.0.26-10.6.0.41"], None, false),
            ],
            Some(3),
        );
        assert_eq!(
            status_patch(&before, &after).unwrap(),
            json!([{"op": "add", "path": "/status/blocks/-", "value": {
                "node": "b", "ips": ["10.6.0.26-10.6.0.41"]
            }}])
        );
        // Changed and new entries together: the tests of the changed fields, then the append.
        let mut both = after.clone();
        both.blocks.as_mut().unwrap()[0].allocated_ip_count = Some(4);
        both.allocated_ip_count = Some(4);
        let ops = status_patch(&before, &both).unwrap();
        let ops = ops.as_array().unwrap();
        assert_eq!(ops.len(), 6, "{ops:?}");
        assert_eq!(ops[0]["path"], "/status/allocatedIPCount");
        assert_eq!(ops[2]["path"], "/status/blocks/0/node");
        assert_eq!(ops[4]["path"], "/status/blocks/0/allocatedIPCount");
        assert_eq!(ops[5]["path"], "/status/blocks/-");
    }

    #[test]
    fn k8s_status_patch_leaves_entry_changes_to_a_whole_object_write() {
        let before = status(vec![block("a", &["10.6.0.10"], None, false)], None);
        // A dropped entry, another node at the index, another status field.
        let added = status(
            vec![
                block("a", &["10.6.0.10"], None, false),
                block("b", &["10.6.0.11"], None, false),
            ],
            None,
        );
        assert!(status_patch(&added, &before).is_none());
        let other = status(vec![block("b", &["10.6.0.10"], None, false)], None);
        assert!(status_patch(&before, &other).is_none());
        let mut legacy = before.clone();
        legacy.allocated_ips = Some("{}".into());
        assert!(status_patch(&before, &legacy).is_none());
        // No blocks before (a new pool): the first claim adds an entry.
        let empty = SpiderIPPoolStatus::default();
        assert!(status_patch(&empty, &before).is_none());
    }
}
