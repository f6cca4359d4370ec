//! Pool filters (§3.6) and their reasons, and the NAD a NIC is served by (for `multusName`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use super::pool_state::PoolState;
use super::request::AllocateRequest;
use crate::ip::IpFamily;
use crate::meta::LabelSelector;
use crate::objects::keys::{
    AFFINITY_APP_API_GROUP, AFFINITY_APP_API_VERSION, AFFINITY_APP_KIND, AFFINITY_APP_NAME,
    AFFINITY_APP_NAMESPACE, ANNO_MULTUS_DEFAULT_NETWORK, ANNO_MULTUS_NETWORKS,
    LABEL_OWNER_APPLICATION_NAME,
};

/// Why a pool was not used for a NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// The pool name matches no pool.
    NotFound,
    /// The pool is being deleted.
    Terminating,
    /// `spec.disable: true`.
    Disabled,
    /// The pool is of the other family.
    WrongFamily {
        /// The pool's family.
        pool: IpFamily,
    },
    /// `spec.nodeName` does not list the pod's node.
    NodeName {
        /// The pod's node.
        node: String,
        /// `spec.nodeName`.
        allowed: Vec<String>,
    },
    /// `spec.nodeAffinity` does not match the node's labels.
    NodeAffinity {
        /// The pod's node.
        node: String,
        /// The selector as JSON.
        selector: String,
    },
    /// `spec.namespaceName` does not list the pod's namespace.
    NamespaceName {
        /// The pod's namespace.
        namespace: String,
        /// `spec.namespaceName`.
        allowed: Vec<String>,
    },
    /// `spec.namespaceAffinity` does not match the namespace's labels.
    NamespaceAffinity {
        /// The pod's namespace.
        namespace: String,
        /// The selector as JSON.
        selector: String,
    },
    /// `spec.podAffinity` does not match the pod's labels (or, for an auto-created pool, the
    /// pod's top controller).
    PodAffinity {
        /// The selector as JSON.
        selector: String,
    },
    /// `spec.multusName` does not list the NAD of the NIC (or that NAD is unknown).
    MultusName {
        /// The NIC's NAD (`ns/name`), or why it is unknown.
        nad: Result<String, String>,
        /// `spec.multusName`, bare names resolved.
        allowed: Vec<String>,
    },
    /// `match_master_subnet`: no address of the master interface lies in `spec.subnet`.
    MasterSubnet {
        /// `spec.subnet`.
        subnet: String,
    },
    /// No free address left.
    Exhausted,
    /// The spec cannot be used.
    InvalidSpec(String),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::NotFound => write!(f, "not found"),
            RejectReason::Terminating => write!(f, "terminating"),
            RejectReason::Disabled => write!(f, "disabled"),
            RejectReason::WrongFamily { pool } => write!(f, "wrong family: the pool is {pool}"),
            RejectReason::NodeName { node, allowed } => {
                write!(f, "nodeName {allowed:?} does not list node {node}")
            }
            RejectReason::NodeAffinity { node, selector } => {
                write!(f, "nodeAffinity {selector} does not match node {node}")
            }
            RejectReason::NamespaceName { namespace, allowed } => {
                write!(
                    f,
                    "namespaceName {allowed:?} does not list namespace {namespace}"
                )
            }
            RejectReason::NamespaceAffinity {
                namespace,
                selector,
            } => write!(
                f,
                "namespaceAffinity {selector} does not match namespace {namespace}"
            ),
            RejectReason::PodAffinity { selector } => {
                write!(f, "podAffinity {selector} does not match the pod")
            }
            RejectReason::MultusName { nad, allowed } => match nad {
                Ok(nad) => write!(f, "multusName {allowed:?} does not list NAD {nad}"),
                Err(why) => write!(f, "multusName {allowed:?} set but {why}"),
            },
            RejectReason::MasterSubnet { subnet } => write!(
                f,
                "no address of the master interface is in subnet {subnet}"
            ),
            RejectReason::Exhausted => write!(f, "pool exhausted (all IP addresses used out)"),
            RejectReason::InvalidSpec(why) => write!(f, "invalid spec: {why}"),
        }
    }
}

/// A pool and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRejection {
    /// The pool name.
    pub pool: String,
    /// Why.
    pub reason: RejectReason,
}

impl fmt::Display for PoolRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPPool {}: {}", self.pool, self.reason)
    }
}

/// `a b c`: the pool names of `rejections` (used by error messages).
pub fn rejected_names(rejections: &[PoolRejection]) -> String {
    rejections
        .iter()
        .map(|r| r.pool.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `IPPool a: reason; IPPool b: reason` (used by error messages).
pub fn rejection_reasons(rejections: &[PoolRejection]) -> String {
    rejections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn selector_text(s: &LabelSelector) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Whether `ifname` is the pod's first NIC (`eth0`, or `0` in positional multi-NIC mode).
pub fn is_first_nic(ifname: &str) -> bool {
    ifname == "eth0" || ifname == "0"
}

#[derive(Deserialize)]
struct NetworkSelection {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    interface: String,
}

/// Parses a Multus network list (`k8s.v1.cni.cncf.io/networks`): a JSON list of
/// `{name, namespace, interface}` or a comma list of `[ns/]name[@ifname]`. Returns
/// `(namespace, name, interface)` with empty strings for absent parts.
pub fn parse_multus_networks(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let t = text.trim();
    if t.starts_with('[') {
        let v: Vec<NetworkSelection> = serde_json::from_str(t)
            .map_err(|e| format!("{ANNO_MULTUS_NETWORKS}: invalid JSON: {e}"))?;
        return Ok(v
            .into_iter()
            .map(|n| (n.namespace, n.name, n.interface))
            .collect());
    }
    let mut out = Vec::new();
    for item in t.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (rest, ifname) = item.split_once('@').unwrap_or((item, ""));
        let (ns, name) = rest.split_once('/').unwrap_or(("", rest));
        if name.is_empty() {
            return Err(format!(
                "{ANNO_MULTUS_NETWORKS}: empty network name in {item:?}"
            ));
        }
        out.push((ns.to_owned(), name.to_owned(), ifname.to_owned()));
    }
    Ok(out)
}

/// The NAD (`ns/name`) serving the request's NIC (§3.6 rule 5): the request's explicit NAD;
/// for the first NIC the pod's `v1.multus-cni.io/default-network`, else the cluster network;
/// for other NICs the matching entry of `k8s.v1.cni.cncf.io/networks` (entries without
/// interface are `net1`, `net2`...). `Err` says why it is unknown.
pub fn nic_network(req: &AllocateRequest) -> Result<String, String> {
    if let Some(nad) = &req.nad {
        return Ok(nad.clone());
    }
    let ifname = req.ifname.as_str();
    if is_first_nic(ifname) {
        let text = req
            .pod
            .annotation(ANNO_MULTUS_DEFAULT_NETWORK)
            .or(req.config.cluster_network.as_deref())
            .ok_or_else(|| {
                format!(
                    "the NAD of the first NIC is unknown: no {ANNO_MULTUS_DEFAULT_NETWORK} annotation and no cluster network configured"
                )
            })?;
        let first = parse_multus_networks(text)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{ANNO_MULTUS_DEFAULT_NETWORK}: empty"))?;
        let ns = if first.0.is_empty() {
            req.config.agent_namespace.clone()
        } else {
            first.0
        };
        return Ok(format!("{ns}/{}", first.1));
    }
    let text = req
        .pod
        .annotation(ANNO_MULTUS_NETWORKS)
        .ok_or_else(|| format!("the pod has no {ANNO_MULTUS_NETWORKS} annotation"))?;
    let nets = parse_multus_networks(text)?;
    for (i, (ns, name, iface)) in nets.into_iter().enumerate() {
        let iface = if iface.is_empty() {
            format!("net{}", i + 1)
        } else {
            iface
        };
        if iface == ifname || ifname.parse::<usize>().ok() == Some(i + 1) {
            let ns = if ns.is_empty() {
                req.pod.namespace.clone()
            } else {
                ns
            };
            return Ok(format!("{ns}/{name}"));
        }
    }
    Err(format!("no matched multus object for NIC {ifname}"))
}

/// Facts the filters compare pools against, computed once per NIC.
pub struct FilterContext<'a> {
    /// The request.
    pub req: &'a AllocateRequest,
    /// The NIC being filtered for.
    pub nic: &'a str,
    /// The NAD of that NIC, or why it is unknown.
    pub nad: Result<String, String>,
}

impl<'a> FilterContext<'a> {
    /// Context for `nic` of `req`.
    pub fn new(req: &'a AllocateRequest, nic: &'a str) -> Self {
        let nad = if nic == req.ifname {
            nic_network(req)
        } else {
            // Other NICs of a multi-NIC annotation: resolve as if that NIC were being added.
            let mut r = req.clone();
            r.ifname = nic.to_owned();
            r.nad = None;
            nic_network(&r)
        };
        FilterContext { req, nic, nad }
    }

    /// Checks `pool` for `family` against every rule of §3.6, in upstream's order; the first
    /// failing rule is the reason.
    pub fn check(&self, pool: &PoolState, family: IpFamily) -> Result<(), RejectReason> {
        let spec = pool.spec();
        let req = self.req;
        if pool.is_terminating() {
            return Err(RejectReason::Terminating);
        }
        if spec.is_disabled() {
            return Err(RejectReason::Disabled);
        }
        if pool.family() != family {
            return Err(RejectReason::WrongFamily {
                pool: pool.family(),
            });
        }
        if let Some(names) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
            if !names.contains(&req.pod.node) {
                return Err(RejectReason::NodeName {
                    node: req.pod.node.clone(),
                    allowed: names.clone(),
                });
            }
        } else if let Some(sel) = &spec.node_affinity
            && !sel.matches(&req.node_labels)
        {
            return Err(RejectReason::NodeAffinity {
                node: req.pod.node.clone(),
                selector: selector_text(sel),
            });
        }
        if let Some(names) = spec.namespace_name.as_ref().filter(|n| !n.is_empty()) {
            if !names.contains(&req.pod.namespace) {
                return Err(RejectReason::NamespaceName {
                    namespace: req.pod.namespace.clone(),
                    allowed: names.clone(),
                });
            }
        } else if let Some(sel) = &spec.namespace_affinity
            && !sel.matches(&req.namespace_labels)
        {
            return Err(RejectReason::NamespaceAffinity {
                namespace: req.pod.namespace.clone(),
                selector: selector_text(sel),
            });
        }
        if let Some(sel) = &spec.pod_affinity {
            let labels = if pool.labels().contains_key(LABEL_OWNER_APPLICATION_NAME) {
                controller_labels(req)
            } else {
                req.pod.labels.clone()
            };
            if !sel.matches(&labels) {
                return Err(RejectReason::PodAffinity {
                    selector: selector_text(sel),
                });
            }
        }
        // [QUIRK §3.6 rule 5 / §10 #22] Upstream removes every pool for the first NIC when its
        // NAD is unknown. Here only pools that actually restrict by multusName are affected.
        if let Some(allowed) = spec.multus_name.as_ref().filter(|m| !m.is_empty()) {
            let allowed: Vec<String> = allowed
                .iter()
                .map(|m| {
                    if m.contains('/') {
                        m.clone()
                    } else {
                        format!("{}/{m}", req.config.agent_namespace)
                    }
                })
                .collect();
            let ok = matches!(&self.nad, Ok(nad) if allowed.contains(nad));
            if !ok {
                return Err(RejectReason::MultusName {
                    nad: self.nad.clone(),
                    allowed,
                });
            }
        }
        if req.match_master_subnet
            && !req
                .master_addresses
                .iter()
                .any(|a: &IpAddr| pool.subnet().contains_ip(*a))
        {
            return Err(RejectReason::MasterSubnet {
                subnet: spec.subnet.clone(),
            });
        }
        Ok(())
    }
}

/// The labels an auto-created pool's podAffinity is compared with: the pod's top controller.
fn controller_labels(req: &AllocateRequest) -> BTreeMap<String, String> {
    let c = &req.pod.controller;
    let (group, version) = c.group_version();
    [
        (AFFINITY_APP_API_GROUP, group),
        (AFFINITY_APP_API_VERSION, version),
        (AFFINITY_APP_KIND, c.kind.as_str()),
        (AFFINITY_APP_NAMESPACE, c.namespace.as_str()),
        (AFFINITY_APP_NAME, c.name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Specificity rank of a pool (§3.7): lower is tried first. Compares, in order: podAffinity,
/// nodeName, nodeAffinity, namespaceName, namespaceAffinity, multusName (set before unset).
pub fn priority_key(pool: &PoolState) -> [bool; 6] {
    let s = pool.spec();
    let nonempty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    [
        s.pod_affinity.is_none(),
        !nonempty(&s.node_name),
        s.node_affinity.is_none(),
        !nonempty(&s.namespace_name),
        s.namespace_affinity.is_none(),
        !nonempty(&s.multus_name),
    ]
}
