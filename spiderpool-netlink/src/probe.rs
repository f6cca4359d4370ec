//! Address announcements and neighbour probes on one interface of a netns, over a raw
//! `AF_PACKET` socket (the frames come from [`crate::packet`]).
//!
//! * [`announce`]: gratuitous ARP (IPv4) / unsolicited neighbour advertisement (IPv6) after a
//!   MAC change (spec §4.4 step 11), so neighbours replace the old MAC at once. [`Announcer`]
//!   plugs it into [`crate::apply()`] for [`Step::Announce`](spiderpool_core::coordinator::Step).
//! * [`probe_ip_conflict`]: does another host already answer for this address? (spec §3.13,
//!   `enableIPConflictDetection`). IPv4: an ARP request with sender `0.0.0.0` (RFC 5227 probe);
//!   a reply whose sender IP is the address is a conflict. IPv6: a duplicate-address style
//!   neighbour solicitation from `::`; an owner defends with an advertisement carrying its MAC.
//! * [`probe_gateway`]: does the gateway answer? (`enableGatewayDetection`). IPv4: an ARP
//!   request for it; IPv6: a solicitation carrying our link-local source and MAC.
//!
//! Each probe sends up to [`PROBE_ATTEMPTS`] times, spreading `timeout` over the attempts
//! (upstream: 3 tries with 100 ms read deadlines), and listens only on the interface. The
//! interface is set up first, as upstream's IPAM plugin does before probing. Probes need
//! `CAP_NET_RAW` in the netns.
//!
//! ```no_run
//! use std::time::Duration;
//! use spiderpool_netlink::{NetNs, probe};
//!
//! let pod = NetNs::open("/var/run/netns/pod")?;
//! let ip = "10.6.212.145".parse().unwrap();
//! if let Some(mac) = probe::probe_ip_conflict(&pod, "net1", ip, Duration::from_millis(300))? {
//!     eprintln!("{ip} is already used by {mac}");
//! }
//! let gw = "10.6.0.1".parse().unwrap();
//! let up = probe::probe_gateway(&pod, "net1", gw, Duration::from_millis(300))?;
//! # Ok::<(), spiderpool_netlink::Error>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike, bind, recvfrom, send,
    socket,
};
use spiderpool_core::coordinator::MacAddr;

use crate::error::{Error, Result};
use crate::netns::NetNs;
use crate::packet::{self, ARP_REPLY, ETH_P_ARP, ETH_P_IPV6};
use crate::{addr, link};

/// How many times a probe is sent before giving up.
pub const PROBE_ATTEMPTS: u32 = 3;

/// `PACKET_OUTGOING`: a frame this host sent, looped back to packet sockets.
const PACKET_OUTGOING: u8 = 4;

/// Sends address announcements (see [`announce`]); [`crate::apply()`] calls it for
/// `Step::Announce`.
pub trait Announcer {
    /// Announces `addrs` on `dev` with its current MAC.
    fn announce(&mut self, dev: &str, addrs: &[IpAddr]) -> Result<()>;
}

/// [`announce`] inside a netns.
#[derive(Debug, Clone, Copy)]
pub struct PacketAnnouncer<'a> {
    netns: &'a NetNs,
}

impl<'a> PacketAnnouncer<'a> {
    /// Announces from inside `netns`.
    pub fn in_netns(netns: &'a NetNs) -> PacketAnnouncer<'a> {
        PacketAnnouncer { netns }
    }
}

impl Announcer for PacketAnnouncer<'_> {
    fn announce(&mut self, dev: &str, addrs: &[IpAddr]) -> Result<()> {
        announce(self.netns, dev, addrs)
    }
}

/// A raw packet socket bound to one interface and one EtherType.
struct PacketSocket {
    fd: OwnedFd,
    mac: MacAddr,
}

/// A `sockaddr_ll` for `ifindex` and `protocol`, as nix's [`LinkAddr`].
///
/// nix 0.31 has no safe constructor for a link-layer address, so this is the crate's one
/// `unsafe` block.
#[allow(unsafe_code)]
fn link_addr(ifindex: u32, protocol: u16) -> Result<LinkAddr> {
    use nix::libc;
    let invalid = || Error::invalid(format!("interface index {ifindex}"));
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: i32::try_from(ifindex).map_err(|_| invalid())?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the pointer is to a fully initialised `sockaddr_ll` that outlives the call, and
    // `len` is its exact size; `from_raw` checks the family and length and copies the value.
    unsafe { LinkAddr::from_raw((&raw const sll).cast::<libc::sockaddr>(), Some(len)) }
        .ok_or_else(invalid)
}

impl PacketSocket {
    /// Opens a socket on `ifname` of the calling thread's netns (which it stays bound to),
    /// receiving only `protocol` frames; sets the link up when it is down.
    fn open(ifname: &str, protocol: u16) -> Result<(PacketSocket, u32)> {
        let mut nl = crate::NetlinkSocket::new()?;
        let l = link::require(&mut nl, ifname)?;
        if !l.up {
            link::set_up(&mut nl, l.index, true)?;
        }
        let mac = l
            .mac
            .ok_or_else(|| Error::invalid(format!("link {ifname} has no MAC address")))?;
        let op = || format!("packet socket on {ifname}");
        // Protocol 0: nothing is received until `bind` names the interface and the EtherType,
        // so no frame of another interface is queued in between.
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| Error::io(op(), e.into()))?;
        bind(fd.as_raw_fd(), &link_addr(l.index, protocol)?)
            .map_err(|e| Error::io(op(), e.into()))?;
        Ok((PacketSocket { fd, mac }, l.index))
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        send(self.fd.as_raw_fd(), frame, MsgFlags::empty())
            .map(drop)
            .map_err(|e| Error::io("send a packet", e.into()))
    }

    /// The next frame received from another host before `deadline`, or `None` at the deadline.
    fn recv_until(&self, buf: &mut [u8], deadline: Instant) -> Result<Option<usize>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let timeout = PollTimeout::try_from(left.max(Duration::from_millis(1)))
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io("poll a packet socket", e.into())),
            }
            let (n, from) = recvfrom::<LinkAddr>(self.fd.as_raw_fd(), buf)
                .map_err(|e| Error::io("receive a packet", e.into()))?;
            // Our own frames are looped back to packet sockets; skip them.
            if from.is_some_and(|a| a.pkttype() == PACKET_OUTGOING) {
                continue;
            }
            return Ok(Some(n));
        }
    }

    /// Sends `frame` up to [`PROBE_ATTEMPTS`] times within `timeout`, returning the first
    /// answer `matches` accepts.
    fn ask<T>(
        &self,
        frame: &[u8],
        timeout: Duration,
        matches: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>> {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        for attempt in 0..PROBE_ATTEMPTS {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let left = PROBE_ATTEMPTS - attempt;
            let window = end.saturating_duration_since(now) / left;
            self.send(frame)?;
            while let Some(n) = self.recv_until(&mut buf, now + window)? {
                if let Some(found) = buf.get(..n).and_then(&matches) {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }
}

/// Sends a gratuitous ARP for each IPv4 address and an unsolicited neighbour advertisement
/// (override flag) for each IPv6 address of `addrs`, from `dev`'s current MAC, inside `netns`.
pub fn announce(netns: &NetNs, dev: &str, addrs: &[IpAddr]) -> Result<()> {
    let v4: Vec<Ipv4Addr> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<Ipv6Addr> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        })
        .collect();
    netns.run(|| {
        if !v4.is_empty() {
            let (s, _) = PacketSocket::open(dev, ETH_P_ARP)?;
            for ip in &v4 {
                s.send(&packet::gratuitous_arp(s.mac, *ip))?;
            }
        }
        if !v6.is_empty() {
            let (s, _) = PacketSocket::open(dev, ETH_P_IPV6)?;
            for ip in &v6 {
                s.send(&packet::unsolicited_na(s.mac, *ip))?;
            }
        }
        Ok(())
    })
}

/// Checks whether another host on `ifname`'s segment answers for `ip`: `Some(its MAC)` when
/// one does (a conflict), `None` when nobody answered within `timeout`.
pub fn probe_ip_conflict(
    netns: &NetNs,
    ifname: &str,
    ip: IpAddr,
    timeout: Duration,
) -> Result<Option<MacAddr>> {
    netns.run(|| match ip {
        IpAddr::V4(ip) => {
            let (s, _) = PacketSocket::open(ifname, ETH_P_ARP)?;
            let own = s.mac;
            let frame = packet::arp_request(own, Ipv4Addr::UNSPECIFIED, ip);
            s.ask(&frame, timeout, |f| {
                packet::parse_arp(f)
                    .filter(|a| a.op == ARP_REPLY && a.sender_ip == ip && a.sender_mac != own)
                    .map(|a| a.sender_mac)
            })
        }
        IpAddr::V6(ip) => {
            let (s, _) = PacketSocket::open(ifname, ETH_P_IPV6)?;
            let own = s.mac;
            let frame = packet::neighbour_solicitation(own, Ipv6Addr::UNSPECIFIED, ip);
            s.ask(&frame, timeout, |f| {
                packet::parse_na(f)
                    .filter(|na| na.target == ip && na.eth_src != own)
                    .and_then(|na| na.target_mac)
                    .filter(|m| *m != own)
            })
        }
    })
}

/// Checks whether the gateway `gw` answers on `ifname` within `timeout`. IPv4 asks from the
/// interface's first IPv4 address (`0.0.0.0` when it has none yet, which hosts answer too);
/// IPv6 asks from the interface's EUI-64 link-local address, with its MAC as source option.
pub fn probe_gateway(netns: &NetNs, ifname: &str, gw: IpAddr, timeout: Duration) -> Result<bool> {
    netns.run(|| match gw {
        IpAddr::V4(gw) => {
            let (s, index) = PacketSocket::open(ifname, ETH_P_ARP)?;
            let mut nl = crate::NetlinkSocket::new()?;
            let src = addr::dump(&mut nl)?
                .into_iter()
                .filter(|a| a.index == index)
                .find_map(|a| match a.addr.addr() {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            let frame = packet::arp_request(s.mac, src, gw);
            let answer = s.ask(&frame, timeout, |f| {
                packet::parse_arp(f).filter(|a| a.op == ARP_REPLY && a.sender_ip == gw)
            })?;
            Ok(answer.is_some())
        }
        IpAddr::V6(gw) => {
            let (s, _) = PacketSocket::open(ifname, ETH_P_IPV6)?;
            let frame = packet::neighbour_solicitation(s.mac, packet::link_local(s.mac), gw);
            let answer = s.ask(&frame, timeout, |f| {
                packet::parse_na(f).filter(|na| na.target == gw)
            })?;
            Ok(answer.is_some())
        }
    })
}
