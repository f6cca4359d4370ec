//! Reading the inputs of the status from the apiserver (and, for `podCIDRType: auto`, the CNI
//! configuration directory). A resource that is not served (CRD not installed, API too old)
//! reads as `None`; any other apiserver failure is an error the caller retries.

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use spiderpool_core::objects::{COORDINATOR, CoordinatorStatus, PodCidrType};
use spiderpool_k8s::kinds::api_resource;

use super::cidrs::{self, K8sCidrs};
use super::status::Inputs;
use crate::{Error, Result};

/// Namespace and name of kubeadm's ConfigMap.
pub const KUBEADM_CONFIG: (&str, &str) = ("kube-system", "kubeadm-config");
/// Label selecting the kube-controller-manager static Pods.
pub const KCM_SELECTOR: &str = "component=kube-controller-manager";

/// Calico's `crd.projectcalico.org/v1` IPPool (cluster-scoped).
pub fn calico_ippool() -> ApiResource {
    ApiResource {
        group: "crd.projectcalico.org".to_owned(),
        version: "v1".to_owned(),
        api_version: "crd.projectcalico.org/v1".to_owned(),
        kind: "IPPool".to_owned(),
        plural: "ippools".to_owned(),
    }
}

/// Cilium's `cilium.io/v2alpha1` CiliumPodIPPool (cluster-scoped, multi-pool IPAM).
pub fn cilium_pod_ippool() -> ApiResource {
    ApiResource {
        group: "cilium.io".to_owned(),
        version: "v2alpha1".to_owned(),
        api_version: "cilium.io/v2alpha1".to_owned(),
        kind: "CiliumPodIPPool".to_owned(),
        plural: "ciliumpodippools".to_owned(),
    }
}

/// Which optional resources were served at the last read (to start their watches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Calico IPPools.
    pub calico: bool,
    /// CiliumPodIPPools.
    pub cilium_pools: bool,
    /// networking.k8s.io/v1 ServiceCIDRs.
    pub service_cidrs: bool,
}

/// The coordinator as read: the object (written back with its resourceVersion), its
/// `spec.podCIDRType` and its current status. Read from the raw JSON rather than the typed
/// object, so a coordinator whose other fields were written around the webhook with wrong
/// types still gets a status.
#[derive(Debug, Clone)]
pub struct Coordinator {
    /// The object.
    pub object: DynamicObject,
    /// `spec.podCIDRType` (a non-string value as its JSON text, so the reason can show it).
    pub pod_cidr_type: Option<String>,
    /// `status`, if it reads as a status (else it is rewritten).
    pub status: Option<CoordinatorStatus>,
}

impl Coordinator {
    fn from_object(object: DynamicObject) -> Self {
        let pod_cidr_type = match &object.data["spec"]["podCIDRType"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let status = serde_json::from_value(object.data["status"].clone()).ok();
        Coordinator {
            object,
            pod_cidr_type,
            status,
        }
    }
}

/// One read of everything the status depends on.
pub struct Snapshot {
    /// The coordinator as read.
    pub coordinator: Coordinator,
    /// The status inputs.
    pub inputs: Inputs,
    /// Which optional resources are served.
    pub served: Served,
}

/// A 404 on a list: the resource (Calico's, Cilium's, ServiceCIDRs) is not served here.
fn not_served(e: &kube::Error) -> bool {
    crate::error::is_not_found(e)
}

fn api_err(what: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |e| Error::api(what.to_owned(), e)
}

/// Where the sources live.
pub struct Places<'a> {
    /// The coordinator's name.
    pub coordinator: &'a str,
    /// `namespace/name` of Cilium's ConfigMap.
    pub cilium_config: &'a str,
    /// The CNI configuration directory.
    pub cni_dir: &'a Path,
}

/// Reads the coordinator and, if it exists, every input its status needs.
pub async fn read(client: &Client, at: &Places<'_>) -> Result<Option<Snapshot>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&COORDINATOR));
    let what = format!("get SpiderCoordinator {}", at.coordinator);
    let Some(obj) = api.get_opt(at.coordinator).await.map_err(api_err(&what))? else {
        return Ok(None);
    };
    let coordinator = Coordinator::from_object(obj);
    let mut served = Served::default();
    let mut inputs = Inputs {
        pod_cidr_type: coordinator.pod_cidr_type.clone(),
        cilium_config: (at.cilium_config.to_owned(), None),
        ..Inputs::default()
    };
    let mut ty = coordinator
        .pod_cidr_type
        .as_deref()
        .and_then(|t| PodCidrType::parse(t).ok());
    if ty == Some(PodCidrType::Auto) {
        let detected = detect_cni_dir(at.cni_dir);
        ty = detected.as_ref().ok().copied();
        inputs.detected_cni = Some(detected);
    }
    inputs.kubeadm = kubeadm(client).await?;
    inputs.kcm = kcm(client).await?;
    match ty {
        Some(PodCidrType::Calico) => {
            inputs.calico_pools = calico_pools(client).await?;
            served.calico = inputs.calico_pools.is_some();
        }
        Some(PodCidrType::Cilium) => {
            inputs.cilium_config.1 = cilium_config(client, at.cilium_config).await?;
            inputs.cilium_pools = cilium_pools(client).await?;
            served.cilium_pools = inputs.cilium_pools.is_some();
        }
        _ => {}
    }
    inputs.service_cidrs = service_cidrs(client).await?;
    served.service_cidrs = inputs.service_cidrs.is_some();
    Ok(Some(Snapshot {
        coordinator,
        inputs,
        served,
    }))
}

async fn kubeadm(client: &Client) -> Result<Option<K8sCidrs>> {
    let (ns, name) = KUBEADM_CONFIG;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(api_err("get ConfigMap kube-system/kubeadm-config"))?;
    Ok(cm.map(|cm| {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get("ClusterConfiguration"))
            .map(String::as_str)
            .unwrap_or("");
        cidrs::from_kubeadm_config(text)
    }))
}

async fn kcm(client: &Client) -> Result<Option<(String, K8sCidrs)>> {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels(KCM_SELECTOR))
        .await
        .map_err(api_err("list kube-controller-manager Pods"))?;
    // The list comes sorted by namespace and name; the first Pod's first container speaks.
    Ok(pods.items.first().map(|pod| {
        let name = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        let container = pod.spec.as_ref().and_then(|s| s.containers.first());
        let command = container
            .and_then(|c| c.command.clone())
            .unwrap_or_default();
        let args = container.and_then(|c| c.args.clone()).unwrap_or_default();
        (name, cidrs::from_kcm_flags(&command, &args))
    }))
}

/// Objects not being deleted, oldest first (then by name), as upstream orders them.
fn live_in_creation_order<K: ResourceExt>(mut items: Vec<K>) -> Vec<K> {
    items.retain(|o| o.meta().deletion_timestamp.is_none());
    items.sort_by(|a, b| {
        let ts = |o: &K| o.meta().creation_timestamp.clone().map(|Time(t)| t);
        ts(a)
            .cmp(&ts(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    items
}

async fn calico_pools(client: &Client) -> Result<Option<Vec<String>>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &calico_ippool());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) if not_served(&e) => return Ok(None),
        Err(e) => return Err(Error::api("list Calico IPPools", e)),
    };
    Ok(Some(
        live_in_creation_order(list.items)
            .iter()
            .filter(|p| p.data["spec"]["disabled"].as_bool() != Some(true))
            .filter_map(|p| p.data["spec"]["cidr"].as_str().map(str::to_owned))
            .collect(),
    ))
}

async fn cilium_config(client: &Client, namespace_name: &str) -> Result<Option<cidrs::CiliumIpam>> {
    let Some((ns, name)) = namespace_name.split_once('/') else {
        return Err(Error::Config(format!(
            "SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME {namespace_name:?} is not namespace/name"
        )));
    };
    let what = format!("get ConfigMap {namespace_name}");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(api_err(&what))?;
    Ok(cm.map(|cm| cidrs::cilium_ipam(&cm.data.unwrap_or_default())))
}

async fn cilium_pools(client: &Client) -> Result<Option<Vec<String>>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &cilium_pod_ippool());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) if not_served(&e) => return Ok(None),
        Err(e) => return Err(Error::api("list CiliumPodIPPools", e)),
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for pool in live_in_creation_order(list.items) {
        for family in ["ipv4", "ipv6"] {
            for c in strings(&pool.data["spec"][family]["cidrs"]) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    Ok(Some(out))
}

async fn service_cidrs(client: &Client) -> Result<Option<Vec<String>>> {
    let list = match Api::<ServiceCIDR>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l,
        Err(e) if not_served(&e) => return Ok(None),
        Err(e) => return Err(Error::api("list ServiceCIDRs", e)),
    };
    let mut out = Vec::new();
    for s in live_in_creation_order(list.items) {
        for c in s.spec.and_then(|s| s.cidrs).unwrap_or_default() {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(Some(out))
}

/// The default CNI from the files of `dir` (see [`cidrs::detect_cni`]); a directory that
/// cannot be read is an error naming it.
pub fn detect_cni_dir(dir: &Path) -> Result<PodCidrType, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("reading CNI directory {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading CNI directory {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".conf") || name.ends_with(".conflist")) {
            continue;
        }
        let path = entry.path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        files.push((name, text));
    }
    cidrs::detect_cni(&files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cni_dir_detection_reads_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_cni_dir(dir.path()).unwrap(), PodCidrType::None);
        std::fs::write(
            dir.path().join("00-multus.conf"),
            r#"{"name":"multus-cni-network"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-calico.conflist"),
            r#"{"name":"k8s-pod-network","plugins":[]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("calico-kubeconfig"), "not json").unwrap();
        assert_eq!(detect_cni_dir(dir.path()).unwrap(), PodCidrType::Calico);
        let missing = dir.path().join("absent");
        let err = detect_cni_dir(&missing).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
}
