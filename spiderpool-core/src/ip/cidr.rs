//! CIDRs (`172.18.40.0/24`, `abcd:1234::/120`) with upstream's containment rules.

use crate::ip::IpError;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::addr::parse_ip;
use super::{IpFamily, IpRange, IpRangeSet};

/// A CIDR as written: the address part may have host bits set (`10.0.0.1/24`), as Go's
/// `net.ParseCIDR` allows. [`Cidr::network`] gives the masked network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Parses `address/prefix` like Go's `net.ParseCIDR` (upstream `IsCIDR`): the address
    /// part parses as a strict IP and the prefix is a decimal number within the family's width.
    pub fn parse(s: &str) -> Result<Self, IpError> {
        let fail = |reason: String| IpError::InvalidCidr {
            input: s.to_owned(),
            reason,
        };
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(fail("missing \"/prefix-length\"".to_owned()));
        };
        let ip = parse_ip(addr).map_err(|e| match e {
            IpError::InvalidIp { reason, .. } => fail(format!("address part {addr:?}: {reason}")),
            other => other,
        })?;
        let family = IpFamily::of(&ip);
        // Go accepts only ASCII digits here (no sign, no spaces); leading zeros are tolerated.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(format!(
                "prefix length {prefix:?} is not a decimal number"
            )));
        }
        let len = prefix
            .parse::<u16>()
            .ok()
            .filter(|&n| n <= u16::from(family.bits()))
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| {
                fail(format!(
                    "prefix length {prefix} is out of range 0-{} for {family}",
                    family.bits()
                ))
            })?;
        IpNet::new(ip, len)
            .map(Cidr)
            .map_err(|_| fail(format!("prefix length {len} is invalid for {family}")))
    }

    /// Parses a CIDR that must be written canonically (upstream `IsFormatCIDR`, required for
    /// `spec.subnet`): the text must equal the masked network in lower-case compressed form.
    /// The error suggests the canonical spelling.
    pub fn parse_canonical(s: &str) -> Result<Self, IpError> {
        let c = Self::parse(s)?;
        let canonical = c.trunc().to_string();
        if canonical != s {
            return Err(IpError::NonCanonicalCidr {
                input: s.to_owned(),
                canonical,
            });
        }
        Ok(c)
    }

    /// Like [`Cidr::parse`], and the CIDR must be of `family`.
    pub fn parse_in(family: IpFamily, s: &str) -> Result<Self, IpError> {
        let c = Self::parse(s)?;
        if c.family() != family {
            return Err(IpError::FamilyMismatch {
                input: s.to_owned(),
                expected: family,
            });
        }
        Ok(c)
    }

    /// The family of the address part.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.0.addr())
    }

    /// The address part as written (host bits kept).
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }

    /// The last address of the network (broadcast for IPv4).
    pub fn last(&self) -> IpAddr {
        self.0.broadcast()
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// The same network with host bits cleared (`10.0.0.1/24` → `10.0.0.0/24`).
    pub fn trunc(&self) -> Cidr {
        Cidr(self.0.trunc())
    }

    /// Whether the text form has no host bits set.
    pub fn is_canonical(&self) -> bool {
        self.0.addr() == self.0.network()
    }

    /// Whether the network contains `ip` (never for the other family).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }

    /// Whether both ends of `range` are inside the network (upstream `ContainsIPRange`).
    pub fn contains_range(&self, range: &IpRange) -> bool {
        self.contains_ip(range.start()) && self.contains_ip(range.end())
    }

    /// Whether every address of `set` is inside the network.
    pub fn contains_set(&self, set: &IpRangeSet) -> bool {
        match (set.first(), set.last()) {
            (Some(lo), Some(hi)) => self.contains_ip(lo) && self.contains_ip(hi),
            _ => true,
        }
    }

    /// Upstream `ContainsCIDR`: `self` is at most as specific as `other` and contains its
    /// network address.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        self.family() == other.family()
            && self.prefix_len() <= other.prefix_len()
            && self.contains_ip(other.network())
    }

    /// Upstream `IsCIDROverlap`: CIDRs either nest or are disjoint, so they overlap iff one
    /// contains the other.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// Whether the network holds an IPv4-mapped IPv6 address (see
    /// [`IpRange::aliases_ipv4`]): `::ffff:0:0/96`, anything inside it, or anything
    /// containing it such as `::/64`.
    pub fn aliases_ipv4(&self) -> bool {
        self.as_range().aliases_ipv4()
    }

    /// Every address of the network as one range (network address to last address).
    pub fn as_range(&self) -> IpRange {
        IpRange::from_bounds(
            self.family(),
            super::addr::ip_to_u128(self.network()),
            super::addr::ip_to_u128(self.last()),
        )
    }

    /// The underlying [`IpNet`] (address as written).
    pub fn to_ipnet(&self) -> IpNet {
        self.0
    }
}

impl fmt::Display for Cidr {
    /// `address/prefix` with the address as written, in canonical text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.addr(), self.0.prefix_len())
    }
}

impl FromStr for Cidr {
    type Err = IpError;
    fn from_str(s: &str) -> Result<Self, IpError> {
        Self::parse(s)
    }
}

impl From<IpNet> for Cidr {
    fn from(n: IpNet) -> Self {
        Cidr(n)
    }
}

impl From<Cidr> for IpNet {
    fn from(c: Cidr) -> Self {
        c.0
    }
}

impl From<&Cidr> for IpRangeSet {
    fn from(c: &Cidr) -> Self {
        IpRangeSet::from(c.as_range())
    }
}

/// Upstream `ParseIPOrCIDR` (hijackCIDR, policy routes): a bare address becomes a `/32` or
/// `/128`; a CIDR is kept as written (host bits are not cleared).
pub fn parse_ip_or_cidr(s: &str) -> Result<IpNet, IpError> {
    if s.contains('/') {
        Ok(Cidr::parse(s)?.to_ipnet())
    } else {
        Ok(IpNet::from(parse_ip(s)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn is_cidr_accepts_host_bits() {
        assert!(Cidr::parse("10.0.0.1/24").is_ok());
        assert_eq!(c("10.0.0.1/24").network().to_string(), "10.0.0.0");
        assert_eq!(c("10.0.0.1/24").to_string(), "10.0.0.1/24");
        assert_eq!(c("abcd:1234::/120").family(), IpFamily::V6);
        assert_eq!(c("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(c("::/0").as_range().len(), u128::MAX);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            " 10.0.0.0/8",
            "10.0.0.0/8/8",
            "010.0.0.0/8",
            "10.0.0.0-10.0.0.1/8",
            "10.0.0.0/99999999999999999999",
        ] {
            assert!(Cidr::parse(s).is_err(), "{s:?}");
        }
        assert_eq!(
            Cidr::parse("10.0.0.0/33").unwrap_err().to_string(),
            "invalid CIDR \"10.0.0.0/33\": prefix length 33 is out of range 0-32 for IPv4"
        );
    }

    #[test]
    fn canonical_form_upstream_examples() {
        assert!(Cidr::parse_canonical("172.10.0.0/16").is_ok());
        assert!(Cidr::parse_canonical("fc00:f853:ccd:e793::/64").is_ok());
        assert_eq!(
            Cidr::parse_canonical("172.10.5.0/16")
                .unwrap_err()
                .to_string(),
            "unformatted subnet 172.10.5.0/16, please change it to 172.10.0.0/16"
        );
        assert_eq!(
            Cidr::parse_canonical("fc00:f853:ccd:e793::ee/64").unwrap_err(),
            IpError::NonCanonicalCidr {
                input: "fc00:f853:ccd:e793::ee/64".to_owned(),
                canonical: "fc00:f853:ccd:e793::/64".to_owned(),
            }
        );
        for s in [
            "FC00:f853:ccd:e793::/64",
            "fc00:f853:ccd:e793:0:0:0:0/64",
            "10.0.0.0/08",
        ] {
            assert!(
                matches!(
                    Cidr::parse_canonical(s),
                    Err(IpError::NonCanonicalCidr { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn containment() {
        let net = c("172.18.40.0/24");
        assert!(net.contains_ip("172.18.40.255".parse().unwrap()));
        assert!(!net.contains_ip("172.18.41.0".parse().unwrap()));
        assert!(!net.contains_ip("::ffff:172.18.40.1".parse().unwrap()));
        assert!(net.contains_range(&IpRange::parse("172.18.40.1-172.18.40.9").unwrap()));
        assert!(!net.contains_range(&IpRange::parse("172.18.40.1-172.18.41.9").unwrap()));
        assert!(net.contains_cidr(&c("172.18.40.128/25")));
        assert!(net.contains_cidr(&c("172.18.40.0/24")));
        assert!(!net.contains_cidr(&c("172.18.0.0/16")));
        assert!(net.overlaps(&c("172.18.0.0/16")));
        assert!(!net.overlaps(&c("172.18.41.0/24")));
        assert!(!net.overlaps(&c("::/0")));
        assert_eq!(net.as_range().to_string(), "172.18.40.0-172.18.40.255");
    }

    #[test]
    fn parse_ip_or_cidr_upstream() {
        assert_eq!(
            parse_ip_or_cidr("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            parse_ip_or_cidr("fd00::1").unwrap().to_string(),
            "fd00::1/128"
        );
        assert_eq!(
            parse_ip_or_cidr("10.0.0.1/24").unwrap().to_string(),
            "10.0.0.1/24"
        );
        assert!(parse_ip_or_cidr("10.0.0.1/40").is_err());
        assert!(parse_ip_or_cidr("nope").is_err());
    }
}
