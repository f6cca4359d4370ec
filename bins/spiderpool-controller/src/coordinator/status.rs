//! What the SpiderCoordinator's status should say, from what was found in the cluster (pure).
//!
//! [`compute`] follows upstream's `updatePodAndServerCIDR` (spec §5.2) with one deliberate
//! difference: the Kubernetes CIDRs (kubeadm-config, else kube-controller-manager flags) are
//! required only where they are used, i.e. the pod CIDRs for `podCIDRType: cluster` (and
//! Cilium's `kubernetes` IPAM) and the service CIDRs when the cluster serves no ServiceCIDR
//! objects. Upstream is `NotReady` without them whatever the type, even when Calico and the
//! ServiceCIDR API already give every answer.

use spiderpool_core::objects::{CoordinatorStatus, PHASE_NOT_READY, PHASE_SYNCED, PodCidrType};

use super::cidrs::{CidrList, CiliumIpam, K8sCidrs};

/// Everything read from the cluster for one recompute. `None` means "not there" (object
/// absent, CRD or API not served); apiserver failures never get here (the caller retries).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `spec.podCIDRType` as written.
    pub pod_cidr_type: Option<String>,
    /// The CNI found in the CNI configuration directory (only read for `auto`); `Err` says
    /// why it could not be read.
    pub detected_cni: Option<Result<PodCidrType, String>>,
    /// `kube-system/kubeadm-config`'s ClusterConfiguration, when the ConfigMap exists.
    pub kubeadm: Option<K8sCidrs>,
    /// The first kube-controller-manager Pod's flags (`<namespace>/<name>`, CIDRs), when such
    /// a Pod exists.
    pub kcm: Option<(String, K8sCidrs)>,
    /// `spec.cidr` of the enabled, not deleting Calico IPPools in creation order, when the
    /// IPPool CRD is served.
    pub calico_pools: Option<Vec<String>>,
    /// Cilium's ConfigMap (`<namespace>/<name>`, its IPAM), the name also when it is absent.
    pub cilium_config: (String, Option<CiliumIpam>),
    /// `spec.ipv4.cidrs` + `spec.ipv6.cidrs` of the not deleting CiliumPodIPPools, when their
    /// CRD is served.
    pub cilium_pools: Option<Vec<String>>,
    /// `spec.cidrs` of the not deleting ServiceCIDR objects in creation order, when the
    /// networking.k8s.io/v1 ServiceCIDR API is served.
    pub service_cidrs: Option<Vec<String>>,
}

const KUBEADM: &str = "ConfigMap kube-system/kubeadm-config";
const FIX: &str = "create ConfigMap kube-system/kubeadm-config with networking.podSubnet and \
                   networking.serviceSubnet in its ClusterConfiguration";

/// The status the coordinator should have.
pub fn compute(inputs: &Inputs) -> CoordinatorStatus {
    match overlay_and_service(inputs) {
        Ok((overlay, service)) => CoordinatorStatus {
            phase: PHASE_SYNCED.to_owned(),
            reason: None,
            overlay_pod_cidr: Some(overlay),
            service_cidr: Some(service),
        },
        Err(reason) => CoordinatorStatus {
            phase: PHASE_NOT_READY.to_owned(),
            reason: Some(reason),
            overlay_pod_cidr: Some(Vec::new()),
            service_cidr: Some(Vec::new()),
        },
    }
}

fn overlay_and_service(inputs: &Inputs) -> Result<(Vec<String>, Vec<String>), String> {
    let Some(written) = inputs.pod_cidr_type.as_deref() else {
        return Err(
            "spec.podCIDRType is not set: set it to one of auto, cluster, calico, cilium, none"
                .to_owned(),
        );
    };
    let ty = PodCidrType::parse(written).map_err(|_| {
        format!(
            "spec.podCIDRType {written:?} is not one of auto, cluster, calico, cilium, none: set it"
        )
    })?;
    let ty = match ty {
        PodCidrType::Auto => match &inputs.detected_cni {
            Some(Ok(t)) => *t,
            Some(Err(e)) => return Err(format!("podCIDRType auto: {e}")),
            None => return Err("podCIDRType auto: the default CNI was not detected".to_owned()),
        },
        t => t,
    };
    let overlay = match ty {
        PodCidrType::Cluster | PodCidrType::Auto => k8s_pods(inputs)?,
        PodCidrType::None => Vec::new(),
        PodCidrType::Calico => inputs.calico_pools.clone().ok_or_else(|| {
            "podCIDRType calico: the Calico IPPool CRD (ippools.crd.projectcalico.org, v1) is \
             not installed"
                .to_owned()
        })?,
        PodCidrType::Cilium => cilium(inputs)?,
    };
    let service = match &inputs.service_cidrs {
        Some(list) if !list.is_empty() => list.clone(),
        _ => k8s_services(inputs)?,
    };
    Ok((overlay, service))
}

fn cilium(inputs: &Inputs) -> Result<Vec<String>, String> {
    let (name, config) = &inputs.cilium_config;
    match config {
        None => Err(format!(
            "podCIDRType cilium: ConfigMap {name} not found (SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME names it)"
        )),
        Some(CiliumIpam::ClusterPool(list)) if list.is_empty() => Err(format!(
            "podCIDRType cilium: ConfigMap {name} has no valid cluster-pool-ipv4-cidr or \
             cluster-pool-ipv6-cidr{}",
            invalid_note(list)
        )),
        Some(CiliumIpam::ClusterPool(list)) => Ok(list.cidrs.clone()),
        Some(CiliumIpam::MultiPool) => inputs.cilium_pools.clone().ok_or_else(|| {
            "podCIDRType cilium: the cilium multi-pool feature is unavailable (CRD \
             ciliumpodippools.cilium.io, v2alpha1, is not installed)"
                .to_owned()
        }),
        Some(CiliumIpam::Kubernetes) => k8s_pods(inputs),
        Some(CiliumIpam::Other(mode)) => Err(format!(
            "podCIDRType cilium: unsupported Cilium IPAM mode {mode:?} in ConfigMap {name} \
             (supported: cluster-pool, cluster-pool-v2beta, multi-pool, kubernetes)"
        )),
    }
}

fn k8s_pods(inputs: &Inputs) -> Result<Vec<String>, String> {
    k8s_list(
        inputs,
        |c| &c.pods,
        "the pod CIDR",
        "podSubnet",
        "--cluster-cidr",
    )
}

fn k8s_services(inputs: &Inputs) -> Result<Vec<String>, String> {
    let what = if inputs.service_cidrs.is_some() {
        "the service CIDR (no ServiceCIDR object exists)"
    } else {
        "the service CIDR (the networking.k8s.io/v1 ServiceCIDR API is not served)"
    };
    k8s_list(
        inputs,
        |c| &c.services,
        what,
        "serviceSubnet",
        "--service-cluster-ip-range",
    )
}

/// The kubeadm-config list if it has entries, else the kube-controller-manager's; the error
/// names each place looked at and what was wrong there.
fn k8s_list(
    inputs: &Inputs,
    pick: impl Fn(&K8sCidrs) -> &CidrList,
    what: &str,
    key: &str,
    flag: &str,
) -> Result<Vec<String>, String> {
    let mut why = Vec::new();
    match &inputs.kubeadm {
        Some(c) if !pick(c).is_empty() => return Ok(pick(c).cidrs.clone()),
        Some(c) => why.push(format!(
            "{KUBEADM} has no valid networking.{key} in its ClusterConfiguration{}",
            invalid_note(pick(c))
        )),
        None => why.push(format!("{KUBEADM} not found")),
    }
    match &inputs.kcm {
        Some((_, c)) if !pick(c).is_empty() => return Ok(pick(c).cidrs.clone()),
        Some((pod, c)) => why.push(format!(
            "kube-controller-manager Pod {pod} has no valid {flag}{}",
            invalid_note(pick(c))
        )),
        None => why.push(
            "no kube-controller-manager Pod (label component=kube-controller-manager) found"
                .to_owned(),
        ),
    }
    Err(format!("cannot find {what}: {}; {FIX}", why.join(", and ")))
}

fn invalid_note(list: &CidrList) -> String {
    if list.invalid.is_empty() {
        String::new()
    } else {
        format!(" (not CIDRs: {})", list.invalid.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::cidrs::{from_kcm_flags, from_kubeadm_config};
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn with_type(t: &str) -> Inputs {
        Inputs {
            pod_cidr_type: Some(t.to_owned()),
            cilium_config: ("kube-system/cilium-config".to_owned(), None),
            ..Inputs::default()
        }
    }

    fn kubeadm() -> Option<K8sCidrs> {
        Some(from_kubeadm_config(
            "networking:\n  podSubnet: 10.233.64.0/18\n  serviceSubnet: 10.233.0.0/18\n",
        ))
    }

    fn synced(s: &CoordinatorStatus) -> (Vec<String>, Vec<String>) {
        assert_eq!(s.phase, PHASE_SYNCED, "{s:?}");
        assert_eq!(s.reason, None);
        (
            s.overlay_pod_cidr.clone().unwrap(),
            s.service_cidr.clone().unwrap(),
        )
    }

    fn not_ready(s: &CoordinatorStatus) -> String {
        assert_eq!(s.phase, PHASE_NOT_READY, "{s:?}");
        assert_eq!(s.overlay_pod_cidr.as_deref(), Some(&[][..]));
        assert_eq!(s.service_cidr.as_deref(), Some(&[][..]));
        s.reason.clone().unwrap()
    }

    #[test]
    fn cluster_type_from_kubeadm_config() {
        let mut i = with_type("cluster");
        i.kubeadm = kubeadm();
        assert_eq!(
            synced(&compute(&i)),
            (v(&["10.233.64.0/18"]), v(&["10.233.0.0/18"]))
        );
    }

    #[test]
    fn service_cidr_objects_win_over_kubeadm() {
        let mut i = with_type("cluster");
        i.kubeadm = kubeadm();
        i.service_cidrs = Some(v(&["10.96.0.0/16", "fd00::/112"]));
        assert_eq!(synced(&compute(&i)).1, v(&["10.96.0.0/16", "fd00::/112"]));
        // An API with no objects falls back.
        i.service_cidrs = Some(vec![]);
        assert_eq!(synced(&compute(&i)).1, v(&["10.233.0.0/18"]));
    }

    #[test]
    fn kcm_flags_fill_what_kubeadm_lacks() {
        let mut i = with_type("cluster");
        i.kubeadm = Some(from_kubeadm_config(
            "networking:\n  serviceSubnet: 10.233.0.0/18\n",
        ));
        i.kcm = Some((
            "kube-system/kcm".to_owned(),
            from_kcm_flags(
                &v(&["kube-controller-manager", "--cluster-cidr=10.244.0.0/16"]),
                &[],
            ),
        ));
        assert_eq!(
            synced(&compute(&i)),
            (v(&["10.244.0.0/16"]), v(&["10.233.0.0/18"]))
        );
    }

    #[test]
    fn nothing_found_is_not_ready_naming_both_sources() {
        let r = not_ready(&compute(&with_type("cluster")));
        assert!(r.contains("pod CIDR"), "{r}");
        assert!(r.contains("kube-system/kubeadm-config not found"), "{r}");
        assert!(r.contains("no kube-controller-manager Pod"), "{r}");
        assert!(
            r.contains("create ConfigMap kube-system/kubeadm-config"),
            "{r}"
        );
    }

    #[test]
    fn garbage_kubeadm_config_is_named_with_its_bad_values() {
        let mut i = with_type("cluster");
        i.kubeadm = Some(from_kubeadm_config("networking: {podSubnet: 10.0.0.0/33}"));
        let r = not_ready(&compute(&i));
        assert!(r.contains("no valid networking.podSubnet"), "{r}");
        assert!(r.contains("10.0.0.0/33"), "{r}");
        i.kubeadm = Some(from_kubeadm_config("\u{0}garbage"));
        let r = not_ready(&compute(&i));
        assert!(r.contains("no valid networking.podSubnet"), "{r}");
    }

    #[test]
    fn calico_type_follows_the_pools_without_kubernetes_cidrs() {
        let mut i = with_type("calico");
        i.calico_pools = Some(v(&["10.222.64.0/18", "10.223.64.0/18"]));
        i.service_cidrs = Some(v(&["10.233.0.0/18"]));
        assert_eq!(
            synced(&compute(&i)),
            (
                v(&["10.222.64.0/18", "10.223.64.0/18"]),
                v(&["10.233.0.0/18"])
            )
        );
        i.calico_pools = None;
        let r = not_ready(&compute(&i));
        assert!(r.contains("ippools.crd.projectcalico.org"), "{r}");
        // Without the ServiceCIDR API the service CIDR must come from kubeadm / the KCM.
        i.calico_pools = Some(vec![]);
        i.service_cidrs = None;
        let r = not_ready(&compute(&i));
        assert!(r.contains("service CIDR"), "{r}");
        assert!(r.contains("ServiceCIDR API is not served"), "{r}");
    }

    #[test]
    fn none_type_and_bad_types() {
        let mut i = with_type("none");
        i.service_cidrs = Some(v(&["10.96.0.0/12"]));
        assert_eq!(synced(&compute(&i)), (vec![], v(&["10.96.0.0/12"])));
        i.pod_cidr_type = None;
        assert!(not_ready(&compute(&i)).contains("spec.podCIDRType is not set"));
        i.pod_cidr_type = Some("weave".to_owned());
        assert!(not_ready(&compute(&i)).contains("\"weave\""));
    }

    #[test]
    fn auto_uses_the_detected_cni() {
        let mut i = with_type("auto");
        i.service_cidrs = Some(v(&["10.96.0.0/12"]));
        i.calico_pools = Some(v(&["10.244.0.0/16"]));
        i.detected_cni = Some(Ok(PodCidrType::Calico));
        assert_eq!(synced(&compute(&i)).0, v(&["10.244.0.0/16"]));
        i.detected_cni = Some(Err("reading /etc/cni/net.d: denied".to_owned()));
        assert!(not_ready(&compute(&i)).contains("/etc/cni/net.d"));
    }

    #[test]
    fn cilium_modes_choose_their_source() {
        let mut i = with_type("cilium");
        i.service_cidrs = Some(v(&["10.96.0.0/12"]));
        assert!(not_ready(&compute(&i)).contains("kube-system/cilium-config not found"));
        i.cilium_config.1 = Some(CiliumIpam::ClusterPool(CidrList::parse("10.0.0.0/8")));
        assert_eq!(synced(&compute(&i)).0, v(&["10.0.0.0/8"]));
        i.cilium_config.1 = Some(CiliumIpam::MultiPool);
        assert!(not_ready(&compute(&i)).contains("multi-pool feature is unavailable"));
        i.cilium_pools = Some(v(&["10.10.0.0/16"]));
        assert_eq!(synced(&compute(&i)).0, v(&["10.10.0.0/16"]));
        i.cilium_config.1 = Some(CiliumIpam::Kubernetes);
        i.kubeadm = kubeadm();
        assert_eq!(synced(&compute(&i)).0, v(&["10.233.64.0/18"]));
        i.cilium_config.1 = Some(CiliumIpam::Other("eni".to_owned()));
        assert!(not_ready(&compute(&i)).contains("unsupported Cilium IPAM mode"));
    }
}
