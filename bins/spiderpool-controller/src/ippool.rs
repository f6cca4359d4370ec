//! SpiderIPPool controller (leader only, spec §1.1): keeps `status.totalIPCount` and
//! `status.allocatedIPCount` right, and removes the `spiderpool.spidernet.io` finalizer of a
//! pool being deleted once nothing holds one of its addresses.
//!
//! It fits the Kubernetes store's design (docs/k8s-store.md): per-address truth is the
//! SpiderEndpoints, and each node's agent writes its block of `status.blocks` with a count.
//! * Counts are derived exactly as the agents derive them (`PoolBlocks::write_into`:
//!   `totalIPCount` = |ips − excludeIPs|, `allocatedIPCount` = the blocks' counts plus
//!   upstream's `allocatedIPs` records), so the controller and the agents never disagree on a
//!   value, only on when it was written. The controller writes only when a value differs
//!   (a spec change, a pool created without status, a status edited by hand), touches no
//!   other status field, and writes with the resourceVersion it read: a 409 means an agent
//!   wrote first; the pool is read again and the counts re-derived.
//! * A pool being deleted loses its finalizer when no SpiderEndpoint lists an address of it
//!   (checked on the endpoints themselves: block counts lag by up to 500 ms), no block count is
//!   above zero and upstream's `allocatedIPs` is empty.
//!
//! A pool whose spec or status cannot be read (written around the webhook) is reported (a log
//! line and a Warning Event on the pool) and skipped until it changes; the others keep being
//! reconciled.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use spiderpool_core::objects::keys::SPIDER_FINALIZER;
use spiderpool_core::objects::{ENDPOINT, IPPOOL, SpiderIPPool};
use spiderpool_k8s::kinds::{api_resource, display_name, from_dynamic};
use spiderpool_k8s::store::PoolBlocks;

use crate::metrics::Metrics;
use crate::{Ctx, Error, Result};

/// Flags and environment of this component.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "ippool")]
pub struct Args {
    /// Every pool is reconciled again after this long without a change (seconds).
    #[arg(
        id = "ippool_resync_period",
        long = "ippool-resync-period",
        env = "SPIDERPOOL_IPPOOL_INFORMER_RESYNC_PERIOD",
        default_value = "300",
        value_parser = parse_secs,
        value_name = "SECONDS"
    )]
    pub resync_period: Duration,
    /// How many pools are reconciled at the same time.
    #[arg(
        id = "ippool_workers",
        long = "ippool-workers",
        env = "SPIDERPOOL_IPPOOL_INFORMER_WORKERS",
        default_value = "3",
        value_parser = clap::value_parser!(u16).range(1..),
        value_name = "N"
    )]
    pub workers: u16,
    /// Pause before a failed reconcile (or a pool being deleted that still holds addresses) is
    /// tried again (seconds).
    #[arg(
        id = "ippool_retry_delay",
        long = "ippool-retry-delay",
        env = "SPIDERPOOL_WORKQUEUE_RETRY_DELAY_DURATION",
        default_value = "5",
        value_parser = parse_secs,
        value_name = "SECONDS"
    )]
    pub retry_delay: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            resync_period: Duration::from_secs(300),
            workers: 3,
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// Parses a number of seconds (fractions allowed).
pub(crate) fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?} is not a number of seconds ≥ 0"))
}

/// How many times a status write is retried after a 409 before the reconcile is requeued.
const WRITE_ATTEMPTS: u32 = 5;

/// What the reconciles share.
struct State {
    pools: Api<DynamicObject>,
    endpoints: Api<DynamicObject>,
    ar: ApiResource,
    args: Args,
    /// Pools being deleted that still carry our finalizer: endpoint events are mapped to
    /// these only (an endpoint change matters to no other pool).
    terminating: Arc<Mutex<BTreeSet<String>>>,
    events: Recorder,
    metrics: Arc<Metrics>,
    /// The controller's cache of the pools (for `spiderpool_total_ippool_counts`).
    cache: Store<DynamicObject>,
}

impl State {
    /// Sets the pool gauges: how many pools, and `name`'s total and free addresses.
    fn record(&self, name: &str, total: i64, allocated: i64) {
        let count = i64::try_from(self.cache.state().len()).unwrap_or(i64::MAX);
        self.metrics.total_ippool_counts.set(count);
        let label = Metrics::ippool_label(name);
        self.metrics
            .debug_ippool_total_ip_counts
            .get_or_create(&label)
            .set(total);
        self.metrics
            .debug_ippool_available_ip_counts
            .get_or_create(&label)
            .set(total.saturating_sub(allocated).max(0));
    }

    /// Drops `name`'s gauges (the pool is gone or unreadable).
    fn forget(&self, name: &str) {
        let label = Metrics::ippool_label(name);
        self.metrics.debug_ippool_total_ip_counts.remove(&label);
        self.metrics.debug_ippool_available_ip_counts.remove(&label);
        let count = i64::try_from(self.cache.state().len()).unwrap_or(i64::MAX);
        self.metrics.total_ippool_counts.set(count);
    }
}

/// Runs the component until it fails or is dropped (leader-only components are dropped when
/// the Lease is lost).
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    let ar = api_resource(&IPPOOL);
    let ep_ar = api_resource(&ENDPOINT);
    let pools: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let endpoints: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ep_ar);
    let terminating = Arc::new(Mutex::new(BTreeSet::new()));
    let controller = Controller::new_with(pools.clone(), watcher::Config::default(), ar.clone());
    let state = Arc::new(State {
        pools,
        endpoints: endpoints.clone(),
        ar: ar.clone(),
        args: args.clone(),
        terminating: terminating.clone(),
        events: recorder(&ctx),
        metrics: ctx.metrics.clone(),
        cache: controller.store(),
    });
    let map_ar = ar.clone();
    let mapper = move |ep: DynamicObject| {
        let held = terminating
            .lock()
            .map(|t| {
                pools_of_endpoint(&ep)
                    .into_iter()
                    .filter(|p| t.contains(p))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        held.into_iter()
            .map(|p| ObjectRef::new_with(&p, map_ar.clone()))
            .collect::<Vec<_>>()
    };
    log::info!("SpiderIPPool controller: started");
    controller
        .watches_with(endpoints, ep_ar, watcher::Config::default(), mapper)
        .with_config(controller::Config::default().concurrency(args.workers))
        .run(reconcile, error_policy, state)
        .for_each(|res| async move { log_outcome("SpiderIPPool", res) })
        .await;
    Ok(())
}

/// Logs what a controller's run stream reports: reconcile failures were logged by the error
/// policy already, and objects deleted before their queued reconcile are expected.
pub(crate) fn log_outcome<T>(
    kind: &str,
    res: std::result::Result<T, controller::Error<Error, watcher::Error>>,
) {
    match res {
        Ok(_) => {}
        Err(
            e @ (controller::Error::ObjectNotFound(_) | controller::Error::ReconcilerFailed(..)),
        ) => log::debug!("{kind} controller: {e}"),
        Err(e) => log::warn!("{kind} controller: {e}"),
    }
}

/// The event recorder of this process's controllers.
pub(crate) fn recorder(ctx: &Ctx) -> Recorder {
    Recorder::new(
        ctx.client.clone(),
        Reporter {
            controller: "spiderpool-controller".to_owned(),
            instance: std::env::var("SPIDERPOOL_POD_NAME").ok(),
        },
    )
}

/// Logs that `obj` cannot be reconciled and why, and records a Warning Event on it (best
/// effort: a failed Event is only logged).
pub(crate) async fn report_broken(
    events: &Recorder,
    ar: &ApiResource,
    obj: &DynamicObject,
    reason: &str,
    why: &str,
) {
    let name = display_name(obj);
    log::warn!("{} {name}: skipped: {why}", ar.kind);
    let note = event_note(why);
    let ev = Event {
        type_: EventType::Warning,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = events.publish(&ev, &obj.object_ref(ar)).await {
        log::debug!("event on {} {name}: {e}", ar.kind);
    }
}

/// `why` cut to the 1 kB an Event note may hold, on a character boundary.
fn event_note(why: &str) -> String {
    let mut note = why.to_owned();
    if let Some(cut) = (0..=note.len().min(1000))
        .rev()
        .find(|i| note.is_char_boundary(*i))
    {
        note.truncate(cut);
    }
    note
}

fn error_policy(obj: Arc<DynamicObject>, err: &Error, st: Arc<State>) -> Action {
    log::warn!("SpiderIPPool {}: {err}", display_name(&obj));
    Action::requeue(st.args.retry_delay)
}

async fn reconcile(obj: Arc<DynamicObject>, st: Arc<State>) -> Result<Action> {
    let name = display_name(&obj);
    if obj.metadata.deletion_timestamp.is_some() {
        return finalize(&obj, &name, &st).await;
    }
    if let Ok(mut t) = st.terminating.lock() {
        t.remove(&name);
    }
    let mut current = (*obj).clone();
    for _ in 0..WRITE_ATTEMPTS {
        let (total, allocated) = match desired_counts(&current) {
            Ok(c) => c,
            Err(why) => {
                st.forget(&name);
                report_broken(&st.events, &st.ar, &current, "InvalidIPPool", &why).await;
                return Ok(Action::await_change());
            }
        };
        st.record(&name, total, allocated);
        let status = current.data.get("status");
        let has = |key: &str, want: i64| {
            status
                .and_then(|s| s.get(key))
                .and_then(Value::as_i64)
                .is_some_and(|v| v == want)
        };
        if has("totalIPCount", total) && has("allocatedIPCount", allocated) {
            return Ok(Action::requeue(st.args.resync_period));
        }
        let mut next = current.clone();
        set_counts(&mut next.data, total, allocated);
        match st
            .pools
            .replace_status(&name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => {
                log::info!(
                    "SpiderIPPool {name}: totalIPCount {total}, allocatedIPCount {allocated}"
                );
                return Ok(Action::requeue(st.args.resync_period));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // An agent wrote the status first: derive again from what it wrote.
                current = match st.pools.get(&name).await {
                    Ok(o) => o,
                    Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
                    Err(e) => return Err(Error::api(format!("get SpiderIPPool {name}"), e)),
                };
                if current.metadata.deletion_timestamp.is_some() {
                    return finalize(&current, &name, &st).await;
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => {
                return Err(Error::api(format!("update SpiderIPPool {name} status"), e));
            }
        }
    }
    // Still conflicting: the agents are busy with this pool; come back shortly.
    Ok(Action::requeue(st.args.retry_delay))
}

/// `(totalIPCount, allocatedIPCount)` as the agents derive them, or why the pool cannot be
/// read.
fn desired_counts(obj: &DynamicObject) -> std::result::Result<(i64, i64), String> {
    let pool: SpiderIPPool = from_dynamic(obj).map_err(|e| e.to_string())?;
    let layout = PoolBlocks::from_pool(&pool).map_err(|e| e.to_string())?;
    let mut scratch = pool.status.clone().unwrap_or_default();
    layout.write_into(&mut scratch);
    Ok((
        scratch.total_ip_count.unwrap_or(0),
        scratch.allocated_ip_count.unwrap_or(0),
    ))
}

/// Sets the two counts in the raw object (every other field kept as read).
fn set_counts(data: &mut Value, total: i64, allocated: i64) {
    if !data.get("status").is_some_and(Value::is_object) {
        data["status"] = json!({});
    }
    data["status"]["totalIPCount"] = total.into();
    data["status"]["allocatedIPCount"] = allocated.into();
}

/// A pool being deleted: remove our finalizer once nothing holds one of its addresses.
async fn finalize(obj: &DynamicObject, name: &str, st: &State) -> Result<Action> {
    let finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == SPIDER_FINALIZER) {
        if let Ok(mut t) = st.terminating.lock() {
            t.remove(name);
        }
        return Ok(Action::await_change());
    }
    if let Ok(mut t) = st.terminating.lock() {
        t.insert(name.to_owned());
    }
    if let Some(why) = held_by_status(&obj.data) {
        log::debug!("SpiderIPPool {name} is being deleted but {why}: finalizer kept");
        return Ok(Action::requeue(st.args.retry_delay));
    }
    let list = st
        .endpoints
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api("list SpiderEndpoints", e))?;
    if let Some(ep) = list
        .items
        .iter()
        .find(|ep| pools_of_endpoint(ep).iter().any(|p| p == name))
    {
        log::debug!(
            "SpiderIPPool {name} is being deleted but SpiderEndpoint {} holds one of its \
             addresses: finalizer kept",
            display_name(ep)
        );
        return Ok(Action::requeue(st.args.retry_delay));
    }
    let rest: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != SPIDER_FINALIZER)
        .collect();
    // The resourceVersion makes the patch conditional: a pool changed since it was read
    // (a count written by an agent) is looked at again.
    let patch = json!({"metadata": {
        "resourceVersion": obj.metadata.resource_version,
        "finalizers": rest,
    }});
    match st
        .pools
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            log::info!("SpiderIPPool {name}: empty, finalizer removed");
            st.forget(name);
            if let Ok(mut t) = st.terminating.lock() {
                t.remove(name);
            }
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(Error::api(
            format!("remove the finalizer of SpiderIPPool {name}"),
            e,
        )),
    }
}

/// Why the pool's status says addresses are still held (a block count above zero, or
/// upstream's `allocatedIPs` records), read from the raw status so that a pool whose spec is
/// garbage can still be finalized.
fn held_by_status(data: &Value) -> Option<String> {
    let status = data.get("status")?;
    if let Some(text) = status.get("allocatedIPs").and_then(Value::as_str) {
        let empty = serde_json::from_str::<serde_json::Map<String, Value>>(text)
            .is_ok_and(|m| m.is_empty());
        if !text.trim().is_empty() && text.trim() != "null" && !empty {
            return Some("status.allocatedIPs lists addresses".to_owned());
        }
    }
    status
        .get("blocks")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|b| {
            let count = b.get("allocatedIPCount").and_then(Value::as_i64)?;
            let node = b.get("node").and_then(Value::as_str).unwrap_or("?");
            (count > 0).then(|| format!("node {node}'s block counts {count} addresses"))
        })
}

/// The pools an endpoint holds addresses of (`status.current.ips[].ipv4Pool/ipv6Pool`).
fn pools_of_endpoint(ep: &DynamicObject) -> Vec<String> {
    let mut out = Vec::new();
    let ips = ep
        .data
        .pointer("/status/current/ips")
        .and_then(Value::as_array);
    for ip in ips.into_iter().flatten() {
        for key in ["ipv4Pool", "ipv6Pool"] {
            if let Some(p) = ip.get(key).and_then(Value::as_str)
                && !p.is_empty()
                && !out.iter().any(|o| o == p)
            {
                out.push(p.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn counts_are_derived_from_spec_and_blocks() {
        let obj = dynamic(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p"},
            "spec": {"subnet": "10.6.0.0/16", "ips": ["10.6.0.1-10.6.0.10"],
                     "excludeIPs": ["10.6.0.5"]},
            "status": {"blocks": [
                {"node": "a", "ips": ["10.6.0.1-10.6.0.3"], "allocatedIPCount": 2},
                {"node": "b", "ips": ["10.6.0.4"], "allocatedIPCount": 1}]}
        }));
        assert_eq!(desired_counts(&obj).unwrap(), (9, 3));
    }

    #[test]
    fn event_notes_are_cut_on_a_character_boundary() {
        assert_eq!(event_note("short"), "short");
        let long = "é".repeat(700); // 1400 bytes
        let note = event_note(&long);
        assert_eq!(note.len(), 1000);
        assert!(note.chars().all(|c| c == 'é'));
        assert_eq!(event_note(&format!("x{long}")).len(), 999);
    }

    #[test]
    fn garbage_spec_is_an_error_not_a_panic() {
        let obj = dynamic(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p"},
            "spec": {"subnet": "10.6.0.0/16", "ips": ["not-an-ip"]}
        }));
        let why = desired_counts(&obj).unwrap_err();
        assert!(why.contains("spec.ips"), "{why}");
    }

    #[test]
    fn status_holds_by_counts_or_upstream_records() {
        assert_eq!(held_by_status(&json!({})), None);
        assert_eq!(
            held_by_status(&json!({"status": {"allocatedIPs": "{}",
                "blocks": [{"node": "a", "ips": [], "allocatedIPCount": 0}]}})),
            None
        );
        assert!(
            held_by_status(&json!({"status": {
                "blocks": [{"node": "a", "ips": ["10.0.0.1"], "allocatedIPCount": 1}]}}))
            .unwrap()
            .contains("node a")
        );
        assert!(
            held_by_status(&json!({"status": {"allocatedIPs":
                "{\"10.0.0.1\":{\"pod\":\"d/p\",\"podUid\":\"u\"}}"}}))
            .is_some()
        );
    }

    #[test]
    fn endpoint_pools_are_read_from_every_nic() {
        let ep = dynamic(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderEndpoint",
            "metadata": {"name": "e", "namespace": "d"},
            "status": {"current": {"ips": [
                {"interface": "eth0", "ipv4": "10.0.0.1/24", "ipv4Pool": "a", "ipv6Pool": "b"},
                {"interface": "net1", "ipv4": "10.1.0.1/24", "ipv4Pool": "a"}]}}
        }));
        assert_eq!(pools_of_endpoint(&ep), vec!["a", "b"]);
    }
}
