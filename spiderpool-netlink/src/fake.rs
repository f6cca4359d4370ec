//! Test doubles: a recording netlink transport and an in-memory sysctl store.
//!
//! [`RecordingNetlink`] records every request (message and header flags) and answers from a
//! script; when the script is empty it answers with a plain ack. Unit tests assert the exact
//! messages a typed operation or a plan produces, without root or a kernel.

use std::collections::{BTreeMap, VecDeque};

use crate::error::{Error, Result};
use crate::msg::{Exchange, RouteNetlink, RouteNetlinkMessage, header_flags};
use crate::sysctl::SysctlAccess;

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message.
    pub msg: RouteNetlinkMessage,
    /// The header flags it would go out with (see [`header_flags`]).
    pub flags: u16,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// These replies (possibly flagged as an interrupted dump).
    Replies(Exchange),
    /// The kernel refuses with this (positive) errno.
    Errno(i32),
}

/// A [`RouteNetlink`] that records requests and replays scripted replies in order.
#[derive(Debug, Default)]
pub struct RecordingNetlink {
    /// Every request so far, in order.
    pub sent: Vec<Sent>,
    script: VecDeque<Scripted>,
}

impl RecordingNetlink {
    /// An empty recorder: every request is acked.
    pub fn new() -> RecordingNetlink {
        RecordingNetlink::default()
    }

    /// The next request is answered with `replies`.
    pub fn reply(&mut self, replies: Vec<RouteNetlinkMessage>) -> &mut Self {
        self.script.push_back(Scripted::Replies(Exchange {
            replies,
            interrupted: false,
        }));
        self
    }

    /// The next request is answered with `replies` flagged `NLM_F_DUMP_INTR`.
    pub fn reply_interrupted(&mut self, replies: Vec<RouteNetlinkMessage>) -> &mut Self {
        self.script.push_back(Scripted::Replies(Exchange {
            replies,
            interrupted: true,
        }));
        self
    }

    /// The next request is answered with a plain ack.
    pub fn ack(&mut self) -> &mut Self {
        self.reply(Vec::new())
    }

    /// The next request fails with `errno` (positive, e.g. 17 for EEXIST).
    pub fn fail(&mut self, errno: i32) -> &mut Self {
        self.script.push_back(Scripted::Errno(errno));
        self
    }

    /// Scripted answers not consumed yet.
    pub fn pending(&self) -> usize {
        self.script.len()
    }

    /// The recorded messages without flags.
    pub fn messages(&self) -> Vec<&RouteNetlinkMessage> {
        self.sent.iter().map(|s| &s.msg).collect()
    }
}

impl RouteNetlink for RecordingNetlink {
    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Exchange> {
        self.sent.push(Sent {
            msg,
            flags: header_flags(flags),
        });
        match self.script.pop_front() {
            None => Ok(Exchange::default()),
            Some(Scripted::Replies(ex)) => Ok(ex),
            Some(Scripted::Errno(errno)) => Err(Error::Kernel {
                op: String::new(),
                errno,
                ext_ack: None,
            }),
        }
    }
}

/// An in-memory sysctl store that records writes.
#[derive(Debug, Default, Clone)]
pub struct FakeSysctl {
    /// Current values.
    pub values: BTreeMap<String, String>,
    /// Every write that changed a value, in order: `(key, value)`.
    pub writes: Vec<(String, String)>,
}

impl SysctlAccess for FakeSysctl {
    fn read(&mut self, key: &str) -> Result<String> {
        self.values
            .get(key)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("sysctl {key}")))
    }

    fn write(&mut self, key: &str, value: &str) -> Result<String> {
        let old = self.read(key)?;
        if old != value {
            self.values.insert(key.to_string(), value.to_string());
            self.writes.push((key.to_string(), value.to_string()));
        }
        Ok(old)
    }
}
