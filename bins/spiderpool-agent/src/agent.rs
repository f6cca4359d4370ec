//! The local-mode agent: the IPAM API's behaviour on top of a store and the objects of the
//! configuration directory. Transport-free (see [`crate::api`] for the HTTP routing).
//!
//! Local-mode facts (no Kubernetes to ask):
//! * the pod is who the request says (`podNamespace`, `podName`, `podUID`), its labels and
//!   annotations come from the request's `pod` extension, its namespace has no labels or
//!   annotations, its node is the agent's `--node`, and its top controller is the pod itself;
//! * DEL releases: there is no apiserver to say the pod is still alive (upstream keeps the
//!   addresses of a live pod for its next sandbox);
//! * `GET /v1/coordinator/config` answers for any pod, using the
//!   `ipam.spidernet.io/default-route-nic` annotation of the pod's last ADD when there was one
//!   (upstream fails for a pod missing from its cache).

use spiderpool_core::ipam::IpamError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::Serialize;
use spiderpool_core::admission::Switches;
use spiderpool_core::agentapi::{
    GetCoordinatorArgs, IpamAddArgs, IpamAddResponse, IpamBatchDelArgs, IpamDelArgs,
};
use spiderpool_core::coordinator::AgentCoordinatorConfig;
use spiderpool_core::ipam::{
    AllocateRequest, DEFAULT_MAX_ATTEMPTS, EndpointKey, IpamConfig, PodInfo, ReleaseOutcome,
    ReleaseRequest, TopController, allocate_with_retry, release_with_retry,
};
use spiderpool_core::objects::keys::ANNO_DEFAULT_ROUTE_NIC;
use spiderpool_core::objects::{SpiderEndpoint, SpiderEndpointStatus, SpiderIPPool};

use crate::backend::AgentStore;
use crate::config_dir::{FileOutcome, LoadedConfig, reload_dir};
use crate::service::{
    Detection, add_response, addresses_text, check_conflict_release, decision_text, outcome_text,
    release_pod,
};

/// How an API call failed: the HTTP status and upstream-style message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status (400, 404, 500).
    pub status: u16,
    /// The message, sent as a JSON string.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

/// Fixed settings of an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The configuration directory.
    pub config_dir: PathBuf,
    /// The node pods run on (`--node`).
    pub node: String,
    /// Admission switches (`enableIPv4`, ...).
    pub switches: Switches,
    /// IPAM switches.
    pub ipam: IpamConfig,
    /// `enableIPConflictDetection`: every address of an ADD answer carries
    /// `enableIPConflictDetection`, and the plugin probes it before returning (spec §3.13).
    pub enable_ip_conflict_detection: bool,
    /// `enableGatewayDetection`: every address whose pool has a gateway carries
    /// `enableGatewayDetection`, and the plugin probes the gateway before returning.
    pub enable_gateway_detection: bool,
    /// `SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS`: when false, `DELETE /v1/ipam/ips` with
    /// `isReleaseConflictIPs` is refused with 521 (upstream's default: true).
    pub enable_release_conflict_ips: bool,
}

impl AgentOptions {
    /// Options for `config_dir` and `node` with upstream's default switches, except that
    /// SpiderSubnet auto-pools are off: they need the subnet controller, which local mode
    /// does not run.
    pub fn new(config_dir: impl Into<PathBuf>, node: impl Into<String>) -> Self {
        AgentOptions {
            config_dir: config_dir.into(),
            node: node.into(),
            switches: Switches::default(),
            ipam: IpamConfig {
                enable_auto_pool: false,
                ..IpamConfig::default()
            },
            enable_ip_conflict_detection: false,
            enable_gateway_detection: false,
            enable_release_conflict_ips: true,
        }
    }
}

/// What a (re)load changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    /// Files loaded, with the objects of each.
    pub loaded: BTreeMap<String, Vec<String>>,
    /// Files skipped, with one line per problem (also those in `kept`).
    pub rejected: BTreeMap<String, Vec<String>>,
    /// Files rejected now whose last good objects are kept instead, with those objects.
    pub kept: BTreeMap<String, Vec<String>>,
    /// Files that hold no Spiderpool object (e.g. a topology file), with the reason.
    pub ignored: BTreeMap<String, String>,
    /// Pools put into the store (new or updated).
    pub pools: Vec<String>,
    /// Pools no longer configured but still holding records: kept, terminating (no new
    /// allocations; DEL still releases), with their record counts.
    pub vanished_kept: BTreeMap<String, usize>,
    /// Pools no longer configured and empty: removed.
    pub removed: Vec<String>,
    /// Records the store holds for pools it has no definition of (e.g. a pool file removed
    /// while the agent was stopped), with their counts: kept, not allocatable; configure the
    /// pool again to release them.
    pub orphaned: BTreeMap<String, usize>,
    /// Pools the store refused (e.g. a new spec leaving recorded addresses out).
    pub failed: BTreeMap<String, String>,
}

/// The local-mode agent.
pub struct Agent {
    store: Box<dyn AgentStore>,
    opts: AgentOptions,
    config: RwLock<Arc<LoadedConfig>>,
    reserved_loaded: Mutex<BTreeSet<String>>,
    // Writes (ADD, DEL, reload) are serialised: on one pool every ADD conflicts with every
    // other anyway (per-pool compare-and-swap), so the lock costs nothing there and spares
    // retry storms under load; the store stays correct without it.
    gate: Mutex<()>,
    // `ns/name` → annotations of the pod's last ADD, for the coordinator endpoint.
    pod_annotations: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing guarded here can be left half-updated by a panic.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Agent {
    /// An agent over `store`, with nothing loaded yet (call [`Agent::reload`]).
    pub fn new(store: Box<dyn AgentStore>, opts: AgentOptions) -> Self {
        Agent {
            store,
            opts,
            config: RwLock::new(Arc::new(LoadedConfig::default())),
            reserved_loaded: Mutex::new(BTreeSet::new()),
            gate: Mutex::new(()),
            pod_annotations: Mutex::new(HashMap::new()),
        }
    }

    /// The options.
    pub fn options(&self) -> &AgentOptions {
        &self.opts
    }

    /// The configuration last loaded.
    pub fn config(&self) -> Arc<LoadedConfig> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Reads the configuration directory again and brings the store in line: configured
    /// pools are added or updated (records kept), pools no longer configured are removed when
    /// empty and otherwise kept as terminating, reserved IPs follow the files. A file that is
    /// rejected now but was loaded before keeps its last good objects (logged as a warning);
    /// a file holding no Spiderpool object is ignored (logged at info).
    pub fn reload(&self) -> Result<ReloadReport, String> {
        let previous = self.config();
        let loaded = reload_dir(&self.opts.config_dir, &self.opts.switches, &previous)
            .map_err(|e| format!("cannot read {}: {e}", self.opts.config_dir.display()))?;
        let _gate = lock(&self.gate);
        let mut report = ReloadReport::default();
        for f in &loaded.files {
            file_report(&mut report, &f.path.display().to_string(), &f.outcome);
        }
        // Reserved IPs first, so pools are built with them.
        let mut reserved = lock(&self.reserved_loaded);
        let wanted: BTreeSet<String> = loaded
            .objects
            .reserved_ips
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        for gone in reserved.difference(&wanted) {
            if let Err(e) = self.store.remove_reserved_ip(gone) {
                report
                    .failed
                    .insert(format!("SpiderReservedIP/{gone}"), e.to_string());
            }
        }
        for r in &loaded.objects.reserved_ips {
            if let Err(e) = self.store.put_reserved_ip(r.clone()) {
                let name = r.metadata.name.clone().unwrap_or_default();
                report
                    .failed
                    .insert(format!("SpiderReservedIP/{name}"), e.to_string());
            }
        }
        *reserved = wanted;
        drop(reserved);

        let configured: BTreeSet<&str> = loaded
            .objects
            .pools
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        for pool in &loaded.objects.pools {
            let name = pool.metadata.name.clone().unwrap_or_default();
            match self.store.put_pool(pool.clone()) {
                Ok(()) => report.pools.push(name),
                Err(e) => {
                    report.failed.insert(name, e.to_string());
                }
            }
        }
        let existing = self.store.pools().map_err(|e| e.to_string())?;
        for pool in existing {
            let name = pool.metadata.name.clone().unwrap_or_default();
            if configured.contains(name.as_str()) {
                continue;
            }
            let records = pool
                .status
                .as_ref()
                .and_then(|s| s.allocated_ip_count)
                .unwrap_or(0);
            if records == 0 {
                match self.store.remove_pool(&name) {
                    Ok(_) => report.removed.push(name),
                    Err(e) => {
                        report.failed.insert(name, e.to_string());
                    }
                }
            } else {
                let mut pool = pool;
                if pool.metadata.deletion_timestamp.is_none() {
                    pool.metadata.deletion_timestamp = Some(now_rfc3339());
                    if let Err(e) = self.store.put_pool(pool) {
                        report.failed.insert(name.clone(), e.to_string());
                    }
                }
                report
                    .vanished_kept
                    .insert(name, usize::try_from(records).unwrap_or(usize::MAX));
            }
        }
        report.orphaned = self.store.orphaned().into_iter().collect();
        match self.config.write() {
            Ok(mut c) => *c = Arc::new(loaded),
            Err(p) => *p.into_inner() = Arc::new(loaded),
        }
        Ok(report)
    }

    /// `POST /v1/ipam/ip`.
    pub fn add(&self, args: &IpamAddArgs) -> Result<IpamAddResponse, ApiError> {
        let local = args.pod.clone().unwrap_or_default();
        let req = AllocateRequest {
            container_id: args.container_id.clone(),
            ifname: args.if_name.clone(),
            pod: PodInfo {
                namespace: args.pod_namespace.clone(),
                name: args.pod_name.clone(),
                uid: args.pod_uid.clone(),
                labels: local.labels,
                annotations: local.annotations.clone(),
                node: self.opts.node.clone(),
                controller: TopController::orphan(
                    &args.pod_namespace,
                    &args.pod_name,
                    &args.pod_uid,
                ),
            },
            default_ipv4_ippool: args.default_ipv4_ippool.clone(),
            default_ipv6_ippool: args.default_ipv6_ippool.clone(),
            clean_gateway: args.clean_gateway,
            match_master_subnet: args.match_master_subnet,
            config: self.opts.ipam.clone(),
            ..AllocateRequest::default()
        };
        let pod_key = format!("{}/{}", args.pod_namespace, args.pod_name);
        let decision = {
            let _gate = lock(&self.gate);
            allocate_with_retry(self.store.as_ref(), &req, DEFAULT_MAX_ATTEMPTS)
        }
        .map_err(|e| {
            log::warn!("ADD {pod_key} {} {}: {e}", args.container_id, args.if_name);
            self.store_error(
                "failed to allocate IP addresses in standard mode",
                &e,
                false,
            )
        })?;
        for w in &decision.warnings {
            log::warn!("ADD {pod_key} {}: {w}", args.if_name);
        }
        lock(&self.pod_annotations).insert(pod_key.clone(), local.annotations);
        let resp = add_response(
            &decision,
            Detection {
                ip_conflict: self.opts.enable_ip_conflict_detection,
                gateway: self.opts.enable_gateway_detection,
            },
        );
        let how = decision_text(decision.kind);
        log::info!(
            "ADD {pod_key} {} {}: {how}: {}",
            args.container_id,
            args.if_name,
            addresses_text(&resp, &args.if_name)
        );
        Ok(resp)
    }

    /// `DELETE /v1/ipam/ip`: in local mode the pod is taken as gone, so its addresses are
    /// released (every NIC of the endpoint, as upstream's DEL does for a dead pod).
    pub fn del(&self, args: &IpamDelArgs) -> Result<(), ApiError> {
        let req = ReleaseRequest {
            container_id: args.container_id.clone(),
            ifname: args.if_name.clone(),
            endpoint: EndpointKey::new(args.pod_namespace.clone(), args.pod_name.clone()),
            pod_uid: Some(args.pod_uid.clone()).filter(|u| !u.is_empty()),
            pod_alive: false,
            static_pod_valid: false,
            config: self.opts.ipam.clone(),
        };
        let decision = {
            let _gate = lock(&self.gate);
            release_with_retry(self.store.as_ref(), &req, DEFAULT_MAX_ATTEMPTS)
        }
        .map_err(|e| {
            log::warn!(
                "DEL {} {} {}: {e}",
                req.endpoint,
                args.container_id,
                args.if_name
            );
            self.store_error("failed to release IP addresses", &e, true)
        })?;
        let pod_key = req.endpoint.to_string();
        if decision.outcome == ReleaseOutcome::Released {
            lock(&self.pod_annotations).remove(&pod_key);
        }
        log::info!(
            "DEL {pod_key} {} {}: {}",
            args.container_id,
            args.if_name,
            outcome_text(decision.outcome, &decision.released)
        );
        Ok(())
    }

    /// `DELETE /v1/ipam/ips`: releases every address of the pod (the plugin calls it after
    /// an IP conflict or an unreachable gateway). With `isReleaseConflictIPs` it is refused
    /// with 521 when `enable_release_conflict_ips` is off, as upstream; the 522 refusal of
    /// StatefulSet / KubeVirt pods never applies, since local-mode pods have no such owner.
    pub fn batch_del(&self, args: &IpamBatchDelArgs) -> Result<(), ApiError> {
        check_conflict_release(args, self.opts.enable_release_conflict_ips)?;
        let key = EndpointKey::new(args.pod_namespace.clone(), args.pod_name.clone());
        let decision = {
            let _gate = lock(&self.gate);
            release_pod(self.store.as_ref(), &key, &args.pod_uid)
        }
        .map_err(|e| {
            log::warn!("batch release {key} {}: {e}", args.container_id);
            self.store_error("failed to release IP addresses", &e, true)
        })?;
        log::info!(
            "batch release {key} {}: {}",
            args.container_id,
            outcome_text(decision.outcome, &decision.released)
        );
        Ok(())
    }

    /// `Err(why)` while the store takes no commit (`GET /v1/ipam/healthy` answers 503): the
    /// plugins then fail ADD and DEL with CNI code 11, so the runtime retries instead of
    /// losing a DEL. A store that failed on a full disk recovers by itself once space is
    /// freed; after any other failure the agent must be restarted.
    pub fn healthy(&self) -> Result<(), String> {
        match self.store.failure() {
            Some(f) => Err(f.refusal()),
            None => Ok(()),
        }
    }

    /// The API error for a failed ADD or DEL: 503 (the plugin's code 11, the runtime retries)
    /// when the store cannot write and the failure is transient (a full disk), or for a
    /// release (`release` true) whatever the store failure, since a DEL that succeeded
    /// without releasing would leak the address for good; 500 otherwise.
    fn store_error(&self, context: &str, e: &IpamError, release: bool) -> ApiError {
        match self.store.failure() {
            Some(f) if f.disk_full || release => ApiError::new(503, format!("{context}: {e}")),
            _ => ApiError::internal(format!("{context}: {e}")),
        }
    }

    /// `GET /v1/coordinator/config`.
    pub fn coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<AgentCoordinatorConfig, ApiError> {
        let config = self.config();
        let coordinator = config.coordinator().ok_or_else(|| {
            ApiError::internal(format!(
                "spidercoordinator: no SpiderCoordinator in {}",
                self.opts.config_dir.display()
            ))
        })?;
        let pod_key = format!("{}/{}", args.pod_namespace, args.pod_name);
        let annotation = lock(&self.pod_annotations)
            .get(&pod_key)
            .and_then(|a| a.get(ANNO_DEFAULT_ROUTE_NIC).cloned());
        AgentCoordinatorConfig::from_spider_coordinator(coordinator, annotation.as_deref())
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// `GET /v1/workloadendpoint`: the pod's SpiderEndpoint status.
    pub fn workload_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SpiderEndpointStatus, ApiError> {
        let key = EndpointKey::new(namespace, name);
        let snap = self
            .store
            .snapshot(std::slice::from_ref(&key))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        snap.endpoint(&key)
            .and_then(|(_, ep)| ep.status.clone())
            .ok_or_else(|| ApiError::new(404, format!("SpiderEndpoint {key} not found")))
    }

    /// Everything the agent holds, for `spiderpool-agent dump`.
    pub fn dump(&self) -> Result<Dump, ApiError> {
        let config = self.config();
        let internal = |e: IpamError| ApiError::internal(e.to_string());
        Ok(Dump {
            node: self.opts.node.clone(),
            config_dir: self.opts.config_dir.display().to_string(),
            rejected_files: config
                .rejected()
                .map(|(p, lines)| (p.display().to_string(), lines.to_vec()))
                .collect(),
            ignored_files: config
                .ignored()
                .map(|(p, why)| (p.display().to_string(), why.to_owned()))
                .collect(),
            pools: self.store.pools().map_err(internal)?,
            endpoints: self.store.endpoints().map_err(internal)?,
            orphaned_pools: self.store.orphaned().into_iter().collect(),
            coordinator: config.coordinator().and_then(|c| c.metadata.name.clone()),
            store: self.store.inspect(),
        })
    }
}

/// The agent's state as `spiderpool-agent dump` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dump {
    /// `--node`.
    pub node: String,
    /// `--local-config`.
    pub config_dir: String,
    /// Files skipped at the last (re)load, with their problems (a file whose last good
    /// objects are kept is listed here too).
    pub rejected_files: BTreeMap<String, Vec<String>>,
    /// Files that hold no Spiderpool object, with the reason.
    pub ignored_files: BTreeMap<String, String>,
    /// Every pool with its records (`status.allocatedIPs`) and counts.
    pub pools: Vec<SpiderIPPool>,
    /// Every SpiderEndpoint.
    pub endpoints: Vec<SpiderEndpoint>,
    /// Records kept for pools without a definition, with their counts.
    pub orphaned_pools: BTreeMap<String, usize>,
    /// The SpiderCoordinator answering `/v1/coordinator/config`.
    pub coordinator: Option<String>,
    /// The store's own view (the local store: files, sequence, records), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<serde_json::Value>,
}

/// Records one file's outcome in `report`, logging what the caller's report does not say.
fn file_report(report: &mut ReloadReport, name: &str, outcome: &FileOutcome) {
    match outcome {
        FileOutcome::Loaded(objs) => {
            report.loaded.insert(name.to_owned(), objs.clone());
        }
        FileOutcome::Rejected(lines) => {
            report.rejected.insert(name.to_owned(), lines.clone());
        }
        FileOutcome::Kept { problems, kept } => {
            log::warn!(
                "{name} is rejected; keeping the definition last loaded from it ({}) until \
                 the file is fixed",
                kept.join(", ")
            );
            report.rejected.insert(name.to_owned(), problems.clone());
            report.kept.insert(name.to_owned(), kept.clone());
        }
        FileOutcome::Ignored(why) => {
            log::info!("ignored {name}: {why}");
            report.ignored.insert(name.to_owned(), why.clone());
        }
    }
}

/// The current UTC time as RFC 3339 (`metadata.deletionTimestamp` of a vanished pool).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for any date after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spiderpool_core::ipam::MemoryStore;

    const POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: p}
spec: {gateway: 10.6.0.1, ips: [10.6.212.100-10.6.212.101], subnet: 10.6.0.0/16}
";

    fn add_args(name: &str) -> IpamAddArgs {
        IpamAddArgs {
            container_id: format!("c-{name}"),
            if_name: "net1".into(),
            net_namespace: "/x".into(),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            pod_uid: format!("u-{name}"),
            default_ipv4_ippool: vec!["p".into()],
            ..Default::default()
        }
    }

    #[test]
    fn vanished_pools_keep_their_records_until_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), POOL).unwrap();
        let agent = Agent::new(
            Box::new(MemoryStore::new()),
            AgentOptions::new(dir.path(), "n1"),
        );
        agent.reload().unwrap();
        let r = agent.add(&add_args("a")).unwrap();
        assert_eq!(r.ips[0].address, "10.6.212.100/16");
        std::fs::remove_file(dir.path().join("p.yaml")).unwrap();
        let report = agent.reload().unwrap();
        assert_eq!(report.vanished_kept.get("p"), Some(&1));
        // Terminating: no new allocation, but DEL still releases.
        let err = agent.add(&add_args("b")).unwrap_err();
        assert_eq!(err.status, 500);
        agent
            .del(&IpamDelArgs {
                container_id: "c-a".into(),
                if_name: "net1".into(),
                pod_namespace: "default".into(),
                pod_name: "a".into(),
                pod_uid: "u-a".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(agent.reload().unwrap().removed, vec!["p".to_owned()]);
    }

    const NO_GW_POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: q}
spec: {ips: [10.7.0.10-10.7.0.11], subnet: 10.7.0.0/24}
";

    fn agent_with(opts: impl FnOnce(&mut AgentOptions)) -> (tempfile::TempDir, Agent) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), POOL).unwrap();
        std::fs::write(dir.path().join("q.yaml"), NO_GW_POOL).unwrap();
        let mut o = AgentOptions::new(dir.path(), "n1");
        opts(&mut o);
        let agent = Agent::new(Box::new(MemoryStore::new()), o);
        agent.reload().unwrap();
        (dir, agent)
    }

    #[test]
    fn detection_flags_follow_the_switches() {
        let (_d, off) = agent_with(|_| {});
        let r = off.add(&add_args("a")).unwrap();
        assert!(!r.ips[0].enable_ip_conflict_detection && !r.ips[0].enable_gateway_detection);

        let (_d, on) = agent_with(|o| {
            o.enable_ip_conflict_detection = true;
            o.enable_gateway_detection = true;
        });
        let r = on.add(&add_args("a")).unwrap();
        assert!(r.ips[0].enable_ip_conflict_detection && r.ips[0].enable_gateway_detection);
        // A pool without a gateway: conflict detection only.
        let mut args = add_args("b");
        args.default_ipv4_ippool = vec!["q".into()];
        let r = on.add(&args).unwrap();
        assert_eq!(r.ips[0].address, "10.7.0.10/24");
        assert!(r.ips[0].enable_ip_conflict_detection && !r.ips[0].enable_gateway_detection);
        // A retried ADD (recorded allocation) carries them too.
        let r = on.add(&add_args("a")).unwrap();
        assert!(r.ips[0].enable_ip_conflict_detection && r.ips[0].enable_gateway_detection);
    }

    fn batch(name: &str) -> IpamBatchDelArgs {
        IpamBatchDelArgs {
            is_release_conflict_ips: true,
            container_id: format!("c-{name}"),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            pod_uid: format!("u-{name}"),
            ..Default::default()
        }
    }

    #[test]
    fn batch_release_frees_every_address_and_can_be_forbidden() {
        let (_d, agent) = agent_with(|_| {});
        agent.add(&add_args("a")).unwrap();
        let mut net2 = add_args("a");
        net2.if_name = "net2".into();
        net2.default_ipv4_ippool = vec!["q".into()];
        agent.add(&net2).unwrap();
        agent.batch_del(&batch("a")).unwrap();
        let ep = agent.workload_endpoint("default", "a").unwrap();
        assert!(ep.current.ips.is_empty(), "{ep:?}");
        for pool in agent.store.pools().unwrap() {
            let count = pool.status.and_then(|s| s.allocated_ip_count).unwrap_or(0);
            assert_eq!(count, 0, "{:?}", pool.metadata.name);
        }
        // The pod's next ADD starts over from the lowest address.
        let r = agent.add(&add_args("a")).unwrap();
        assert_eq!(r.ips[0].address, "10.6.212.100/16");

        let (_d, strict) = agent_with(|o| o.enable_release_conflict_ips = false);
        strict.add(&add_args("a")).unwrap();
        let e = strict.batch_del(&batch("a")).unwrap_err();
        assert_eq!(e.status, 521);
        assert_eq!(
            strict
                .workload_endpoint("default", "a")
                .unwrap()
                .current
                .ips
                .len(),
            1
        );
        // Without isReleaseConflictIPs the switch does not apply.
        let mut plain = batch("a");
        plain.is_release_conflict_ips = false;
        strict.batch_del(&plain).unwrap();
    }

    type Switch = std::sync::Arc<Mutex<Option<crate::localstore::StoreFailure>>>;

    /// A MemoryStore whose writes fail while its switch holds a failure.
    struct FailingStore {
        inner: MemoryStore,
        broken: Switch,
    }

    impl spiderpool_core::ipam::IpamStore for FailingStore {
        fn snapshot(
            &self,
            endpoints: &[EndpointKey],
        ) -> Result<spiderpool_core::ipam::Snapshot, spiderpool_core::ipam::StoreError> {
            self.inner.snapshot(endpoints)
        }
        fn commit(
            &self,
            changes: &spiderpool_core::ipam::ChangeSet,
        ) -> Result<spiderpool_core::ipam::Committed, spiderpool_core::ipam::CommitError> {
            match &*lock(&self.broken) {
                Some(f) => Err(spiderpool_core::ipam::CommitError::store(f.refusal())),
                None => self.inner.commit(changes),
            }
        }
    }

    impl AgentStore for FailingStore {
        fn put_pool(&self, pool: SpiderIPPool) -> Result<(), IpamError> {
            AgentStore::put_pool(&self.inner, pool)
        }
        fn remove_pool(&self, name: &str) -> Result<bool, IpamError> {
            AgentStore::remove_pool(&self.inner, name)
        }
        fn put_reserved_ip(
            &self,
            r: spiderpool_core::objects::SpiderReservedIP,
        ) -> Result<(), IpamError> {
            AgentStore::put_reserved_ip(&self.inner, r)
        }
        fn remove_reserved_ip(&self, name: &str) -> Result<bool, IpamError> {
            AgentStore::remove_reserved_ip(&self.inner, name)
        }
        fn pools(&self) -> Result<Vec<SpiderIPPool>, IpamError> {
            AgentStore::pools(&self.inner)
        }
        fn endpoints(&self) -> Result<Vec<SpiderEndpoint>, IpamError> {
            AgentStore::endpoints(&self.inner)
        }
        fn failure(&self) -> Option<crate::localstore::StoreFailure> {
            lock(&self.broken).clone()
        }
    }

    fn del_args(name: &str) -> IpamDelArgs {
        IpamDelArgs {
            container_id: format!("c-{name}"),
            if_name: "net1".into(),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            pod_uid: format!("u-{name}"),
            ..Default::default()
        }
    }

    fn failing_agent() -> (tempfile::TempDir, Agent, Switch) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), POOL).unwrap();
        let broken = Switch::default();
        let store = FailingStore {
            inner: MemoryStore::new(),
            broken: broken.clone(),
        };
        let agent = Agent::new(Box::new(store), AgentOptions::new(dir.path(), "n1"));
        agent.reload().unwrap();
        (dir, agent, broken)
    }

    fn failure(disk_full: bool) -> Option<crate::localstore::StoreFailure> {
        Some(crate::localstore::StoreFailure {
            reason: "writing journal: No space left on device (os error 28)".into(),
            disk_full,
        })
    }

    #[test]
    fn a_failed_store_fails_del_and_health_until_it_recovers() {
        let (_d, agent, broken) = failing_agent();
        agent.add(&add_args("a")).unwrap();
        assert_eq!(agent.healthy(), Ok(()));

        // Any store failure: health is 503-worthy and DEL fails with 503 (the plugin's code
        // 11), so the runtime retries instead of leaking the address.
        for disk_full in [true, false] {
            *lock(&broken) = failure(disk_full);
            let why = agent.healthy().unwrap_err();
            assert!(why.contains("No space left"), "{why}");
            let e = agent.del(&del_args("a")).unwrap_err();
            assert_eq!(e.status, 503, "{e}");
            let e = agent.batch_del(&batch("a")).unwrap_err();
            assert_eq!(e.status, 503, "{e}");
            // ADD: a full disk is transient (503 -> code 11); another failure is 500.
            let e = agent.add(&add_args("b")).unwrap_err();
            assert_eq!(e.status, if disk_full { 503 } else { 500 }, "{e}");
        }

        // Recovered: healthy, and the retried DEL releases the address.
        *lock(&broken) = None;
        assert_eq!(agent.healthy(), Ok(()));
        agent.del(&del_args("a")).unwrap();
        assert!(agent.workload_endpoint("default", "a").is_err());
        let r = agent.add(&add_args("b")).unwrap();
        assert_eq!(r.ips[0].address, "10.6.212.100/16", "the address came back");
    }

    #[test]
    fn rfc3339_dates() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20);
        assert!(s.starts_with("20"));
    }
}
