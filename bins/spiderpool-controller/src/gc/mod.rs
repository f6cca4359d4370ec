//! IP garbage collection (leader only, §3.15): releases the addresses of pods that are gone,
//! and the blocks of nodes that are gone.
//!
//! In our store an address is held exactly while a SpiderEndpoint lists it
//! (docs/k8s-store.md), so releasing = removing the endpoint's finalizer and deleting it, each
//! step with a precondition (the resourceVersion it was judged at, then its UID) so a
//! re-created or updated endpoint is never touched; the agent of the endpoint's node sees the
//! delete through its watch and frees the address in its block.
//!
//! Two mechanisms, as upstream:
//! * **Tracing**: a Pod watch. A deleted pod is judged `SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY`
//!   after its delete event; a terminating (or finished) pod at the end of its grace period
//!   plus that delay. Due pods are judged every `SPIDERPOOL_GC_TRACE_POD_GAP_DURATION`.
//! * **Full scan** at start and every `SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION`: every
//!   endpoint against the pod cache; then the blocks of Nodes that no longer exist.
//!
//! Every verdict to release is made on the caches, then made again on a fresh GET of the pod
//! (a pod created a moment ago may not be in the cache yet while its endpoint is), and only
//! then acted on. The verdicts are pure ([`decide`]).

pub mod act;
pub mod decide;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use spiderpool_core::ipam::{GcConfig, KIND_VMI};
use spiderpool_core::objects::{ENDPOINT, IPPOOL, PoolIPAllocation, SpiderEndpoint, SpiderIPPool};
use spiderpool_k8s::kinds::{api_resource, from_dynamic};
use spiderpool_k8s::store::addresses_of;
use tokio::task::JoinSet;

use crate::ippool::parse_secs;
use crate::{Ctx, Error, Result};
use decide::{Decision, World};

/// Flags and environment of this component (upstream's `SPIDERPOOL_GC_*`, same defaults).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "gc")]
pub struct Args {
    /// Run the garbage collector at all.
    #[arg(id = "gc_enabled", long = "gc-enabled", env = "SPIDERPOOL_GC_IP_ENABLED",
        default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", value_name = "BOOL")]
    pub enabled: bool,
    /// Release stateless pods terminating past their grace period on Ready nodes.
    #[arg(id = "gc_terminating_ready", long = "gc-terminating-pod-on-ready-node",
        env = "SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_READY_NODE_ENABLED",
        default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", value_name = "BOOL")]
    pub terminating_on_ready_node: bool,
    /// Release stateless pods terminating past their grace period on NotReady nodes.
    #[arg(id = "gc_terminating_not_ready", long = "gc-terminating-pod-on-not-ready-node",
        env = "SPIDERPOOL_GC_STATELESS_TERMINATING_POD_ON_NOT_READY_NODE_ENABLED",
        default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", value_name = "BOOL")]
    pub terminating_on_not_ready_node: bool,
    /// Release Running stateless pods whose `status.podIPs` is empty.
    #[arg(id = "gc_running_empty_ips", long = "gc-running-pod-on-empty-pod-ips",
        env = "SPIDERPOOL_GC_ENABLE_STATELESS_RUNNING_POD_ON_EMPTY_POD_STATUS_IPS",
        default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", value_name = "BOOL")]
    pub running_pod_on_empty_pod_ips: bool,
    /// How many endpoints are judged and released at the same time.
    #[arg(id = "gc_workers", long = "gc-workers", env = "SPIDERPOOL_GC_IP_WORKER_NUM",
        default_value = "3", value_parser = clap::value_parser!(u16).range(1..),
        value_name = "N")]
    pub workers: u16,
    /// Accepted for compatibility; no meaning here (no channel between tracing and workers).
    #[arg(
        id = "gc_channel_buffer",
        long = "gc-channel-buffer",
        env = "SPIDERPOOL_GC_CHANNEL_BUFFER",
        default_value = "5000",
        value_name = "N"
    )]
    pub channel_buffer: u64,
    /// At most this many pods traced at once (more are left to the full scan).
    #[arg(
        id = "gc_max_pod_entries",
        long = "gc-max-pod-entries",
        env = "SPIDERPOOL_GC_MAX_PODENTRY_DB_CAP",
        default_value = "100000",
        value_name = "N"
    )]
    pub max_pod_entries: usize,
    /// Full scan period (seconds).
    #[arg(id = "gc_interval", long = "gc-interval",
        env = "SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION", default_value = "600",
        value_parser = parse_secs, value_name = "SECONDS")]
    pub interval: Duration,
    /// How often traced pods are checked for being due (seconds).
    #[arg(id = "gc_trace_gap", long = "gc-trace-gap",
        env = "SPIDERPOOL_GC_TRACE_POD_GAP_DURATION", default_value = "5",
        value_parser = parse_secs, value_name = "SECONDS")]
    pub trace_gap: Duration,
    /// Accepted for compatibility; no meaning here (no channel to time out on).
    #[arg(id = "gc_signal_timeout", long = "gc-signal-timeout",
        env = "SPIDERPOOL_GC_SIGNAL_TIMEOUT_DURATION", default_value = "3",
        value_parser = parse_secs, value_name = "SECONDS")]
    pub signal_timeout: Duration,
    /// Accepted for compatibility; no meaning here (no signalled scans).
    #[arg(id = "gc_request_gap", long = "gc-request-gap",
        env = "SPIDERPOOL_GC_HTTP_REQUEST_TIME_GAP", default_value = "1",
        value_parser = parse_secs, value_name = "SECONDS")]
    pub request_gap: Duration,
    /// Extra time after a pod's grace period before its addresses are released (seconds).
    #[arg(id = "gc_additional_grace_delay", long = "gc-additional-grace-delay",
        env = "SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY", default_value = "0",
        value_parser = parse_secs, value_name = "SECONDS")]
    pub additional_grace_delay: Duration,
    /// A traced pod whose release fails is tried this many more times (then left to the scan).
    #[arg(
        id = "gc_max_retries",
        long = "gc-max-retries",
        env = "SPIDERPOOL_GC_PODENTRY_MAX_RETRIES",
        default_value = "5",
        value_name = "N"
    )]
    pub max_retries: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            enabled: true,
            terminating_on_ready_node: true,
            terminating_on_not_ready_node: true,
            running_pod_on_empty_pod_ips: false,
            workers: 3,
            channel_buffer: 5000,
            max_pod_entries: 100_000,
            interval: Duration::from_secs(600),
            trace_gap: Duration::from_secs(5),
            signal_timeout: Duration::from_secs(3),
            request_gap: Duration::from_secs(1),
            additional_grace_delay: Duration::ZERO,
            max_retries: 5,
        }
    }
}

impl Args {
    /// Core's switches.
    pub fn config(&self) -> GcConfig {
        GcConfig {
            terminating_on_ready_node: self.terminating_on_ready_node,
            terminating_on_not_ready_node: self.terminating_on_not_ready_node,
            running_pod_on_empty_pod_ips: self.running_pod_on_empty_pod_ips,
        }
    }

    fn delay_ms(&self) -> i64 {
        i64::try_from(self.additional_grace_delay.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn kubevirt(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "kubevirt.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "kubevirt.io/v1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// Upstream's "valid KubeVirt VM pod": VMI `ns/name` exists and is not terminating, or a VM
/// of that name (a VMI's controlling VM shares its name) exists and is not terminating. A
/// cluster without KubeVirt answers 404 for both: not alive.
async fn kubevirt_alive(client: &kube::Client, ns: &str, name: &str) -> kube::Result<bool> {
    for (kind, plural) in [
        ("VirtualMachineInstance", "virtualmachineinstances"),
        ("VirtualMachine", "virtualmachines"),
    ] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &kubevirt(kind, plural));
        let found = match api.get_opt(name).await {
            Ok(o) => o,
            // The kind is not served (KubeVirt not installed).
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(e),
        };
        if found.is_some_and(|o| o.metadata.deletion_timestamp.is_none()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A pod being traced: judged once `due_ms` has passed.
#[derive(Debug, Clone, Copy)]
struct Trace {
    due_ms: i64,
    retries: u32,
}

/// `(namespace, name)`.
pub type Key = (String, String);

/// The outcome of judging one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Nothing to release (or no endpoint).
    Kept,
    /// Released.
    Released,
    /// The endpoint changed under us (re-judged later).
    Changed,
    /// The apiserver failed.
    Failed,
}

/// The watch caches the verdicts are made on.
pub struct Caches {
    /// Every Pod.
    pub pods: Store<Pod>,
    /// Every Node.
    pub nodes: Store<Node>,
    /// Every StatefulSet.
    pub statefulsets: Store<StatefulSet>,
    /// Every SpiderEndpoint.
    pub endpoints: Store<DynamicObject>,
}

/// An endpoint the caches say to release.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The endpoint, as read.
    pub endpoint: SpiderEndpoint,
    /// Its resourceVersion (the release's precondition).
    pub version: String,
    /// Why.
    pub decision: Decision,
}

impl Caches {
    /// The verdict on `ep` given `pod`, over the StatefulSet and Node caches; KubeVirt VMs
    /// count as gone (see [`World::kubevirt_valid`]).
    pub fn verdict(&self, args: &Args, ep: &SpiderEndpoint, pod: Option<&Pod>) -> Decision {
        self.with_world(args, &|_, _| false, |w| decide::decide(ep, pod, w))
    }

    /// [`Caches::verdict`] with what the apiserver said about the endpoint's KubeVirt VM.
    pub fn verdict_with_vm(
        &self,
        args: &Args,
        ep: &SpiderEndpoint,
        pod: Option<&Pod>,
        vm_alive: bool,
    ) -> Decision {
        self.with_world(args, &|_, _| vm_alive, |w| decide::decide(ep, pod, w))
    }

    /// The verdict on upstream record `record` given its `pod` (the endpoint from the cache).
    pub fn record_verdict(
        &self,
        args: &Args,
        record: &PoolIPAllocation,
        pod: Option<&Pod>,
    ) -> Decision {
        let (ns, name) = record.pod.split_once('/').unwrap_or(("", &record.pod));
        let endpoint = self
            .endpoints
            .get(&ObjectRef::new_with(name, api_resource(&ENDPOINT)).within(ns))
            .and_then(|o| decide::endpoint_from(ns, name, o.data.get("status")).ok());
        // Upstream records predate us; a KubeVirt one is judged as if its VM were alive
        // (kept), since its endpoint, judged on its own, holds the same address.
        self.with_world(args, &|_, _| true, |w| {
            decide::decide_record(record, pod, endpoint.as_ref(), w)
        })
    }

    /// Upstream records of `pool` (`status.allocatedIPs`) the caches say to release:
    /// `(address, record, why)`.
    pub fn legacy_candidates(
        &self,
        args: &Args,
        pool: &SpiderIPPool,
    ) -> Vec<(String, PoolIPAllocation, Decision)> {
        let Some(Ok(records)) = pool.status.as_ref().map(|s| s.allocated_ips()) else {
            return Vec::new();
        };
        records
            .into_iter()
            .filter_map(|(ip, rec)| {
                let (ns, name) = rec.pod.split_once('/')?;
                let pod = self.pods.get(&ObjectRef::new(name).within(ns));
                let d = self.record_verdict(args, &rec, pod.as_deref());
                d.release.then_some((ip, rec, d))
            })
            .collect()
    }

    fn with_world<R>(
        &self,
        args: &Args,
        kubevirt_valid: &dyn Fn(&str, &str) -> bool,
        f: impl FnOnce(&World<'_>) -> R,
    ) -> R {
        let sts = |ns: &str, name: &str| self.statefulsets.get(&ObjectRef::new(name).within(ns));
        let ready = |node: &str| {
            self.nodes
                .get(&ObjectRef::new(node))
                .is_some_and(|n| decide::node_is_ready(&n))
        };
        let world = World {
            cfg: args.config(),
            additional_delay_ms: args.delay_ms(),
            now_ms: now_ms(),
            statefulset: &sts,
            node_ready: &ready,
            kubevirt_valid,
        };
        f(&world)
    }

    /// Judges endpoint `ns/name` on the caches alone: `Some` when it exists, can be read, and
    /// should be released.
    pub fn candidate(&self, args: &Args, ns: &str, name: &str) -> Option<Candidate> {
        let obj = self
            .endpoints
            .get(&ObjectRef::new_with(name, api_resource(&ENDPOINT)).within(ns))?;
        self.candidate_of(args, &obj)
    }

    fn candidate_of(&self, args: &Args, obj: &DynamicObject) -> Option<Candidate> {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let endpoint = match decide::endpoint_from(ns, name, obj.data.get("status")) {
            Ok(ep) => ep,
            Err(e) => {
                log::warn!("gc: SpiderEndpoint {ns}/{name} cannot be read, skipped: {e}");
                return None;
            }
        };
        let pod = self.pods.get(&ObjectRef::new(name).within(ns));
        let decision = self.verdict(args, &endpoint, pod.as_deref());
        decision.release.then(|| Candidate {
            endpoint,
            version: obj.metadata.resource_version.clone().unwrap_or_default(),
            decision,
        })
    }

    /// The decision phase of a full scan: every cached endpoint judged on the caches; the
    /// keys of those to release (each is judged again on a fresh GET of its pod before it is).
    pub fn scan_candidates(&self, args: &Args) -> (usize, Vec<Key>) {
        let all = self.endpoints.state();
        let keys = all
            .iter()
            .filter(|o| self.candidate_of(args, o).is_some())
            .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        (all.len(), keys)
    }
}

/// The caches and clients of one run.
struct Gc {
    ctx: Ctx,
    args: Args,
    caches: Caches,
    traced: Arc<Mutex<HashMap<Key, Trace>>>,
    /// Nodes seen missing at the previous scan (a block is reclaimed at the second sight).
    missing_nodes: Mutex<HashSet<String>>,
}

/// Runs the component until it fails or is dropped (leader-only components are dropped when
/// the Lease is lost; its watches stop with it).
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    if !args.enabled {
        log::info!("IP garbage collection disabled (SPIDERPOOL_GC_IP_ENABLED=false)");
        return std::future::pending().await;
    }
    // Readiness of the leader waits for the Pod cache (as upstream's); cleared again when
    // this run ends (leadership lost) so a later run starts from "pending" afresh.
    let _pending = Pending::set(&ctx);
    let mut tasks = JoinSet::new();
    let client = ctx.client.clone();
    let traced: Arc<Mutex<HashMap<Key, Trace>>> = Arc::default();

    // A re-list of the Pod watch (after an expired watch or a reconnection) may have missed
    // delete events: a full scan follows each one, as upstream scans on informer resyncs.
    let relisted = Arc::new(tokio::sync::Notify::new());
    let (pods, writer) = reflector::store::<Pod>();
    {
        let traced = traced.clone();
        let relisted = relisted.clone();
        let (delay, cap) = (args.delay_ms(), args.max_pod_entries);
        let stream = reflector::reflector(
            writer,
            watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
                .default_backoff()
                .modify(decide::slim_pod),
        );
        tasks.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut lists = 0u64;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        if matches!(ev, watcher::Event::InitDone) {
                            lists += 1;
                            if lists > 1 {
                                relisted.notify_one();
                            }
                        }
                        trace_event(&traced, &ev, delay, cap);
                    }
                    Err(e) => log::warn!("gc: pod watch: {e}"),
                }
            }
        });
    }
    let nodes = spawn_store::<Node>(&mut tasks, Api::all(client.clone()));
    let statefulsets = spawn_store::<StatefulSet>(&mut tasks, Api::all(client.clone()));
    let ep_ar = api_resource(&ENDPOINT);
    let endpoints = {
        let writer = reflector::store::Writer::new(ep_ar.clone());
        let store = writer.as_reader();
        let stream = reflector::reflector(
            writer,
            watcher(
                Api::<DynamicObject>::all_with(client.clone(), &ep_ar),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(|o| o.managed_fields_mut().clear()),
        );
        tasks.spawn(drain(stream, "SpiderEndpoint"));
        store
    };
    let gc = Arc::new(Gc {
        ctx,
        args,
        caches: Caches {
            pods,
            nodes,
            statefulsets,
            endpoints,
        },
        traced,
        missing_nodes: Mutex::default(),
    });
    // Judging needs every cache listed once (a pod missing from an unsynced cache says nothing).
    for (what, ready) in [
        ("Pods", gc.caches.pods.wait_until_ready().await.is_ok()),
        ("Nodes", gc.caches.nodes.wait_until_ready().await.is_ok()),
        (
            "StatefulSets",
            gc.caches.statefulsets.wait_until_ready().await.is_ok(),
        ),
        (
            "SpiderEndpoints",
            gc.caches.endpoints.wait_until_ready().await.is_ok(),
        ),
    ] {
        if !ready {
            return Err(Error::Config(format!("gc: the {what} watch stopped")));
        }
    }
    gc.ctx.health.gc_pending.store(false, Ordering::Relaxed);
    log::info!(
        "gc: caches synced; full scan every {:?}, traced pods checked every {:?}",
        gc.args.interval,
        gc.args.trace_gap
    );
    let mut scan = tokio::time::interval(gc.args.interval.max(Duration::from_millis(100)));
    let mut trace = tokio::time::interval(gc.args.trace_gap.max(Duration::from_millis(100)));
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    trace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = scan.tick() => gc.scan().await,
            _ = trace.tick() => gc.trace_due().await,
            () = relisted.notified() => {
                log::info!("gc: the Pod watch listed again: full scan");
                gc.scan().await;
            }
            Some(done) = tasks.join_next() => {
                let why = done.err().map(|e| e.to_string()).unwrap_or_default();
                return Err(Error::Config(format!("gc: a watch task ended {why}")));
            }
        }
    }
}

/// Sets `gc_pending` for as long as it lives.
struct Pending(Arc<crate::probes::Health>);

impl Pending {
    fn set(ctx: &Ctx) -> Self {
        ctx.health.gc_pending.store(true, Ordering::Relaxed);
        Pending(ctx.health.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.gc_pending.store(false, Ordering::Relaxed);
    }
}

fn spawn_store<K>(tasks: &mut JoinSet<()>, api: Api<K>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o| o.managed_fields_mut().clear()),
    );
    tasks.spawn(drain(stream, std::any::type_name::<K>()));
    store
}

async fn drain<S, T>(stream: S, what: &'static str)
where
    S: futures::Stream<Item = std::result::Result<T, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream.into_stream());
    while let Some(ev) = stream.next().await {
        if let Err(e) = ev {
            log::warn!("gc: {what} watch: {e}");
        }
    }
}

/// Feeds the tracing table from a Pod watch event.
fn trace_event(
    traced: &Mutex<HashMap<Key, Trace>>,
    ev: &watcher::Event<Pod>,
    delay_ms: i64,
    cap: usize,
) {
    let (pod, due) = match ev {
        watcher::Event::Delete(p) => (p, Some(now_ms().saturating_add(delay_ms))),
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
            (p, decide::deadline_ms(p, delay_ms))
        }
        watcher::Event::Init | watcher::Event::InitDone => return,
    };
    let Some(due_ms) = due else { return };
    if pod
        .spec
        .as_ref()
        .is_some_and(|s| s.host_network == Some(true))
    {
        return;
    }
    // A KubeVirt VM pod's endpoint is named after its VMI.
    let name = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == KIND_VMI)
        .map_or_else(|| pod.name_any(), |o| o.name.clone());
    let key = (pod.namespace().unwrap_or_default(), name);
    let mut t = traced.lock().unwrap_or_else(PoisonError::into_inner);
    if t.len() >= cap && !t.contains_key(&key) {
        return;
    }
    t.insert(key, Trace { due_ms, retries: 0 });
}

impl Gc {
    /// Judges endpoint `ns/name` (on the caches, then on a fresh GET of its pod) and releases
    /// it when both say so.
    async fn judge(&self, key: &Key) -> Outcome {
        let (ns, name) = key;
        let Some(Candidate {
            endpoint: ep,
            version,
            ..
        }) = self.caches.candidate(&self.args, ns, name)
        else {
            return Outcome::Kept;
        };
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let fresh = match pods.get_opt(name).await {
            Ok(p) => p,
            Err(e) => {
                log::warn!("gc: get Pod {ns}/{name}: {e}");
                return Outcome::Failed;
            }
        };
        let d = match ep.status.as_ref() {
            Some(st) if st.owner_controller_type == KIND_VMI => {
                match kubevirt_alive(&self.ctx.client, ns, &st.owner_controller_name).await {
                    Ok(alive) => {
                        self.caches
                            .verdict_with_vm(&self.args, &ep, fresh.as_ref(), alive)
                    }
                    Err(e) => {
                        log::warn!("gc: KubeVirt VM of SpiderEndpoint {ns}/{name}: {e}");
                        return Outcome::Failed;
                    }
                }
            }
            _ => self.caches.verdict(&self.args, &ep, fresh.as_ref()),
        };
        if !d.release {
            return Outcome::Kept;
        }
        let api = Api::<DynamicObject>::namespaced_with(
            self.ctx.client.clone(),
            ns,
            &api_resource(&ENDPOINT),
        );
        let uid = ep
            .status
            .as_ref()
            .map(|s| s.current.uid.clone())
            .unwrap_or_default();
        let addrs: Vec<String> = addresses_of(&ep)
            .into_iter()
            .map(|(pool, ip)| format!("{ip} ({pool})"))
            .collect();
        match act::release_endpoint(&api, name, &version).await {
            Ok(()) => {
                self.ctx.metrics.ip_gc_counts.inc();
                log::info!(
                    "gc: released {} of pod {ns}/{name} (uid {uid}): {}",
                    addrs.join(", "),
                    d.rule
                );
                Outcome::Released
            }
            Err(act::ActError::Changed(what)) => {
                log::info!("gc: {what} changed since judged; judged again later");
                Outcome::Changed
            }
            Err(e) => {
                self.ctx.metrics.ip_gc_failure_counts.inc();
                log::warn!(
                    "gc: releasing {} of pod {ns}/{name} ({}) failed: {e}",
                    addrs.join(", "),
                    d.rule
                );
                Outcome::Failed
            }
        }
    }

    /// Judges the traced pods that are due.
    async fn trace_due(&self) {
        let now = now_ms();
        let due: Vec<(Key, Trace)> = {
            let t = self.traced.lock().unwrap_or_else(PoisonError::into_inner);
            t.iter()
                .filter(|(_, v)| v.due_ms <= now)
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        let workers = usize::from(self.args.workers);
        let outcomes: Vec<(Key, Trace, Outcome)> = futures::stream::iter(due)
            .map(|(k, t)| async move {
                let o = self.judge(&k).await;
                (k, t, o)
            })
            .buffer_unordered(workers)
            .collect()
            .await;
        let mut t = self.traced.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, entry, o) in outcomes {
            // An entry re-armed by a newer event while we judged is kept as it is now.
            if t.get(&k).is_some_and(|cur| cur.due_ms != entry.due_ms) {
                continue;
            }
            if o == Outcome::Failed && entry.retries < self.args.max_retries {
                t.insert(
                    k,
                    Trace {
                        due_ms: entry.due_ms,
                        retries: entry.retries + 1,
                    },
                );
            } else {
                t.remove(&k);
            }
        }
    }

    /// The full scan: every endpoint, then the blocks of missing nodes.
    async fn scan(&self) {
        let (judged, keys) = self.caches.scan_candidates(&self.args);
        let workers = usize::from(self.args.workers);
        let outcomes: Vec<Outcome> = futures::stream::iter(keys)
            .map(|k| async move { self.judge(&k).await })
            .buffer_unordered(workers)
            .collect()
            .await;
        let released = outcomes.iter().filter(|o| **o == Outcome::Released).count();
        log::debug!("gc: full scan judged {judged} endpoints, released {released}");
        let pools_api: Api<DynamicObject> =
            Api::all_with(self.ctx.client.clone(), &api_resource(&IPPOOL));
        let pools: Vec<SpiderIPPool> = match pools_api.list(&Default::default()).await {
            // A pool that cannot be read is the pool controller's to report.
            Ok(list) => list
                .items
                .iter()
                .filter_map(|o| from_dynamic(o).ok())
                .collect(),
            Err(e) => {
                log::warn!("gc: list SpiderIPPools: {e}");
                return;
            }
        };
        self.collect_legacy(&pools).await;
        if let Err(e) = self.reclaim_blocks(&pools).await {
            log::warn!("gc: reclaiming blocks of deleted nodes: {e}");
        }
    }

    /// Releases the upstream records (`status.allocatedIPs`) whose pods are gone, judged on
    /// the caches and again on a fresh GET of the pod.
    async fn collect_legacy(&self, pools: &[SpiderIPPool]) {
        for pool in pools {
            let candidates = self.caches.legacy_candidates(&self.args, pool);
            if candidates.is_empty() {
                continue;
            }
            let name = pool.metadata.name.clone().unwrap_or_default();
            let mut confirmed = Vec::new();
            let mut why = HashMap::new();
            for (ip, rec, _) in candidates {
                let Some((ns, pod)) = rec.pod.split_once('/') else {
                    continue;
                };
                let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
                match pods.get_opt(pod).await {
                    Ok(fresh) => {
                        let d = self.caches.record_verdict(&self.args, &rec, fresh.as_ref());
                        if d.release {
                            why.insert(ip.clone(), (rec.clone(), d.rule));
                            confirmed.push((ip, rec.pod_uid));
                        }
                    }
                    Err(e) => {
                        self.ctx.metrics.ip_gc_failure_counts.inc();
                        log::warn!("gc: get Pod {}: {e}", rec.pod);
                    }
                }
            }
            match act::drop_legacy_records(&self.ctx.client, &name, &confirmed).await {
                Ok(removed) => {
                    for ip in removed {
                        self.ctx.metrics.ip_gc_counts.inc();
                        if let Some((rec, rule)) = why.get(&ip) {
                            log::info!(
                                "gc: released {ip} ({name}, upstream record) of pod {} (uid {}): {rule}",
                                rec.pod,
                                rec.pod_uid
                            );
                        }
                    }
                }
                Err(e) => {
                    self.ctx.metrics.ip_gc_failure_counts.inc();
                    log::warn!("gc: releasing upstream records of SpiderIPPool {name}: {e}");
                }
            }
        }
    }

    /// Removes from every pool the blocks of nodes that were missing at this scan and the
    /// previous one, that a fresh GET confirms gone, and that no endpoint lives on.
    async fn reclaim_blocks(
        &self,
        pools: &[SpiderIPPool],
    ) -> std::result::Result<(), act::ActError> {
        let client = &self.ctx.client;
        let nodes: HashSet<String> = self
            .caches
            .nodes
            .state()
            .iter()
            .map(|n| n.name_any())
            .collect();
        let mut missing: HashMap<String, Vec<String>> = HashMap::new();
        for pool in pools {
            for node in decide::blocks_of_missing_nodes(pool, &nodes) {
                missing
                    .entry(node)
                    .or_default()
                    .push(pool.metadata.name.clone().unwrap_or_default());
            }
        }
        let seen_before = std::mem::replace(
            &mut *self
                .missing_nodes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            missing.keys().cloned().collect(),
        );
        if missing.is_empty() {
            return Ok(());
        }
        let occupied: HashSet<String> = self
            .caches
            .endpoints
            .state()
            .iter()
            .filter_map(|o| {
                let node = o.data.get("status")?.get("current")?.get("node")?;
                node.as_str().map(str::to_owned)
            })
            .collect();
        let nodes_api: Api<Node> = Api::all(client.clone());
        for (node, pools) in missing {
            if !seen_before.contains(&node) || occupied.contains(&node) {
                continue;
            }
            match nodes_api.get_opt(&node).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(source) => {
                    return Err(act::ActError::Api {
                        what: format!("get Node {node}"),
                        source,
                    });
                }
            }
            for pool in pools {
                // One pool that cannot be edited (bad spec, apiserver error) does not keep
                // the others' blocks from being reclaimed.
                match act::drop_node_block(client, &pool, &node).await {
                    Ok(true) => log::info!(
                        "gc: Node {node} is gone and holds no address: its block of SpiderIPPool {pool} is unclaimed again"
                    ),
                    Ok(false) => {}
                    Err(e) => log::warn!("gc: block of Node {node} in SpiderIPPool {pool}: {e}"),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gc: Args,
    }

    #[test]
    fn defaults_are_upstreams() {
        let a = Cli::try_parse_from(["t"]).unwrap().gc;
        let d = Args::default();
        assert_eq!(
            (a.enabled, a.workers, a.interval, a.trace_gap, a.max_retries),
            (d.enabled, d.workers, d.interval, d.trace_gap, d.max_retries)
        );
        assert_eq!(a.interval, Duration::from_secs(600));
        assert_eq!(a.config(), GcConfig::default());
    }

    #[test]
    fn flags_parse_and_bad_values_are_refused() {
        let a = Cli::try_parse_from([
            "t",
            "--gc-enabled",
            "false",
            "--gc-interval",
            "1.5",
            "--gc-additional-grace-delay",
            "7",
            "--gc-running-pod-on-empty-pod-ips",
        ])
        .unwrap()
        .gc;
        assert!(!a.enabled);
        assert_eq!(a.interval, Duration::from_millis(1500));
        assert_eq!(a.delay_ms(), 7000);
        assert!(a.config().running_pod_on_empty_pod_ips);
        assert!(Cli::try_parse_from(["t", "--gc-interval", "soon"]).is_err());
        assert!(Cli::try_parse_from(["t", "--gc-workers", "0"]).is_err());
    }
}
