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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::Ipv4Addr;

    use super::*;

    fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_get_refuses_other_methods_and_garbage() {
        let addr = spawn("test", SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), |req| {
            Reply::text(200, format!("path {}", req.path))
        })
        .unwrap();
        let ok = exchange(addr, b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{ok}"
        );
        assert!(ok.contains("Content-Length: 7\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\npath /a"), "{ok}");
        let post = exchange(addr, b"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let bad = exchange(addr, b"\x00\x01 nonsense\r\n\r\n");
        assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
        // Still serving.
        assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
    }
}
