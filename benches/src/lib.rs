//! Baselines that the criterion benches compare our implementations against.

pub mod coordinator_cases;
pub mod naive_alloc;
pub mod pool_status_cas;

pub mod naive_ranges {
    //! Upstream's expand-everything approach to IP ranges, as the baseline for
    //! `benches/ranges.rs`.
    //!
    //! Upstream `pkg/ip` turns every range string into the full list of its addresses
    //! (`ParseIPRanges`), subtracts lists through a hash map (`IPsDiffSet`,
    //! `AssembleTotalIPs`) and counts by taking the length of the result. [`ExpandedIps`]
    //! does the same with a sorted, de-duplicated `Vec<IpAddr>`. It is a generous baseline:
    //! addresses are stored inline rather than as heap-allocated `net.IP` slices, and membership
    //! is a binary search rather than a scan or a map built per call.

    use std::collections::HashSet;
    use std::net::IpAddr;

    use spiderpool_core::Error;
    use spiderpool_core::ip::{IpFamily, IpRange, ip_from_u128, ip_to_u128};

    /// Every address of a set of ranges, expanded, sorted and de-duplicated.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ExpandedIps {
        addrs: Vec<IpAddr>,
    }

    impl ExpandedIps {
        /// Parses range strings of `family` and expands them (upstream `ParseIPRanges` +
        /// `ConvertIPsToIPRanges`' sort and de-duplication). Memory is one entry per address,
        /// so this must only be used on small inputs (a /64 would never finish).
        pub fn parse(family: IpFamily, entries: &[impl AsRef<str>]) -> Result<Self, Error> {
            let mut addrs = Vec::new();
            for e in entries {
                let r = IpRange::parse_in(family, e.as_ref())?;
                let (lo, hi) = (ip_to_u128(r.start()), ip_to_u128(r.end()));
                addrs.extend((lo..=hi).filter_map(|v| ip_from_u128(family, v)));
            }
            addrs.sort_unstable();
            addrs.dedup();
            Ok(ExpandedIps { addrs })
        }

        /// Addresses of `self` not in `other`, via a hash set of `other` built per call, as
        /// upstream's `IPsDiffSet` does.
        pub fn difference(&self, other: &ExpandedIps) -> ExpandedIps {
            let exclude: HashSet<IpAddr> = other.addrs.iter().copied().collect();
            ExpandedIps {
                addrs: self
                    .addrs
                    .iter()
                    .copied()
                    .filter(|a| !exclude.contains(a))
                    .collect(),
            }
        }

        /// Membership by binary search over the expanded addresses.
        pub fn contains(&self, ip: IpAddr) -> bool {
            self.addrs.binary_search(&ip).is_ok()
        }

        /// Number of addresses (the expanded list's length).
        pub fn len(&self) -> usize {
            self.addrs.len()
        }

        /// Whether there is no address.
        pub fn is_empty(&self) -> bool {
            self.addrs.is_empty()
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)] // tests fail loudly by design
    mod tests {
        use super::*;

        #[test]
        fn baseline_agrees_with_interval_sets() {
            use spiderpool_core::ip::IpRangeSet;
            let ips = ["10.0.0.1-10.0.0.20", "10.0.0.15-10.0.0.30", "10.0.0.40"];
            let ex = ["10.0.0.5-10.0.0.9", "10.0.0.40"];
            let naive = ExpandedIps::parse(IpFamily::V4, &ips)
                .unwrap()
                .difference(&ExpandedIps::parse(IpFamily::V4, &ex).unwrap());
            let ours = IpRangeSet::parse(IpFamily::V4, &ips)
                .unwrap()
                .difference(&IpRangeSet::parse(IpFamily::V4, &ex).unwrap());
            assert_eq!(naive.len() as u128, ours.len());
            assert_eq!(naive.addrs, ours.iter().collect::<Vec<_>>());
            assert!(naive.contains("10.0.0.4".parse().unwrap()));
            assert!(!naive.contains("10.0.0.5".parse().unwrap()));
        }
    }
}
