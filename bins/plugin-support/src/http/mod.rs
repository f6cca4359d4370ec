//! Bounded HTTP/1.1 framing, shared by the agent's server and the plugins' client: one
//! decoder for requests and responses (`Content-Length`, chunked, or until the peer closes),
//! one encoder, one set of limits.
//!
//! Every size is checked before it is used: a `Content-Length` or a chunk size is compared
//! with the room left under [`Limits::max_body`] in `u64`, so a size near `u64::MAX` is a
//! clean [`HttpError::Malformed`] (413), never an overflow. Heads, chunk-size lines and
//! trailers count against [`Limits::max_head`]. Time is bounded by the source: wrap a socket
//! in [`DeadlineReader`] and the whole message, however slowly it drips, must arrive before
//! one deadline ([`HttpError::TimedOut`]).
//!
//! Heads are parsed with `httparse` (no dependencies, the parser hyper uses), only once the
//! blank line that ends them has arrived, so a head sent a byte at a time costs linear work.
//!
//! ```
//! use spiderpool_plugin_support::http::{Limits, MessageReader, Response, encode_response};
//!
//! let bytes = encode_response(&Response::json(200, &"ok"), false);
//! let mut reader = MessageReader::new(bytes.as_slice(), Limits::CLIENT);
//! let back = reader.read_response()?;
//! assert_eq!((back.status, back.body.as_slice()), (200, &b"\"ok\""[..]));
//! # Ok::<(), spiderpool_plugin_support::http::HttpError>(())
//! ```

mod decode;
mod encode;
pub mod tiny_server;

use std::io;
use std::time::Duration;

pub use decode::{DeadlineReader, MessageReader, ReadTimeout};
pub use encode::{chunked, encode_request, encode_response, reason_phrase};

/// Size limits of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (request or status line and headers), also the largest chunk-size line
    /// and the largest trailer section.
    pub max_head: usize,
    /// Largest body, after de-chunking.
    pub max_body: usize,
}

impl Limits {
    /// What the agent accepts from a client: its requests are a few hundred bytes.
    pub const SERVER: Limits = Limits {
        max_head: 64 * 1024,
        max_body: 1024 * 1024,
    };
    /// What the plugins accept from the agent: answers are a few KiB (a dump is larger).
    pub const CLIENT: Limits = Limits {
        max_head: 64 * 1024,
        max_body: 16 * 1024 * 1024,
    };
}

/// Largest number of header fields in a head.
pub const MAX_HEADERS: usize = 64;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query, e.g. `/v1/ipam/ip`.
    pub path: String,
    /// The raw query (after `?`), possibly empty.
    pub query: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
}

impl Request {
    /// The decoded value of query parameter `key` (first occurrence).
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
    }
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked; sent as `application/json` when not empty.
    pub body: Vec<u8>,
}

impl Response {
    /// A status with an empty body (`GET /v1/ipam/healthy` answers 200 with nothing).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            body: Vec::new(),
        }
    }

    /// A JSON body. Serialising our own types cannot fail in practice; if it does, the
    /// answer is a 500 saying so.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response { status, body },
            Err(e) => Self::error(500, &format!("cannot encode the answer: {e}")),
        }
    }

    /// An error: the message as a JSON string, as upstream's go-swagger server writes it.
    pub fn error(status: u16, message: &str) -> Self {
        let body = serde_json::to_vec(message).unwrap_or_else(|_| b"\"error\"".to_vec());
        Response { status, body }
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection failed, or closed inside a message.
    #[error("{0}")]
    Io(io::Error),
    /// The message did not arrive completely before the deadline.
    #[error("the message did not arrive within the time limit")]
    TimedOut,
    /// The bytes are not an acceptable HTTP/1.1 message, or exceed a limit. A server answers
    /// with `status` (400, 413, 431 or 501) and closes the connection.
    #[error("{reason}")]
    Malformed {
        /// The status a server answers with.
        status: u16,
        /// What is wrong.
        reason: String,
    },
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        // A socket read timeout is reported as WouldBlock (EAGAIN) on Linux.
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            HttpError::TimedOut
        } else {
            HttpError::Io(e)
        }
    }
}

pub(crate) fn malformed(status: u16, reason: impl Into<String>) -> HttpError {
    HttpError::Malformed {
        status,
        reason: reason.into(),
    }
}

/// A duration as a `Duration` never zero (std treats a zero socket timeout as "none").
pub(crate) fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// Decodes `%XX` escapes and `+` (a space in query strings); a bad escape is kept as is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_bad_escapes_and_query_escaping_round_trips() {
        assert_eq!(percent_decode("a%2fb%zz%4+c"), "a/b%zz%4 c");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        for s in ["web 0", "a&b=c", "é/ü+%"] {
            assert_eq!(percent_decode(&query_escape(s)), s);
        }
    }

    #[test]
    fn query_parameters() {
        let r = Request {
            query: "podNamespace=a%2Db&podName=x+y&flag".into(),
            ..Request::default()
        };
        assert_eq!(r.query_param("podNamespace").as_deref(), Some("a-b"));
        assert_eq!(r.query_param("podName").as_deref(), Some("x y"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("nope"), None);
    }
}
