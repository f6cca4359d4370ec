//! A tiny HTTP server for probes and metrics: one thread, one connection at a time, `GET`
//! only, each request read with the bounded framing of this module under a one-second
//! deadline. Probes and scrapes come a few times a minute; a client that stalls costs at most
//! that second, and the process never dies of a request.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{DeadlineReader, HttpError, Limits, MessageReader, Request, reason_phrase};

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8".to_owned(),
            body: body.into().into_bytes(),
        }
    }

    /// The reply as bytes on the wire (the connection is closed after it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// Binds `addr` and answers every `GET` with `handler` on a thread named `name`; other
/// methods get 405. Returns the bound address (port 0 picks a free one).
pub fn spawn<H>(name: &str, addr: SocketAddr, handler: H) -> io::Result<SocketAddr>
where
    H: Fn(&Request) -> Reply + Send + 'static,
{
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => answer(stream, &handler),
                    Err(e) => log::debug!("accept on {bound}: {e}"),
                }
            }
        })?;
    Ok(bound)
}

fn answer<H: Fn(&Request) -> Reply>(stream: TcpStream, handler: &H) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let _ = writer.set_write_timeout(Some(Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut reader = MessageReader::new(DeadlineReader::new(stream, deadline), Limits::SERVER);
    let reply = match reader.read_request() {
        Ok(Some(req)) if req.method == "GET" => handler(&req),
        Ok(Some(req)) => Reply::text(405, format!("{} is not served here", req.method)),
        Ok(None) => return,
        Err(HttpError::Malformed { status, reason }) => Reply::text(status, reason),
        Err(_) => return,
    };
    let _ = writer.write_all(&reply.encode());
}
