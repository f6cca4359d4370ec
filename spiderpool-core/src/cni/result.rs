//! The version-independent result model: the 1.1.0 layout, printed in any supported version
//! by [`super::convert`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::version::SpecVersion;

/// A CNI result in the current (1.1.0) layout, without a `cniVersion`: the version is chosen
/// when printing ([`Result100::to_json_pretty`]) and reported when parsing
/// ([`Result100::parse`] returns a [`VersionedResult`]).
///
/// As in Go, zero and empty values mean "unset" for the plain fields (`mac`, `sandbox`, `mtu`,
/// ...) and are omitted from the JSON.
///
/// ```
/// use spiderpool_core::cni::{Interface, IpConfig, Result100, Route, SpecVersion};
///
/// let mut r = Result100::default();
/// r.interfaces.push(Interface::new("net1").with_mac("6a:1b:e7:ac:f8:a0").with_sandbox("/var/run/netns/sppod1"));
/// r.ips.push(IpConfig::new("10.6.212.145/16".parse()?).with_gateway("10.6.0.1".parse()?).with_interface(0));
/// r.routes.push(Route::new("0.0.0.0/0".parse()?));
/// let text = r.to_json_pretty(SpecVersion::V0_3_1)?;
/// assert!(text.contains("\"version\": \"4\""));
/// let back = Result100::parse(text.as_bytes(), None)?;
/// assert_eq!((back.version, back.result), (SpecVersion::V0_3_1, r));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Result100 {
    /// The interfaces the plugin created or touched.
    pub interfaces: Vec<Interface>,
    /// The addresses, each optionally pointing into `interfaces`.
    pub ips: Vec<IpConfig>,
    /// The routes.
    pub routes: Vec<Route>,
    /// DNS settings (omitted from 1.x JSON when empty).
    pub dns: Dns,
}

/// A result together with the version it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedResult {
    /// The result's `cniVersion` (or the default given when it had none).
    pub version: SpecVersion,
    /// The result.
    pub result: Result100,
}

/// An interface of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// The interface name (always printed).
    pub name: String,
    /// The hardware address; empty when unset.
    pub mac: String,
    /// The MTU (1.1.0); `0` when unset. Not in 0.x layouts.
    pub mtu: u32,
    /// The netns path for a container interface; empty for a host interface.
    pub sandbox: String,
    /// A vhost-user or similar socket path (1.1.0); empty when unset. Not in 0.x layouts.
    pub socket_path: String,
    /// The PCI ID of a device interface (1.1.0); empty when unset. Not in 0.x layouts.
    pub pci_id: String,
}

impl Interface {
    /// An interface with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The same interface with `mac` set.
    #[must_use]
    pub fn with_mac(mut self, mac: impl Into<String>) -> Self {
        self.mac = mac.into();
        self
    }

    /// The same interface with `sandbox` set.
    #[must_use]
    pub fn with_sandbox(mut self, sandbox: impl Into<String>) -> Self {
        self.sandbox = sandbox.into();
        self
    }
}

/// An address of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Index into [`Result100::interfaces`], if the address belongs to one of them.
    pub interface: Option<usize>,
    /// The address with its prefix length, e.g. `10.6.212.145/16` (host bits kept).
    pub address: IpNet,
    /// The default gateway for this address, if any.
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    /// An address with no interface index and no gateway.
    pub fn new(address: IpNet) -> Self {
        Self {
            interface: None,
            address,
            gateway: None,
        }
    }

    /// The same address with a gateway.
    #[must_use]
    pub fn with_gateway(mut self, gateway: IpAddr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// The same address pointing at `interfaces[index]`.
    #[must_use]
    pub fn with_interface(mut self, index: usize) -> Self {
        self.interface = Some(index);
        self
    }

    /// `"4"` or `"6"`: the `ips[].version` of the 0.3.x / 0.4.0 layouts.
    pub fn version_label(&self) -> &'static str {
        match self.address {
            IpNet::V4(_) => "4",
            IpNet::V6(_) => "6",
        }
    }
}

/// A route of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; `None` means the plugin's default gateway (or on-link).
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0); `0` when unset.
    pub mtu: u32,
    /// Advertised MSS (1.1.0); `0` when unset.
    pub advmss: u32,
    /// Route priority / metric (1.1.0); `0` when unset.
    pub priority: u32,
    /// Routing table (1.1.0); `None` when unset (`Some(0)` is printed).
    pub table: Option<u32>,
    /// Route scope (1.1.0), e.g. 253 for link; `None` when unset.
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` with nothing else set.
    pub fn new(dst: IpNet) -> Self {
        Self {
            dst,
            gw: None,
            mtu: 0,
            advmss: 0,
            priority: 0,
            table: None,
            scope: None,
        }
    }

    /// The same route via `gw`.
    #[must_use]
    pub fn with_gw(mut self, gw: IpAddr) -> Self {
        self.gw = Some(gw);
        self
    }

    /// Whether any 1.1.0-only field (`mtu`, `advmss`, `priority`, `table`, `scope`) is set.
    pub fn has_v1_1_fields(&self) -> bool {
        self.mtu != 0
            || self.advmss != 0
            || self.priority != 0
            || self.table.is_some()
            || self.scope.is_some()
    }
}

/// DNS settings, in a result and in a network configuration's `dns` key.
///
/// Its own serde form (used for the configuration) has Go's struct order: `nameservers`,
/// `domain`, `search`, `options`, each omitted when empty; `null` reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name server addresses, in priority order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::convert::null_as_default"
    )]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "super::convert::null_as_default"
    )]
    pub domain: String,
    /// Search domains, in priority order.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::convert::null_as_default"
    )]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::convert::null_as_default"
    )]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (Go's `DNS.IsEmpty`).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl Result100 {
    /// What of this result a given version can carry when printed Go's way: 0.x layouts have no
    /// interface `mtu`, `socketPath` or `pciID`; everything else survives every supported
    /// version (Go keeps the 1.1.0 route fields in 1.0.0 and 0.x output, because its route type
    /// is shared). Printing in `version` and parsing back gives exactly this.
    #[must_use]
    pub fn as_held_by(&self, version: SpecVersion) -> Result100 {
        let mut r = self.clone();
        if version < SpecVersion::V1_0_0 {
            for i in &mut r.interfaces {
                i.mtu = 0;
                i.socket_path.clear();
                i.pci_id.clear();
            }
        }
        r
    }

    /// Strict spec view: drops every field `version` does not define. Below 1.1.0 that is the
    /// interface `mtu`/`socketPath`/`pciID` and the route `mtu`/`advmss`/`priority`/`table`/
    /// `scope`. Go does not do this (see [`Result100::as_held_by`]); use it before printing
    /// when a strict consumer must not see fields newer than its version.
    #[must_use]
    pub fn restricted_to(&self, version: SpecVersion) -> Result100 {
        let mut r = self.clone();
        if version < SpecVersion::V1_1_0 {
            for i in &mut r.interfaces {
                i.mtu = 0;
                i.socket_path.clear();
                i.pci_id.clear();
            }
            for rt in &mut r.routes {
                *rt = Route {
                    gw: rt.gw,
                    ..Route::new(rt.dst)
                };
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Result100 {
        let mut r = Result100::default();
        r.interfaces.push(Interface {
            name: "net1".into(),
            mac: "6a:1b:e7:ac:f8:a0".into(),
            mtu: 1500,
            sandbox: "/var/run/netns/p".into(),
            socket_path: "/s".into(),
            pci_id: "0000:00:01.0".into(),
        });
        r.routes.push(Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("10.6.0.1".parse().unwrap()),
            mtu: 1400,
            advmss: 1360,
            priority: 10,
            table: Some(0),
            scope: Some(0),
        });
        r
    }

    #[test]
    fn cni_result_held_and_restricted() {
        let r = full();
        assert_eq!(r.as_held_by(SpecVersion::V1_0_0), r);
        let held04 = r.as_held_by(SpecVersion::V0_4_0);
        assert_eq!(held04.interfaces[0].mtu, 0);
        assert!(held04.routes[0].has_v1_1_fields());
        let strict10 = r.restricted_to(SpecVersion::V1_0_0);
        assert!(!strict10.routes[0].has_v1_1_fields());
        assert_eq!(strict10.routes[0].gw, r.routes[0].gw);
        assert_eq!(strict10.interfaces[0].mac, "6a:1b:e7:ac:f8:a0");
        assert!(strict10.interfaces[0].pci_id.is_empty());
        assert_eq!(r.restricted_to(SpecVersion::V1_1_0), r);
    }

    #[test]
    fn cni_result_ip_version_label() {
        assert_eq!(
            IpConfig::new("10.0.0.1/8".parse().unwrap()).version_label(),
            "4"
        );
        assert_eq!(
            IpConfig::new("fd00::1/64".parse().unwrap()).version_label(),
            "6"
        );
    }
}
