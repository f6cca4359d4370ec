//! The kernel objects a plan talks about: MAC addresses, routes, rules and neighbours.
//!
//! The same types describe what a netns holds (the views) and what a plan adds or removes, so
//! applying a plan to a view is plain list editing.

use crate::coordinator::CoordinatorError;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kernel's `local` routing table.
pub const TABLE_LOCAL: u32 = 255;
/// The kernel's `main` routing table.
pub const TABLE_MAIN: u32 = 254;
/// The kernel's `default` routing table.
pub const TABLE_DEFAULT: u32 = 253;

/// An Ethernet MAC address, written `aa:bb:cc:dd:ee:ff` (lower case) in JSON and YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True when the group bit (lowest bit of the first byte) is clear.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Parses `n` hex byte pairs separated by one kind of separator (`:` or `-`).
pub(crate) fn parse_hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let sep = if text.contains('-') { '-' } else { ':' };
    let mut out = [0u8; N];
    let mut parts = text.split(sep);
    for slot in out.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

impl FromStr for MacAddr {
    type Err = CoordinatorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex_bytes::<6>(s)
            .map(MacAddr)
            .ok_or_else(|| CoordinatorError::Config {
                key: "mac".into(),
                value: s.into(),
                reason: "not a MAC address (six hex pairs separated by ':')".into(),
            })
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of a prefix.
    pub fn of_net(net: &IpNet) -> Family {
        Family::of(&net.addr())
    }

    /// The host prefix length: 32 or 128.
    pub fn host_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// `IPv4` or `IPv6`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The families in use by an interface (upstream's `ipFamily`: v4, v6 or dual).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Families {
    /// IPv4 in use.
    pub v4: bool,
    /// IPv6 in use.
    pub v6: bool,
}

impl Families {
    /// The families of some addresses.
    pub fn of<'a>(addrs: impl IntoIterator<Item = &'a IpAddr>) -> Families {
        let mut f = Families::default();
        for a in addrs {
            match a {
                IpAddr::V4(_) => f.v4 = true,
                IpAddr::V6(_) => f.v6 = true,
            }
        }
        f
    }

    /// Whether `family` is in use.
    pub fn has(self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// The families in use, v4 first.
    pub fn list(self) -> Vec<Family> {
        let mut out = Vec::new();
        if self.v4 {
            out.push(Family::V4);
        }
        if self.v6 {
            out.push(Family::V6);
        }
        out
    }
}

/// The host prefix (`/32` or `/128`) of an address.
pub fn host_net(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// True for addresses the coordinator routes: not link-local, multicast, loopback or unspecified.
///
/// Upstream filters link-local (including IPv4 `169.254.0.0/16`, so a `vethLinkAddress` never
/// counts as a pod IP) and multicast; loopback only lives on `lo`, which is skipped anyway.
pub fn is_usable(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            !(a.is_link_local() || a.is_multicast() || a.is_loopback() || a.is_unspecified())
        }
        IpAddr::V6(a) => {
            let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
            !(link_local || a.is_multicast() || a.is_loopback() || a.is_unspecified())
        }
    }
}

/// A route scope, named as iproute2 prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `global` (RT_SCOPE_UNIVERSE), the default.
    #[default]
    Global,
    /// `site`.
    Site,
    /// `link`: the destination is directly on the link.
    Link,
    /// `host`.
    Host,
    /// `nowhere`.
    Nowhere,
}

impl Scope {
    /// The iproute2 name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Site => "site",
            Scope::Link => "link",
            Scope::Host => "host",
            Scope::Nowhere => "nowhere",
        }
    }
}

/// A route protocol number (`proto` in iproute2). Written as iproute2's name where it has one
/// (`boot`, `kernel`, `static`, `ra`, `dhcp`, `bird`...), else as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proto(pub u8);

const PROTO_NAMES: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (42, "babel"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

impl Proto {
    /// `proto kernel`: routes the kernel made (connected routes).
    pub const KERNEL: Proto = Proto(2);
    /// `proto boot`: what `ip route add` and netlink clients use by default.
    pub const BOOT: Proto = Proto(3);
    /// `proto static`.
    pub const STATIC: Proto = Proto(4);
}

impl Default for Proto {
    fn default() -> Self {
        Proto::BOOT
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PROTO_NAMES.iter().find(|(n, _)| *n == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Proto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u8),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(Proto(n)),
            Raw::Text(t) => PROTO_NAMES
                .iter()
                .find(|(_, name)| *name == t)
                .map(|(n, _)| Proto(*n))
                .or_else(|| t.parse().ok().map(Proto))
                .ok_or_else(|| serde::de::Error::custom(format!("unknown route protocol {t:?}"))),
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn table_main() -> u32 {
    TABLE_MAIN
}

fn is_main(t: &u32) -> bool {
    *t == TABLE_MAIN
}

/// One nexthop of a multipath route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHop {
    /// Gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Output device.
    pub dev: String,
}

/// A route in one routing table.
///
/// JSON/YAML: `{"table": 101, "dst": "0.0.0.0/0", "gw": "10.6.0.1", "dev": "net1",
/// "scope": "link", "src": "10.6.212.145", "proto": "kernel", "metric": 100}`; only `dst` is
/// required. `table` defaults to main (254); `dst` is always a prefix (`0.0.0.0/0`, `::/0` for
/// default routes, `/32` or `/128` for hosts). A multipath route leaves `gw` and `dev` empty and
/// lists `nexthops`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// Routing table number (254 = main).
    #[serde(default = "table_main", skip_serializing_if = "is_main")]
    pub table: u32,
    /// Destination prefix.
    pub dst: IpNet,
    /// Gateway (`via`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Output device (`dev`); empty for a multipath route.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dev: String,
    /// Scope.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scope: Scope,
    /// Preferred source address (`src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Protocol (`proto`), `boot` unless the kernel or a daemon made the route.
    #[serde(default, skip_serializing_if = "is_default")]
    pub proto: Proto,
    /// Metric (priority). `None` means the kernel's default: 0 for IPv4, 1024 for IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Nexthops of a multipath route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
}

impl Route {
    /// A route in main with no gateway, scope global, proto boot.
    pub fn new(dst: IpNet, dev: impl Into<String>) -> Route {
        Route {
            table: TABLE_MAIN,
            dst: dst.trunc(),
            gw: None,
            dev: dev.into(),
            scope: Scope::Global,
            src: None,
            proto: Proto::BOOT,
            metric: None,
            nexthops: Vec::new(),
        }
    }

    /// The same route in `table`.
    pub fn in_table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// The same route with gateway `gw`.
    pub fn via(mut self, gw: IpAddr) -> Route {
        self.gw = Some(gw);
        self
    }

    /// The same route with scope `scope`.
    pub fn with_scope(mut self, scope: Scope) -> Route {
        self.scope = scope;
        self
    }

    /// The same route with preferred source `src`.
    pub fn with_src(mut self, src: Option<IpAddr>) -> Route {
        self.src = src;
        self
    }

    /// The same route with protocol `proto`.
    pub fn with_proto(mut self, proto: Proto) -> Route {
        self.proto = proto;
        self
    }

    /// The family of the destination.
    pub fn family(&self) -> Family {
        Family::of_net(&self.dst)
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    /// True if the route leaves by `dev` (directly or through one of its nexthops).
    pub fn uses_dev(&self, dev: &str) -> bool {
        self.dev == dev || self.nexthops.iter().any(|n| n.dev == dev)
    }

    /// The metric the kernel stores: 0 (IPv4) or 1024 (IPv6) when unset.
    pub fn effective_metric(&self) -> u32 {
        match (self.metric, self.family()) {
            (Some(m), _) => m,
            (None, Family::V4) => 0,
            (None, Family::V6) => 1024,
        }
    }

    /// True if the kernel would refuse to add `other` next to `self` with "File exists":
    /// same table, destination and metric (TOS is always 0 here).
    pub fn same_slot(&self, other: &Route) -> bool {
        self.table == other.table
            && self.dst.trunc() == other.dst.trunc()
            && self.effective_metric() == other.effective_metric()
    }

    /// Equal as forwarding entries: everything but the protocol.
    pub fn same_forwarding(&self, other: &Route) -> bool {
        self.same_slot(other)
            && self.gw == other.gw
            && self.dev == other.dev
            && self.scope == other.scope
            && self.src == other.src
            && self.nexthops == other.nexthops
    }

    /// True if deleting `self` (as a selector) removes `existing`: unset fields match anything.
    pub fn selects(&self, existing: &Route) -> bool {
        self.table == existing.table
            && self.dst.trunc() == existing.dst.trunc()
            && (self.dev.is_empty() || self.dev == existing.dev)
            && (self.gw.is_none() || self.gw == existing.gw)
            && (self.metric.is_none() || self.effective_metric() == existing.effective_metric())
            && (self.nexthops.is_empty() || self.nexthops == existing.nexthops)
    }
}

/// A policy-routing rule (`ip rule`).
///
/// JSON/YAML: `{"family": "v4", "priority": 32765, "from": "10.6.212.145/32", "table": 101}`;
/// `from`/`to` absent means `all`, `fwmark` is a number. `priority` is required in views and in
/// the rules an ADD plan adds; a rule to delete without priority matches any priority.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// The rule list (IPv4 and IPv6 rules are separate kernel lists).
    pub family: Family,
    /// Preference (`pref`); lower is evaluated first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Source selector; `None` is `from all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    /// Destination selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpNet>,
    /// Firewall mark selector (mask 0xffffffff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// The table to look up.
    pub table: u32,
}

impl Rule {
    /// A rule `from all lookup table`, without priority.
    pub fn lookup(family: Family, table: u32) -> Rule {
        Rule {
            family,
            priority: None,
            from: None,
            to: None,
            fwmark: None,
            table,
        }
    }

    /// A rule `from addr lookup table`, without priority.
    pub fn from_addr(addr: IpAddr, table: u32) -> Rule {
        Rule {
            from: Some(host_net(addr)),
            ..Rule::lookup(Family::of(&addr), table)
        }
    }

    /// The same rule at `priority`.
    pub fn at(mut self, priority: u32) -> Rule {
        self.priority = Some(priority);
        self
    }

    /// The kernel's rules in a fresh netns: `0 local`, `32766 main`, `32767 default` for IPv4 and
    /// `0 local`, `32766 main` for IPv6.
    pub fn kernel_defaults() -> Vec<Rule> {
        vec![
            Rule::lookup(Family::V4, TABLE_LOCAL).at(0),
            Rule::lookup(Family::V4, TABLE_MAIN).at(32766),
            Rule::lookup(Family::V4, TABLE_DEFAULT).at(32767),
            Rule::lookup(Family::V6, TABLE_LOCAL).at(0),
            Rule::lookup(Family::V6, TABLE_MAIN).at(32766),
        ]
    }

    /// Same selectors and table, priority ignored.
    pub fn same_selectors(&self, other: &Rule) -> bool {
        self.family == other.family
            && self.from.map(|n| n.trunc()) == other.from.map(|n| n.trunc())
            && self.to.map(|n| n.trunc()) == other.to.map(|n| n.trunc())
            && self.fwmark == other.fwmark
            && self.table == other.table
    }

    /// True if deleting `self` (as a selector) removes `existing`.
    pub fn selects(&self, existing: &Rule) -> bool {
        self.same_selectors(existing)
            && (self.priority.is_none() || self.priority == existing.priority)
    }
}

/// A neighbour-table state, as iproute2 prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NeighState {
    /// Static entry; what the coordinator writes.
    #[default]
    Permanent,
    /// Confirmed reachable.
    Reachable,
    /// Stale.
    Stale,
    /// Delay.
    Delay,
    /// Probe.
    Probe,
    /// Failed.
    Failed,
    /// Incomplete.
    Incomplete,
    /// No ARP.
    Noarp,
}

impl NeighState {
    /// The iproute2 name.
    pub fn name(self) -> &'static str {
        match self {
            NeighState::Permanent => "PERMANENT",
            NeighState::Reachable => "REACHABLE",
            NeighState::Stale => "STALE",
            NeighState::Delay => "DELAY",
            NeighState::Probe => "PROBE",
            NeighState::Failed => "FAILED",
            NeighState::Incomplete => "INCOMPLETE",
            NeighState::Noarp => "NOARP",
        }
    }
}

/// A neighbour (ARP / NDP) entry.
///
/// JSON/YAML: `{"ip": "10.6.212.132", "dev": "eth0", "lladdr": "ee:ee:ee:ee:ee:ee",
/// "state": "PERMANENT"}` (`state` defaults to `PERMANENT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Neighbour {
    /// The neighbour's IP address.
    pub ip: IpAddr,
    /// The device.
    pub dev: String,
    /// Its link-layer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lladdr: Option<MacAddr>,
    /// Its state.
    #[serde(default, skip_serializing_if = "is_default")]
    pub state: NeighState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let m: MacAddr = "0A:1b:0a:06:d4:91".parse().unwrap();
        assert_eq!(m.to_string(), "0a:1b:0a:06:d4:91");
        assert!(m.is_unicast());
        assert!("0a:1b:0a:06:d4".parse::<MacAddr>().is_err());
        assert!("0a:1b:0a:06:d4:9".parse::<MacAddr>().is_err());
        assert!("0a:1b-0a:06:d4:91".parse::<MacAddr>().is_err());
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"0a:1b:0a:06:d4:91\"");
    }

    #[test]
    fn proto_serde_uses_names_and_numbers() {
        assert_eq!(serde_json::to_string(&Proto::KERNEL).unwrap(), "\"kernel\"");
        assert_eq!(serde_json::to_string(&Proto(77)).unwrap(), "\"77\"");
        let p: Proto = serde_json::from_str("\"bird\"").unwrap();
        assert_eq!(p, Proto(12));
        let p: Proto = serde_json::from_str("99").unwrap();
        assert_eq!(p, Proto(99));
        assert!(serde_json::from_str::<Proto>("\"nope\"").is_err());
    }

    #[test]
    fn usable_addresses() {
        for bad in [
            "169.254.1.1",
            "fe80::1",
            "224.0.0.1",
            "ff02::1",
            "127.0.0.1",
            "::1",
        ] {
            assert!(!is_usable(&bad.parse().unwrap()), "{bad}");
        }
        for good in ["10.6.212.145", "fd00::5", "2001:db8::1"] {
            assert!(is_usable(&good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn route_slots_follow_kernel_metrics() {
        let a = Route::new("0.0.0.0/0".parse().unwrap(), "eth0");
        let b = Route::new("0.0.0.0/0".parse().unwrap(), "net1");
        assert!(a.same_slot(&b));
        assert!(!a.same_forwarding(&b));
        let mut c = b.clone();
        c.metric = Some(100);
        assert!(!a.same_slot(&c));
        let v6 = Route::new("::/0".parse().unwrap(), "eth0");
        assert_eq!(v6.effective_metric(), 1024);
    }
}
