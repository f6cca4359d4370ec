//! Strict address parsing and the integer view of addresses.
//!
//! Every range computation works on `u128`: an IPv4 address is its 32-bit value, an IPv6
//! address its 128-bit value. The family travels separately, so the two spaces never mix.

use crate::ip::IpError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::IpFamily;

/// Parses one IP address as strictly as Go's `net.ParseIP`: no surrounding or inner
/// whitespace, no leading zeros in IPv4 octets, no zone (`%eth0`), no `/prefix`.
///
/// IPv4-mapped IPv6 text (`::ffff:1.2.3.4`) parses to an IPv6 address.
pub fn parse_ip(s: &str) -> Result<IpAddr, IpError> {
    let fail = |reason: &str| IpError::InvalidIp {
        input: s.to_owned(),
        reason: reason.to_owned(),
    };
    if s.is_empty() {
        return Err(fail("empty string"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(fail("contains whitespace"));
    }
    if s.contains('/') {
        return Err(fail("CIDR notation is not a single address"));
    }
    if s.contains('%') {
        return Err(fail("zoned addresses are not supported"));
    }
    // The standard parser already rejects leading-zero octets (`010.0.0.1`), like Go does.
    s.parse::<IpAddr>().map_err(|_| {
        if s.contains(':') {
            fail("not a valid IPv6 address")
        } else if s.contains('.') {
            fail("not a valid IPv4 address (four decimal octets 0-255, no leading zeros)")
        } else {
            fail("not an IPv4 or IPv6 address")
        }
    })
}

/// Parses an address and requires it to be of `family`.
pub fn parse_ip_in(family: IpFamily, s: &str) -> Result<IpAddr, IpError> {
    let ip = parse_ip(s)?;
    if IpFamily::of(&ip) != family {
        return Err(IpError::FamilyMismatch {
            input: s.to_owned(),
            expected: family,
        });
    }
    Ok(ip)
}

/// The integer value of an address (IPv4 uses the low 32 bits).
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` with integer value `value`; `None` if it does not fit (IPv4 > 2^32-1).
pub fn ip_from_u128(family: IpFamily, value: u128) -> Option<IpAddr> {
    match family {
        IpFamily::V4 => u32::try_from(value)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpFamily::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
    }
}

/// Like [`ip_from_u128`] for values already known to be in range (internal invariant of the
/// range types); out-of-range IPv4 values saturate instead of panicking.
pub(crate) fn ip_from_u128_sat(family: IpFamily, value: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// The next address of the same family, or `None` after the last one
/// (`255.255.255.255`, `ffff:…:ffff`).
pub fn next_ip(ip: IpAddr) -> Option<IpAddr> {
    let family = IpFamily::of(&ip);
    let v = ip_to_u128(ip);
    if v >= family.max_value() {
        return None;
    }
    ip_from_u128(family, v + 1)
}

/// The previous address of the same family, or `None` before the first one.
pub fn prev_ip(ip: IpAddr) -> Option<IpAddr> {
    let v = ip_to_u128(ip);
    v.checked_sub(1)
        .and_then(|p| ip_from_u128(IpFamily::of(&ip), p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_parseable_addresses() {
        for s in [
            "172.18.40.10",
            "0.0.0.0",
            "255.255.255.255",
            "abcd:1234::a",
            "::",
            "::1",
            "ABCD:1234::A",
            "0001:0002::3",
            "::ffff:1.2.3.4",
        ] {
            assert!(parse_ip(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in [
            "",
            " 172.18.40.1",
            "172.18.40.1 ",
            "172.18.040.1",
            "172.18.40",
            "172.18.40.256",
            "10.6.0.1/24",
            "fe80::1%eth0",
            "abcd:12345::1",
            "invalid IP range",
            "1.2.3.4.5",
            ":::",
        ] {
            assert!(parse_ip(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn error_names_input_and_reason() {
        let e = parse_ip("10.0.0.1/24").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid IP address \"10.0.0.1/24\": CIDR notation is not a single address"
        );
    }

    #[test]
    fn family_check() {
        assert!(parse_ip_in(IpFamily::V4, "1.2.3.4").is_ok());
        assert!(matches!(
            parse_ip_in(IpFamily::V4, "::ffff:1.2.3.4"),
            Err(IpError::FamilyMismatch { .. })
        ));
        assert!(parse_ip_in(IpFamily::V6, "::ffff:1.2.3.4").is_ok());
    }

    #[test]
    fn next_prev_at_edges() {
        let ip = |s: &str| parse_ip(s).unwrap();
        assert_eq!(next_ip(ip("10.0.0.255")), Some(ip("10.0.1.0")));
        assert_eq!(next_ip(ip("255.255.255.255")), None);
        assert_eq!(prev_ip(ip("0.0.0.0")), None);
        assert_eq!(prev_ip(ip("10.0.1.0")), Some(ip("10.0.0.255")));
        assert_eq!(next_ip(ip("abcd::ffff")), Some(ip("abcd::1:0")));
        assert_eq!(next_ip(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), None);
        assert_eq!(prev_ip(ip("::")), None);
    }

    #[test]
    fn u128_round_trip() {
        assert_eq!(ip_to_u128(parse_ip("0.0.1.2").unwrap()), 258);
        assert_eq!(ip_from_u128(IpFamily::V4, 1 << 32), None);
        assert_eq!(
            ip_from_u128(IpFamily::V6, 1),
            Some(parse_ip("::1").unwrap())
        );
    }
}
