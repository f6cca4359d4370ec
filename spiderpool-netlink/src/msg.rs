//! The netlink message layer: the [`RouteNetlink`] transport trait and re-exports of the
//! `netlink-packet-*` types it speaks.
//!
//! This is the only public module that names `netlink-packet-route` / `netlink-packet-core`
//! types; the typed operations ([`crate::link`], [`crate::route`], ...) and the plan functions
//! ([`crate::apply()`], [`crate::read()`], [`crate::verify()`]) take and return
//! `spiderpool-core` types. Those crates change their API often (see `docs/netlink.md`), so
//! keeping them here limits an upgrade to this module, the builders and the fake's tests.

pub use netlink_packet_core as core;
pub use netlink_packet_route as route;
pub use netlink_packet_route::RouteNetlinkMessage;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

use crate::error::{Error, Result};

/// How many times a dump is retried when the kernel flags it `NLM_F_DUMP_INTR`.
pub const MAX_DUMP_ATTEMPTS: usize = 5;

/// The replies to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// The messages the kernel answered with (empty for a plain ack).
    pub replies: Vec<RouteNetlinkMessage>,
    /// True if any reply carried `NLM_F_DUMP_INTR`: the dump may be inconsistent.
    pub interrupted: bool,
}

/// The header flags a request goes out with: `NLM_F_REQUEST`, the caller's flags, and
/// `NLM_F_ACK` unless it is a dump (a dump ends with `NLMSG_DONE` instead).
pub fn header_flags(flags: u16) -> u16 {
    let ack = if flags & NLM_F_DUMP == NLM_F_DUMP {
        0
    } else {
        NLM_F_ACK
    };
    NLM_F_REQUEST | ack | flags
}

/// Something that sends rtnetlink requests and returns the replies: the real
/// [`crate::NetlinkSocket`] or the recording fake used in unit tests (`fake::RecordingNetlink`,
/// feature `test-util`).
pub trait RouteNetlink {
    /// Sends `msg` with the extra header `flags` (`NLM_F_CREATE`, `NLM_F_EXCL`,
    /// `NLM_F_REPLACE`, `NLM_F_DUMP`...; see [`header_flags`]) and collects every reply up to
    /// the ack, the error or the end of the dump. A kernel error becomes [`Error::Kernel`].
    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Exchange>;

    /// A non-dump request: the replies (usually none beyond the ack).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        Ok(self.exchange(msg, flags)?.replies)
    }

    /// A dump, retried up to [`MAX_DUMP_ATTEMPTS`] times while the kernel reports it was
    /// interrupted by concurrent changes.
    fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..MAX_DUMP_ATTEMPTS {
            let ex = self.exchange(msg.clone(), NLM_F_DUMP)?;
            if !ex.interrupted {
                return Ok(ex.replies);
            }
        }
        Err(Error::DumpInterrupted {
            op: String::new(),
            attempts: MAX_DUMP_ATTEMPTS,
        })
    }
}

impl<T: RouteNetlink + ?Sized> RouteNetlink for &mut T {
    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Exchange> {
        (**self).exchange(msg, flags)
    }
}
