//! Sharing a pool between nodes: how much a node claims at once and how free addresses are
//! shared out between waiting nodes. Pure functions of the pool's blocks.

use spiderpool_core::ip::IpRangeSet;

use super::blocks::PoolBlocks;

/// How `free` is shared out between `waiters` and, when it is still allocating
/// (`giver_busy`), the giver: each waiter gets `len / (waiters + 1)` addresses (`len / waiters` from an idle
/// giver), at least one while there are some, lowest first; the giver keeps the rest.
pub(super) fn share_out(
    free: &IpRangeSet,
    waiters: Vec<String>,
    giver_busy: bool,
) -> Vec<(String, IpRangeSet)> {
    let parts = u128::try_from(waiters.len())
        .unwrap_or(u128::MAX)
        .saturating_add(u128::from(giver_busy))
        .max(1);
    let each = (free.len() / parts).max(1);
    let mut ips = free.iter();
    let mut out = Vec::new();
    for waiter in waiters {
        let mut give = IpRangeSet::new(free.family());
        let mut taken: u128 = 0;
        while taken < each {
            let Some(ip) = ips.next() else { break };
            if give.insert(ip).is_ok() {
                taken += 1;
            }
        }
        if give.is_empty() {
            break;
        }
        out.push((waiter, give));
    }
    out
}

/// How many addresses to claim at once: as many as the node already holds in the pool (a
/// node that keeps allocating needs fewer claims, so fewer status writes), from `block_size`
/// up to 16 × `block_size`; never more than its share of what is unclaimed, so claims shrink
/// as the pool runs out and few addresses are stranded in blocks whose nodes do not need
/// them. Its share is the larger of an equal part of the unclaimed addresses among the nodes
/// sharing them ([`sharers`]) and what its block still lacks of an equal part of the whole
/// pool ([`entitlement`]).
///
/// The second keeps the end of a pool from going one small claim after another: with only
/// the first, each claim of a round took a tenth (for ten nodes) of what the claims before it
/// in the round had left, so the last tenth of a pool went in many claims of a few addresses,
/// each on an ADD's path; a node short of its equal part of the pool now claims what it
/// lacks at once. What the nodes lack adds up to what is unclaimed while no node holds more
/// than its part (beyond that, claims made at the same moment may overlap, and the later one
/// gives the overlap up, as any overlap).
pub(super) fn claim_size(layout: &PoolBlocks, node: &str, block_size: u32, held: u128) -> u32 {
    let unclaimed = layout.unclaimed().len();
    let share = (unclaimed / sharers(layout, node).1).max(entitlement(layout, node).min(unclaimed));
    let block = u128::from(block_size.max(1));
    let wanted = held.clamp(block, block * 16);
    u32::try_from(share.min(wanted)).unwrap_or(u32::MAX).max(1)
}

/// What `node`'s block still lacks of an equal part of the pool's usable addresses among the
/// nodes holding blocks (`node` included); 0 for a waiting node, which shares what is
/// unclaimed with the other waiting nodes only.
fn entitlement(layout: &PoolBlocks, node: &str) -> u128 {
    if layout.waiting().contains(node) {
        return 0;
    }
    let (_, holders) = place(node, layout.blocks().map(|(n, _)| n));
    // The block's size without copying it (`PoolBlocks::block` clones the set).
    let mine = layout
        .blocks()
        .find(|(n, _)| *n == node)
        .map_or(0, |(_, b)| b.len());
    (layout.usable().len() / holders).saturating_sub(mine)
}

/// How few free addresses a node's block may have left before the node claims its next
/// addresses in the background (claim ahead, off the ADD path), for a claim of `size`: a
/// quarter of the claim, 4 to 64. A claim is a status patch on an object every node patches
/// (16-19 ms at p50, 35-50 ms at p90 with ten busy nodes): the addresses left must last
/// that long, or the next ADD waits for the claim anyway; a larger reserve only strands more
/// addresses in blocks of nodes that stop allocating.
///
/// None when the claim would be smaller than twice that reserve: the pool is running out
/// ([`claim_size`] shrinks claims to a share of what is unclaimed), and claiming ahead then
/// only makes more, smaller claims that overlap other nodes' and strand addresses; the
/// node claims when it needs to.
pub(super) fn claim_ahead_at(size: u32) -> Option<u128> {
    let at = u128::from(size / 4).clamp(4, 64);
    (u128::from(size) >= 2 * at).then_some(at)
}

/// Where `node` claims its next addresses in `layout`: the first address of its slice of the
/// unclaimed ones ([`slice_start`]), or the lowest unclaimed one when its slice is empty.
/// None when nothing is unclaimed.
pub(super) fn claim_start(layout: &PoolBlocks, node: &str) -> Option<std::net::IpAddr> {
    let unclaimed = layout.unclaimed();
    let skip = slice_start(layout, node, unclaimed.len());
    super::inner::suffix_from(&unclaimed, skip)
        .iter()
        .next()
        .or_else(|| unclaimed.iter().next())
}

/// Between how many nodes the unclaimed addresses are shared, and `node`'s place among them
/// (name order): the nodes waiting for addresses when `node` is one of them, else every node
/// holding a block (`node` included).
///
/// At the end of a pool the unclaimed addresses are mostly what other nodes handed back for
/// the waiting nodes; shared between every holder they made each waiter claim one address
/// per allocation (a status write each, and the last nodes finishing far behind the others).
fn sharers(layout: &PoolBlocks, node: &str) -> (u128, u128) {
    if layout.waiting().contains(node) {
        place(node, layout.waiting().iter().map(String::as_str))
    } else {
        place(node, layout.blocks().map(|(n, _)| n))
    }
}

/// How many of `others` (`node` itself skipped) sort before `node`, and how many they are
/// with `node`.
fn place<'a>(node: &str, others: impl Iterator<Item = &'a str>) -> (u128, u128) {
    let (mut before, mut all) = (0u128, 1u128);
    for n in others.filter(|n| *n != node) {
        all += 1;
        if n < node {
            before += 1;
        }
    }
    (before, all)
}

/// Where `node` starts taking unclaimed addresses: the unclaimed addresses split into equal
/// slices, one per node sharing them ([`sharers`]) in name order, and this node's slice
/// first. Nodes claiming at the same moment start in different slices instead of all
/// racing for the lowest address (their claims are patches: two claims of one address would
/// both be written and one given up).
///
/// A node without a block in a pool where others have blocks starts at a place drawn from its
/// name (FNV-1a): first claims are appends that do not wait for each other, so nodes making
/// them at the same moment cannot see each other's, and the slices by name order would all
/// start at the same address. Alone in a pool, a node starts at the lowest address.
///
/// (Fixed per-node home regions of the pool, which do not move with every claim, were
/// measured and dropped: first claims land in other nodes' regions, and once the regions
/// are used up every node raced for the same lowest addresses: 30 give-ups per run, not 10.)
pub(super) fn slice_start(layout: &PoolBlocks, node: &str, unclaimed_len: u128) -> u128 {
    let others = layout.blocks().next().is_some();
    if others && layout.blocks().all(|(n, _)| n != node) {
        let place = u128::from(fnv1a(node) % 1024);
        return unclaimed_len.saturating_mul(place) / 1024;
    }
    let (before, all) = sharers(layout, node);
    unclaimed_len.saturating_mul(before) / all
}

/// A stable hash of `s` (the same on every agent and every build).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};

    fn layout(ips: &str) -> PoolBlocks {
        PoolBlocks::from_pool(&SpiderIPPool::new(
            "p",
            SpiderIPPoolSpec {
                subnet: "10.6.0.0/16".into(),
                ips: Some(vec![ips.to_owned()]),
                ..Default::default()
            },
        ))
        .unwrap()
    }

    fn set(s: &str) -> IpRangeSet {
        IpRangeSet::parse(spiderpool_core::ip::IpFamily::V4, &[s]).unwrap()
    }

    #[test]
    fn k8s_sharing_claims_ahead_keep_a_quarter_in_reserve_and_not_when_claims_are_small() {
        assert_eq!(claim_ahead_at(16), Some(4));
        assert_eq!(claim_ahead_at(64), Some(16));
        assert_eq!(claim_ahead_at(1024), Some(64), "at most 64 in reserve");
        assert_eq!(claim_ahead_at(8), Some(4));
        assert_eq!(
            claim_ahead_at(7),
            None,
            "a claim under 8 is made when needed"
        );
        assert_eq!(claim_ahead_at(1), None);
    }

    #[test]
    fn k8s_sharing_a_claim_starts_in_the_nodes_slice_or_at_the_lowest_unclaimed() {
        let mut l = layout("10.6.0.10-10.6.0.109");
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(
            claim_start(&l, "a"),
            Some(ip("10.6.0.10")),
            "alone: the lowest"
        );
        l.claim("a", ip("10.6.0.10"), 10).unwrap();
        l.claim("b", ip("10.6.0.20"), 10).unwrap();
        // 80 unclaimed (.30-.109) between a and b: b starts half-way.
        assert_eq!(claim_start(&l, "b"), Some(ip("10.6.0.70")));
        assert_eq!(claim_start(&l, "a"), Some(ip("10.6.0.30")));
        l.claim("a", ip("10.6.0.30"), 80).unwrap();
        assert_eq!(claim_start(&l, "b"), None, "nothing unclaimed");
    }

    #[test]
    fn k8s_sharing_waiters_get_equal_parts_and_the_giver_keeps_the_rest() {
        let free = set("10.6.0.10-10.6.0.19");
        let out = share_out(&free, vec!["a".into(), "b".into()], true);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, "a");
        assert_eq!(out[0].1.to_string(), "10.6.0.10-10.6.0.12");
        assert_eq!(out[1].1.to_string(), "10.6.0.13-10.6.0.15");
        // One free address and two waiters: the first gets it, nobody gets nothing written.
        let out = share_out(&set("10.6.0.10"), vec!["a".into(), "b".into()], true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.len(), 1);
        assert!(share_out(&IpRangeSet::new(free.family()), vec!["a".into()], true).is_empty());
        // An idle giver keeps nothing.
        let out = share_out(&free, vec!["a".into(), "b".into()], false);
        assert_eq!(out[0].1.to_string(), "10.6.0.10-10.6.0.14");
        assert_eq!(out[1].1.to_string(), "10.6.0.15-10.6.0.19");
    }

    #[test]
    fn k8s_sharing_claims_grow_with_use_and_shrink_as_the_pool_runs_out() {
        let mut l = layout("10.6.0.10-10.6.1.253");
        assert_eq!(claim_size(&l, "n1", 16, 0), 16);
        assert_eq!(claim_size(&l, "n1", 16, 40), 40, "as many as it holds");
        assert_eq!(claim_size(&l, "n1", 16, 10_000), 256, "at most 16 blocks");
        let ip = |s: &str| s.parse().unwrap();
        l.claim("n1", ip("10.6.0.10"), 400).unwrap();
        l.claim("n2", ip("10.6.1.154"), 40).unwrap();
        // 60 unclaimed, two holders: n1 holds more than half of the pool, so half of the 60;
        // n2 lacks 210 of its half, so all 60.
        assert_eq!(claim_size(&l, "n1", 16, 100), 30);
        assert_eq!(claim_size(&l, "n2", 16, 100), 60);
        assert_eq!(
            claim_size(&l, "n2", 16, 20),
            20,
            "never more than it would claim"
        );
    }

    #[test]
    fn k8s_sharing_a_node_short_of_its_part_of_the_pool_claims_what_it_lacks() {
        // 120 addresses, four holders: an equal part is 30.
        let mut l = layout("10.6.0.10-10.6.0.129");
        let ip = |s: &str| s.parse().unwrap();
        l.claim("a", ip("10.6.0.10"), 20).unwrap();
        l.claim("b", ip("10.6.0.30"), 20).unwrap();
        l.claim("c", ip("10.6.0.50"), 10).unwrap();
        l.claim("d", ip("10.6.0.60"), 10).unwrap();
        assert_eq!(l.unclaimed().len(), 60);
        let sizes: Vec<u32> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| claim_size(&l, n, 16, 200))
            .collect();
        // 60 / 4 = 15 each before; now what each lacks, which adds up to what is unclaimed
        // when nobody holds more than its part.
        assert_eq!(sizes, vec![15, 15, 20, 20]);
        assert_eq!(
            claim_size(&l, "c", 8, 12),
            12,
            "never more than it would claim"
        );
        // A node over its part gets an equal part of what is unclaimed, no more.
        l.claim("a", ip("10.6.0.70"), 20).unwrap();
        assert_eq!(l.unclaimed().len(), 40);
        assert_eq!(claim_size(&l, "a", 16, 200), 10, "40 / 4");
        assert_eq!(claim_size(&l, "c", 16, 200), 20, "still lacks 20");
        // A waiting node shares with the waiting nodes only, whatever it lacks.
        l.set_waiting("c", true);
        assert_eq!(claim_size(&l, "c", 16, 200), 40, "the only waiter");
        l.set_waiting("d", true);
        assert_eq!(claim_size(&l, "c", 16, 200), 20, "two waiters");
    }

    #[test]
    fn k8s_sharing_waiting_nodes_share_what_is_unclaimed_between_themselves() {
        // Ten holders, 30 unclaimed addresses (handed back for the waiting n3 and n7).
        let mut l = layout("10.6.0.10-10.6.0.129");
        let ip = |s: &str| s.parse().unwrap();
        for n in 0..10 {
            l.claim(&format!("n{n}"), ip(&format!("10.6.0.{}", 10 + 9 * n)), 9)
                .unwrap();
        }
        assert_eq!(l.unclaimed().len(), 30);
        assert_eq!(claim_size(&l, "n3", 16, 100), 3, "30 / 10 holders");
        l.set_waiting("n3", true);
        l.set_waiting("n7", true);
        assert_eq!(claim_size(&l, "n3", 16, 100), 15, "30 / 2 waiting");
        assert_eq!(claim_size(&l, "n7", 16, 100), 15);
        assert_eq!(
            claim_size(&l, "n5", 16, 100),
            3,
            "not waiting: every holder"
        );
        // The waiters start in their own halves of what is unclaimed.
        assert_eq!(slice_start(&l, "n3", 30), 0);
        assert_eq!(slice_start(&l, "n7", 30), 15);
    }

    #[test]
    fn k8s_sharing_nodes_start_in_their_own_slices() {
        let mut l = layout("10.6.0.10-10.6.0.109");
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(slice_start(&l, "b", 100), 0, "alone: from the lowest");
        l.claim("a", ip("10.6.0.10"), 1).unwrap();
        l.claim("c", ip("10.6.0.11"), 1).unwrap();
        // b has no block yet: a place drawn from its name, the same every time.
        let b = slice_start(&l, "b", 98);
        assert_eq!(b, 98 * u128::from(fnv1a("b") % 1024) / 1024);
        assert_ne!(slice_start(&l, "b", 98), slice_start(&l, "d", 98));
        l.claim("b", ip("10.6.0.12"), 1).unwrap();
        // Holders a, b, c: b is second of three.
        assert_eq!(slice_start(&l, "b", 97), 32);
        assert_eq!(slice_start(&l, "a", 97), 0);
        assert_eq!(slice_start(&l, "c", 97), 64);
    }
}
