//! The errors of [`crate::ip`]: addresses, ranges and CIDRs that cannot be read or used.

use thiserror::Error;

/// Why an address, range, CIDR or list of them was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IpError {
    /// Text that should be an IP address is not one.
    #[error("invalid IP address {input:?}: {reason}")]
    InvalidIp {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Text that should be an IP range (`a` or `a-b`) is not one.
    #[error("invalid IP range {input:?}: {reason}")]
    InvalidRange {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Text that should be a CIDR (`address/prefix`) is not one.
    #[error("invalid CIDR {input:?}: {reason}")]
    InvalidCidr {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A CIDR that must be written canonically (masked network, lower-case, compressed) is not.
    #[error("unformatted subnet {input}, please change it to {canonical}")]
    NonCanonicalCidr {
        /// The text as given.
        input: String,
        /// The canonical spelling of the same network.
        canonical: String,
    },
    /// An address, range or set of one IP family was given where the other was required.
    #[error("{input:?} is not an {expected} address or range")]
    FamilyMismatch {
        /// The offending text.
        input: String,
        /// The family that was required.
        expected: crate::ip::IpFamily,
    },
    /// One entry of a list of ranges (such as `spec.ips`) is invalid.
    #[error("entry [{index}]: {source}")]
    InvalidListEntry {
        /// Zero-based position of the entry in the list.
        index: usize,
        /// What is wrong with it.
        source: Box<IpError>,
    },
}
