//! IP addresses, ranges, range sets and CIDRs (placeholder; see issue 2).
