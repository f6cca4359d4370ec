//! The server half of HTTP/1.1, just enough for the agent's API: read one request (head
//! parsed with `httparse`, body by `Content-Length` or chunked), write one response.
//!
//! Callers are our plugins (one request per connection, `Connection: close`) and upstream's
//! go-swagger clients (keep-alive disabled), so a connection may carry several requests but
//! usually carries one. Sizes are bounded so a bad client cannot make the agent allocate
//! without limit.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (the API's bodies are a few hundred bytes).
pub const MAX_BODY: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

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
    /// The body; sent as `application/json` when not empty.
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
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Self {
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

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection failed or timed out.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes are not an acceptable HTTP/1.1 request; answered with 400 (or 413).
    #[error("{reason}")]
    Bad {
        /// The status to answer with.
        status: u16,
        /// What is wrong.
        reason: String,
    },
}

fn bad(status: u16, reason: impl Into<String>) -> HttpError {
    HttpError::Bad {
        status,
        reason: reason.into(),
    }
}

/// Reads the next request of a connection. `Ok(None)`: the client closed it cleanly before
/// sending anything more.
pub fn read_request<R: Read>(reader: &mut BufReader<R>) -> Result<Option<Request>, HttpError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader
            .by_ref()
            .take((MAX_HEAD + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(bad(400, "connection closed inside the request head"));
        }
        if head.len() > MAX_HEAD {
            return Err(bad(431, "request head too large"));
        }
        // An empty line ends the head; tolerate bare LF as Go's server does.
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if head.len() == line.len() {
                // Leading empty lines before a request line are allowed (RFC 9112 §2.2).
                head.clear();
                continue;
            }
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad(400, "incomplete request head")),
        Err(e) => return Err(bad(400, format!("bad request head: {e}"))),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| bad(400, format!("bad Content-Length {value:?}")))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(bad(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if !value.eq_ignore_ascii_case("identity") {
                return Err(bad(501, format!("unsupported Transfer-Encoding {value:?}")));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let n = content_length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(bad(413, format!("request body of {n} bytes is too large")));
        }
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        body,
        keep_alive,
    }))
}

fn read_line_limited<R: Read>(reader: &mut BufReader<R>, what: &str) -> Result<String, HttpError> {
    let mut line = Vec::new();
    reader.by_ref().take(4096).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(bad(400, format!("bad {what}")));
    }
    Ok(String::from_utf8_lossy(&line).trim().to_owned())
}

fn read_chunked<R: Read>(reader: &mut BufReader<R>) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line_limited(reader, "chunk size line")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(400, format!("bad chunk size {size_hex:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line_limited(reader, "chunked trailer")?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(bad(413, "request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !read_line_limited(reader, "chunk end")?.is_empty() {
            return Err(bad(400, "chunk not followed by CRLF"));
        }
    }
}

/// The reason phrase of the codes the agent sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes `resp` in one `write_all`.
pub fn write_response<W: Write>(w: &mut W, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason_phrase(resp.status),
        resp.body.len()
    );
    if !resp.body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    w.write_all(&bytes)?;
    w.flush()
}

/// Decodes `%XX` escapes and `+` (a space in query strings).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Request>, HttpError> {
        read_request(&mut BufReader::new(raw))
    }

    #[test]
    fn reads_a_request_with_content_length() {
        let r = parse(b"POST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/v1/ipam/ip")
        );
        assert_eq!(r.body, b"{}\n");
        assert!(!r.keep_alive);
    }

    #[test]
    fn reads_chunked_bodies_and_queries() {
        let r = parse(
            b"GET /v1/workloadendpoint?podNamespace=a%2Db&podName=x+y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n1;ext\r\n\n\r\n0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, b"{}\n");
        assert!(r.keep_alive);
        assert_eq!(r.query_param("podNamespace").as_deref(), Some("a-b"));
        assert_eq!(r.query_param("podName").as_deref(), Some("x y"));
        assert_eq!(r.query_param("nope"), None);
    }

    #[test]
    fn eof_before_a_request_is_none_and_garbage_is_400() {
        assert!(parse(b"").unwrap().is_none());
        match parse(b"\x01\x02 nonsense\r\n\r\n") {
            Err(HttpError::Bad { status: 400, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n") {
            Err(HttpError::Bad { status: 413, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_responses() {
        let mut out = Vec::new();
        write_response(&mut out, &Response::empty(200), false).unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        write_response(&mut out, &Response::error(500, "no \"pool\""), true).unwrap();
        assert!(out.ends_with(b"Connection: keep-alive\r\n\r\n\"no \\\"pool\\\"\""));
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%2fb%zz%4"), "a/b%zz%4");
    }
}
