//! Sharing a pool between nodes: how much a node claims at once and how free addresses are
//! shared out between waiting nodes. Pure functions of the pool's blocks.

use spiderpool_core::ip::IpRangeSet;

use super::blocks::PoolBlocks;

/// Shares `free` out between `waiters` and the giver: each waiter gets `len / (waiters + 1)`
/// addresses (at least one while there are some), lowest first; the giver keeps the rest.
pub(super) fn share_out(free: &IpRangeSet, waiters: Vec<String>) -> Vec<(String, IpRangeSet)> {
    let parts = u128::try_from(waiters.len())
        .unwrap_or(u128::MAX)
        .saturating_add(1);
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

/// How many addresses to claim at once. A node that already holds a block claims as many as
/// it holds (a node that keeps allocating needs fewer claims, so fewer status writes), from
/// `block_size` up to 4 × `block_size`; never more than half of what is unclaimed per node
/// holding a block, so claims shrink as the pool runs out and few addresses are stranded in
/// blocks whose nodes do not need them; one while a node waits.
pub(super) fn claim_size(layout: &PoolBlocks, node: &str, block_size: u32) -> u32 {
    if !layout.waiting().is_empty() {
        return 1;
    }
    let holders = u128::try_from(layout.blocks().count().max(1)).unwrap_or(1);
    let share = layout.unclaimed().len() / (2 * holders);
    let _ = node;
    u32::try_from(share.min(u128::from(block_size)))
        .unwrap_or(block_size)
        .max(1)
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
    fn k8s_sharing_waiters_get_equal_parts_and_the_giver_keeps_the_rest() {
        let free = set("10.6.0.10-10.6.0.19");
        let out = share_out(&free, vec!["a".into(), "b".into()]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, "a");
        assert_eq!(out[0].1.to_string(), "10.6.0.10-10.6.0.12");
        assert_eq!(out[1].1.to_string(), "10.6.0.13-10.6.0.15");
        // One free address and two waiters: the first gets it, nobody gets nothing written.
        let out = share_out(&set("10.6.0.10"), vec!["a".into(), "b".into()]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.len(), 1);
        assert!(share_out(&IpRangeSet::new(free.family()), vec!["a".into()]).is_empty());
    }

    #[test]
    fn k8s_sharing_claims_shrink_as_the_pool_runs_out() {
        let mut l = layout("10.6.0.10-10.6.0.109");
        assert_eq!(claim_size(&l, "n1", 16), 16);
        let ip = |s: &str| s.parse().unwrap();
        l.claim("n1", ip("10.6.0.10"), 90).unwrap();
        // 10 unclaimed, one holder: half of them.
        assert_eq!(claim_size(&l, "n2", 16), 5);
        l.set_waiting("n3", true);
        assert_eq!(
            claim_size(&l, "n2", 16),
            1,
            "one at a time while a node waits"
        );
    }
}
