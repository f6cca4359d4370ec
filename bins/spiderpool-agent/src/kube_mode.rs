//! Kubernetes mode: the agent API on the Kubernetes store and the cluster view.
//!
//! * The pod comes from the apiserver (watch cache of this node's pods, read directly when
//!   the cache lags): labels, annotations, namespace labels and annotations, node labels and
//!   top controller feed pool selection as upstream.
//! * ADD refuses a pod that is gone, terminating or done ("dead"), and a pod whose UID is not
//!   the one the runtime asked for (a sandbox of a pod that was deleted and re-created under
//!   the same name): both answer 500 and the runtime retries with the current pod.
//! * DEL reads the pod directly: while it is alive its addresses are kept (a sandbox
//!   re-created for a live pod keeps its IPs), otherwise they are released; a StatefulSet
//!   pod that is still a valid member keeps its endpoint for its next incarnation.
//! * Store failures (apiserver unreachable, timeouts) answer 503, which the plugin reports
//!   as CNI code 11 (try again later); planning refusals (pool exhausted...) answer 500.

use spiderpool_core::ipam::IpamError;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use spiderpool_core::agentapi::{
    GetCoordinatorArgs, IpamAddArgs, IpamAddResponse, IpamBatchDelArgs, IpamDelArgs,
    STATUS_STATEFUL_RELEASE_FORBIDDEN,
};
use spiderpool_core::coordinator::AgentCoordinatorConfig;
use spiderpool_core::ipam::{
    AllocateRequest, DEFAULT_MAX_ATTEMPTS, EndpointKey, IpamConfig, KIND_STATEFULSET, KIND_VMI,
    ReleaseRequest, pod_is_alive, release_with_retry, statefulset_pod_valid,
};
use spiderpool_core::objects::keys::ANNO_DEFAULT_ROUTE_NIC;
use spiderpool_core::objects::{COORDINATOR, SpiderCoordinator, SpiderEndpointStatus};
use spiderpool_k8s::cluster::{ClusterView, lifecycle};
use spiderpool_k8s::kinds::{api_resource, from_dynamic};
use spiderpool_k8s::store::{KubeStore, KubeStoreOptions};

use crate::agent::ApiError;
use crate::service::{
    Detection, IpamService, add_response, addresses_text, check_conflict_release, decision_text,
    outcome_text, release_pod,
};

/// Settings of a Kubernetes-mode agent.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// This node's name.
    pub node: String,
    /// IPAM switches.
    pub ipam: IpamConfig,
    /// Detection flags handed to the plugin.
    pub detection: Detection,
    /// `SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS`.
    pub enable_release_conflict_ips: bool,
    /// Store tuning.
    pub store: KubeStoreOptions,
    /// How long to wait for the first lists at start-up.
    pub sync_timeout: Duration,
}

impl KubeOptions {
    /// Upstream's defaults for an agent on `node`.
    pub fn new(node: &str) -> Self {
        KubeOptions {
            node: node.to_owned(),
            ipam: IpamConfig::default(),
            detection: Detection::default(),
            enable_release_conflict_ips: true,
            store: KubeStoreOptions::new(node),
            sync_timeout: Duration::from_secs(60),
        }
    }
}

/// The Kubernetes-mode agent.
pub struct KubeAgent {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    view: ClusterView,
    store: Arc<KubeStore>,
    opts: KubeOptions,
    /// Watch cache of the SpiderCoordinators (asked on every coordinator ADD and DEL).
    coordinators: CoordinatorCache,
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError {
        status: 500,
        message: message.into(),
    }
}

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError {
        status: 503,
        message: message.into(),
    }
}

/// An IPAM engine error as an API error: store failures are transient (503), the rest are
/// refusals (500).
fn engine_error(context: &str, e: &IpamError) -> ApiError {
    match e {
        IpamError::Store { .. } | IpamError::RetriesExhausted { .. } => {
            unavailable(format!("{context}: {e}"))
        }
        _ => internal(format!("{context}: {e}")),
    }
}

fn k8s_error(context: &str, e: &spiderpool_k8s::Error) -> ApiError {
    if e.is_transient() {
        unavailable(format!("{context}: {e}"))
    } else {
        internal(format!("{context}: {e}"))
    }
}

impl KubeAgent {
    /// Upstream refuses to release a conflicting address of a StatefulSet or KubeVirt pod
    /// (522): the address is the pod's identity, kept across re-creation, and a fresh one
    /// would break that.
    fn refuse_stateful_release(&self, key: &EndpointKey) -> Result<(), ApiError> {
        let ep = self
            .store
            .endpoint(key)
            .map_err(|e| k8s_error("failed to read the SpiderEndpoint", &e))?;
        let kind = ep
            .as_ref()
            .and_then(|e| e.status.as_ref())
            .map(|s| s.owner_controller_type.as_str())
            .unwrap_or_default();
        let stateful = (kind == KIND_STATEFULSET && self.opts.ipam.enable_statefulset)
            || (kind == KIND_VMI && self.opts.ipam.enable_kubevirt_static_ip);
        if stateful {
            return Err(ApiError {
                status: STATUS_STATEFUL_RELEASE_FORBIDDEN,
                message: format!(
                    "pod {key} is owned by a {kind}: its addresses are kept across \
                     re-creation and are not released after a failed detection"
                ),
            });
        }
        Ok(())
    }

    /// Connects (`kubeconfig`, else `$KUBECONFIG`, else in-cluster), starts the caches and
    /// the store, and returns once they hold the cluster's current state.
    pub fn start(kubeconfig: Option<&std::path::Path>, opts: KubeOptions) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let client = rt
            .block_on(spiderpool_k8s::client::connect(kubeconfig))
            .map_err(|e| e.to_string())?;
        let view = rt
            .block_on(ClusterView::start(
                client.clone(),
                &opts.node,
                opts.sync_timeout,
            ))
            .map_err(|e| e.to_string())?;
        let store = KubeStore::start(
            rt.handle().clone(),
            client.clone(),
            opts.store.clone(),
            opts.sync_timeout,
        )
        .map_err(|e| e.to_string())?;
        let coordinators = CoordinatorCache::start(rt.handle(), &client);
        Ok(KubeAgent {
            rt,
            client,
            view,
            store: Arc::new(store),
            opts,
            coordinators,
        })
    }

    /// The store (traffic counters, pools as seen).
    pub fn store(&self) -> &KubeStore {
        &self.store
    }

    fn request_for(&self, args: &IpamAddArgs) -> Result<AllocateRequest, ApiError> {
        let key = format!("{}/{}", args.pod_namespace, args.pod_name);
        let pod = self
            .rt
            .block_on(
                self.view
                    .pod(&args.pod_namespace, &args.pod_name, &args.pod_uid),
            )
            .map_err(|e| k8s_error(&format!("failed to get pod {key}"), &e))?
            .ok_or_else(|| internal(format!("failed to get pod {key}: not found")))?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !args.pod_uid.is_empty() && uid != args.pod_uid {
            return Err(internal(format!(
                "pod {key} has UID {uid}, not {} as the runtime says: the sandbox belongs to a \
                 pod that no longer exists",
                args.pod_uid
            )));
        }
        if !pod_is_alive(&lifecycle(&pod)) {
            return Err(internal(format!("dead Pod {key}: no allocation")));
        }
        let info = self
            .rt
            .block_on(self.view.pod_info(&pod))
            .map_err(|e| k8s_error(&format!("pod {key}"), &e))?;
        let (namespace_labels, namespace_annotations) = self.view.namespace(&args.pod_namespace);
        Ok(AllocateRequest {
            container_id: args.container_id.clone(),
            ifname: args.if_name.clone(),
            pod: info,
            namespace_labels,
            namespace_annotations,
            node_labels: self.view.node_labels(),
            default_ipv4_ippool: args.default_ipv4_ippool.clone(),
            default_ipv6_ippool: args.default_ipv6_ippool.clone(),
            clean_gateway: args.clean_gateway,
            match_master_subnet: args.match_master_subnet,
            config: self.opts.ipam.clone(),
            ..AllocateRequest::default()
        })
    }

    /// Whether the endpoint `key` belongs to a StatefulSet pod that is still a member of its
    /// StatefulSet (then its addresses wait for the pod's next incarnation).
    fn static_pod_valid(&self, key: &EndpointKey) -> Result<bool, ApiError> {
        let ep = self
            .store
            .endpoint(key)
            .map_err(|e| k8s_error(&format!("SpiderEndpoint {key}"), &e))?;
        let Some(status) = ep.and_then(|e| e.status) else {
            return Ok(false);
        };
        if !self.opts.ipam.enable_statefulset || status.owner_controller_type != KIND_STATEFULSET {
            return Ok(false);
        }
        let sts = self
            .rt
            .block_on(
                self.view
                    .statefulset(&key.namespace, &status.owner_controller_name),
            )
            .map_err(|e| k8s_error("StatefulSet", &e))?;
        Ok(match sts {
            Some((start, replicas)) => statefulset_pod_valid(
                &key.name,
                &status.owner_controller_name,
                start,
                Some(replicas),
            ),
            None => false,
        })
    }
}

impl IpamService for KubeAgent {
    fn add(&self, args: &IpamAddArgs) -> Result<IpamAddResponse, ApiError> {
        let pod_key = format!("{}/{}", args.pod_namespace, args.pod_name);
        let req = self.request_for(args).inspect_err(|e| {
            log::warn!("ADD {pod_key} {} {}: {e}", args.container_id, args.if_name);
        })?;
        let decision = self.store.allocate(&req).map_err(|e| {
            log::warn!("ADD {pod_key} {} {}: {e}", args.container_id, args.if_name);
            engine_error("failed to allocate IP addresses in standard mode", &e)
        })?;
        for w in &decision.warnings {
            log::warn!("ADD {pod_key} {}: {w}", args.if_name);
        }
        let resp = add_response(&decision, self.opts.detection);
        log::info!(
            "ADD {pod_key} {} {}: {}: {}",
            args.container_id,
            args.if_name,
            decision_text(decision.kind),
            addresses_text(&resp, &args.if_name)
        );
        Ok(resp)
    }

    fn del(&self, args: &IpamDelArgs) -> Result<(), ApiError> {
        let key = EndpointKey::new(args.pod_namespace.clone(), args.pod_name.clone());
        let pod = self
            .rt
            .block_on(self.view.read_pod(&args.pod_namespace, &args.pod_name))
            .map_err(|e| k8s_error(&format!("failed to get pod {key}"), &e))?;
        if let Some(p) = &pod
            && pod_is_alive(&lifecycle(p))
        {
            log::info!(
                "DEL {key} {} {}: the pod is alive, its addresses are kept",
                args.container_id,
                args.if_name
            );
            return Ok(());
        }
        let uid = pod
            .as_ref()
            .and_then(|p| p.metadata.uid.clone())
            .or_else(|| Some(args.pod_uid.clone()).filter(|u| !u.is_empty()));
        if uid.is_none() {
            log::info!("DEL {key}: no pod and no UID given; left to garbage collection");
            return Ok(());
        }
        let req = ReleaseRequest {
            container_id: args.container_id.clone(),
            ifname: args.if_name.clone(),
            endpoint: key.clone(),
            pod_uid: uid,
            pod_alive: false,
            static_pod_valid: self.static_pod_valid(&key)?,
            config: self.opts.ipam.clone(),
        };
        let decision = release_with_retry(self.store.as_ref(), &req, DEFAULT_MAX_ATTEMPTS)
            .map_err(|e| engine_error("failed to release IP addresses", &e))?;
        log::info!(
            "DEL {key} {} {}: {}",
            args.container_id,
            args.if_name,
            outcome_text(decision.outcome, &decision.released)
        );
        Ok(())
    }

    fn batch_del(&self, args: &IpamBatchDelArgs) -> Result<(), ApiError> {
        check_conflict_release(args, self.opts.enable_release_conflict_ips)?;
        let key = EndpointKey::new(args.pod_namespace.clone(), args.pod_name.clone());
        if args.is_release_conflict_ips {
            self.refuse_stateful_release(&key)?;
        }
        let decision = release_pod(self.store.as_ref(), &key, &args.pod_uid)
            .map_err(|e| engine_error("failed to release IP addresses", &e))?;
        log::info!(
            "batch release {key} {}: {}",
            args.container_id,
            outcome_text(decision.outcome, &decision.released)
        );
        Ok(())
    }

    /// Upstream's answer (spec §4.1): the SpiderCoordinator's live status and spec, with the
    /// pod's `ipam.spidernet.io/default-route-nic` annotation over `podDefaultRouteNIC`;
    /// refused (500) when there is no SpiderCoordinator, when it is not `Synced` (with its
    /// reason), or when the pod does not exist.
    fn coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<AgentCoordinatorConfig, ApiError> {
        let coordinator = self.rt.block_on(self.coordinators.current(&self.client))?;
        let pod = self
            .rt
            .block_on(self.view.pod(&args.pod_namespace, &args.pod_name, ""))
            .map_err(|e| k8s_error("pod", &e))?
            .ok_or_else(|| {
                internal(format!(
                    "pod {}/{} not found: the coordinator configuration is only given for \
                     existing pods",
                    args.pod_namespace, args.pod_name
                ))
            })?;
        let annotation = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNO_DEFAULT_ROUTE_NIC).cloned());
        AgentCoordinatorConfig::from_spider_coordinator(&coordinator, annotation.as_deref())
            .map_err(|e| internal(format!("spidercoordinator: {e}")))
    }

    fn workload_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SpiderEndpointStatus, ApiError> {
        let key = EndpointKey::new(namespace, name);
        self.store
            .endpoint(&key)
            .map_err(|e| k8s_error(&format!("SpiderEndpoint {key}"), &e))?
            .and_then(|e| e.status)
            .ok_or_else(|| ApiError {
                status: 404,
                message: format!("SpiderEndpoint {key} not found"),
            })
    }

    fn dump_json(&self) -> Result<serde_json::Value, ApiError> {
        let (writes, conflicts, reads) = self.store.traffic();
        Ok(json!({
            "mode": "kubernetes",
            "node": self.opts.node,
            "pools": self.store.pools(),
            "brokenPools": self.store.broken_pools(),
            "endpointsIndexed": self.store.endpoint_count(),
            "apiserver": {"writes": writes, "conflicts": conflicts, "reads": reads},
        }))
    }
}

/// How long a request waits for the coordinator cache's first list before reading directly.
const COORDINATOR_CACHE_WAIT: Duration = Duration::from_secs(2);

/// The SpiderCoordinators as a watch cache: one list and a watch instead of a read per
/// coordinator call.
struct CoordinatorCache {
    store: Store<DynamicObject>,
}

impl CoordinatorCache {
    fn start(rt: &tokio::runtime::Handle, client: &kube::Client) -> Self {
        let resource = api_resource(&COORDINATOR);
        let writer = Writer::new(resource.clone());
        let store = writer.as_reader();
        let api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &resource);
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o| o.managed_fields_mut().clear())
            .reflect(writer)
            .applied_objects();
        rt.spawn(async move {
            let mut stream = stream.boxed();
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    log::warn!("SpiderCoordinator watch: {e}");
                }
            }
        });
        CoordinatorCache { store }
    }

    /// The coordinator the agent answers from: `default` when it exists, else the first by
    /// name (upstream takes the first one its cache lists). Read directly while the cache
    /// has not had its first list.
    async fn current(&self, client: &kube::Client) -> Result<SpiderCoordinator, ApiError> {
        let cached = tokio::time::timeout(COORDINATOR_CACHE_WAIT, self.store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok());
        let objects: Vec<DynamicObject> = if cached {
            self.store.state().iter().map(|o| (**o).clone()).collect()
        } else {
            let api: kube::Api<DynamicObject> =
                kube::Api::all_with(client.clone(), &api_resource(&COORDINATOR));
            api.list(&kube::api::ListParams::default())
                .await
                .map_err(|e| unavailable(format!("spidercoordinator: list: {e}")))?
                .items
        };
        let chosen = objects
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some("default"))
            .or_else(|| objects.iter().min_by_key(|o| o.metadata.name.clone()))
            .ok_or_else(|| {
                internal("spidercoordinator: no SpiderCoordinator exists (spiderpool-init creates `default`)")
            })?;
        from_dynamic(chosen).map_err(|e| internal(format!("spidercoordinator: {e}")))
    }
}
