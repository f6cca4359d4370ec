//! Upstream's allocation approach, as the baseline for `benches/ipam.rs`.
//!
//! Upstream's `AllocateIP` (§3.8 of the behaviour spec) builds, on every allocation, the set of
//! unavailable addresses (excludeIPs ∪ reserved ∪ every allocated address), expands `spec.ips`
//! into the full list of addresses and walks it to the first one not unavailable; release
//! deletes the record. [`NaivePool`] does the same with generous shortcuts: the records are an
//! in-memory map keyed by address (upstream decodes a JSON string of them first), and the
//! unavailable set is a `HashSet<IpAddr>`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use spiderpool_core::Error;
use spiderpool_core::ip::{IpFamily, IpRange, ip_from_u128, ip_to_u128};
use spiderpool_core::objects::PoolIPAllocation;

/// A pool allocated the expand-everything way.
#[derive(Debug, Clone, Default)]
pub struct NaivePool {
    family: Option<IpFamily>,
    ips: Vec<String>,
    exclude: Vec<String>,
    reserved: Vec<String>,
    allocated: HashMap<IpAddr, PoolIPAllocation>,
}

fn expand(family: IpFamily, entries: &[String]) -> Result<Vec<IpAddr>, Error> {
    let mut out = Vec::new();
    for e in entries {
        let r = IpRange::parse_in(family, e)?;
        let (lo, hi) = (ip_to_u128(r.start()), ip_to_u128(r.end()));
        out.extend((lo..=hi).filter_map(|v| ip_from_u128(family, v)));
    }
    Ok(out)
}

impl NaivePool {
    /// A pool of `family` with `ips`, `exclude` and `reserved` range strings.
    pub fn new(family: IpFamily, ips: &[&str], exclude: &[&str], reserved: &[&str]) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        NaivePool {
            family: Some(family),
            ips: own(ips),
            exclude: own(exclude),
            reserved: own(reserved),
            allocated: HashMap::new(),
        }
    }

    /// Records `ip` for `rec` without checks (used to fill the pool before measuring).
    pub fn insert(&mut self, ip: IpAddr, rec: PoolIPAllocation) {
        self.allocated.insert(ip, rec);
    }

    /// Number of records.
    pub fn allocated(&self) -> usize {
        self.allocated.len()
    }

    /// Upstream's allocation: unavailable set, expanded `ips`, first free; `None` when full.
    pub fn allocate(&mut self, rec: PoolIPAllocation) -> Result<Option<IpAddr>, Error> {
        let family = self.family.unwrap_or(IpFamily::V4);
        let mut unavailable: HashSet<IpAddr> = expand(family, &self.exclude)?.into_iter().collect();
        unavailable.extend(expand(family, &self.reserved)?);
        unavailable.extend(self.allocated.keys().copied());
        let all = expand(family, &self.ips)?;
        let ip = all.into_iter().find(|ip| !unavailable.contains(ip));
        if let Some(ip) = ip {
            self.allocated.insert(ip, rec);
        }
        Ok(ip)
    }

    /// Removes the record of `ip`; returns whether it existed.
    pub fn release(&mut self, ip: IpAddr) -> bool {
        self.allocated.remove(&ip).is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use spiderpool_core::ip::IpRangeSet;
    use spiderpool_core::ipam::PoolState;
    use spiderpool_core::meta::ObjectMeta;
    use spiderpool_core::objects::SpiderIPPoolSpec;

    #[test]
    fn baseline_agrees_with_pool_state() {
        let rec = |i: usize| PoolIPAllocation {
            pod: format!("ns/p{i}"),
            pod_uid: format!("u{i}"),
        };
        let spec = SpiderIPPoolSpec {
            subnet: "10.0.0.0/24".into(),
            ips: Some(vec!["10.0.0.1-10.0.0.20".into()]),
            exclude_ips: Some(vec!["10.0.0.3".into()]),
            ..Default::default()
        };
        let reserved = [IpRangeSet::parse(IpFamily::V4, &["10.0.0.5"]).unwrap()];
        let mut ours = PoolState::new("p", &spec, &ObjectMeta::named("p"), &reserved, []).unwrap();
        let mut naive = NaivePool::new(
            IpFamily::V4,
            &["10.0.0.1-10.0.0.20"],
            &["10.0.0.3"],
            &["10.0.0.5"],
        );
        for i in 0..18 {
            assert_eq!(
                ours.allocate_lowest(rec(i)),
                naive.allocate(rec(i)).unwrap(),
                "step {i}"
            );
            if i % 3 == 0 {
                let ip: IpAddr = format!("10.0.0.{}", i + 1).parse().unwrap();
                assert_eq!(ours.release(ip, None), naive.release(ip));
            }
        }
    }
}
