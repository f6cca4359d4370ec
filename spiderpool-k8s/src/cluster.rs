//! The agent's view of the cluster around a pod: its Pod (watch cache of this node's pods,
//! with a direct read when the cache has not caught up), its Namespace, this Node, and the
//! top controller (§3.2 of upstream's behaviour: ReplicaSet → Deployment, Job → CronJob).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use spiderpool_core::ipam::{PodInfo, PodLifecycle, TopController};

use crate::error::{Error, Result};

/// Watch caches of this node's Pods, every Namespace, and this Node.
#[derive(Clone)]
pub struct ClusterView {
    client: Client,
    node: String,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    nodes: Store<Node>,
}

fn spawn_reflector<K>(rt: &tokio::runtime::Handle, api: Api<K>, cfg: watcher::Config) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher::watcher(api, cfg)
        .default_backoff()
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    rt.spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                log::warn!("watch: {e}");
            }
        }
    });
    reader
}

impl ClusterView {
    /// Starts the caches and waits (up to `timeout`) for their first lists.
    pub async fn start(client: Client, node: &str, timeout: Duration) -> Result<Self> {
        let rt = tokio::runtime::Handle::current();
        let pods = spawn_reflector(
            &rt,
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        );
        let namespaces = spawn_reflector(
            &rt,
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        );
        let nodes = spawn_reflector(
            &rt,
            Api::<Node>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={node}")),
        );
        let ready = async {
            pods.wait_until_ready().await?;
            namespaces.wait_until_ready().await?;
            nodes.wait_until_ready().await
        };
        match tokio::time::timeout(timeout, ready).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Timeout(format!("cluster caches: {e}"))),
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "Pod/Namespace/Node caches not filled after {timeout:?}"
                )));
            }
        }
        Ok(ClusterView {
            client,
            node: node.to_owned(),
            pods,
            namespaces,
            nodes,
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The pod, from the cache when it has it with `uid` (or any UID when `uid` is empty),
    /// else read from the apiserver (the cache may not have caught up with a new pod).
    pub async fn pod(&self, namespace: &str, name: &str, uid: &str) -> Result<Option<Pod>> {
        let cached = self.pods.get(&ObjectRef::new(name).within(namespace));
        if let Some(p) = cached
            && (uid.is_empty() || p.metadata.uid.as_deref() == Some(uid))
        {
            return Ok(Some((*p).clone()));
        }
        self.read_pod(namespace, name).await
    }

    /// The pod as the apiserver has it now (upstream's DEL reads it directly).
    pub async fn read_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| Error::api(format!("get pod {namespace}/{name}"), e))
    }

    /// Labels and annotations of namespace `name` (empty when unknown).
    pub fn namespace(&self, name: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        self.namespaces
            .get(&ObjectRef::new(name))
            .map(|n| (n.labels().clone(), n.annotations().clone()))
            .unwrap_or_default()
    }

    /// Labels of this node (empty when the Node object is not there).
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        self.nodes
            .get(&ObjectRef::new(&self.node))
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    }

    /// The IPAM engine's view of `pod`.
    pub async fn pod_info(&self, pod: &Pod) -> Result<PodInfo> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let controller = self.top_controller(pod).await?;
        Ok(PodInfo {
            namespace,
            name,
            uid,
            labels: pod.labels().clone(),
            annotations: pod.annotations().clone(),
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| self.node.clone()),
            controller,
        })
    }

    /// The pod's top controller: no controller → itself; ReplicaSet → its Deployment; Job →
    /// its CronJob; anything else (StatefulSet, DaemonSet, third-party kinds) → the owner.
    pub async fn top_controller(&self, pod: &Pod) -> Result<TopController> {
        let ns = pod.namespace().unwrap_or_default();
        let Some(owner) = controller_of(pod.owner_references()) else {
            return Ok(TopController::orphan(
                &ns,
                &pod.name_any(),
                pod.metadata.uid.as_deref().unwrap_or_default(),
            ));
        };
        let as_top = |o: &OwnerReference| TopController {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: ns.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        };
        let parent = match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("apps/v1", "ReplicaSet") => Api::<ReplicaSet>::namespaced(self.client.clone(), &ns)
                .get_opt(&owner.name)
                .await
                .map_err(|e| Error::api(format!("get ReplicaSet {ns}/{}", owner.name), e))?
                .and_then(|rs| controller_of(rs.owner_references()).cloned()),
            ("batch/v1", "Job") => Api::<Job>::namespaced(self.client.clone(), &ns)
                .get_opt(&owner.name)
                .await
                .map_err(|e| Error::api(format!("get Job {ns}/{}", owner.name), e))?
                .and_then(|j| controller_of(j.owner_references()).cloned()),
            _ => None,
        };
        Ok(as_top(parent.as_ref().unwrap_or(owner)))
    }

    /// `(ordinals start, replicas)` of StatefulSet `name`, `None` when it does not exist.
    pub async fn statefulset(&self, namespace: &str, name: &str) -> Result<Option<(u64, u64)>> {
        let sts = Api::<StatefulSet>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| Error::api(format!("get StatefulSet {namespace}/{name}"), e))?;
        Ok(sts.map(|s| {
            let spec = s.spec.unwrap_or_default();
            let start = spec
                .ordinals
                .and_then(|o| o.start)
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0);
            let replicas = spec
                .replicas
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(1);
            (start, replicas)
        }))
    }
}

fn controller_of(refs: &[OwnerReference]) -> Option<&OwnerReference> {
    refs.iter().find(|o| o.controller == Some(true))
}

/// The facts of `pod` that decide whether it is alive (upstream's release rule).
pub fn lifecycle(pod: &Pod) -> PodLifecycle {
    let status = pod.status.clone().unwrap_or_default();
    PodLifecycle {
        phase: status.phase.unwrap_or_default(),
        reason: status.reason.unwrap_or_default(),
        restart_policy: pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".to_owned()),
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}
