//! Reading the cluster's CIDRs out of the places they live (pure text → lists): kubeadm's
//! `ClusterConfiguration`, kube-controller-manager flags, Cilium's ConfigMap, and the CNI
//! configuration directory (which default CNI is installed).
//!
//! Every reader keeps the entries that parse as CIDRs (host bits allowed, as Go's
//! `net.ParseCIDR`) and reports the ones that do not, so a caller can name them in a reason.

use spiderpool_core::ip::Cidr;
use spiderpool_core::objects::PodCidrType;

/// CIDRs read from one place, plus what was there but could not be used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList {
    /// The entries that parse, in the order written, duplicates dropped.
    pub cidrs: Vec<String>,
    /// The entries that do not parse, as written.
    pub invalid: Vec<String>,
}

impl CidrList {
    /// Splits `text` on commas and whitespace and sorts the entries into valid and invalid.
    pub fn parse(text: &str) -> Self {
        let mut list = CidrList::default();
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|e| e.trim_matches(|c| c == '"' || c == '\''))
            .filter(|e| !e.is_empty())
        {
            if Cidr::parse(entry).is_ok() {
                if !list.cidrs.iter().any(|c| c == entry) {
                    list.cidrs.push(entry.to_owned());
                }
            } else {
                list.invalid.push(entry.to_owned());
            }
        }
        list
    }

    /// Appends `other`'s entries (duplicates dropped).
    pub fn extend(&mut self, other: CidrList) {
        for c in other.cidrs {
            if !self.cidrs.contains(&c) {
                self.cidrs.push(c);
            }
        }
        self.invalid.extend(other.invalid);
    }

    /// No usable entry.
    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty()
    }
}

/// The pod and service CIDRs Kubernetes itself was configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sCidrs {
    /// `networking.podSubnet` / `--cluster-cidr`.
    pub pods: CidrList,
    /// `networking.serviceSubnet` / `--service-cluster-ip-range`.
    pub services: CidrList,
}

/// Reads `networking.podSubnet` and `networking.serviceSubnet` from the text of kubeadm's
/// `ClusterConfiguration` (the `ClusterConfiguration` key of `kube-system/kubeadm-config`).
///
/// Like upstream, the first `podSubnet:` / `serviceSubnet:` key anywhere in the text wins and
/// its value is a comma list (dual stack). Block and flow YAML both work; text that is not
/// YAML at all simply has no such key.
pub fn from_kubeadm_config(cluster_configuration: &str) -> K8sCidrs {
    K8sCidrs {
        pods: key_value(cluster_configuration, "podSubnet")
            .map(CidrList::parse)
            .unwrap_or_default(),
        services: key_value(cluster_configuration, "serviceSubnet")
            .map(CidrList::parse)
            .unwrap_or_default(),
    }
}

/// The value after the first `key:` in `text` that is a whole YAML key: the first run of
/// non-blank characters, without the flow-style `,` / `}` that may end it.
fn key_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + key.len()..];
        let whole_key = before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',')
            && after.starts_with(':');
        if whole_key {
            let value = after[1..].trim_start_matches([' ', '\t']);
            let end = value
                .find(|c: char| c.is_whitespace() || c == '}')
                .unwrap_or(value.len());
            return Some(value[..end].trim_end_matches(','));
        }
        rest = after;
    }
    None
}

/// Reads `--cluster-cidr` and `--service-cluster-ip-range` from a kube-controller-manager
/// container's `command` then `args` (`--flag=value` and `--flag value` both accepted; the
/// first occurrence wins).
pub fn from_kcm_flags(command: &[String], args: &[String]) -> K8sCidrs {
    let words: Vec<&str> = command.iter().chain(args).map(String::as_str).collect();
    K8sCidrs {
        pods: flag_value(&words, "--cluster-cidr")
            .map(CidrList::parse)
            .unwrap_or_default(),
        services: flag_value(&words, "--service-cluster-ip-range")
            .map(CidrList::parse)
            .unwrap_or_default(),
    }
}

fn flag_value<'a>(words: &[&'a str], flag: &str) -> Option<&'a str> {
    words.iter().enumerate().find_map(|(i, w)| {
        if let Some(v) = w.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            Some(v)
        } else if *w == flag {
            words.get(i + 1).copied()
        } else {
            None
        }
    })
}

/// Cilium's IPAM configuration, from its ConfigMap's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiliumIpam {
    /// `cluster-pool` / `cluster-pool-v2beta`: the CIDRs in the ConfigMap.
    ClusterPool(CidrList),
    /// `multi-pool`: the CiliumPodIPPools.
    MultiPool,
    /// `kubernetes`: the Kubernetes pod CIDRs.
    Kubernetes,
    /// Any other mode (not supported).
    Other(String),
}

/// Cilium's IPAM mode and, for the cluster pool, its CIDRs, from `data` of its ConfigMap.
/// A missing `ipam` key is Cilium's own default, `cluster-pool`.
pub fn cilium_ipam(data: &std::collections::BTreeMap<String, String>) -> CiliumIpam {
    let mode = data.get("ipam").map(|s| s.trim()).unwrap_or("cluster-pool");
    match mode {
        "" | "cluster-pool" | "cluster-pool-v2beta" => {
            let mut list = CidrList::default();
            for key in ["cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"] {
                if let Some(v) = data.get(key) {
                    list.extend(CidrList::parse(v));
                }
            }
            CiliumIpam::ClusterPool(list)
        }
        "multi-pool" => CiliumIpam::MultiPool,
        "kubernetes" => CiliumIpam::Kubernetes,
        other => CiliumIpam::Other(other.to_owned()),
    }
}

/// The default CNI named by the first configuration file of a CNI configuration directory,
/// as upstream detects it for `podCIDRType: auto`: files ending `.conf` / `.conflist`, Multus'
/// own (`00-multus…`) skipped, sorted by name; the first one's `name` decides (`calico` or
/// `k8s-pod-network` → calico, `cilium` → cilium, `flannel` → cluster, else none).
///
/// `files` are (file name, content) pairs in any order. A first file that is not JSON with a
/// string `name` is an error naming it.
pub fn detect_cni(files: &[(String, String)]) -> Result<PodCidrType, String> {
    let mut candidates: Vec<&(String, String)> = files
        .iter()
        .filter(|(name, _)| {
            (name.ends_with(".conf") || name.ends_with(".conflist")) && !name.contains("00-multus")
        })
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    let Some((file, content)) = candidates.first() else {
        return Ok(PodCidrType::None);
    };
    let value: serde_json::Value = serde_json::from_str(content)
        .map_err(|e| format!("CNI configuration {file} is not JSON: {e}"))?;
    let name = value
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| format!("CNI configuration {file} has no \"name\""))?;
    Ok(match name {
        "calico" | "k8s-pod-network" => PodCidrType::Calico,
        "cilium" => PodCidrType::Cilium,
        "flannel" => PodCidrType::Cluster,
        _ => PodCidrType::None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    const KUBEADM: &str = "apiServer:
  certSANs:
  - 10.6.212.132
apiVersion: kubeadm.k8s.io/v1beta3
clusterName: cluster.local
kind: ClusterConfiguration
networking:
  dnsDomain: cluster.local
  podSubnet: 10.233.64.0/18,fd85:ee78:d8a6:8607::1:0000/112
  serviceSubnet: 10.233.0.0/18
";

    #[test]
    fn kubeadm_config_gives_pod_and_service_subnets() {
        let c = from_kubeadm_config(KUBEADM);
        assert_eq!(
            c.pods.cidrs,
            strings(&["10.233.64.0/18", "fd85:ee78:d8a6:8607::1:0000/112"])
        );
        assert_eq!(c.services.cidrs, strings(&["10.233.0.0/18"]));
        assert!(c.pods.invalid.is_empty() && c.services.invalid.is_empty());
    }

    #[test]
    fn kubeadm_config_in_flow_style_and_quoted() {
        let c = from_kubeadm_config(
            "{kind: ClusterConfiguration, networking: {podSubnet: \"10.244.0.0/16\", serviceSubnet: 10.96.0.0/12}}",
        );
        assert_eq!(c.pods.cidrs, strings(&["10.244.0.0/16"]));
        assert_eq!(c.services.cidrs, strings(&["10.96.0.0/12"]));
    }

    #[test]
    fn kubeadm_config_garbage_or_bad_values() {
        let c = from_kubeadm_config("}}} not yaml {{{ mypodSubnet: 10.0.0.0/8");
        assert!(c.pods.is_empty() && c.pods.invalid.is_empty(), "{c:?}");
        assert!(c.services.is_empty());
        let c = from_kubeadm_config("networking:\n  podSubnet: 10.0.0.0/33,10.1.0.0/16\n");
        assert_eq!(c.pods.cidrs, strings(&["10.1.0.0/16"]));
        assert_eq!(c.pods.invalid, strings(&["10.0.0.0/33"]));
        let c = from_kubeadm_config("networking:\n  podSubnet:\n  serviceSubnet: x\n");
        assert!(c.pods.is_empty());
        assert_eq!(c.services.invalid, strings(&["x"]));
    }

    #[test]
    fn kcm_flags_in_command_or_args() {
        let c = from_kcm_flags(
            &strings(&[
                "kube-controller-manager",
                "--allocate-node-cidrs=true",
                "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
            ]),
            &strings(&["--service-cluster-ip-range", "10.96.0.0/12"]),
        );
        assert_eq!(
            c.pods.cidrs,
            strings(&["10.244.0.0/16", "fd00:10:244::/56"])
        );
        assert_eq!(c.services.cidrs, strings(&["10.96.0.0/12"]));
        let none = from_kcm_flags(
            &strings(&["kube-controller-manager", "--cluster-cidr"]),
            &[],
        );
        assert!(none.pods.is_empty() && none.services.is_empty());
        // A longer flag with the same prefix is not the flag.
        let other = from_kcm_flags(&strings(&["--cluster-cidr-extra=10.0.0.0/8"]), &[]);
        assert!(other.pods.is_empty());
    }

    #[test]
    fn cilium_modes() {
        let data = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(
            cilium_ipam(&data(&[
                ("ipam", "cluster-pool"),
                ("cluster-pool-ipv4-cidr", "10.0.0.0/8"),
                ("cluster-pool-ipv6-cidr", "fd00::/104"),
            ])),
            CiliumIpam::ClusterPool(CidrList {
                cidrs: strings(&["10.0.0.0/8", "fd00::/104"]),
                invalid: vec![]
            })
        );
        assert!(matches!(
            cilium_ipam(&data(&[("cluster-pool-ipv4-cidr", "10.0.0.0/8 10.1.0.0/16")])),
            CiliumIpam::ClusterPool(l) if l.cidrs.len() == 2
        ));
        assert_eq!(
            cilium_ipam(&data(&[("ipam", "multi-pool")])),
            CiliumIpam::MultiPool
        );
        assert_eq!(
            cilium_ipam(&data(&[("ipam", "kubernetes")])),
            CiliumIpam::Kubernetes
        );
        assert_eq!(
            cilium_ipam(&data(&[("ipam", "eni")])),
            CiliumIpam::Other("eni".to_owned())
        );
    }

    #[test]
    fn cni_detection_follows_the_first_file() {
        let f = |n: &str, c: &str| (n.to_owned(), c.to_owned());
        assert_eq!(detect_cni(&[]).unwrap(), PodCidrType::None);
        let files = [
            f("00-multus.conf", r#"{"name":"multus-cni-network"}"#),
            f("20-x.conflist", r#"{"name":"other"}"#),
            f("10-calico.conflist", r#"{"name":"k8s-pod-network"}"#),
            f("05-readme.txt", "hello"),
        ];
        assert_eq!(detect_cni(&files).unwrap(), PodCidrType::Calico);
        assert_eq!(
            detect_cni(&[f("05-cilium.conflist", r#"{"name":"cilium"}"#)]).unwrap(),
            PodCidrType::Cilium
        );
        assert_eq!(
            detect_cni(&[f("10-flannel.conflist", r#"{"name":"flannel"}"#)]).unwrap(),
            PodCidrType::Cluster
        );
        let err = detect_cni(&[f("10-bad.conf", "{")]).unwrap_err();
        assert!(err.contains("10-bad.conf"), "{err}");
    }
}
