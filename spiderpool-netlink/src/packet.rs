//! Ethernet frames for address announcements and probes, built and parsed without I/O.
//!
//! | frame | built by | parsed by |
//! |---|---|---|
//! | ARP request (gratuitous: sender = target; DAD probe: sender `0.0.0.0`) | [`arp_request`], [`gratuitous_arp`] | [`parse_arp`] |
//! | neighbour solicitation (DAD style from `::`, or with a source link-layer option) | [`neighbour_solicitation`] | |
//! | unsolicited neighbour advertisement (override flag, target link-layer option) | [`unsolicited_na`] | [`parse_na`] |
//!
//! Frames include the Ethernet header, for a raw `AF_PACKET` socket. IPv6 frames carry a hop
//! limit of 255 (receivers drop NDP with any other) and the ICMPv6 checksum ([`icmpv6_checksum`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use spiderpool_core::coordinator::MacAddr;

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// The Ethernet broadcast address.
pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
/// ARP operation: request.
pub const ARP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const ARP_REPLY: u16 = 2;
/// ICMPv6 type: neighbour solicitation.
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type: neighbour advertisement.
pub const ND_NEIGHBOR_ADVERT: u8 = 136;

const ETH_HLEN: usize = 14;
const IPV6_HLEN: usize = 40;
const IPPROTO_ICMPV6: u8 = 58;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

fn ethernet(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A broadcast ARP request from `src_mac` asking who has `target_ip`, sent as `sender_ip`
/// (`0.0.0.0` for a duplicate-address probe, RFC 5227). 42 bytes.
pub fn arp_request(src_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut f = ethernet(BROADCAST, src_mac, ETH_P_ARP);
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&ARP_REQUEST.to_be_bytes());
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip.octets());
    f
}

/// A gratuitous ARP: a broadcast request with sender = target = `ip`, so every host on the
/// segment that has `ip` in its table updates it to `mac`.
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    arp_request(mac, ip, ip)
}

/// An ARP packet (Ethernet/IPv4 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// [`ARP_REQUEST`] or [`ARP_REPLY`].
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    b.get(at..at + 6)
        .and_then(|s| <[u8; 6]>::try_from(s).ok())
        .map(MacAddr)
}

fn v4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(Ipv4Addr::from)
}

fn v6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    b.get(at..at + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .map(Ipv6Addr::from)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// Parses an Ethernet frame holding an Ethernet/IPv4 ARP packet; `None` for anything else.
pub fn parse_arp(frame: &[u8]) -> Option<Arp> {
    if u16_at(frame, 12)? != ETH_P_ARP {
        return None;
    }
    let a = frame.get(ETH_HLEN..)?;
    if u16_at(a, 0)? != 1 || u16_at(a, 2)? != 0x0800 || a.get(4..6)? != [6, 4] {
        return None;
    }
    Some(Arp {
        op: u16_at(a, 6)?,
        sender_mac: mac_at(a, 8)?,
        sender_ip: v4_at(a, 14)?,
        target_mac: mac_at(a, 18)?,
        target_ip: v4_at(a, 24)?,
    })
}

/// The solicited-node multicast group of `ip` (`ff02::1:ffXX:XXXX`, RFC 4291).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address of an IPv6 multicast group (`33:33` + its last 4 bytes, RFC 2464).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The EUI-64 link-local address of `mac` (`fe80::` + the MAC with `ff:fe` inserted and the
/// universal/local bit flipped, RFC 4291 appendix A).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The ICMPv6 checksum of `icmp` (with its checksum field zero) from `src` to `dst`: the
/// ones' complement sum over the pseudo-header (addresses, length, next header 58) and the data.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map(u32::from).unwrap_or(0);
            sum = sum.wrapping_add(hi | lo);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::try_from(icmp.len()).unwrap_or(u32::MAX).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(icmp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv6 (hop limit 255) frame around the ICMPv6 message `icmp` (checksum filled).
fn icmpv6_frame(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mut icmp: Vec<u8>,
) -> Vec<u8> {
    let sum = icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = ethernet(dst_mac, src_mac, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class or flow label
    f.extend_from_slice(&u16::try_from(icmp.len()).unwrap_or(u16::MAX).to_be_bytes());
    f.extend_from_slice(&[IPPROTO_ICMPV6, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

/// A neighbour solicitation for `target` to its solicited-node group, from `src_mac`. With
/// `src` = `::` it is a duplicate-address probe (no source link-layer option, RFC 4862: an
/// owner answers to all nodes); otherwise it carries `src_mac` as source link-layer option and
/// the owner answers to `src`.
pub fn neighbour_solicitation(src_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut icmp = vec![ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    if !src.is_unspecified() {
        icmp.extend_from_slice(&[OPT_SOURCE_LLADDR, 1]);
        icmp.extend_from_slice(&src_mac.0);
    }
    icmpv6_frame(multicast_mac(group), src_mac, src, group, icmp)
}

/// An unsolicited neighbour advertisement of `ip` at `mac` to all nodes (`ff02::1`), with the
/// override flag so receivers replace a cached address, and the target link-layer option.
pub fn unsolicited_na(mac: MacAddr, ip: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![ND_NEIGHBOR_ADVERT, 0, 0, 0, NA_FLAG_OVERRIDE, 0, 0, 0];
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
    icmp.extend_from_slice(&mac.0);
    icmpv6_frame(multicast_mac(all_nodes), mac, ip, all_nodes, icmp)
}

/// A neighbour advertisement as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourAdvert {
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The target link-layer option, when there is exactly one.
    pub target_mac: Option<MacAddr>,
    /// The solicited flag.
    pub solicited: bool,
    /// The override flag.
    pub override_flag: bool,
}

/// Parses an Ethernet frame holding an IPv6 neighbour advertisement (no extension headers,
/// hop limit 255, code 0, valid checksum, as receivers require); `None` for anything else.
/// The checksum is checked here because packet sockets see frames before the IPv6 stack does.
pub fn parse_na(frame: &[u8]) -> Option<NeighbourAdvert> {
    if u16_at(frame, 12)? != ETH_P_IPV6 {
        return None;
    }
    let ip = frame.get(ETH_HLEN..)?;
    if ip.first()? >> 4 != 6 || *ip.get(6)? != IPPROTO_ICMPV6 || *ip.get(7)? != 255 {
        return None;
    }
    let payload_len = usize::from(u16_at(ip, 4)?);
    let icmp = ip.get(IPV6_HLEN..IPV6_HLEN + payload_len)?;
    if *icmp.first()? != ND_NEIGHBOR_ADVERT || *icmp.get(1)? != 0 || icmp.len() < 24 {
        return None;
    }
    let (src, dst) = (v6_at(ip, 8)?, v6_at(ip, 24)?);
    // Summing over a message that includes its checksum gives zero when it is intact.
    if icmpv6_checksum(src, dst, icmp) != 0 {
        return None;
    }
    let flags = *icmp.get(4)?;
    let mut lladdrs = Vec::new();
    let mut opts = icmp.get(24..)?;
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == OPT_TARGET_LLADDR {
            lladdrs.push(mac_at(opts, 2)?);
        }
        opts = &opts[len..];
    }
    Some(NeighbourAdvert {
        eth_src: mac_at(frame, 6)?,
        src,
        target: v6_at(icmp, 8)?,
        target_mac: match lladdrs.as_slice() {
            [one] => Some(*one),
            _ => None,
        },
        solicited: flags & NA_FLAG_SOLICITED != 0,
        override_flag: flags & NA_FLAG_OVERRIDE != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x0a, 0x1b, 0x0a, 0x06, 0xd4, 0x91]);

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn gratuitous_arp_golden_bytes() {
        let f = gratuitous_arp(MAC, "10.6.212.145".parse().unwrap());
        assert_eq!(
            f,
            hex("ff ff ff ff ff ff 0a 1b 0a 06 d4 91 08 06 \
                 00 01 08 00 06 04 00 01 0a 1b 0a 06 d4 91 0a 06 d4 91 \
                 00 00 00 00 00 00 0a 06 d4 91")
        );
        let a = parse_arp(&f).unwrap();
        assert_eq!(a.op, ARP_REQUEST);
        assert_eq!((a.sender_mac, a.sender_ip), (MAC, a.target_ip));
    }

    #[test]
    fn dad_style_arp_probe_has_a_zero_sender() {
        let f = arp_request(MAC, Ipv4Addr::UNSPECIFIED, "10.6.212.145".parse().unwrap());
        assert_eq!(f.len(), 42);
        assert_eq!(&f[28..32], [0, 0, 0, 0]);
        assert_eq!(&f[38..42], [10, 6, 212, 145]);
    }

    #[test]
    fn arp_reply_parses_and_other_frames_do_not() {
        let mut f = arp_request(
            MacAddr([2, 0, 0, 0, 0, 9]),
            "10.6.0.1".parse().unwrap(),
            "10.6.212.145".parse().unwrap(),
        );
        f[21] = 2; // op = reply
        let a = parse_arp(&f).unwrap();
        assert_eq!(a.op, ARP_REPLY);
        assert_eq!(a.sender_ip, Ipv4Addr::new(10, 6, 0, 1));
        assert_eq!(a.sender_mac, MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!(parse_arp(&f[..30]), None, "truncated");
        f[12] = 0x86;
        assert_eq!(parse_arp(&f), None, "not ARP");
        assert_eq!(parse_na(&f), None);
    }

    #[test]
    fn unsolicited_na_golden_bytes_and_round_trip() {
        let f = unsolicited_na(MAC, "fd00::145".parse().unwrap());
        assert_eq!(
            f,
            hex("33 33 00 00 00 01 0a 1b 0a 06 d4 91 86 dd \
                 60 00 00 00 00 20 3a ff \
                 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 01 45 \
                 ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
                 88 00 71 61 20 00 00 00 \
                 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 01 45 \
                 02 01 0a 1b 0a 06 d4 91")
        );
        let na = parse_na(&f).unwrap();
        assert_eq!(na.target, "fd00::145".parse::<Ipv6Addr>().unwrap());
        assert_eq!(na.target_mac, Some(MAC));
        assert_eq!(na.eth_src, MAC);
        assert!(na.override_flag && !na.solicited);
        let mut bad = f.clone();
        bad[85] ^= 1;
        assert_eq!(parse_na(&bad), None, "checksum mismatch");
        let mut hop = f;
        hop[21] = 64;
        assert_eq!(parse_na(&hop), None, "hop limit must be 255");
    }

    #[test]
    fn neighbour_solicitations_dad_and_with_source_option() {
        let target: Ipv6Addr = "fd00::145".parse().unwrap();
        assert_eq!(
            solicited_node(target),
            "ff02::1:ff00:145".parse::<Ipv6Addr>().unwrap()
        );
        let dad = neighbour_solicitation(MAC, Ipv6Addr::UNSPECIFIED, target);
        assert_eq!(&dad[..6], hex("33 33 ff 00 01 45"));
        assert_eq!(
            dad.len(),
            14 + 40 + 24,
            "no source link-layer option from ::"
        );
        assert_eq!(&dad[54..58], hex("87 00 7b 1d"));
        let ll = link_local(MAC);
        assert_eq!(ll, "fe80::81b:aff:fe06:d491".parse::<Ipv6Addr>().unwrap());
        let ns = neighbour_solicitation(MAC, ll, target);
        assert_eq!(ns.len(), 14 + 40 + 32);
        assert_eq!(&ns[54..58], hex("87 00 ad 2d"));
        assert_eq!(&ns[78..86], hex("01 01 0a 1b 0a 06 d4 91"));
        assert_eq!(
            parse_na(&ns),
            None,
            "a solicitation is not an advertisement"
        );
    }
}
