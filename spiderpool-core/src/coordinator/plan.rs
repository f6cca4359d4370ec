//! The plan: ordered steps per network namespace, as data.
//!
//! An adapter applies the pod's steps (inside the pod netns) and then the host's steps, in order.
//! Every "add" is exclusive with "already exists" treated as done; every "delete" treats "not
//! found" as done. [`Plan::apply`] computes the resulting views without a kernel.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::entries::{Family, MacAddr, Route, Rule};
use super::mode::ModeResolution;

/// A veth pair created in the pod with its peer in the host netns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VethPair {
    /// The pod end (`veth0`).
    pub name: String,
    /// MAC of the pod end (set explicitly so udev/systemd does not rewrite it).
    pub mac: MacAddr,
    /// The host end (`veth<cid[:11]>`).
    pub peer_name: String,
    /// MAC of the host end.
    pub peer_mac: MacAddr,
    /// MTU of both ends.
    pub mtu: u32,
}

/// "Replies to connections that came in through `iface` leave through it": mark new connections
/// arriving on `iface` with `mark` (conntrack-saved, restored on output), and route marked packets
/// by `table` (the rule is a separate [`Step::AddRule`]). Whether nftables or iptables does the
/// marking is the adapter's choice. Upstream uses iptables `mangle`: `PREROUTING -i veth0 -m
/// conntrack --ctstate NEW -j MARK --set-xmark 0x1`, `PREROUTING -m mark --mark 0x1 -j CONNMARK
/// --save-mark`, `OUTPUT -j CONNMARK --restore-mark`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyViaVethMark {
    /// The interface whose incoming connections are marked (`veth0`).
    pub iface: String,
    /// The firewall mark (0x1).
    pub mark: u32,
    /// The table marked packets look up (100).
    pub table: u32,
    /// Families to mark (iptables and ip6tables).
    pub families: Vec<Family>,
}

/// Why a route is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "table")]
pub enum RouteOrigin {
    /// A route the coordinator makes (host, hijack, reply-via-veth, policy, host-side pod route).
    New,
    /// Copied from this table; the original stays.
    CopiedFrom(u32),
    /// Moved from this table; a following [`Step::DeleteRoute`] removes the original.
    MovedFrom(u32),
    /// What is left of a multipath route after one nexthop moved out.
    Remainder,
}

/// One change to a netns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "op")]
pub enum Step {
    /// Set a link up.
    SetLinkUp {
        /// Link name.
        dev: String,
    },
    /// Create a veth pair whose peer lives in the host netns.
    CreateVeth(VethPair),
    /// Delete a link (and with it its routes and neighbours).
    DeleteLink {
        /// Link name.
        name: String,
    },
    /// Change a link's MAC.
    SetMac {
        /// Link name.
        dev: String,
        /// New MAC.
        mac: MacAddr,
    },
    /// Change a link's transmit queue length.
    SetTxQueueLen {
        /// Link name.
        dev: String,
        /// Queue length.
        len: u32,
    },
    /// Add an address.
    AddAddress {
        /// Link name.
        dev: String,
        /// Address with prefix length.
        addr: IpNet,
    },
    /// Write a sysctl.
    Sysctl {
        /// Dotted key, e.g. `net.ipv4.conf.all.rp_filter`.
        key: String,
        /// Value.
        value: String,
    },
    /// Add or replace a permanent neighbour entry.
    AddNeighbour {
        /// Neighbour IP.
        ip: IpAddr,
        /// Device.
        dev: String,
        /// Link-layer address.
        lladdr: MacAddr,
    },
    /// Delete neighbour entries for an IP (on `dev`, or on every device when `None`).
    DeleteNeighbour {
        /// Neighbour IP.
        ip: IpAddr,
        /// Device, or every device.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dev: Option<String>,
    },
    /// Add a rule (with an explicit priority in ADD plans).
    AddRule(Rule),
    /// Delete a rule (a rule without priority matches any priority).
    DeleteRule(Rule),
    /// Add a route.
    AddRoute {
        /// The route.
        route: Route,
        /// Why.
        origin: RouteOrigin,
    },
    /// Delete a route (unset fields of the selector match anything).
    DeleteRoute {
        /// The route to delete, as a selector.
        route: Route,
    },
    /// Delete every route to exactly `dst` in `table`.
    DeleteRoutesTo {
        /// Table.
        table: u32,
        /// Destination prefix.
        dst: IpNet,
    },
    /// Mark connections entering an interface so replies leave by it.
    ReplyViaVethMark(ReplyViaVethMark),
    /// Announce addresses after a MAC change: gratuitous ARP (IPv4) and unsolicited neighbour
    /// advertisement (IPv6). Failures are only logged.
    Announce {
        /// Device.
        dev: String,
        /// Addresses to announce.
        addrs: Vec<IpAddr>,
    },
}

/// The ordered steps for one netns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetnsPlan {
    /// Steps, applied in order.
    pub steps: Vec<Step>,
}

impl NetnsPlan {
    /// The rules this plan adds.
    pub fn added_rules(&self) -> impl Iterator<Item = &Rule> {
        self.steps.iter().filter_map(|s| match s {
            Step::AddRule(r) => Some(r),
            _ => None,
        })
    }

    /// The routes this plan adds.
    pub fn added_routes(&self) -> impl Iterator<Item = &Route> {
        self.steps.iter().filter_map(|s| match s {
            Step::AddRoute { route, .. } => Some(route),
            _ => None,
        })
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The plan for one coordinator ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The resolved mode, or `None` when the coordinator is disabled (empty plan).
    pub resolution: Option<ModeResolution>,
    /// The host veth the pod is reached through (Calico's `cali…` in overlay, `veth<cid>` in
    /// underlay), empty when disabled.
    pub host_veth: String,
    /// Steps in the pod netns (applied first).
    pub pod: NetnsPlan,
    /// Steps in the host netns (applied second).
    pub host: NetnsPlan,
    /// Things upstream only logs: skipped hijack CIDRs, skipped tuning, routes that already
    /// existed with other attributes.
    pub warnings: Vec<String>,
}

/// The plan for one coordinator DEL: host-side steps only (pod-side state goes with the netns).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DelPlan {
    /// Steps in the host netns.
    pub host: NetnsPlan,
}
