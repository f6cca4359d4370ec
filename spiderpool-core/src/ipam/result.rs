//! What an allocation returns (§3.9): per NIC, the addresses with their pools and gateways,
//! and the routes (default route via the gateway unless cleanGateway, the pools' routes, the
//! pod's custom routes).

use crate::ipam::IpamError;
use std::net::IpAddr;

use crate::ip::{IpFamily, parse_ip};
use crate::objects::{IPAllocationDetail, Route, SpiderEndpointStatus};

/// One address given to a NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address.
    pub address: IpAddr,
    /// Prefix length of the pool's subnet.
    pub prefix_len: u8,
    /// The pool it came from.
    pub pool: String,
    /// The pool's gateway.
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    /// The family of the address.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.address)
    }

    /// `address/prefix`, as recorded in the SpiderEndpoint.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix_len)
    }
}

/// The addresses and routes of one NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicResult {
    /// The NIC name (`""` for a positional `ippools` entry not claimed by an ADD yet).
    pub interface: String,
    /// The IPv4 address.
    pub ipv4: Option<IpConfig>,
    /// The IPv6 address.
    pub ipv6: Option<IpConfig>,
    /// No default route for this NIC.
    pub clean_gateway: bool,
    /// Routes: a default route per family via the gateway (unless `clean_gateway`), then the
    /// pools' routes and the pod's custom routes (as recorded in the SpiderEndpoint).
    pub routes: Vec<Route>,
}

impl NicResult {
    /// The addresses, IPv4 first.
    pub fn ips(&self) -> impl Iterator<Item = &IpConfig> {
        self.ipv4.iter().chain(self.ipv6.iter())
    }

    /// Builds the result of one endpoint NIC entry.
    pub fn from_detail(d: &IPAllocationDetail) -> Result<Self, IpamError> {
        let ip = |addr: &Option<String>, pool: &Option<String>, gw: &Option<String>| {
            addr.as_deref()
                .map(|a| parse_config(a, pool.as_deref(), gw.as_deref()))
                .transpose()
        };
        let ipv4 = ip(&d.ipv4, &d.ipv4_pool, &d.ipv4_gateway)?;
        let ipv6 = ip(&d.ipv6, &d.ipv6_pool, &d.ipv6_gateway)?;
        let clean_gateway = d.clean_gateway.unwrap_or(false);
        let mut routes = Vec::new();
        if !clean_gateway {
            for c in ipv4.iter().chain(ipv6.iter()) {
                if let Some(gw) = c.gateway {
                    let dst = match c.family() {
                        IpFamily::V4 => "0.0.0.0/0",
                        IpFamily::V6 => "::/0",
                    };
                    routes.push(Route::new(dst, gw.to_string()));
                }
            }
        }
        routes.extend(d.routes.iter().flatten().cloned());
        Ok(NicResult {
            interface: d.interface.clone(),
            ipv4,
            ipv6,
            clean_gateway,
            routes,
        })
    }
}

fn parse_config(addr: &str, pool: Option<&str>, gw: Option<&str>) -> Result<IpConfig, IpamError> {
    let mismatch = |reason: String| IpamError::RecordMismatch {
        pool: pool.unwrap_or_default().to_owned(),
        ip: addr.to_owned(),
        reason,
    };
    let (a, p) = addr
        .split_once('/')
        .ok_or_else(|| mismatch("endpoint address is not ip/prefix".to_owned()))?;
    Ok(IpConfig {
        address: parse_ip(a).map_err(|e| mismatch(e.to_string()))?,
        prefix_len: p
            .parse()
            .map_err(|_| mismatch(format!("bad prefix length {p:?}")))?,
        pool: pool.unwrap_or_default().to_owned(),
        gateway: gw
            .filter(|g| !g.is_empty())
            .map(parse_ip)
            .transpose()
            .map_err(|e| mismatch(e.to_string()))?,
    })
}

/// The pod's addresses after an ADD: every NIC recorded in its SpiderEndpoint (upstream
/// returns all of them; the plugin keeps [`AllocationResult::current`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationResult {
    /// The NIC of this ADD.
    pub interface: String,
    /// Every NIC of the pod, in endpoint order.
    pub nics: Vec<NicResult>,
}

impl AllocationResult {
    /// The result from an endpoint status.
    pub fn from_status(interface: &str, status: &SpiderEndpointStatus) -> Result<Self, IpamError> {
        Ok(AllocationResult {
            interface: interface.to_owned(),
            nics: status
                .current
                .ips
                .iter()
                .map(NicResult::from_detail)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The NIC of this ADD.
    pub fn current(&self) -> Option<&NicResult> {
        self.nics.iter().find(|n| n.interface == self.interface)
    }
}
