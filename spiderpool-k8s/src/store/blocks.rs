//! Per-node address blocks of a pool, as data: what `SpiderIPPool.status.blocks` says, and
//! the pure edits the Kubernetes store makes to it (claim, transfer, hand back, counts).
//!
//! Invariant kept by every edit here (and checked by the property tests): an edit never
//! makes blocks of different nodes overlap, and a block only holds addresses of the pool
//! (`spec.ips` minus `spec.excludeIPs`). Claims are written as patches the apiserver applies
//! to the status as it is by then, so two claims written at the same moment can overlap: an
//! address listed twice is neither node's own ([`PoolBlocks::own`]) until one gives it up
//! (docs/k8s-store.md).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use spiderpool_core::ip::{IpFamily, IpRange, IpRangeSet};
use spiderpool_core::objects::{IPBlock, SpiderIPPool, SpiderIPPoolStatus};

/// Why a block edit cannot be made on the status it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The pool's spec or status cannot be read (bad range, wrong family...).
    #[error("SpiderIPPool {pool}: {reason}")]
    Invalid {
        /// The pool.
        pool: String,
        /// What is wrong.
        reason: String,
    },
    /// The addresses asked for are no longer unclaimed (another node was faster).
    #[error("SpiderIPPool {pool}: {range} is no longer unclaimed")]
    Taken {
        /// The pool.
        pool: String,
        /// The addresses.
        range: String,
    },
}

/// A pool's addresses split by owner, read from its spec and `status.blocks`.
#[derive(Debug, Clone)]
pub struct PoolBlocks {
    name: String,
    family: IpFamily,
    usable: IpRangeSet,
    blocks: BTreeMap<String, IpRangeSet>,
    counts: BTreeMap<String, i64>,
    waiting: BTreeSet<String>,
    asked: BTreeMap<String, i64>,
    // Addresses recorded in upstream's `status.allocatedIPs` (a pool written by upstream):
    // never handed out again here, whoever holds them.
    legacy: IpRangeSet,
    // The nodes in the order `status.blocks` listed them: entries are written back in that
    // order, new ones last, so a node's first claim is an append that commutes with the
    // other nodes' edits (store::writes::status_patch).
    order: Vec<String>,
}

/// Equal layouts, counts and flags; the order the status listed the entries in is how they
/// are written, not what they say.
impl PartialEq for PoolBlocks {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.family == other.family
            && self.usable == other.usable
            && self.blocks == other.blocks
            && self.counts == other.counts
            && self.waiting == other.waiting
            && self.asked == other.asked
            && self.legacy == other.legacy
    }
}

fn invalid(pool: &str, reason: impl Into<String>) -> BlockError {
    BlockError::Invalid {
        pool: pool.to_owned(),
        reason: reason.into(),
    }
}

impl PoolBlocks {
    /// Reads `pool`'s spec and status.
    pub fn from_pool(pool: &SpiderIPPool) -> Result<Self, BlockError> {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let family = match pool.spec.ip_version {
            Some(v) => IpFamily::from_version(v)
                .ok_or_else(|| invalid(&name, format!("spec.ipVersion {v} is not 4 or 6")))?,
            None => spiderpool_core::ip::Cidr::parse(&pool.spec.subnet)
                .map_err(|e| invalid(&name, format!("spec.subnet: {e}")))?
                .family(),
        };
        let parse = |field: &str, list: &[String]| {
            IpRangeSet::parse(family, list).map_err(|e| invalid(&name, format!("{field}: {e}")))
        };
        let ips = parse("spec.ips", pool.spec.ips.as_deref().unwrap_or_default())?;
        let exclude = parse(
            "spec.excludeIPs",
            pool.spec.exclude_ips.as_deref().unwrap_or_default(),
        )?;
        let usable = ips.difference(&exclude);
        let status = pool.status.clone().unwrap_or_default();
        let mut blocks = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let mut waiting = BTreeSet::new();
        let mut asked = BTreeMap::new();
        let mut order = Vec::new();
        // A node listed twice (an append whose answer was lost, sent again: see
        // docs/k8s-store.md) owns the union of its entries; the next write lists it once.
        for b in status.blocks.unwrap_or_default() {
            let set = parse(&format!("status.blocks[{}].ips", b.node), &b.ips)?;
            if let Some(n) = b.asked {
                let e = asked.entry(b.node.clone()).or_insert(n);
                *e = n.max(*e);
            }
            if b.waiting == Some(true) {
                waiting.insert(b.node.clone());
            }
            if let Some(c) = b.allocated_ip_count {
                let e = counts.entry(b.node.clone()).or_insert(c);
                *e = c.max(*e);
            }
            let set = match blocks.remove(&b.node) {
                Some(earlier) => set
                    .union(&earlier)
                    .map_err(|e| invalid(&name, format!("status.blocks[{}].ips: {e}", b.node)))?,
                None => {
                    order.push(b.node.clone());
                    set
                }
            };
            blocks.insert(b.node, set);
        }
        let mut legacy = IpRangeSet::new(family);
        let records = pool
            .status
            .as_ref()
            .map(SpiderIPPoolStatus::allocated_ips)
            .transpose()
            .map_err(|e| invalid(&name, format!("status.allocatedIPs: {e}")))?
            .unwrap_or_default();
        for ip in records.keys() {
            let addr: IpAddr = ip
                .parse()
                .map_err(|_| invalid(&name, format!("status.allocatedIPs key {ip:?}")))?;
            legacy
                .insert(addr)
                .map_err(|e| invalid(&name, format!("status.allocatedIPs key {ip}: {e}")))?;
        }
        Ok(PoolBlocks {
            name,
            family,
            usable,
            blocks,
            counts,
            waiting,
            asked,
            legacy,
            order,
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's family.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// `spec.ips − spec.excludeIPs`.
    pub fn usable(&self) -> &IpRangeSet {
        &self.usable
    }

    /// The block of `node` (empty if it has none).
    pub fn block(&self, node: &str) -> IpRangeSet {
        self.blocks
            .get(node)
            .cloned()
            .unwrap_or_else(|| IpRangeSet::new(self.family))
    }

    /// The addresses of `node`'s block that no other block holds: what its agent may hand
    /// out. Claims are written as patches that the apiserver applies to whatever the status
    /// is by then (store::writes), so two nodes claiming at the same moment can both list an
    /// address; such an address is nobody's until one of them gives it up ([`Self::contested`]).
    pub fn own(&self, node: &str) -> IpRangeSet {
        self.block(node).difference(&self.contested(node))
    }

    /// The addresses of `node`'s block that another block holds too, or that are no longer
    /// addresses of the pool (a claim patched in just after the pool's `ips` or `excludeIPs`
    /// changed). The node whose claim made the overlap saw it in its write's answer and gives
    /// them back at once; neither node hands them out meanwhile.
    pub fn contested(&self, node: &str) -> IpRangeSet {
        let mine = self.block(node);
        let mut out = mine.difference(&self.usable);
        if mine.is_empty() {
            return out;
        }
        for (n, set) in &self.blocks {
            if n != node {
                // Two subsets of `mine`: their union cannot fail on family.
                out = out.union(&mine.intersection(set)).unwrap_or(out);
            }
        }
        out
    }

    /// Every node with a block entry, and its addresses.
    pub fn blocks(&self) -> impl Iterator<Item = (&str, &IpRangeSet)> {
        self.blocks.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// Addresses in no block, not in upstream's records: what a node may claim.
    pub fn unclaimed(&self) -> IpRangeSet {
        let mut out = self.usable.difference(&self.legacy);
        for set in self.blocks.values() {
            out = out.difference(set);
        }
        out
    }

    /// Upstream's `allocatedIPs` records.
    pub fn legacy(&self) -> &IpRangeSet {
        &self.legacy
    }

    /// Nodes asking for addresses.
    pub fn waiting(&self) -> &BTreeSet<String> {
        &self.waiting
    }

    /// The last count `node` wrote for its block.
    pub fn count(&self, node: &str) -> Option<i64> {
        self.counts.get(node).copied()
    }

    /// What the addresses' owners last reported as free in their blocks: the size of each
    /// block minus its count, summed over the nodes other than `node`.
    pub fn free_elsewhere(&self, node: &str) -> u128 {
        self.blocks
            .iter()
            .filter(|(n, _)| n.as_str() != node)
            .map(|(n, set)| {
                let used = u128::try_from(self.counts.get(n).copied().unwrap_or(0)).unwrap_or(0);
                set.len().saturating_sub(used)
            })
            .sum()
    }

    /// The part of `layout` that decides allocation (everything but counts and waiting
    /// flags): two statuses with equal layouts give the same view.
    pub fn same_layout(&self, other: &PoolBlocks) -> bool {
        self.family == other.family
            && self.usable == other.usable
            && self.blocks == other.blocks
            && self.legacy == other.legacy
    }

    /// Gives `node` the first `size` unclaimed addresses from `ip` on (at least `ip` itself;
    /// fewer when the pool has fewer above `ip`), across other blocks in between: a claim
    /// cut at the next block would leave the node claiming again after a few addresses.
    /// Fails if `ip` is not unclaimed. Returns what was claimed.
    pub fn claim(&mut self, node: &str, ip: IpAddr, size: u32) -> Result<IpRangeSet, BlockError> {
        use spiderpool_core::ip::{ip_from_u128, ip_to_u128};
        let unclaimed = self.unclaimed();
        if !unclaimed.contains(ip) {
            return Err(BlockError::Taken {
                pool: self.name.clone(),
                range: ip.to_string(),
            });
        }
        let from = ip_to_u128(ip);
        let mut left = u128::from(size.max(1));
        let mut claimed = IpRangeSet::new(self.family);
        for r in unclaimed.ranges() {
            if left == 0 {
                break;
            }
            let (start, end) = (ip_to_u128(r.start()).max(from), ip_to_u128(r.end()));
            if end < from {
                continue;
            }
            let last = end.min(start.saturating_add(left - 1));
            let range = ip_from_u128(self.family, start)
                .zip(ip_from_u128(self.family, last))
                .and_then(|(a, b)| IpRange::new(a, b).ok())
                .ok_or_else(|| invalid(&self.name, format!("cannot claim from {ip}")))?;
            claimed
                .insert_range(range)
                .map_err(|e| invalid(&self.name, e.to_string()))?;
            left -= last - start + 1;
        }
        for r in claimed.ranges() {
            self.add_to(node, &r)?;
        }
        Ok(claimed)
    }

    /// Moves `ip` into `node`'s block from wherever it is (another node's block, or
    /// unclaimed): a StatefulSet pod re-adopting its address on a new node. `ip` must be an
    /// address of the pool.
    pub fn transfer(&mut self, node: &str, ip: IpAddr) -> Result<(), BlockError> {
        if !self.usable.contains(ip) {
            return Err(invalid(
                &self.name,
                format!("{ip} is not an address of the pool"),
            ));
        }
        for set in self.blocks.values_mut() {
            set.remove(ip);
        }
        self.add_to(node, &IpRange::single(ip))
    }

    fn add_to(&mut self, node: &str, range: &IpRange) -> Result<(), BlockError> {
        let family = self.family;
        let set = self
            .blocks
            .entry(node.to_owned())
            .or_insert_with(|| IpRangeSet::new(family));
        set.insert_range(*range)
            .map_err(|e| invalid(&self.name, e.to_string()))
    }

    /// Removes `addresses` from `node`'s block (its free addresses, handed back).
    pub fn hand_back(&mut self, node: &str, addresses: &IpRangeSet) {
        if let Some(set) = self.blocks.get_mut(node) {
            *set = set.difference(addresses);
        }
    }

    /// How many times `node` has asked for addresses ([`Self::ask`]).
    pub fn asked(&self, node: &str) -> i64 {
        self.asked.get(node).copied().unwrap_or(0)
    }

    /// Sets `node`'s waiting flag and counts one more ask: nodes with free addresses answer
    /// each ask once.
    pub fn ask(&mut self, node: &str) {
        self.set_waiting(node, true);
        let n = self.asked.entry(node.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Sets or clears `node`'s waiting flag (an entry is created if needed).
    pub fn set_waiting(&mut self, node: &str, waiting: bool) {
        if waiting {
            self.waiting.insert(node.to_owned());
            let family = self.family;
            self.blocks
                .entry(node.to_owned())
                .or_insert_with(|| IpRangeSet::new(family));
        } else {
            self.waiting.remove(node);
        }
    }

    /// Records how many addresses of `node`'s block are in use.
    pub fn set_count(&mut self, node: &str, count: i64) {
        self.counts.insert(node.to_owned(), count);
    }

    /// Writes blocks and counts into `status`: `blocks` (empty entries of nodes that neither
    /// hold nor wait dropped), `allocatedIPCount` = the blocks' counts plus upstream's
    /// records, `totalIPCount` = |ips − excludeIPs| (as upstream).
    pub fn write_into(&self, status: &mut SpiderIPPoolStatus) {
        let mut out = Vec::new();
        let mut allocated: i64 = 0;
        // The entries the status listed, in its order; then new ones, by name.
        let listed = self
            .order
            .iter()
            .filter_map(|n| self.blocks.get_key_value(n));
        let known: BTreeSet<&String> = self.order.iter().collect();
        let new = self.blocks.iter().filter(|(n, _)| !known.contains(n));
        for (node, set) in listed.chain(new) {
            let waiting = self.waiting.contains(node);
            if set.is_empty() && !waiting {
                continue;
            }
            let count = self.counts.get(node).copied();
            allocated = allocated.saturating_add(count.unwrap_or(0));
            out.push(IPBlock {
                node: node.clone(),
                ips: set.to_strings(),
                allocated_ip_count: count,
                waiting: waiting.then_some(true),
                asked: self.asked.get(node).copied(),
            });
        }
        allocated = allocated.saturating_add(self.legacy.len_saturating_i64());
        status.blocks = (!out.is_empty()).then_some(out);
        status.allocated_ip_count = Some(allocated);
        status.total_ip_count = Some(self.usable.len_saturating_i64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use spiderpool_core::objects::SpiderIPPoolSpec;

    fn pool(ips: &[&str]) -> SpiderIPPool {
        SpiderIPPool::new(
            "p",
            SpiderIPPoolSpec {
                subnet: "10.6.0.0/16".into(),
                ips: Some(ips.iter().map(|s| (*s).to_owned()).collect()),
                ..Default::default()
            },
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn k8s_blocks_claim_takes_size_unclaimed_addresses_across_other_blocks() {
        let mut b = PoolBlocks::from_pool(&pool(&["10.6.0.10-10.6.0.40"])).unwrap();
        let r = b.claim("n1", ip("10.6.0.15"), 2).unwrap();
        assert_eq!(r.to_string(), "10.6.0.15-10.6.0.16");
        // From .10 on, 8 addresses: over n1's block.
        let r = b.claim("n2", ip("10.6.0.10"), 8).unwrap();
        assert_eq!(
            r.to_strings(),
            ["10.6.0.10-10.6.0.14", "10.6.0.17-10.6.0.19"]
        );
        // Fewer than asked when the pool ends.
        let r = b.claim("n3", ip("10.6.0.30"), 16).unwrap();
        assert_eq!(r.to_string(), "10.6.0.30-10.6.0.40");
        assert!(matches!(
            b.claim("n4", ip("10.6.0.35"), 1),
            Err(BlockError::Taken { .. })
        ));
        assert_eq!(b.unclaimed().to_string(), "10.6.0.20-10.6.0.29");
    }

    #[test]
    fn k8s_blocks_status_round_trip() {
        let mut p = pool(&["10.6.0.10-10.6.0.20"]);
        let mut b = PoolBlocks::from_pool(&p).unwrap();
        b.claim("n1", ip("10.6.0.10"), 4).unwrap();
        b.set_count("n1", 2);
        b.set_waiting("n2", true);
        let mut st = SpiderIPPoolStatus::default();
        b.write_into(&mut st);
        assert_eq!(st.allocated_ip_count, Some(2));
        assert_eq!(st.total_ip_count, Some(11));
        p.status = Some(st);
        let again = PoolBlocks::from_pool(&p).unwrap();
        assert_eq!(again, b);
        assert_eq!(again.free_elsewhere("n2"), 2);
        b.hand_back(
            "n1",
            &IpRangeSet::parse(IpFamily::V4, &["10.6.0.12-10.6.0.13"]).unwrap(),
        );
        assert_eq!(b.block("n1").to_strings(), ["10.6.0.10-10.6.0.11"]);
    }

    #[test]
    fn k8s_blocks_legacy_records_are_never_unclaimed() {
        let mut p = pool(&["10.6.0.10-10.6.0.12"]);
        p.status = Some(SpiderIPPoolStatus {
            allocated_ips: Some(r#"{"10.6.0.11":{"pod":"ns/a","podUid":"u"}}"#.into()),
            ..Default::default()
        });
        let b = PoolBlocks::from_pool(&p).unwrap();
        assert_eq!(b.unclaimed().to_strings(), ["10.6.0.10", "10.6.0.12"]);
    }

    #[test]
    fn k8s_blocks_an_address_two_blocks_list_is_neither_nodes_own() {
        // Two claims patched at the same moment: both blocks list .12-.13.
        let mut p = pool(&["10.6.0.10-10.6.0.20"]);
        p.status = Some(SpiderIPPoolStatus {
            blocks: Some(vec![
                IPBlock {
                    node: "n1".into(),
                    ips: vec!["10.6.0.10-10.6.0.13".into()],
                    ..Default::default()
                },
                IPBlock {
                    node: "n2".into(),
                    ips: vec!["10.6.0.12-10.6.0.15".into()],
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let b = PoolBlocks::from_pool(&p).unwrap();
        assert_eq!(b.contested("n1").to_strings(), ["10.6.0.12-10.6.0.13"]);
        assert_eq!(b.contested("n2").to_strings(), ["10.6.0.12-10.6.0.13"]);
        assert_eq!(b.own("n1").to_strings(), ["10.6.0.10-10.6.0.11"]);
        assert_eq!(b.own("n2").to_strings(), ["10.6.0.14-10.6.0.15"]);
        assert!(b.contested("n3").is_empty());
        // Nobody can claim them either.
        assert_eq!(b.unclaimed().to_strings(), ["10.6.0.16-10.6.0.20"]);
        // The pool shrank under a claim: what left it is nobody's own either.
        p.spec.ips = Some(vec!["10.6.0.11-10.6.0.20".into()]);
        let b = PoolBlocks::from_pool(&p).unwrap();
        assert_eq!(
            b.contested("n1").to_strings(),
            ["10.6.0.10", "10.6.0.12-10.6.0.13"]
        );
        assert_eq!(b.own("n1").to_strings(), ["10.6.0.11"]);
    }

    #[test]
    fn k8s_blocks_keep_the_status_order_and_merge_a_node_listed_twice() {
        let entry = |node: &str, ips: &str, count: Option<i64>| IPBlock {
            node: node.into(),
            ips: vec![ips.into()],
            allocated_ip_count: count,
            ..Default::default()
        };
        let mut p = pool(&["10.6.0.10-10.6.0.40"]);
        // n2 appended before n1; n2 listed twice (an append sent again after a lost answer).
        p.status = Some(SpiderIPPoolStatus {
            blocks: Some(vec![
                entry("n2", "10.6.0.10-10.6.0.13", Some(2)),
                entry("n1", "10.6.0.14-10.6.0.15", None),
                entry("n2", "10.6.0.20-10.6.0.21", None),
            ]),
            ..Default::default()
        });
        let mut b = PoolBlocks::from_pool(&p).unwrap();
        assert_eq!(
            b.block("n2").to_strings(),
            ["10.6.0.10-10.6.0.13", "10.6.0.20-10.6.0.21"]
        );
        assert_eq!(b.count("n2"), Some(2));
        assert!(b.contested("n2").is_empty());
        b.claim("n0", ip("10.6.0.30"), 2).unwrap();
        let mut st = SpiderIPPoolStatus::default();
        b.write_into(&mut st);
        let nodes: Vec<&str> = st
            .blocks
            .as_deref()
            .unwrap()
            .iter()
            .map(|e| e.node.as_str())
            .collect();
        // Listed entries keep their places (n2 once), the new one comes last.
        assert_eq!(nodes, ["n2", "n1", "n0"]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim(u8, u8, u8),
        Transfer(u8, u8),
        HandBack(u8, u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0u8..64, 1u8..20).prop_map(|(n, a, s)| Op::Claim(n, a, s)),
            (0u8..4, 0u8..64).prop_map(|(n, a)| Op::Transfer(n, a)),
            (0u8..4, 0u8..64, 0u8..10).prop_map(|(n, a, l)| Op::HandBack(n, a, l)),
        ]
    }

    proptest! {
        /// Whatever edits are made, blocks never overlap and stay inside the pool, and
        /// claimed + unclaimed = the pool.
        #[test]
        fn k8s_blocks_never_overlap(ops in proptest::collection::vec(op(), 1..60)) {
            let mut b = PoolBlocks::from_pool(&pool(&["10.6.0.0-10.6.0.31", "10.6.0.40-10.6.0.63"])).unwrap();
            let addr = |a: u8| ip(&format!("10.6.0.{a}"));
            for op in ops {
                match op {
                    Op::Claim(n, a, s) => { let _ = b.claim(&format!("n{n}"), addr(a), u32::from(s)); }
                    Op::Transfer(n, a) => { let _ = b.transfer(&format!("n{n}"), addr(a)); }
                    Op::HandBack(n, a, l) => {
                        let end = a.saturating_add(l).min(63);
                        let set = IpRangeSet::parse(IpFamily::V4, &[format!("10.6.0.{a}-10.6.0.{end}")]).unwrap();
                        b.hand_back(&format!("n{n}"), &set);
                    }
                }
                let sets: Vec<&IpRangeSet> = b.blocks().map(|(_, s)| s).collect();
                for (i, x) in sets.iter().enumerate() {
                    prop_assert!(x.is_subset(b.usable()));
                    for y in &sets[i + 1..] {
                        prop_assert!(!x.overlaps(y), "{x:?} overlaps {y:?}");
                    }
                }
                let mut all = b.unclaimed();
                for s in &sets { all = all.union(s).unwrap(); }
                prop_assert_eq!(&all, b.usable());
            }
        }
    }
}
