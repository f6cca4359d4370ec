//! Writing requests and responses as bytes (each sent with one `write_all`).

use super::Response;

/// A request as our plugins send it: `Host: localhost`, `Accept` and, with a body,
/// `Content-Type: application/json` and `Content-Length`; `Connection: close` (one request
/// per connection, as upstream's plugins do).
pub fn encode_request(method: &str, target: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: spiderpool-plugin\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some(body) = body {
        out.push_str("Content-Type: application/json\r\n");
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// A response with `Content-Length`, `Content-Type: application/json` when the body is not
/// empty, and `Connection: keep-alive` or `close`.
pub fn encode_response(resp: &Response, keep_alive: bool) -> Vec<u8> {
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
    bytes
}

/// `body` in chunked coding, in chunks of at most `max_chunk` bytes (at least 1), ended by
/// the zero chunk: what a streaming peer (Go's `net/http`, hyper) sends.
pub fn chunked(body: &[u8], max_chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    for part in body.chunks(max_chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The reason phrase of the codes the agent sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_shapes() {
        let r = String::from_utf8(encode_request("POST", "/v1/ipam/ip", Some(b"{}\n"))).unwrap();
        assert_eq!(
            r,
            "POST /v1/ipam/ip HTTP/1.1\r\nHost: localhost\r\nUser-Agent: spiderpool-plugin\r\nAccept: application/json\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{}\n"
        );
        let r = String::from_utf8(encode_request("GET", "/v1/ipam/healthy", None)).unwrap();
        assert!(!r.contains("Content-Length"));
        assert_eq!(
            encode_response(&Response::empty(200), false),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let out = encode_response(&Response::error(500, "no \"pool\""), true);
        assert!(out.ends_with(b"Connection: keep-alive\r\n\r\n\"no \\\"pool\\\"\""));
        assert_eq!(chunked(b"abc", 2), b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
    }
}
