//! IP addresses, ranges, range sets and CIDRs, for both families.
//!
//! Upstream Spiderpool's `pkg/ip` expands ranges into lists of addresses. This module keeps the
//! same text formats and observable results but computes on intervals: an [`IpRangeSet`] is a
//! sorted list of merged `u128` intervals, so a /64 pool costs one interval, membership is a
//! binary search and union / intersection / difference are linear merges.
//!
//! | item | upstream |
//! |---|---|
//! | [`parse_ip`] | `net.ParseIP` (strict) |
//! | [`IpRange::parse_in`] | `IsIPv4IPRange` / `IsIPv6IPRange` |
//! | [`merge_ip_ranges`], [`IpRangeSet::to_strings`] | `MergeIPRanges`, `ConvertIPsToIPRanges` |
//! | [`IpRangeSet::difference`] | `AssembleTotalIPs` (`ips − excludeIPs`) |
//! | [`IpRangeSet::len_saturating_i64`] | `TotalIP` clamped to `MaxInt64` |
//! | [`Cidr::parse`], [`Cidr::parse_canonical`] | `IsCIDR`, `IsFormatCIDR` |
//! | [`Cidr::contains_cidr`], [`Cidr::overlaps`] | `ContainsCIDR`, `IsCIDROverlap` |
//! | [`parse_ip_or_cidr`] | `ParseIPOrCIDR` |
//! | [`cidr_label_value`] | `CIDRToLabelValue` |
//!
//! Deliberate difference (see `docs/compatibility.md`): the family of an address is decided by
//! the parsed address, not by whether its text contains `.` or `:`; an IPv4-mapped IPv6 literal
//! such as `::ffff:1.2.3.4` is IPv6 only.
//!
//! ```
//! use spiderpool_core::ip::{IpFamily, IpRangeSet};
//!
//! let ips = IpRangeSet::parse(IpFamily::V4, &["172.18.40.10", "172.18.40.1-172.18.40.3"])?;
//! let exclude = IpRangeSet::parse(IpFamily::V4, &["172.18.40.2"])?;
//! let total = ips.difference(&exclude);
//! assert_eq!(total.to_strings(), ["172.18.40.1", "172.18.40.3", "172.18.40.10"]);
//! assert_eq!(total.len(), 3);
//! # Ok::<(), spiderpool_core::Error>(())
//! ```

mod addr;
mod cidr;
mod error;
mod family;
mod label;
mod range;
mod set;

pub use addr::{ip_from_u128, ip_to_u128, next_ip, parse_ip, parse_ip_in, prev_ip};
pub use cidr::{Cidr, parse_ip_or_cidr};
pub use error::IpError;
pub use family::IpFamily;
pub use label::{cidr_label_value, cidr_label_value_str};
pub use range::IpRange;
pub use set::{Addresses, IpRangeSet, merge_ip_ranges};
