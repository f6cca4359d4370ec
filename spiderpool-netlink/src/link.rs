//! Links (`ip link`): look up, dump, create veth and macvlan, set up/down, MTU, MAC,
//! txqueuelen, move to another netns, rename, delete.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use spiderpool_core::coordinator::{LinkView, MacAddr};

use crate::error::{Error, Result};
use crate::msg::RouteNetlink;

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MAC address (absent on links without one, e.g. some tunnels).
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Transmit queue length.
    pub tx_queue_len: Option<u32>,
    /// IFF_UP.
    pub up: bool,
    /// IFF_BROADCAST.
    pub broadcast: bool,
    /// IFF_MULTICAST.
    pub multicast: bool,
    /// The link kind (`veth`, `macvlan`, `bridge`...), absent for physical NICs and `lo`.
    pub kind: Option<String>,
    /// IFLA_LINK: the peer's index for a veth, the parent's for a macvlan (may be an index in
    /// another netns).
    pub link: Option<u32>,
}

impl Link {
    /// The core's view of this link (addresses filled in separately).
    pub fn to_view(&self) -> LinkView {
        LinkView {
            name: self.name.clone(),
            index: self.index,
            mac: self.mac,
            up: self.up,
            broadcast: self.broadcast,
            multicast: self.multicast,
            addresses: Vec::new(),
            peer_index: if self.kind.as_deref() == Some("veth") {
                self.link
            } else {
                None
            },
            mtu: self.mtu,
            tx_queue_len: self.tx_queue_len,
        }
    }
}

/// Options for a veth pair.
#[derive(Debug, Clone, Copy, Default)]
pub struct VethOptions<'a> {
    /// MAC of the first end.
    pub mac: Option<MacAddr>,
    /// MAC of the peer.
    pub peer_mac: Option<MacAddr>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Where the peer is created; `None` keeps it next to the first end.
    pub peer_netns: Option<BorrowedFd<'a>>,
}

/// Options for a macvlan.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacvlanOptions {
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u32>,
}

pub(crate) fn mac_of(bytes: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
}

/// Turns a link message into a [`Link`].
pub(crate) fn parse(msg: &LinkMessage) -> Option<Link> {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        tx_queue_len: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        broadcast: msg.header.flags.contains(LinkFlags::Broadcast),
        multicast: msg.header.flags.contains(LinkFlags::Multicast),
        kind: None,
        link: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = mac_of(a),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::TxQueueLen(q) => link.tx_queue_len = Some(*q),
            LinkAttribute::Link(l) => link.link = Some(*l),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if link.name.is_empty() {
        None
    } else {
        Some(link)
    }
}

fn base(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Unspec;
    msg.header.index = index;
    msg
}

fn check_name(name: &str) -> Result<()> {
    // IFNAMSIZ is 16 including the terminating NUL.
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
        return Err(Error::invalid(format!("interface name {name:?}")));
    }
    Ok(())
}

/// `RTM_GETLINK` by name.
pub(crate) fn get_by_name_msg(name: &str) -> RouteNetlinkMessage {
    let mut msg = base(0);
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    RouteNetlinkMessage::GetLink(msg)
}

/// `RTM_GETLINK` by index.
pub(crate) fn get_by_index_msg(index: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(base(index))
}

/// `RTM_NEWLINK` for a veth pair.
pub(crate) fn veth_msg(name: &str, peer: &str, opts: &VethOptions<'_>) -> RouteNetlinkMessage {
    let mut peer_msg = base(0);
    peer_msg
        .attributes
        .push(LinkAttribute::IfName(peer.to_string()));
    if let Some(mac) = opts.peer_mac {
        peer_msg
            .attributes
            .push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(mtu) = opts.mtu {
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(fd) = opts.peer_netns {
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
    }
    let mut msg = base(0);
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mac) = opts.mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(mtu) = opts.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    RouteNetlinkMessage::NewLink(msg)
}

/// `RTM_NEWLINK` for a bridge-mode macvlan on `parent`.
pub(crate) fn macvlan_msg(name: &str, parent: u32, opts: &MacvlanOptions) -> RouteNetlinkMessage {
    let mut msg = base(0);
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes.push(LinkAttribute::Link(parent));
    if let Some(mac) = opts.mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(mtu) = opts.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::MacVlan),
        LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
            MacVlanMode::Bridge,
        )])),
    ]));
    RouteNetlinkMessage::NewLink(msg)
}

/// `RTM_SETLINK` changing the UP flag.
pub(crate) fn set_up_msg(index: u32, up: bool) -> RouteNetlinkMessage {
    let mut msg = base(index);
    if up {
        msg.header.flags = LinkFlags::Up;
    }
    msg.header.change_mask = LinkFlags::Up;
    RouteNetlinkMessage::SetLink(msg)
}

/// `RTM_SETLINK` with one attribute.
pub(crate) fn set_attr_msg(index: u32, attr: LinkAttribute) -> RouteNetlinkMessage {
    let mut msg = base(index);
    msg.attributes.push(attr);
    RouteNetlinkMessage::SetLink(msg)
}

/// `RTM_DELLINK`.
pub(crate) fn delete_msg(index: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelLink(base(index))
}

fn first_link(replies: Vec<RouteNetlinkMessage>) -> Option<Link> {
    replies.into_iter().find_map(|r| match r {
        RouteNetlinkMessage::NewLink(m) => parse(&m),
        _ => None,
    })
}

/// The link called `name`, or `None`.
pub fn get_by_name(nl: &mut dyn RouteNetlink, name: &str) -> Result<Option<Link>> {
    check_name(name)?;
    match nl.request(get_by_name_msg(name), 0) {
        Ok(replies) => Ok(first_link(replies)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.during(|| format!("get link {name}"))),
    }
}

/// The link called `name`, or [`Error::NotFound`].
pub fn require(nl: &mut dyn RouteNetlink, name: &str) -> Result<Link> {
    get_by_name(nl, name)?.ok_or_else(|| Error::not_found(format!("link {name:?}")))
}

/// The link with ifindex `index`, or `None`.
pub fn get_by_index(nl: &mut dyn RouteNetlink, index: u32) -> Result<Option<Link>> {
    match nl.request(get_by_index_msg(index), 0) {
        Ok(replies) => Ok(first_link(replies)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.during(|| format!("get link index {index}"))),
    }
}

/// Every link, in index order.
pub fn dump(nl: &mut dyn RouteNetlink) -> Result<Vec<Link>> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetLink(base(0)))
        .map_err(|e| e.during(|| "dump links".into()))?;
    let mut links: Vec<Link> = replies
        .into_iter()
        .filter_map(|r| match r {
            RouteNetlinkMessage::NewLink(m) => parse(&m),
            _ => None,
        })
        .collect();
    links.sort_by_key(|l| l.index);
    Ok(links)
}

/// Creates a veth pair `name` / `peer` (exclusive: fails with "exists" if `name` exists).
pub fn create_veth(
    nl: &mut dyn RouteNetlink,
    name: &str,
    peer: &str,
    opts: &VethOptions<'_>,
) -> Result<()> {
    check_name(name)?;
    check_name(peer)?;
    nl.request(veth_msg(name, peer, opts), NLM_F_CREATE | NLM_F_EXCL)
        .map(drop)
        .map_err(|e| e.during(|| format!("create veth {name} peer {peer}")))
}

/// Creates a bridge-mode macvlan `name` on the link with index `parent`.
pub fn create_macvlan(
    nl: &mut dyn RouteNetlink,
    name: &str,
    parent: u32,
    opts: &MacvlanOptions,
) -> Result<()> {
    check_name(name)?;
    nl.request(macvlan_msg(name, parent, opts), NLM_F_CREATE | NLM_F_EXCL)
        .map(drop)
        .map_err(|e| e.during(|| format!("create macvlan {name} on index {parent}")))
}

fn set(
    nl: &mut dyn RouteNetlink,
    msg: RouteNetlinkMessage,
    what: impl FnOnce() -> String,
) -> Result<()> {
    nl.request(msg, 0).map(drop).map_err(|e| e.during(what))
}

/// Sets a link up or down.
pub fn set_up(nl: &mut dyn RouteNetlink, index: u32, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    set(nl, set_up_msg(index, up), || {
        format!("set link index {index} {state}")
    })
}

/// Sets a link's MTU.
pub fn set_mtu(nl: &mut dyn RouteNetlink, index: u32, mtu: u32) -> Result<()> {
    set(nl, set_attr_msg(index, LinkAttribute::Mtu(mtu)), || {
        format!("set link index {index} mtu {mtu}")
    })
}

/// Sets a link's MAC address.
pub fn set_mac(nl: &mut dyn RouteNetlink, index: u32, mac: MacAddr) -> Result<()> {
    set(
        nl,
        set_attr_msg(index, LinkAttribute::Address(mac.0.to_vec())),
        || format!("set link index {index} address {mac}"),
    )
}

/// Sets a link's transmit queue length.
pub fn set_tx_queue_len(nl: &mut dyn RouteNetlink, index: u32, len: u32) -> Result<()> {
    set(
        nl,
        set_attr_msg(index, LinkAttribute::TxQueueLen(len)),
        || format!("set link index {index} txqueuelen {len}"),
    )
}

/// Moves a link into the netns open at `netns` (e.g. a [`crate::NetNs`]).
pub fn set_netns(nl: &mut dyn RouteNetlink, index: u32, netns: BorrowedFd<'_>) -> Result<()> {
    set(
        nl,
        set_attr_msg(index, LinkAttribute::NetNsFd(netns.as_raw_fd())),
        || format!("move link index {index} to another netns"),
    )
}

/// Renames a link (it must be down).
pub fn rename(nl: &mut dyn RouteNetlink, index: u32, name: &str) -> Result<()> {
    check_name(name)?;
    set(
        nl,
        set_attr_msg(index, LinkAttribute::IfName(name.to_string())),
        || format!("rename link index {index} to {name}"),
    )
}

/// Deletes a link (a veth takes its peer with it).
pub fn delete(nl: &mut dyn RouteNetlink, index: u32) -> Result<()> {
    nl.request(delete_msg(index), 0)
        .map(drop)
        .map_err(|e| e.during(|| format!("delete link index {index}")))
}

/// Name ↔ index lookups for one netns, filled from a dump and on demand.
#[derive(Debug, Clone, Default)]
pub struct LinkNames {
    by_name: BTreeMap<String, Link>,
}

impl LinkNames {
    /// Loads every link of the netns.
    pub fn load(nl: &mut dyn RouteNetlink) -> Result<LinkNames> {
        Ok(LinkNames::from_links(dump(nl)?))
    }

    /// From links already read.
    pub fn from_links(links: impl IntoIterator<Item = Link>) -> LinkNames {
        LinkNames {
            by_name: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
        }
    }

    /// The link called `name`, asking the kernel when it is not cached.
    pub fn link(&mut self, nl: &mut dyn RouteNetlink, name: &str) -> Result<&Link> {
        if !self.by_name.contains_key(name) {
            let link = require(nl, name)?;
            self.by_name.insert(name.to_string(), link);
        }
        self.by_name
            .get(name)
            .ok_or_else(|| Error::not_found(format!("link {name:?}")))
    }

    /// The index of `name`, asking the kernel when it is not cached.
    pub fn index(&mut self, nl: &mut dyn RouteNetlink, name: &str) -> Result<u32> {
        self.link(nl, name).map(|l| l.index)
    }

    /// The cached name of `index`.
    pub fn name_of(&self, index: u32) -> Option<&str> {
        self.by_name
            .values()
            .find(|l| l.index == index)
            .map(|l| l.name.as_str())
    }

    /// Drops a cached entry (after a delete, rename or change).
    pub fn forget(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    /// The cached links in index order.
    pub fn links(&self) -> Vec<&Link> {
        let mut v: Vec<&Link> = self.by_name.values().collect();
        v.sort_by_key(|l| l.index);
        v
    }
}
