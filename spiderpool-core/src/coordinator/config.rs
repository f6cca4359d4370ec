//! The coordinator's settings: the NAD plugin keys, the agent's answer, and their merge.
//!
//! Precedence (spec §4.1): a key set in the NAD wins; otherwise the SpiderCoordinator's value as
//! served by the agent (`GET /v1/coordinator/config`); otherwise the built-in default. An empty
//! string or empty list counts as unset, as upstream does.

use crate::coordinator::CoordinatorError;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::entries::{Family, MacAddr, parse_hex_bytes};

/// One policy route as written in NAD JSON or the SpiderCoordinator: `{"dst": "10.10.0.0/16",
/// "gw": "172.100.0.1"}`. `dst` may also be a single address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination, an IP or a CIDR.
    #[serde(default)]
    pub dst: String,
    /// Gateway IP.
    #[serde(default)]
    pub gw: String,
}

/// The coordinator plugin's keys in a NetworkAttachmentDefinition (upstream JSON names). Every
/// key is optional; other keys of the plugin entry (`type`, `cniVersion`, `prevResult`...) are
/// ignored here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NadCoordinatorConf {
    /// `auto`, `underlay`, `overlay`, `disable` (`disabled` accepted too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Name of the first NIC (default `eth0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_default_cni_nic: Option<String>,
    /// Cluster pod CIDRs routed via the host.
    #[serde(
        default,
        rename = "overlayPodCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub overlay_pod_cidr: Option<Vec<String>>,
    /// Service CIDRs routed via the host.
    #[serde(
        default,
        rename = "serviceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidr: Option<Vec<String>>,
    /// Extra CIDRs routed via the host (e.g. NodeLocal DNS `169.254.0.0/16`).
    #[serde(
        default,
        rename = "hijackCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub hijack_cidr: Option<Vec<String>>,
    /// Extra routes via the configured NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_routes: Option<Vec<RouteSpec>>,
    /// Two-byte MAC prefix, e.g. `0a:1b`.
    #[serde(
        default,
        rename = "podMACPrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_mac_prefix: Option<String>,
    /// Pod `net.ipv4.conf.all.rp_filter` (0, 1, 2; -1 leaves it alone).
    #[serde(
        default,
        rename = "podRPFilter",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_rp_filter: Option<i64>,
    /// Host policy table for pod routes (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rule_table: Option<i64>,
    /// txqueuelen of the configured NIC (0 = leave alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_queue_len: Option<i64>,
    /// Whether to tune routes (move defaults into per-NIC tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune_pod_routes: Option<bool>,
    /// NIC that keeps the pod's default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_default_route_nic: Option<String>,
    /// IPv4 address put on `veth0` as a /32 (underlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veth_link_address: Option<String>,
    /// MTU of the veth pair (underlay; must be > 0).
    #[serde(default, rename = "vethMTU", skip_serializing_if = "Option::is_none")]
    pub veth_mtu: Option<i64>,
    /// Parsed and ignored (removed upstream; the agent sets the host's rp_filter).
    #[serde(
        default,
        rename = "hostRPFilter",
        skip_serializing_if = "Option::is_none"
    )]
    pub host_rp_filter: Option<i64>,
    /// Parsed and ignored (done by the IPAM plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_gateway: Option<bool>,
    /// Parsed and ignored (done by the IPAM plugin).
    #[serde(
        default,
        rename = "detectIPConflict",
        skip_serializing_if = "Option::is_none"
    )]
    pub detect_ip_conflict: Option<bool>,
    /// Parsed and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_options: Option<serde_json::Value>,
    /// Parsed and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multus_nic_prefix: Option<String>,
    /// Logging options; used by the plugin binary, not by planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_options: Option<serde_json::Value>,
}

/// The agent's `GET /v1/coordinator/config` answer (upstream OpenAPI names). The real agent omits
/// zero values and sends `"policyRoutes": null`, so every field is optional.
/// `podDefaultRouteNIC` already holds the pod's `ipam.spidernet.io/default-route-nic` annotation
/// when the pod has one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCoordinatorConfig {
    /// SpiderCoordinator `spec.mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `status.overlayPodCIDR`.
    #[serde(
        default,
        rename = "overlayPodCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub overlay_pod_cidr: Option<Vec<String>>,
    /// `status.serviceCIDR`.
    #[serde(
        default,
        rename = "serviceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidr: Option<Vec<String>>,
    /// `spec.hijackCIDR`.
    #[serde(
        default,
        rename = "hijackCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub hijack_cidr: Option<Vec<String>>,
    /// `spec.policyRoutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_routes: Option<Vec<RouteSpec>>,
    /// `spec.podMACPrefix`.
    #[serde(
        default,
        rename = "podMACPrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_mac_prefix: Option<String>,
    /// `spec.tunePodRoutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune_pod_routes: Option<bool>,
    /// Pod annotation `ipam.spidernet.io/default-route-nic`, else `spec.podDefaultRouteNIC`.
    #[serde(
        default,
        rename = "podDefaultRouteNIC",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_default_route_nic: Option<String>,
    /// `spec.hostRuleTable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rule_table: Option<i64>,
    /// `spec.podRPFilter`.
    #[serde(
        default,
        rename = "podRPFilter",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_rp_filter: Option<i64>,
    /// `spec.txQueueLen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_queue_len: Option<i64>,
    /// `spec.vethLinkAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veth_link_address: Option<String>,
    /// `spec.vethMTU`.
    #[serde(default, rename = "vethMTU", skip_serializing_if = "Option::is_none")]
    pub veth_mtu: Option<i64>,
}

/// The coordinator mode as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Underlay for the first NIC or when `veth0` exists, else overlay.
    Auto,
    /// The pod's NICs are all underlay; `veth0` links the pod to the host.
    Underlay,
    /// The first NIC belongs to an overlay CNI (Calico, Cilium...).
    Overlay,
    /// Do nothing.
    #[serde(alias = "disabled")]
    Disable,
}

impl Mode {
    /// Parses a mode. Upstream's plugin only knows `disable`, while its CRD and Helm chart say
    /// `disabled` ("unknown tuneMode: disabled"); both spellings are accepted here.
    pub fn parse(text: &str) -> Result<Mode, CoordinatorError> {
        match text {
            "auto" => Ok(Mode::Auto),
            "underlay" => Ok(Mode::Underlay),
            "overlay" => Ok(Mode::Overlay),
            "disable" | "disabled" => Ok(Mode::Disable),
            other => Err(CoordinatorError::UnknownMode { mode: other.into() }),
        }
    }
}

/// A two-byte MAC prefix (`podMACPrefix`), unicast by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacPrefix(pub [u8; 2]);

impl MacPrefix {
    /// Parses `xx:yy` (or `xx-yy`). Uses the real unicast rule (lowest bit of the first byte clear),
    /// which the SpiderCoordinator webhook enforces; upstream's plugin regex instead rejects only a
    /// second hex digit `1`.
    pub fn parse(text: &str) -> Result<MacPrefix, CoordinatorError> {
        let bad = |reason: &str| CoordinatorError::Config {
            key: "podMACPrefix".into(),
            value: text.into(),
            reason: reason.into(),
        };
        let bytes = parse_hex_bytes::<2>(text)
            .ok_or_else(|| bad("expected two hex bytes such as \"0a:1b\""))?;
        if bytes[0] & 1 != 0 {
            return Err(bad(
                "the first byte is odd, which makes a multicast MAC; use an even first byte",
            ));
        }
        Ok(MacPrefix(bytes))
    }

    /// The MAC for a NIC whose first address is `addr`: the prefix, then the 4 IPv4 bytes or the
    /// last 4 IPv6 bytes (`0a:1b` + `10.6.212.145` = `0a:1b:0a:06:d4:91`).
    pub fn mac_for(&self, addr: IpAddr) -> MacAddr {
        let tail: [u8; 4] = match addr {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(a) => {
                let o = a.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        MacAddr([self.0[0], self.0[1], tail[0], tail[1], tail[2], tail[3]])
    }
}

impl Serialize for MacPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:02x}:{:02x}", self.0[0], self.0[1]))
    }
}

impl<'de> Deserialize<'de> for MacPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MacPrefix::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A typed policy route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRoute {
    /// Destination (a bare IP becomes a host prefix; host bits are cleared).
    pub dst: IpNet,
    /// Gateway, same family as `dst`.
    pub gw: IpAddr,
}

/// Where the default-route NIC setting came from; decides whether the pod annotation wins.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultRouteNic {
    /// Not set anywhere.
    #[default]
    Unset,
    /// Set in the NAD (`podDefaultRouteNic`): beats the pod annotation.
    Nad(String),
    /// From the agent (`podDefaultRouteNIC`: the pod annotation if the agent saw one, else the
    /// SpiderCoordinator spec).
    Coordinator(String),
}

/// The merged, validated coordinator configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoordinatorConfig {
    /// The mode as configured (resolved per NIC by [`super::resolve_mode`]).
    pub mode: Mode,
    /// The first NIC (`eth0`).
    pub pod_default_cni_nic: String,
    /// Cluster pod CIDRs.
    pub overlay_pod_cidr: Vec<IpNet>,
    /// Service CIDRs.
    pub service_cidr: Vec<IpNet>,
    /// Extra CIDRs via the host.
    pub hijack_cidr: Vec<IpNet>,
    /// Policy routes via the configured NIC.
    pub policy_routes: Vec<PolicyRoute>,
    /// MAC prefix for the configured NIC.
    pub pod_mac_prefix: Option<MacPrefix>,
    /// rp_filter to write in the pod; `None` leaves it unchanged (`-1`).
    pub pod_rp_filter: Option<u8>,
    /// Host policy table (default 500).
    pub host_rule_table: u32,
    /// txqueuelen for the configured NIC; `None` leaves it alone.
    pub tx_queue_len: Option<u32>,
    /// Whether routes are tuned.
    pub tune_pod_routes: bool,
    /// The default-route NIC and its origin.
    pub pod_default_route_nic: DefaultRouteNic,
    /// IPv4 address for `veth0` (/32).
    pub veth_link_address: Option<Ipv4Addr>,
    /// MTU of the veth pair.
    pub veth_mtu: u32,
}

/// The host rule table used when none is configured.
pub const DEFAULT_HOST_RULE_TABLE: u32 = 500;
/// The veth MTU used when none is configured.
pub const DEFAULT_VETH_MTU: u32 = 1500;

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            mode: Mode::Auto,
            pod_default_cni_nic: "eth0".into(),
            overlay_pod_cidr: Vec::new(),
            service_cidr: Vec::new(),
            hijack_cidr: Vec::new(),
            policy_routes: Vec::new(),
            pod_mac_prefix: None,
            pod_rp_filter: Some(0),
            host_rule_table: DEFAULT_HOST_RULE_TABLE,
            tx_queue_len: None,
            tune_pod_routes: true,
            pod_default_route_nic: DefaultRouteNic::Unset,
            veth_link_address: None,
            veth_mtu: DEFAULT_VETH_MTU,
        }
    }
}

impl CoordinatorConfig {
    /// The default-route NIC for a pod: the NAD value, else the pod annotation, else the
    /// coordinator's value.
    pub fn default_route_nic<'a>(&'a self, annotation: Option<&'a str>) -> Option<&'a str> {
        let annotation = annotation.filter(|a| !a.is_empty());
        match &self.pod_default_route_nic {
            DefaultRouteNic::Nad(nic) => Some(nic.as_str()),
            DefaultRouteNic::Coordinator(nic) => annotation.or(Some(nic.as_str())),
            DefaultRouteNic::Unset => annotation,
        }
    }

    /// overlayPodCIDR ++ serviceCIDR ++ hijackCIDR, in that order (spec §4.4 step 3).
    pub fn hijack_list(&self) -> Vec<IpNet> {
        let mut out = self.overlay_pod_cidr.clone();
        out.extend(self.service_cidr.iter().copied());
        out.extend(self.hijack_cidr.iter().copied());
        out
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn non_empty_list<T>(l: &Option<Vec<T>>) -> Option<&[T]> {
    l.as_deref().filter(|l| !l.is_empty())
}

fn bad(key: &str, value: impl ToString, reason: impl Into<String>) -> CoordinatorError {
    CoordinatorError::Config {
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_cidrs(key: &str, list: &[String]) -> Result<Vec<IpNet>, CoordinatorError> {
    list.iter()
        .map(|c| {
            c.trim()
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| bad(key, c, "not a CIDR such as 10.233.64.0/18"))
        })
        .collect()
}

fn parse_policy_route(r: &RouteSpec) -> Result<PolicyRoute, CoordinatorError> {
    let value = || format!("{{dst: {}, gw: {}}}", r.dst, r.gw);
    let dst = match r.dst.parse::<IpNet>() {
        Ok(n) => n.trunc(),
        Err(_) => r
            .dst
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| bad("policyRoutes", value(), "dst is neither an IP nor a CIDR"))?,
    };
    let gw: IpAddr =
        r.gw.parse()
            .map_err(|_| bad("policyRoutes", value(), "gw is not an IP address"))?;
    if Family::of_net(&dst) != Family::of(&gw) {
        return Err(bad(
            "policyRoutes",
            value(),
            "dst and gw are of different IP families",
        ));
    }
    Ok(PolicyRoute { dst, gw })
}

fn rp_filter(v: i64) -> Result<Option<u8>, CoordinatorError> {
    match v {
        -1 => Ok(None),
        0..=2 => Ok(Some(v as u8)),
        // Upstream writes other negative values verbatim and the sysctl write fails mid-ADD.
        _ => Err(bad(
            "podRPFilter",
            v,
            "must be 0, 1 or 2, or -1 to leave the pod's rp_filter unchanged",
        )),
    }
}

fn host_rule_table(v: i64) -> Result<u32, CoordinatorError> {
    match u32::try_from(v) {
        Ok(0) | Err(_) => Err(bad(
            "hostRuleTable",
            v,
            "must be a routing table number between 1 and 4294967295",
        )),
        Ok(253..=255) => Err(bad(
            "hostRuleTable",
            v,
            "253, 254 and 255 are the kernel's default, main and local tables",
        )),
        Ok(t) => Ok(t),
    }
}

/// Merges the NAD keys over the agent's answer (spec §4.1) and validates the result.
pub fn merge(
    nad: &NadCoordinatorConf,
    agent: &AgentCoordinatorConfig,
) -> Result<CoordinatorConfig, CoordinatorError> {
    let mode = Mode::parse(
        non_empty(&nad.mode)
            .or(non_empty(&agent.mode))
            .unwrap_or("auto"),
    )?;
    let pod_default_cni_nic = non_empty(&nad.pod_default_cni_nic)
        .unwrap_or("eth0")
        .to_string();

    let cidrs = |key: &str, n: &Option<Vec<String>>, a: &Option<Vec<String>>| {
        parse_cidrs(key, non_empty_list(n).or(non_empty_list(a)).unwrap_or(&[]))
    };
    let overlay_pod_cidr = cidrs(
        "overlayPodCIDR",
        &nad.overlay_pod_cidr,
        &agent.overlay_pod_cidr,
    )?;
    let service_cidr = cidrs("serviceCIDR", &nad.service_cidr, &agent.service_cidr)?;
    let hijack_cidr = cidrs("hijackCIDR", &nad.hijack_cidr, &agent.hijack_cidr)?;

    let policy_routes = non_empty_list(&nad.policy_routes)
        .or(non_empty_list(&agent.policy_routes))
        .unwrap_or(&[])
        .iter()
        .map(parse_policy_route)
        .collect::<Result<Vec<_>, _>>()?;

    let pod_mac_prefix = non_empty(&nad.pod_mac_prefix)
        .or(non_empty(&agent.pod_mac_prefix))
        .map(MacPrefix::parse)
        .transpose()?;

    let pod_rp_filter = rp_filter(nad.pod_rp_filter.or(agent.pod_rp_filter).unwrap_or(0))?;

    let host_rule_table = match (nad.host_rule_table, agent.host_rule_table) {
        (Some(v), _) => host_rule_table(v)?,
        (None, Some(v)) if v > 0 => host_rule_table(v)?,
        _ => DEFAULT_HOST_RULE_TABLE,
    };

    let tx_queue_len = match nad.tx_queue_len.or(agent.tx_queue_len).unwrap_or(0) {
        0 => None,
        v => Some(u32::try_from(v).map_err(|_| {
            bad(
                "txQueueLen",
                v,
                "must be between 0 (leave unchanged) and 4294967295",
            )
        })?),
    };

    let tune_pod_routes = nad
        .tune_pod_routes
        .or(agent.tune_pod_routes)
        .unwrap_or(true);

    let pod_default_route_nic = match (
        non_empty(&nad.pod_default_route_nic),
        non_empty(&agent.pod_default_route_nic),
    ) {
        (Some(n), _) => DefaultRouteNic::Nad(n.into()),
        (None, Some(a)) => DefaultRouteNic::Coordinator(a.into()),
        (None, None) => DefaultRouteNic::Unset,
    };

    let veth_link_address = non_empty(&nad.veth_link_address)
        .or(non_empty(&agent.veth_link_address))
        .map(|s| {
            s.parse::<Ipv4Addr>().map_err(|_| {
                bad(
                    "vethLinkAddress",
                    s,
                    "must be an IPv4 address (it is added to veth0 as a /32)",
                )
            })
        })
        .transpose()?;

    let veth_mtu = match (nad.veth_mtu, agent.veth_mtu) {
        (Some(v), _) => u32::try_from(v)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| bad("vethMTU", v, "must be greater than 0"))?,
        (None, Some(v)) if v > 0 => {
            u32::try_from(v).map_err(|_| bad("vethMTU", v, "too large for an MTU"))?
        }
        _ => DEFAULT_VETH_MTU,
    };

    Ok(CoordinatorConfig {
        mode,
        pod_default_cni_nic,
        overlay_pod_cidr,
        service_cidr,
        hijack_cidr,
        policy_routes,
        pod_mac_prefix,
        pod_rp_filter,
        host_rule_table,
        tx_queue_len,
        tune_pod_routes,
        pod_default_route_nic,
        veth_link_address,
        veth_mtu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nad(json: &str) -> NadCoordinatorConf {
        serde_json::from_str(json).unwrap()
    }

    fn agent(json: &str) -> AgentCoordinatorConfig {
        serde_json::from_str(json).unwrap()
    }

    fn key_of(e: CoordinatorError) -> String {
        match e {
            CoordinatorError::Config { key, .. } => key,
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn seed_agent_answer_parses_and_merges() {
        // The real agent's answer from upstream-observed §1.8 (null policyRoutes, zeros omitted).
        let a = agent(
            r#"{"hijackCIDR":["169.254.0.0/16"],"hostRuleTable":500,"mode":"auto","overlayPodCIDR":["10.233.64.0/18"],"policyRoutes":null,"serviceCIDR":["10.233.0.0/18"],"tunePodRoutes":true}"#,
        );
        let n = nad(
            r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","tunePodRoutes":true,"mode":"auto","type":"coordinator","prevResult":{}}"#,
        );
        let c = merge(&n, &a).unwrap();
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.pod_default_cni_nic, "eth0");
        assert_eq!(c.overlay_pod_cidr, vec!["10.233.64.0/18".parse().unwrap()]);
        assert_eq!(c.service_cidr, vec!["10.233.0.0/18".parse().unwrap()]);
        assert_eq!(c.hijack_cidr, vec!["169.254.0.0/16".parse().unwrap()]);
        assert_eq!(c.host_rule_table, 500);
        assert_eq!(c.pod_rp_filter, Some(0));
        assert_eq!(c.veth_mtu, 1500);
        assert!(c.tune_pod_routes);
        assert_eq!(c.pod_default_route_nic, DefaultRouteNic::Unset);
        assert_eq!(
            c.hijack_list(),
            vec![
                "10.233.64.0/18".parse::<IpNet>().unwrap(),
                "10.233.0.0/18".parse().unwrap(),
                "169.254.0.0/16".parse().unwrap()
            ]
        );
    }

    #[test]
    fn nad_keys_beat_the_agent() {
        let n = nad(
            r#"{"mode":"underlay","podDefaultCniNic":"ens1","overlayPodCIDR":["10.1.0.0/16"],
                "serviceCIDR":["10.2.0.0/16"],"hijackCIDR":["10.3.0.0/16"],
                "policyRoutes":[{"dst":"10.10.0.0/16","gw":"172.100.0.1"}],
                "podMACPrefix":"0a:1b","podRPFilter":2,"hostRuleTable":600,"txQueueLen":3000,
                "tunePodRoutes":false,"podDefaultRouteNic":"net2","vethLinkAddress":"169.254.100.1",
                "vethMTU":9000}"#,
        );
        let a = agent(
            r#"{"mode":"overlay","overlayPodCIDR":["10.233.64.0/18"],"serviceCIDR":["10.233.0.0/18"],
                "hijackCIDR":["169.254.0.0/16"],"policyRoutes":[{"dst":"1.1.1.1","gw":"10.6.0.1"}],
                "podMACPrefix":"02:00","podRPFilter":1,"hostRuleTable":700,"txQueueLen":10,
                "tunePodRoutes":true,"podDefaultRouteNIC":"net1","vethLinkAddress":"169.254.1.2",
                "vethMTU":1400}"#,
        );
        let c = merge(&n, &a).unwrap();
        assert_eq!(c.mode, Mode::Underlay);
        assert_eq!(c.pod_default_cni_nic, "ens1");
        assert_eq!(c.overlay_pod_cidr, vec!["10.1.0.0/16".parse().unwrap()]);
        assert_eq!(c.service_cidr, vec!["10.2.0.0/16".parse().unwrap()]);
        assert_eq!(c.hijack_cidr, vec!["10.3.0.0/16".parse().unwrap()]);
        assert_eq!(
            c.policy_routes,
            vec![PolicyRoute {
                dst: "10.10.0.0/16".parse().unwrap(),
                gw: "172.100.0.1".parse().unwrap()
            }]
        );
        assert_eq!(c.pod_mac_prefix, Some(MacPrefix([0x0a, 0x1b])));
        assert_eq!(c.pod_rp_filter, Some(2));
        assert_eq!(c.host_rule_table, 600);
        assert_eq!(c.tx_queue_len, Some(3000));
        assert!(!c.tune_pod_routes);
        assert_eq!(c.pod_default_route_nic, DefaultRouteNic::Nad("net2".into()));
        assert_eq!(c.veth_link_address, Some("169.254.100.1".parse().unwrap()));
        assert_eq!(c.veth_mtu, 9000);
        // NAD value beats the annotation.
        assert_eq!(c.default_route_nic(Some("net1")), Some("net2"));
    }

    #[test]
    fn agent_fills_what_the_nad_leaves_out() {
        let n = nad(r#"{"mode":"","overlayPodCIDR":[],"podMACPrefix":""}"#);
        let a = agent(
            r#"{"mode":"overlay","overlayPodCIDR":["10.233.64.0/18"],"policyRoutes":[{"dst":"1.1.1.1","gw":"10.6.0.1"}],
                "podMACPrefix":"02:00","podRPFilter":-1,"hostRuleTable":700,"txQueueLen":10,
                "tunePodRoutes":false,"podDefaultRouteNIC":"net1","vethLinkAddress":"169.254.1.2","vethMTU":1400}"#,
        );
        let c = merge(&n, &a).unwrap();
        assert_eq!(c.mode, Mode::Overlay);
        assert_eq!(c.overlay_pod_cidr, vec!["10.233.64.0/18".parse().unwrap()]);
        assert_eq!(c.policy_routes[0].dst, "1.1.1.1/32".parse().unwrap());
        assert_eq!(c.pod_mac_prefix, Some(MacPrefix([2, 0])));
        assert_eq!(c.pod_rp_filter, None);
        assert_eq!(c.host_rule_table, 700);
        assert_eq!(c.tx_queue_len, Some(10));
        assert!(!c.tune_pod_routes);
        assert_eq!(c.veth_mtu, 1400);
        assert_eq!(
            c.pod_default_route_nic,
            DefaultRouteNic::Coordinator("net1".into())
        );
        // The pod annotation beats the coordinator's value.
        assert_eq!(c.default_route_nic(Some("net2")), Some("net2"));
        assert_eq!(c.default_route_nic(Some("")), Some("net1"));
        assert_eq!(c.default_route_nic(None), Some("net1"));
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = merge(
            &NadCoordinatorConf::default(),
            &AgentCoordinatorConfig::default(),
        )
        .unwrap();
        assert_eq!(c, CoordinatorConfig::default());
        assert_eq!(c.default_route_nic(Some("net1")), Some("net1"));
        assert_eq!(c.default_route_nic(None), None);
        // Agent zeros mean "unset" for hostRuleTable and vethMTU.
        let a = agent(r#"{"hostRuleTable":0,"vethMTU":0}"#);
        let c = merge(&NadCoordinatorConf::default(), &a).unwrap();
        assert_eq!((c.host_rule_table, c.veth_mtu), (500, 1500));
    }

    #[test]
    fn modes() {
        for (text, mode) in [
            ("auto", Mode::Auto),
            ("underlay", Mode::Underlay),
            ("overlay", Mode::Overlay),
            ("disable", Mode::Disable),
            ("disabled", Mode::Disable),
        ] {
            let c = merge(
                &nad(&format!(r#"{{"mode":"{text}"}}"#)),
                &AgentCoordinatorConfig::default(),
            )
            .unwrap();
            assert_eq!(c.mode, mode);
        }
        let e = merge(
            &nad(r#"{"mode":"Overlay"}"#),
            &AgentCoordinatorConfig::default(),
        );
        assert_eq!(
            e,
            Err(CoordinatorError::UnknownMode {
                mode: "Overlay".into()
            })
        );
        let e = merge(&NadCoordinatorConf::default(), &agent(r#"{"mode":"fast"}"#)).unwrap_err();
        assert!(e.to_string().contains("unknown mode \"fast\""), "{e}");
    }

    #[test]
    fn every_validation_error() {
        let a = AgentCoordinatorConfig::default();
        let cases = [
            (r#"{"overlayPodCIDR":["10.233.64.0"]}"#, "overlayPodCIDR"),
            (r#"{"serviceCIDR":["10.233.0.0/33"]}"#, "serviceCIDR"),
            (r#"{"hijackCIDR":["nope"]}"#, "hijackCIDR"),
            (
                r#"{"policyRoutes":[{"dst":"10.0.0.0/8","gw":"fd00::1"}]}"#,
                "policyRoutes",
            ),
            (
                r#"{"policyRoutes":[{"dst":"10.0.0.0/x","gw":"10.0.0.1"}]}"#,
                "policyRoutes",
            ),
            (
                r#"{"policyRoutes":[{"dst":"10.0.0.0/8","gw":"gw"}]}"#,
                "policyRoutes",
            ),
            (r#"{"podMACPrefix":"01:00"}"#, "podMACPrefix"),
            (r#"{"podMACPrefix":"0b:1b"}"#, "podMACPrefix"),
            (r#"{"podMACPrefix":"0a:1b:2c"}"#, "podMACPrefix"),
            (r#"{"podMACPrefix":"0a1b"}"#, "podMACPrefix"),
            (r#"{"podRPFilter":-2}"#, "podRPFilter"),
            (r#"{"podRPFilter":3}"#, "podRPFilter"),
            (r#"{"hostRuleTable":0}"#, "hostRuleTable"),
            (r#"{"hostRuleTable":-5}"#, "hostRuleTable"),
            (r#"{"hostRuleTable":254}"#, "hostRuleTable"),
            (r#"{"txQueueLen":-1}"#, "txQueueLen"),
            (r#"{"vethLinkAddress":"fd00::1"}"#, "vethLinkAddress"),
            (r#"{"vethLinkAddress":"169.254.0.1/32"}"#, "vethLinkAddress"),
            (r#"{"vethMTU":0}"#, "vethMTU"),
            (r#"{"vethMTU":-1500}"#, "vethMTU"),
        ];
        for (json, key) in cases {
            let e = merge(&nad(json), &a).expect_err(json);
            assert!(!e.to_string().is_empty());
            assert_eq!(key_of(e), key, "{json}");
        }
        // The agent's values are validated too.
        let e = merge(
            &NadCoordinatorConf::default(),
            &agent(r#"{"serviceCIDR":["10.233.0.0/99"]}"#),
        )
        .unwrap_err();
        assert_eq!(key_of(e), "serviceCIDR");
        // Upstream's regex rejected "0a:11" (second digit 1) though it is unicast; we accept it,
        // and reject "03:00" which upstream's regex let through.
        assert!(MacPrefix::parse("0a:11").is_ok());
        assert!(MacPrefix::parse("03:00").is_err());
        assert!(MacPrefix::parse("0A-1B").is_ok());
    }

    #[test]
    fn mac_prefix_derivation() {
        let p = MacPrefix::parse("0a:1b").unwrap();
        assert_eq!(
            p.mac_for("10.6.212.145".parse().unwrap()).to_string(),
            "0a:1b:0a:06:d4:91"
        );
        assert_eq!(
            p.mac_for("fd00::a06:d491".parse().unwrap()).to_string(),
            "0a:1b:0a:06:d4:91"
        );
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"0a:1b\"");
    }

    #[test]
    fn config_round_trips_through_json() {
        let n = nad(
            r#"{"mode":"overlay","podMACPrefix":"0a:1b","policyRoutes":[{"dst":"10.10.0.0/16","gw":"172.100.0.1"}],"podDefaultRouteNic":"net1","vethLinkAddress":"169.254.100.1","podRPFilter":-1}"#,
        );
        let c = merge(&n, &AgentCoordinatorConfig::default()).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        let back: CoordinatorConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        let back: NadCoordinatorConf =
            serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
    }
}
