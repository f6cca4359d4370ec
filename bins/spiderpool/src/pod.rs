//! Who the pod is: Kubernetes identity from `CNI_ARGS`, with local-mode fallbacks, and the pod
//! labels/annotations a local-mode agent needs (there is no apiserver to ask).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use spiderpool_core::agentapi::LocalPodInfo;
use spiderpool_core::cni::{CniEnv, CniError, NetConf};

/// Namespace used when `CNI_ARGS` has no `K8S_POD_NAMESPACE`.
pub const LOCAL_NAMESPACE: &str = "default";

/// The pod an attachment belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`, else `default`.
    pub namespace: String,
    /// `K8S_POD_NAME`, else the container ID.
    pub name: String,
    /// `K8S_POD_UID`, else the container ID.
    pub uid: String,
}

impl PodIdentity {
    /// Reads `CNI_ARGS`. Each missing key falls back on its own, so that a runtime without
    /// Kubernetes (plain containerd, podman, `cnitool`) still gives a stable identity: the
    /// container ID names the "pod" and is its UID. Keys that are present must be valid
    /// Kubernetes names ([`spiderpool_core::cni::CniArgs::validate_pod_identity`], code 4).
    pub fn from_env(env: &CniEnv) -> Result<Self, CniError> {
        let args = env.args();
        args.validate_pod_identity()?;
        let cid = env.container_id().unwrap_or_default();
        let or_cid = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or(cid).to_owned();
        Ok(Self {
            namespace: args
                .k8s_pod_namespace()
                .filter(|s| !s.is_empty())
                .unwrap_or(LOCAL_NAMESPACE)
                .to_owned(),
            name: or_cid(args.k8s_pod_name()),
            uid: or_cid(args.k8s_pod_uid()),
        })
    }
}

/// The pod's labels and annotations from the network configuration, for a local-mode agent:
///
/// * `runtimeConfig.podLabels` / `runtimeConfig.podAnnotations` (capability arguments a
///   runtime passes), then
/// * `args.cni.labels` / `args.cni.annotations` (the CNI `args` convention), which win on a
///   key present in both.
///
/// Values must be strings (code 7 naming the key otherwise). `None` when nothing is given.
pub fn local_pod_info(conf: &NetConf) -> Result<Option<LocalPodInfo>, CniError> {
    let mut info = LocalPodInfo::default();
    if let Some(rc) = &conf.runtime_config {
        merge(
            &mut info.labels,
            rc.get("podLabels"),
            "runtimeConfig.podLabels",
        )?;
        merge(
            &mut info.annotations,
            rc.get("podAnnotations"),
            "runtimeConfig.podAnnotations",
        )?;
    }
    match conf.args.as_ref().and_then(|a| a.get("cni")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(cni)) => {
            merge(&mut info.labels, cni.get("labels"), "args.cni.labels")?;
            merge(
                &mut info.annotations,
                cni.get("annotations"),
                "args.cni.annotations",
            )?;
        }
        Some(_) => {
            return Err(CniError::invalid_config(
                "invalid network configuration key \"args.cni\": expected an object",
            ));
        }
    }
    Ok((!info.labels.is_empty() || !info.annotations.is_empty()).then_some(info))
}

fn merge(
    into: &mut BTreeMap<String, String>,
    value: Option<&Value>,
    key: &str,
) -> Result<(), CniError> {
    let map: &Map<String, Value> = match value {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(CniError::invalid_config(format!(
                "invalid network configuration key {key:?}: expected an object of strings"
            )));
        }
    };
    for (k, v) in map {
        let Value::String(s) = v else {
            return Err(CniError::invalid_config(format!(
                "invalid network configuration key \"{key}.{k}\": expected a string"
            )));
        };
        into.insert(k.clone(), s.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(args: &str) -> CniEnv {
        CniEnv::from_vars([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "cid1"),
            ("CNI_NETNS", "/var/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_ARGS", args),
        ])
        .unwrap()
    }

    #[test]
    fn identity_from_cni_args_or_container_id() {
        let p = PodIdentity::from_env(&env(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_UID=u-1",
        ))
        .unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
            ("ns", "web-0", "u-1")
        );
        let p = PodIdentity::from_env(&env("")).unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
            ("default", "cid1", "cid1")
        );
        let p = PodIdentity::from_env(&env("K8S_POD_NAME=web-0")).unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
            ("default", "web-0", "cid1")
        );
    }

    #[test]
    fn forged_identities_are_refused_with_code_4() {
        for args in [
            "K8S_POD_NAME=a\nb",
            "K8S_POD_NAMESPACE=a/b;K8S_POD_NAME=c",
            "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b/c",
        ] {
            let e = PodIdentity::from_env(&env(args)).unwrap_err();
            assert_eq!(e.code, 4, "{args:?}");
        }
    }

    fn conf(extra: &str) -> NetConf {
        NetConf::parse(
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"macvlan"{extra}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn labels_and_annotations_from_args_and_runtime_config() {
        assert_eq!(local_pod_info(&conf("")).unwrap(), None);
        let info = local_pod_info(&conf(
            r#","runtimeConfig":{"podLabels":{"app":"rt","tier":"web"},"podAnnotations":{"a":"1"}},
               "args":{"cni":{"labels":{"app":"args"},"annotations":{"ipam.spidernet.io/ippool":"{\"ipv4\":[\"p\"]}"}}}"#,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(info.labels["app"], "args");
        assert_eq!(info.labels["tier"], "web");
        assert_eq!(info.annotations["a"], "1");
        assert_eq!(
            info.annotations["ipam.spidernet.io/ippool"],
            r#"{"ipv4":["p"]}"#
        );
    }

    #[test]
    fn non_string_values_name_the_key() {
        let e = local_pod_info(&conf(r#","args":{"cni":{"labels":{"app":1}}}"#)).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("args.cni.labels.app"), "{}", e.msg);
        let e = local_pod_info(&conf(r#","runtimeConfig":{"podAnnotations":[]}"#)).unwrap_err();
        assert!(e.msg.contains("runtimeConfig.podAnnotations"), "{}", e.msg);
    }
}
