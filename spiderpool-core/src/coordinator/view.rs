//! What the adapter reads before planning: the pod's and the host's links, addresses, routes,
//! rules and neighbours, as plain data.
//!
//! The planner never touches the kernel; it reads these views. A CLI can read them from a file.
//! The format (JSON shown; YAML has the same keys):
//!
//! ```json
//! {
//!   "pod": {
//!     "links": [
//!       {"name": "lo", "index": 1, "up": true, "addresses": ["127.0.0.1/8"]},
//!       {"name": "eth0", "index": 2, "mac": "a2:40:ec:4f:ba:93", "up": true,
//!        "broadcast": true, "multicast": true, "addresses": ["10.233.73.210/32"],
//!        "peerIndex": 3},
//!       {"name": "net1", "index": 3, "mac": "6a:1b:e7:ac:f8:a0", "up": true,
//!        "broadcast": true, "multicast": true, "addresses": ["10.6.212.145/16"]}
//!     ],
//!     "routes": [
//!       {"dst": "0.0.0.0/0", "gw": "10.6.0.1", "dev": "net1"},
//!       {"dst": "0.0.0.0/0", "gw": "169.254.1.1", "dev": "eth0"},
//!       {"dst": "10.6.0.0/16", "dev": "net1", "proto": "kernel", "scope": "link",
//!        "src": "10.6.212.145"},
//!       {"dst": "169.254.1.1/32", "dev": "eth0", "scope": "link"}
//!     ]
//!   },
//!   "host": {
//!     "links": [
//!       {"name": "ens192", "index": 2, "mac": "da:5b:0e:4e:d4:59", "addresses": ["10.6.212.132/16"]},
//!       {"name": "calitest", "index": 3, "mac": "ee:ee:ee:ee:ee:ee", "peerIndex": 2}
//!     ],
//!     "routeSrc": {"10.233.73.210": "10.6.212.132", "10.6.212.145": "10.6.212.132"}
//!   }
//! }
//! ```
//!
//! * `links` are in kernel index order (the planner's "first interface with a default route"
//!   follows this order). Flags default to `false`: a link counts as "UP" for the table numbering
//!   only when `up`, `broadcast` and `multicast` are all true, as in upstream (so `lo` and
//!   `tunl0` never count). Addresses are `ip/prefix`, IPv4 before IPv6 as the kernel lists them.
//! * `routes` hold every table (each route's `table` defaults to main, 254), in the order
//!   `ip route show` prints them; see [`Route`].
//! * `rules` default to the kernel's rules of a fresh netns ([`Rule::kernel_defaults`]); give them
//!   when the pod already has rules (a later NIC), since new priorities are computed from them.
//! * `neighbours`, `sysctls` and `marks` default to empty.
//! * `routeSrc` (host only) maps each pod IP to the source address the host would use to reach it
//!   (`ip route get <pod IP>` in the host netns, field `src`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::entries::{MacAddr, Neighbour, Route, Rule};
use super::plan::ReplyViaVethMark;

/// One network interface as seen in a netns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    /// Interface name.
    pub name: String,
    /// Interface index in its netns.
    pub index: u32,
    /// MAC address (absent for links without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// IFF_UP.
    #[serde(default)]
    pub up: bool,
    /// IFF_BROADCAST.
    #[serde(default)]
    pub broadcast: bool,
    /// IFF_MULTICAST.
    #[serde(default)]
    pub multicast: bool,
    /// Addresses with prefix length, in kernel order.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// For a veth: the ifindex of its peer in the other netns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_index: Option<u32>,
    /// MTU, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Transmit queue length, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_queue_len: Option<u32>,
}

impl LinkView {
    /// A link that is up with broadcast and multicast (what a veth, macvlan or NIC shows).
    pub fn ethernet(name: impl Into<String>, index: u32, mac: Option<MacAddr>) -> LinkView {
        LinkView {
            name: name.into(),
            index,
            mac,
            up: true,
            broadcast: true,
            multicast: true,
            addresses: Vec::new(),
            peer_index: None,
            mtu: None,
            tx_queue_len: None,
        }
    }

    /// The loopback link (up, no broadcast or multicast).
    pub fn loopback() -> LinkView {
        LinkView {
            up: true,
            broadcast: false,
            multicast: false,
            addresses: vec![IpNet::from(IpAddr::from([127, 0, 0, 1]))],
            ..LinkView::ethernet("lo", 1, None)
        }
    }

    /// The same link with these addresses.
    pub fn with_addresses(mut self, addrs: impl IntoIterator<Item = IpNet>) -> LinkView {
        self.addresses = addrs.into_iter().collect();
        self
    }

    /// The same link with this veth peer index.
    pub fn with_peer(mut self, peer_index: u32) -> LinkView {
        self.peer_index = Some(peer_index);
        self
    }

    /// True when the flags include UP, BROADCAST and MULTICAST (upstream's "UP link").
    pub fn counts_as_up(&self) -> bool {
        self.up && self.broadcast && self.multicast
    }

    /// The addresses (without prefix) that the coordinator routes; see
    /// [`super::entries::is_usable`].
    pub fn usable_ips(&self) -> Vec<IpAddr> {
        self.addresses
            .iter()
            .map(|n| n.addr())
            .filter(super::entries::is_usable)
            .collect()
    }
}

fn kernel_rules() -> Vec<Rule> {
    Rule::kernel_defaults()
}

/// The pod's network namespace as seen before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    /// Links in index order.
    pub links: Vec<LinkView>,
    /// Routes of every table (main, 100, 101...).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Policy rules, both families.
    #[serde(default = "kernel_rules")]
    pub rules: Vec<Rule>,
    /// Neighbour entries.
    #[serde(default)]
    pub neighbours: Vec<Neighbour>,
    /// Sysctls known to be set (`net.ipv4.conf.all.rp_filter` → `0`).
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Reply-via-veth markings in place.
    #[serde(default)]
    pub marks: Vec<ReplyViaVethMark>,
}

impl PodView {
    /// A pod with these links, no routes and the kernel's default rules.
    pub fn new(links: Vec<LinkView>) -> PodView {
        PodView {
            links,
            routes: Vec::new(),
            rules: Rule::kernel_defaults(),
            neighbours: Vec::new(),
            sysctls: BTreeMap::new(),
            marks: Vec::new(),
        }
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&LinkView> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// The host's network namespace as seen before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Links in index order (only name, index, MAC and addresses matter).
    pub links: Vec<LinkView>,
    /// Pod IP → the source address the host uses to reach it (`ip route get`).
    #[serde(default)]
    pub route_src: BTreeMap<IpAddr, IpAddr>,
    /// Routes of every table.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Policy rules, both families.
    #[serde(default = "kernel_rules")]
    pub rules: Vec<Rule>,
    /// Neighbour entries.
    #[serde(default)]
    pub neighbours: Vec<Neighbour>,
    /// Sysctls known to be set.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

impl HostView {
    /// A host with these links, no routes and the kernel's default rules.
    pub fn new(links: Vec<LinkView>) -> HostView {
        HostView {
            links,
            route_src: BTreeMap::new(),
            routes: Vec::new(),
            rules: Rule::kernel_defaults(),
            neighbours: Vec::new(),
            sysctls: BTreeMap::new(),
        }
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&LinkView> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The link with ifindex `index`.
    pub fn link_by_index(&self, index: u32) -> Option<&LinkView> {
        self.links.iter().find(|l| l.index == index)
    }
}

/// The two MACs of the underlay veth pair. Upstream picks random unicast MACs; randomness is not
/// pure, so they are an input. When absent, [`VethMacs::derive`] makes them from the container ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VethMacs {
    /// MAC of `veth0` in the pod.
    pub pod: MacAddr,
    /// MAC of `veth<cid>` on the host.
    pub host: MacAddr,
}

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn local_unicast(h: u64) -> MacAddr {
    let b = h.to_be_bytes();
    // Locally administered (bit 1 set), unicast (bit 0 clear).
    MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
}

impl VethMacs {
    /// Deterministic locally administered unicast MACs from the container ID (FNV-1a), so a plan is
    /// reproducible; an adapter that wants upstream's random MACs passes its own.
    pub fn derive(container_id: &str) -> VethMacs {
        let pod = fnv1a(container_id.bytes().chain(*b"/pod"));
        let host = fnv1a(container_id.bytes().chain(*b"/host"));
        VethMacs {
            pod: local_unicast(pod),
            host: local_unicast(host),
        }
    }
}

/// A CNI ADD as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddRequest {
    /// `CNI_CONTAINERID` (its first 11 characters name the host veth in underlay mode).
    pub container_id: String,
    /// `CNI_IFNAME`: the interface being configured.
    pub ifname: String,
    /// The pod's `ipam.spidernet.io/default-route-nic` annotation, when the caller read it itself
    /// (local mode, offline planning). The agent already folds it into its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route_nic_annotation: Option<String>,
    /// MACs for a veth pair this ADD creates; derived from the container ID when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veth_macs: Option<VethMacs>,
}

impl AddRequest {
    /// An ADD for `ifname` of container `container_id`.
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> AddRequest {
        AddRequest {
            container_id: container_id.into(),
            ifname: ifname.into(),
            default_route_nic_annotation: None,
            veth_macs: None,
        }
    }
}

/// A CNI DEL as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelRequest {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

/// The host-side veth name upstream uses in underlay mode: `veth` + the first 11 characters of
/// the container ID (`0123456789abcdef-underlay` → `veth0123456789a`).
pub fn host_veth_name(container_id: &str) -> String {
    let head: String = container_id.chars().take(11).collect();
    format!("veth{head}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names() {
        assert_eq!(
            host_veth_name("0123456789abcdef-underlay"),
            "veth0123456789a"
        );
        assert_eq!(host_veth_name("cid-overlay-0001"), "vethcid-overlay");
        assert_eq!(host_veth_name("abc"), "vethabc");
    }

    #[test]
    fn derived_macs_are_local_unicast_and_stable() {
        let a = VethMacs::derive("cid-1");
        assert_eq!(a, VethMacs::derive("cid-1"));
        assert_ne!(a.pod, a.host);
        assert_ne!(a, VethMacs::derive("cid-2"));
        for m in [a.pod, a.host] {
            assert!(m.is_unicast());
            assert_eq!(m.0[0] & 2, 2);
        }
    }

    #[test]
    fn view_json_format_parses() {
        let text = r#"{
          "links": [
            {"name": "lo", "index": 1, "up": true, "addresses": ["127.0.0.1/8"]},
            {"name": "eth0", "index": 2, "mac": "a2:40:ec:4f:ba:93", "up": true,
             "broadcast": true, "multicast": true, "addresses": ["10.233.73.210/32"], "peerIndex": 3}
          ],
          "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1", "dev": "eth0"},
                     {"dst": "10.6.0.0/16", "dev": "net1", "proto": "kernel", "scope": "link", "src": "10.6.212.145", "table": 101}]
        }"#;
        let pod: PodView = serde_json::from_str(text).unwrap();
        assert_eq!(pod.rules, Rule::kernel_defaults());
        assert_eq!(pod.routes[1].table, 101);
        assert!(!pod.links[0].counts_as_up());
        assert!(pod.links[1].counts_as_up());
        let back: PodView = serde_json::from_str(&serde_json::to_string(&pod).unwrap()).unwrap();
        assert_eq!(back, pod);

        let host: HostView = serde_json::from_str(
            r#"{"links": [], "routeSrc": {"10.6.212.145": "10.6.212.132", "fd00::5": "fd00::1"}}"#,
        )
        .unwrap();
        assert_eq!(host.route_src.len(), 2);
        let back: HostView = serde_json::from_str(&serde_json::to_string(&host).unwrap()).unwrap();
        assert_eq!(back, host);
    }
}
