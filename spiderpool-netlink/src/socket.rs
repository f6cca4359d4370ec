//! The real transport: a synchronous `NETLINK_ROUTE` socket.

use netlink_packet_core::{
    NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP_INTR, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{Error, Result};
use crate::msg::{Exchange, RouteNetlink, header_flags};

/// Receive buffer requested from the kernel (it may cap it at `net.core.rmem_max`).
const RECV_BUFFER: usize = 1 << 20;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text attribute.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of a netlink message header.
const NLMSG_HDRLEN: usize = 16;

/// A `NETLINK_ROUTE` socket in the network namespace of the thread that created it, with
/// strict dump checking (so dumps can be filtered by table or link) and extended acks.
///
/// To get one inside another netns use [`crate::NetNs::route_socket`]; the socket stays bound
/// to that netns after the creating thread is gone.
#[derive(Debug)]
pub struct NetlinkSocket {
    socket: Socket,
    seq: u32,
}

impl NetlinkSocket {
    /// Opens a socket in the calling thread's netns.
    pub fn new() -> Result<NetlinkSocket> {
        let op = "open NETLINK_ROUTE socket";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(op, e))?;
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(|e| Error::io(op, e))?;
        // Best effort: older kernels lack these; the replies are still understood.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_rx_buf_sz(RECV_BUFFER);
        socket.bind_auto().map_err(|e| Error::io(op, e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io(op, e))?;
        Ok(NetlinkSocket { socket, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }
}

/// Parses the extended-ack text out of an error message's payload.
fn ext_ack_message(outer_flags: u16, payload: &[u8]) -> Option<String> {
    if outer_flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let orig_len = if outer_flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = payload.get(0..4)?;
        u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize
    };
    let mut rest = payload.get(align4(orig_len)..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &rest[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = rest.get(align4(len)..)?;
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl RouteNetlink for NetlinkSocket {
    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Exchange> {
        let seq = self.next_seq();
        let mut packet = NetlinkMessage::from(msg);
        packet.header.flags = header_flags(flags);
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| Error::io("netlink send", e))?;

        let mut out = Exchange::default();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| Error::io("netlink receive", e))?;
            if data.is_empty() {
                return Err(Error::protocol("empty netlink datagram"));
            }
            let mut offset = 0;
            while offset < data.len() {
                let bytes = &data[offset..];
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| Error::protocol(format!("cannot parse reply: {e}")))?;
                let len = reply.header.length as usize;
                if len < NLMSG_HDRLEN {
                    return Err(Error::protocol(format!("reply with length {len}")));
                }
                offset += align4(len);
                if reply.header.sequence_number != seq {
                    // A late reply to an earlier request (e.g. one abandoned on error).
                    continue;
                }
                if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                    out.interrupted = true;
                }
                let outer_flags = reply.header.flags;
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.replies.push(m),
                    NetlinkPayload::Done(done) => {
                        if done.code < 0 {
                            return Err(Error::Kernel {
                                op: String::new(),
                                errno: -done.code,
                                ext_ack: None,
                            });
                        }
                        return Ok(out);
                    }
                    NetlinkPayload::Error(err) => match err.code {
                        None => return Ok(out),
                        Some(code) => {
                            return Err(Error::Kernel {
                                op: String::new(),
                                errno: code.get().saturating_abs(),
                                ext_ack: ext_ack_message(outer_flags, &err.header),
                            });
                        }
                    },
                    NetlinkPayload::Overrun(_) => {
                        return Err(Error::protocol("receive buffer overrun"));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text_is_found_after_a_capped_header() {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        let text = b"Invalid prefix\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload).as_deref(),
            Some("Invalid prefix")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload), None);
    }
}
