//! Addresses (`ip addr`): add, delete, dump; IPv4 and IPv6 (optionally without DAD).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::msg::RouteNetlink;

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// Address with prefix length.
    pub addr: IpNet,
    /// Still tentative (IPv6 DAD not finished).
    pub tentative: bool,
    /// IPv6 DAD failed.
    pub dad_failed: bool,
}

/// Options for adding an address.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrOptions {
    /// `IFA_F_NODAD`: an IPv6 address is usable at once (no duplicate address detection).
    pub nodad: bool,
}

pub(crate) fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn base(index: u32, addr: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(&addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer on point-to-point
    // links and the same address otherwise. iproute2 sends both for IPv4.
    if addr.addr().is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(addr.addr()));
    }
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    msg
}

/// `RTM_NEWADDR`.
pub(crate) fn add_msg(index: u32, addr: &IpNet, opts: &AddrOptions) -> RouteNetlinkMessage {
    let mut msg = base(index, addr);
    if opts.nodad && addr.addr().is_ipv6() {
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    RouteNetlinkMessage::NewAddress(msg)
}

/// `RTM_DELADDR`.
pub(crate) fn del_msg(index: u32, addr: &IpNet) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelAddress(base(index, addr))
}

/// Adds an address (exclusive: "exists" when it is already there).
pub fn add(nl: &mut dyn RouteNetlink, index: u32, addr: &IpNet, opts: &AddrOptions) -> Result<()> {
    nl.request(add_msg(index, addr, opts), NLM_F_CREATE | NLM_F_EXCL)
        .map(drop)
        .map_err(|e| e.during(|| format!("add address {addr} to link index {index}")))
}

/// Deletes an address.
pub fn del(nl: &mut dyn RouteNetlink, index: u32, addr: &IpNet) -> Result<()> {
    nl.request(del_msg(index, addr), 0)
        .map(drop)
        .map_err(|e| e.during(|| format!("delete address {addr} from link index {index}")))
}

pub(crate) fn parse(msg: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let addr = IpNet::new(ip, msg.header.prefix_len).ok()?;
    Some(Address {
        index: msg.header.index,
        addr,
        tentative: flags.contains(AddressFlags::Tentative),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
    })
}

/// Every address of the netns (both families), in kernel order.
pub fn dump(nl: &mut dyn RouteNetlink) -> Result<Vec<Address>> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .map_err(|e| e.during(|| "dump addresses".into()))?;
    Ok(replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewAddress(m) => parse(&m),
            _ => None,
        })
        .collect())
}

/// Fails if `index` has no address `addr`.
pub fn require(nl: &mut dyn RouteNetlink, index: u32, addr: &IpNet) -> Result<Address> {
    dump(nl)?
        .into_iter()
        .find(|a| a.index == index && a.addr == *addr)
        .ok_or_else(|| Error::not_found(format!("address {addr} on link index {index}")))
}
