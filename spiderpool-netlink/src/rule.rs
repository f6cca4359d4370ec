//! Policy rules (`ip rule`): add exclusively ("exists" = done, never replace: the kernel does
//! not support replacing rules and `NLM_F_REPLACE` just appends duplicates), delete by full
//! match, dump.

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use spiderpool_core::coordinator::{Family, Rule};

use crate::error::{Error, Result};
use crate::msg::RouteNetlink;
use crate::route::{af, header_table};

/// `ip rule`-style text for error messages.
pub fn describe(r: &Rule) -> String {
    let mut s = String::new();
    if let Some(p) = r.priority {
        s.push_str(&format!("pref {p} "));
    }
    match r.from {
        Some(f) => s.push_str(&format!("from {f}")),
        None => s.push_str("from all"),
    }
    if let Some(t) = r.to {
        s.push_str(&format!(" to {t}"));
    }
    if let Some(m) = r.fwmark {
        s.push_str(&format!(" fwmark {m:#x}"));
    }
    s.push_str(&format!(" lookup {}", r.table));
    s
}

fn check(r: &Rule) -> Result<()> {
    let wrong = |n: &Option<IpNet>| n.is_some_and(|n| Family::of_net(&n) != r.family);
    if wrong(&r.from) || wrong(&r.to) {
        return Err(Error::invalid(format!(
            "mixed families in rule {}",
            describe(r)
        )));
    }
    Ok(())
}

/// The rule message (used for add and delete alike: delete matches on every field given).
pub(crate) fn rule_msg(r: &Rule) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = af(r.family);
    msg.header.table = header_table(r.table);
    msg.header.action = RuleAction::ToTable;
    msg.attributes.push(RuleAttribute::Table(r.table));
    if let Some(p) = r.priority {
        msg.attributes.push(RuleAttribute::Priority(p));
    }
    if let Some(from) = r.from {
        msg.header.src_len = from.prefix_len();
        msg.attributes
            .push(RuleAttribute::Source(from.trunc().addr()));
    }
    if let Some(to) = r.to {
        msg.header.dst_len = to.prefix_len();
        msg.attributes
            .push(RuleAttribute::Destination(to.trunc().addr()));
    }
    if let Some(mark) = r.fwmark {
        msg.attributes.push(RuleAttribute::FwMark(mark));
        msg.attributes.push(RuleAttribute::FwMask(u32::MAX));
    }
    msg
}

/// Adds a rule exclusively. Returns `Ok(true)` when added, `Ok(false)` when an identical rule
/// already existed.
pub fn add(nl: &mut dyn RouteNetlink, r: &Rule) -> Result<bool> {
    check(r)?;
    match nl.request(
        RouteNetlinkMessage::NewRule(rule_msg(r)),
        NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.is_exists() => Ok(false),
        Err(e) => Err(e.during(|| format!("add rule {}", describe(r)))),
    }
}

/// Deletes one rule matching every field of `r` (a rule without priority matches any).
pub fn del(nl: &mut dyn RouteNetlink, r: &Rule) -> Result<()> {
    check(r)?;
    nl.request(RouteNetlinkMessage::DelRule(rule_msg(r)), 0)
        .map(drop)
        .map_err(|e| e.during(|| format!("delete rule {}", describe(r))))
}

/// `RTM_GETRULE` dump for one family.
pub(crate) fn dump_msg(family: Family) -> RouteNetlinkMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = af(family);
    RouteNetlinkMessage::GetRule(msg)
}

pub(crate) fn parse(msg: &RuleMessage, family: Family) -> Option<Rule> {
    if msg.header.action != RuleAction::ToTable {
        return None;
    }
    let mut rule = Rule::lookup(family, u32::from(msg.header.table));
    let mut mask = u32::MAX;
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Priority(p) => rule.priority = Some(*p),
            RuleAttribute::Source(ip) => rule.from = IpNet::new(*ip, msg.header.src_len).ok(),
            RuleAttribute::Destination(ip) => rule.to = IpNet::new(*ip, msg.header.dst_len).ok(),
            RuleAttribute::FwMark(m) => rule.fwmark = Some(*m),
            RuleAttribute::FwMask(m) => mask = *m,
            // Selectors this model cannot express: leave the rule out rather than misreport it.
            RuleAttribute::Iifname(_)
            | RuleAttribute::Oifname(_)
            | RuleAttribute::UidRange(_)
            | RuleAttribute::IpProtocol(_)
            | RuleAttribute::SourcePortRange(_)
            | RuleAttribute::DestinationPortRange(_) => return None,
            _ => {}
        }
    }
    if rule.fwmark.is_some() && mask != u32::MAX {
        return None;
    }
    if rule.priority.is_none() {
        rule.priority = Some(0);
    }
    Some(rule)
}

/// The rules of `family` in priority order.
pub fn dump(nl: &mut dyn RouteNetlink, family: Family) -> Result<Vec<Rule>> {
    let replies = nl
        .dump(dump_msg(family))
        .map_err(|e| e.during(|| format!("dump {} rules", family.label())))?;
    let mut rules: Vec<Rule> = replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewRule(m) => parse(&m, family),
            _ => None,
        })
        .collect();
    rules.sort_by_key(|r| r.priority);
    Ok(rules)
}

/// The IPv4 rules and then the IPv6 rules, each in priority order, from one `AF_UNSPEC` dump.
/// Rules of other families (multicast routing's own tables) are left out.
pub fn dump_all(nl: &mut dyn RouteNetlink) -> Result<Vec<Rule>> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetRule(RuleMessage::default()))
        .map_err(|e| e.during(|| "dump rules".into()))?;
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for reply in replies {
        let RouteNetlinkMessage::NewRule(m) = reply else {
            continue;
        };
        match m.header.family {
            AddressFamily::Inet => v4.extend(parse(&m, Family::V4)),
            AddressFamily::Inet6 => v6.extend(parse(&m, Family::V6)),
            _ => {}
        }
    }
    v4.sort_by_key(|r| r.priority);
    v6.sort_by_key(|r| r.priority);
    v4.append(&mut v6);
    Ok(v4)
}
