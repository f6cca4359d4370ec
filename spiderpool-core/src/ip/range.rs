//! One inclusive range of addresses: `10.6.212.100-10.6.212.200` or a single address.

use crate::ip::IpError;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::IpFamily;
use super::addr::{ip_from_u128_sat, ip_to_u128, parse_ip};

/// An inclusive range `start..=end` of one family with `start <= end`.
///
/// The fields are private so that the invariant always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

impl IpRange {
    /// A range from `start` to `end` inclusive; both must be of the same family and
    /// `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, IpError> {
        let input = || format!("{start}-{end}");
        if IpFamily::of(&start) != IpFamily::of(&end) {
            return Err(IpError::InvalidRange {
                input: input(),
                reason: "start and end are of different IP families".to_owned(),
            });
        }
        if ip_to_u128(start) > ip_to_u128(end) {
            return Err(IpError::InvalidRange {
                input: input(),
                reason: "start address is greater than end address".to_owned(),
            });
        }
        Ok(IpRange { start, end })
    }

    /// The range holding exactly `ip`.
    pub fn single(ip: IpAddr) -> Self {
        IpRange { start: ip, end: ip }
    }

    /// Builds a range from integer bounds already known to satisfy the invariant.
    pub(crate) fn from_bounds(family: IpFamily, lo: u128, hi: u128) -> Self {
        IpRange {
            start: ip_from_u128_sat(family, lo),
            end: ip_from_u128_sat(family, hi),
        }
    }

    /// Parses `a` or `a-b` (upstream `IsIPv4IPRange`/`IsIPv6IPRange` rules): exactly one
    /// optional `-`, no spaces, no CIDR, both ends of one family, start <= end.
    pub fn parse(s: &str) -> Result<Self, IpError> {
        let fail = |reason: String| IpError::InvalidRange {
            input: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(fail("empty string".to_owned()));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(fail("contains whitespace".to_owned()));
        }
        if s.contains('/') {
            return Err(fail(
                "CIDR notation is not a range; write a single address or \"first-last\"".to_owned(),
            ));
        }
        let mut parts = s.split('-');
        let first = parts.next().unwrap_or_default();
        let second = parts.next();
        if parts.next().is_some() {
            return Err(fail(
                "more than one '-'; expected a single address or \"first-last\"".to_owned(),
            ));
        }
        let part = |p: &str, which: &str| {
            parse_ip(p).map_err(|e| match e {
                IpError::InvalidIp { reason, .. } => fail(format!("{which} {p:?}: {reason}")),
                other => other,
            })
        };
        let start = part(first, "start")?;
        let end = match second {
            Some(t) => part(t, "end")?,
            None => start,
        };
        if IpFamily::of(&start) != IpFamily::of(&end) {
            return Err(fail(format!(
                "start is {} but end is {}",
                IpFamily::of(&start),
                IpFamily::of(&end)
            )));
        }
        if ip_to_u128(start) > ip_to_u128(end) {
            return Err(fail("start address is greater than end address".to_owned()));
        }
        Ok(IpRange { start, end })
    }

    /// Like [`IpRange::parse`], and the range must be of `family`.
    pub fn parse_in(family: IpFamily, s: &str) -> Result<Self, IpError> {
        let r = Self::parse(s)?;
        if r.family() != family {
            return Err(IpError::FamilyMismatch {
                input: s.to_owned(),
                expected: family,
            });
        }
        Ok(r)
    }

    /// The first address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// The last address (inclusive).
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.start)
    }

    /// Integer bounds `(start, end)`.
    pub(crate) fn bounds(&self) -> (u128, u128) {
        (ip_to_u128(self.start), ip_to_u128(self.end))
    }

    /// Number of addresses. The whole IPv6 space (2^128) saturates to `u128::MAX`.
    pub fn len(&self) -> u128 {
        let (lo, hi) = self.bounds();
        (hi - lo).saturating_add(1)
    }

    /// Always false: a range holds at least one address. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies in the range (numeric compare; an address of the other family never
    /// does). Upstream compares single-address ranges textually, so `fd00::1` would not match
    /// `fd00:0::1` there; here it does, which is the evident intent.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if IpFamily::of(&ip) != self.family() {
            return false;
        }
        let (lo, hi) = self.bounds();
        (lo..=hi).contains(&ip_to_u128(ip))
    }
}

/// `::ffff:0.0.0.0`, first IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2).
const V4_MAPPED_FIRST: u128 = 0xffff_0000_0000;
/// `::ffff:255.255.255.255`, the last one.
const V4_MAPPED_LAST: u128 = 0xffff_ffff_ffff;

impl IpRange {
    /// Whether the range holds an IPv4-mapped IPv6 address (`::ffff:0:0/96`). To the kernel's
    /// sockets such an address *is* the IPv4 address it embeds, so handing it out would alias
    /// the addresses of IPv4 pools; admission refuses pools, subnets and reserved IPs that
    /// hold one. (Other prefixes that embed an IPv4 address, `64:ff9b::/96`, `2002::/16` or
    /// the deprecated `::/96`, are distinct IPv6 addresses and are not concerned.)
    pub fn aliases_ipv4(&self) -> bool {
        if self.family() != IpFamily::V6 {
            return false;
        }
        let (lo, hi) = self.bounds();
        lo <= V4_MAPPED_LAST && hi >= V4_MAPPED_FIRST
    }
}

impl fmt::Display for IpRange {
    /// A single address without dash, otherwise `start-end`, both in canonical text
    /// (lower-case, compressed IPv6).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for IpRange {
    type Err = IpError;
    fn from_str(s: &str) -> Result<Self, IpError> {
        Self::parse(s)
    }
}

impl From<IpAddr> for IpRange {
    fn from(ip: IpAddr) -> Self {
        Self::single(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from upstream `iprange_test.go` (§2.1 of the behaviour spec) plus edge cases.
    #[test]
    fn valid_v4_ranges() {
        for (s, shown) in [
            ("172.18.40.10", "172.18.40.10"),
            ("172.18.40.1-172.18.40.2", "172.18.40.1-172.18.40.2"),
            ("172.18.40.1-172.18.40.1", "172.18.40.1"),
        ] {
            let r = IpRange::parse_in(IpFamily::V4, s).unwrap();
            assert_eq!(r.to_string(), shown);
        }
    }

    #[test]
    fn valid_v6_ranges() {
        for s in ["abcd:1234::a", "abcd:1234::1-abcd:1234::2"] {
            let r = IpRange::parse_in(IpFamily::V6, s).unwrap();
            assert_eq!(r.to_string(), s);
        }
    }

    #[test]
    fn invalid_ranges() {
        for (fam, s) in [
            (IpFamily::V4, "invalid IP range"),
            (IpFamily::V4, "172.18.40.1-invalid IP range"),
            (IpFamily::V4, "invalid IP range-172.18.40.2"),
            (IpFamily::V4, "172.18.40.2-172.18.40.1"),
            (IpFamily::V4, "172.18.40.1-172.18.40.2-172.18.40.3"),
            (IpFamily::V4, "172.18.40.0 - 172.18.40.10"),
            (IpFamily::V4, "10.6.0.1/24"),
            (IpFamily::V4, "172.18.40.1-2001:db8::1"),
            (IpFamily::V4, "abcd:1234::1"),
            (IpFamily::V4, ""),
            (IpFamily::V4, "-"),
            (IpFamily::V4, "172.18.40.1-"),
            (IpFamily::V6, "invalid IP range"),
            (IpFamily::V6, "abcd:1234::1-invalid IP range"),
            (IpFamily::V6, "invalid IP range-abcd:1234::2"),
            (IpFamily::V6, "abcd:1234::2-abcd:1234::1"),
            (IpFamily::V6, "abcd:1234::1-abcd:1234::2-abcd:1234::3"),
            (IpFamily::V6, "abcd:1234::/120"),
            (IpFamily::V6, "172.18.40.1"),
        ] {
            assert!(
                IpRange::parse_in(fam, s).is_err(),
                "{s:?} accepted as {fam}"
            );
        }
    }

    #[test]
    fn error_messages_are_specific() {
        let msg = |s: &str| IpRange::parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("172.18.40.2-172.18.40.1"),
            "invalid IP range \"172.18.40.2-172.18.40.1\": start address is greater than end address"
        );
        assert!(msg("1.1.1.1-2-3").contains("more than one '-'"));
        assert!(msg("1.1.1.1-::1").contains("start is IPv4 but end is IPv6"));
        assert!(msg("1.1.1.1-1.1.1.x").contains("end \"1.1.1.x\""));
        assert_eq!(
            IpRange::parse_in(IpFamily::V6, "1.1.1.1")
                .unwrap_err()
                .to_string(),
            "\"1.1.1.1\" is not an IPv6 address or range"
        );
    }

    #[test]
    fn canonical_display_and_len() {
        let r = IpRange::parse("ABCD:1234:0::1-abcd:1234::00ff").unwrap();
        assert_eq!(r.to_string(), "abcd:1234::1-abcd:1234::ff");
        assert_eq!(r.len(), 255);
        let all = IpRange::parse("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap();
        assert_eq!(all.len(), u128::MAX);
        let all4 = IpRange::parse("0.0.0.0-255.255.255.255").unwrap();
        assert_eq!(all4.len(), 1 << 32);
    }

    #[test]
    fn contains_is_numeric() {
        let r = IpRange::parse("fd00::1").unwrap();
        assert!(r.contains(parse_ip("fd00:0::1").unwrap()));
        let r = IpRange::parse("10.0.0.1-10.0.0.9").unwrap();
        assert!(r.contains(parse_ip("10.0.0.9").unwrap()));
        assert!(!r.contains(parse_ip("10.0.0.10").unwrap()));
        assert!(!r.contains(parse_ip("::ffff:10.0.0.5").unwrap()));
    }

    #[test]
    fn new_checks_invariant() {
        let a = parse_ip("10.0.0.2").unwrap();
        let b = parse_ip("10.0.0.1").unwrap();
        assert!(IpRange::new(a, b).is_err());
        assert!(IpRange::new(b, a).is_ok());
        assert!(IpRange::new(b, parse_ip("::1").unwrap()).is_err());
    }

    #[test]
    fn v4_mapped_ranges_alias_ipv4() {
        let r = |s: &str| IpRange::parse(s).unwrap();
        for yes in [
            "::ffff:10.6.0.1",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
            "::fffe:ffff:ffff-::ffff:0:0",
            "::ffff:255.255.255.255-::1:0:0:0",
        ] {
            assert!(r(yes).aliases_ipv4(), "{yes}");
        }
        for no in [
            "10.6.0.1",
            "::fffe:ffff:ffff",
            "::1:0:0:0",
            "::10.6.0.1",
            "64:ff9b::10.6.0.1",
            "::ffff:0:10.6.0.1",
            "2002:a06:1::1",
        ] {
            assert!(!r(no).aliases_ipv4(), "{no}");
        }
        let c = |s: &str| crate::ip::Cidr::parse(s).unwrap();
        assert!(c("::ffff:0:0/96").aliases_ipv4());
        assert!(c("::ffff:10.6.0.0/112").aliases_ipv4());
        assert!(c("::/64").aliases_ipv4());
        assert!(!c("fd00::/64").aliases_ipv4());
        assert!(!c("10.0.0.0/8").aliases_ipv4());
    }
}
