//! The two IP families and the numeric view of addresses used by the range math.

use std::fmt;
use std::net::IpAddr;

/// An IP family. Every range, range set and pool belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4 (32-bit addresses).
    V4,
    /// IPv6 (128-bit addresses), including IPv4-mapped literals such as `::ffff:1.2.3.4`.
    V6,
}

impl IpFamily {
    /// The version number used by Spiderpool's `spec.ipVersion`: 4 or 6.
    pub fn version(self) -> u8 {
        match self {
            IpFamily::V4 => 4,
            IpFamily::V6 => 6,
        }
    }

    /// The family for an `ipVersion` value; `None` for anything but 4 and 6.
    pub fn from_version(version: i64) -> Option<Self> {
        match version {
            4 => Some(IpFamily::V4),
            6 => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// The family of an address. An IPv4-mapped IPv6 address is IPv6 (see
    /// `docs/compatibility.md`: upstream's textual test classes it as both).
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Address width in bits: 32 or 128.
    pub fn bits(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }

    /// The highest address of the family as an integer.
    pub fn max_value(self) -> u128 {
        match self {
            IpFamily::V4 => u128::from(u32::MAX),
            IpFamily::V6 => u128::MAX,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip() {
        assert_eq!(IpFamily::from_version(4), Some(IpFamily::V4));
        assert_eq!(IpFamily::from_version(6), Some(IpFamily::V6));
        assert_eq!(IpFamily::from_version(0), None);
        assert_eq!(IpFamily::from_version(46), None);
        assert_eq!(IpFamily::V4.version(), 4);
        assert_eq!(IpFamily::V6.version(), 6);
    }

    #[test]
    fn display_and_classification() {
        assert_eq!(IpFamily::V4.to_string(), "IPv4");
        assert_eq!(IpFamily::V6.to_string(), "IPv6");
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(IpFamily::of(&mapped), IpFamily::V6);
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(IpFamily::of(&v4), IpFamily::V4);
    }
}
