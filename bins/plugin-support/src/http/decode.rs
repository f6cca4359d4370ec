//! Reading requests and responses off a byte source, within [`Limits`].

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{HttpError, Limits, MAX_HEADERS, Request, Response, at_least_1ms, malformed};

/// A stream whose blocking reads can be given a timeout.
pub trait ReadTimeout: Read {
    /// As [`UnixStream::set_read_timeout`].
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ReadTimeout for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

impl ReadTimeout for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// Reads from a stream until one deadline: every read waits at most the time left, so a
/// peer that drips a byte at a time still hits the limit of the whole message. After the
/// deadline, reads fail with [`io::ErrorKind::TimedOut`].
#[derive(Debug)]
pub struct DeadlineReader<S> {
    stream: S,
    deadline: Instant,
}

impl<S: ReadTimeout> DeadlineReader<S> {
    /// Reads `stream` until `deadline`.
    pub fn new(stream: S, deadline: Instant) -> Self {
        DeadlineReader { stream, deadline }
    }

    /// Moves the deadline (e.g. for the next request of a kept-alive connection).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: ReadTimeout> Read for DeadlineReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.stream.set_read_timeout(Some(at_least_1ms(left)))?;
        self.stream.read(buf)
    }
}

/// Head fields that decide how the body is framed.
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

/// Reads HTTP/1.1 messages off `src`, one after another (bytes after a message stay
/// buffered for the next one).
#[derive(Debug)]
pub struct MessageReader<R> {
    src: R,
    buf: Vec<u8>,
    eof: bool,
    in_message: bool,
    limits: Limits,
}

impl<R: Read> MessageReader<R> {
    /// A reader of `src` within `limits`.
    pub fn new(src: R, limits: Limits) -> Self {
        MessageReader {
            src,
            buf: Vec::new(),
            eof: false,
            in_message: false,
            limits,
        }
    }

    /// The source, e.g. to move a [`DeadlineReader`]'s deadline.
    pub fn source_mut(&mut self) -> &mut R {
        &mut self.src
    }

    /// Whether some bytes of a message that is not complete yet have arrived: a server
    /// answers a timeout then (408) rather than closing an idle connection quietly.
    pub fn in_message(&self) -> bool {
        self.in_message || !self.buf.is_empty()
    }

    /// The next request. `Ok(None)`: the peer closed the connection cleanly between
    /// requests.
    pub fn read_request(&mut self) -> Result<Option<Request>, HttpError> {
        if self.buf.is_empty() && !self.fill()? {
            return Ok(None);
        }
        self.in_message = true;
        let len = self.head_len(431, "request head")?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(malformed(400, "incomplete request head")),
            Err(e) => return Err(malformed(400, format!("bad request head: {e}"))),
        }
        let framing = framing(req.headers)?;
        let target = req.path.unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let http11 = req.version == Some(1);
        let mut request = Request {
            method: req.method.unwrap_or_default().to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: Vec::new(),
            keep_alive: !framing.close && (http11 || framing.keep_alive),
        };
        self.consume(len);
        request.body = if framing.chunked {
            self.chunked_body()?
        } else {
            self.sized_body(framing.content_length.unwrap_or(0))?
        };
        self.in_message = false;
        Ok(Some(request))
    }

    /// The next final response (interim `1xx` answers are skipped). A response without
    /// `Content-Length` or chunking ends when the peer closes.
    pub fn read_response(&mut self) -> Result<Response, HttpError> {
        loop {
            if self.buf.is_empty() && !self.fill()? {
                return Err(eof("connection closed without an answer"));
            }
            self.in_message = true;
            let len = self.head_len(400, "response head")?;
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf[..len]) {
                Ok(httparse::Status::Complete(_)) => {}
                Ok(httparse::Status::Partial) => {
                    return Err(malformed(400, "incomplete response head"));
                }
                Err(e) => return Err(malformed(400, format!("not an HTTP response: {e}"))),
            }
            let status = resp.code.unwrap_or_default();
            let framing = framing(resp.headers)?;
            self.consume(len);
            // 100 Continue, 102, 103 come before the real answer; 101 would switch
            // protocols, which we never ask for.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let body = if status == 204 || status == 304 {
                Vec::new()
            } else if framing.chunked {
                self.chunked_body()?
            } else if let Some(n) = framing.content_length {
                self.sized_body(n)?
            } else {
                self.body_until_eof()?
            };
            self.in_message = false;
            return Ok(Response { status, body });
        }
    }

    /// Reads more bytes; `false` at end of stream.
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 8192];
        let n = loop {
            match self.src.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(true)
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Waits for the blank line that ends a head and returns the head's length with it.
    /// Empty lines before the head are dropped (RFC 9112 §2.2). Each byte is scanned once.
    fn head_len(&mut self, too_large: u16, what: &str) -> Result<usize, HttpError> {
        let mut scanned = 0;
        loop {
            let leading = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if leading > 0 {
                self.consume(leading);
                scanned = 0;
            }
            if let Some(end) = head_end(&self.buf, scanned) {
                if end > self.limits.max_head {
                    return Err(malformed(too_large, format!("{what} too large")));
                }
                return Ok(end);
            }
            // Keep the last two bytes: a terminator may straddle the next read.
            scanned = self.buf.len().saturating_sub(2);
            if self.buf.len() > self.limits.max_head {
                return Err(malformed(too_large, format!("{what} too large")));
            }
            if !self.fill()? {
                return Err(eof(&format!("connection closed inside the {what}")));
            }
        }
    }

    /// One line (a chunk-size line or a trailer) without its line end; a bare LF is
    /// accepted as Go's server does.
    fn line(&mut self, what: &str) -> Result<Vec<u8>, HttpError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self
                .buf
                .get(scanned..)
                .and_then(|b| b.iter().position(|&c| c == b'\n'))
            {
                let end = scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if self.buf.len() > self.limits.max_head {
                return Err(malformed(431, format!("{what} too long")));
            }
            if !self.fill()? {
                return Err(eof(&format!("connection closed inside the {what}")));
            }
        }
    }

    /// Exactly `n` bytes.
    fn exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(eof(&format!("connection closed inside the {what}")));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn sized_body(&mut self, n: u64) -> Result<Vec<u8>, HttpError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.limits.max_body)
            .ok_or_else(|| malformed(413, format!("body of {n} bytes is too large")))?;
        self.exact(n, "body")
    }

    fn chunked_body(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.line("chunk-size line")?;
            let size = chunk_size(&line)?;
            if size == 0 {
                self.trailers()?;
                return Ok(body);
            }
            // The room left is computed in u64 before anything is added: no size overflows.
            let room = self.limits.max_body.saturating_sub(body.len());
            let n = usize::try_from(size)
                .ok()
                .filter(|&n| n <= room)
                .ok_or_else(|| malformed(413, "chunked body too large"))?;
            body.extend_from_slice(&self.exact(n, "chunk data")?);
            if !self.line("chunk end")?.is_empty() {
                return Err(malformed(400, "chunk data not followed by CRLF"));
            }
        }
    }

    /// Trailer fields up to the empty line; none of them matter to us.
    fn trailers(&mut self) -> Result<(), HttpError> {
        let mut total = 0usize;
        loop {
            let line = self.line("trailer")?;
            if line.is_empty() {
                return Ok(());
            }
            total = total.saturating_add(line.len());
            if total > self.limits.max_head {
                return Err(malformed(431, "trailers too large"));
            }
        }
    }

    fn body_until_eof(&mut self) -> Result<Vec<u8>, HttpError> {
        while self.fill()? {
            if self.buf.len() > self.limits.max_body {
                return Err(malformed(413, "body too large"));
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }
}

fn eof(what: &str) -> HttpError {
    HttpError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        what.to_owned(),
    ))
}

/// The end (exclusive) of the first `\n\r\n` or `\n\n` at or after `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    tail.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match (tail.get(i + 1), tail.get(i + 2)) {
            (Some(b'\n'), _) => Some(from + i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(from + i + 3),
            _ => None,
        }
    })
}

/// The hex size of a chunk-size line (extensions after `;` ignored), in checked `u64`.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() {
        return Err(malformed(400, "empty chunk size"));
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = char::from(b).to_digit(16).ok_or_else(|| {
            malformed(
                400,
                format!("bad chunk size {:?}", String::from_utf8_lossy(digits)),
            )
        })?;
        acc.checked_mul(16)
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or_else(|| malformed(413, "chunk size too large"))
    })
}

/// The framing headers. Both `Content-Length` and chunking, or two different lengths, are
/// refused: a peer that sends them is either broken or smuggling.
fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
    let mut f = Framing::default();
    for h in headers {
        let value = std::str::from_utf8(h.value).unwrap_or("\u{fffd}").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(value)?;
            if f.content_length.is_some_and(|m| m != n) {
                return Err(malformed(400, "conflicting Content-Length headers"));
            }
            f.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            f.chunked |= transfer_encoding(value)?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                f.close |= token.eq_ignore_ascii_case("close");
                f.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    if f.chunked && f.content_length.is_some() {
        return Err(malformed(
            400,
            "both Content-Length and Transfer-Encoding: chunked",
        ));
    }
    Ok(f)
}

fn content_length(value: &str) -> Result<u64, HttpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(400, format!("bad Content-Length {value:?}")));
    }
    // Only digits: the one way to fail is a number beyond u64, which is too large anyway.
    value
        .parse()
        .map_err(|_| malformed(413, format!("Content-Length {value} is too large")))
}

/// Whether the codings end with `chunked`; codings we cannot undo are 501.
fn transfer_encoding(value: &str) -> Result<bool, HttpError> {
    let codings: Vec<&str> = value.split(',').map(str::trim).collect();
    let mut chunked = false;
    for (i, coding) in codings.iter().enumerate() {
        if coding.eq_ignore_ascii_case("chunked") {
            if i + 1 != codings.len() {
                return Err(malformed(400, "chunked is not the last transfer coding"));
            }
            chunked = true;
        } else if !coding.eq_ignore_ascii_case("identity") {
            return Err(malformed(
                501,
                format!("unsupported Transfer-Encoding {value:?}"),
            ));
        }
    }
    Ok(chunked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// In-memory bytes read in pieces of at most `step` bytes.
    struct Pieces<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn request(raw: &[u8], step: usize) -> Result<Option<Request>, HttpError> {
        MessageReader::new(Pieces { data: raw, step }, Limits::SERVER).read_request()
    }

    fn response(raw: &[u8], step: usize) -> Result<Response, HttpError> {
        MessageReader::new(Pieces { data: raw, step }, Limits::CLIENT).read_response()
    }

    fn status(r: Result<Option<Request>, HttpError>) -> u16 {
        match r {
            Err(HttpError::Malformed { status, .. }) => status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_requests_with_content_length_or_chunks_in_any_piece_size() {
        for step in [1, 2, 7, 4096] {
            let r = request(b"\r\nPOST /v1/ipam/ip HTTP/1.1\r\nHost: \r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}\n", step)
                .unwrap()
                .unwrap();
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/v1/ipam/ip")
            );
            assert_eq!(r.body, b"{}\n");
            assert!(!r.keep_alive);
            let r = request(b"GET /v1/workloadendpoint?podName=x HTTP/1.1\nTransfer-Encoding: chunked\n\n2\r\n{}\r\n1;ext=1\r\n\n\n0\r\nX-T: 1\r\n\r\n", step)
                .unwrap()
                .unwrap();
            assert_eq!(r.body, b"{}\n");
            assert_eq!(r.query, "podName=x");
            assert!(r.keep_alive);
        }
        let r = request(b"GET / HTTP/1.0\r\n\r\n", 9).unwrap().unwrap();
        assert!(!r.keep_alive);
        let r = request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 9)
            .unwrap()
            .unwrap();
        assert!(r.keep_alive);
    }

    #[test]
    fn pipelined_requests_are_read_one_after_another() {
        let raw = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /c HTTP/1.1\r\n\r\n";
        let mut r = MessageReader::new(&raw[..], Limits::SERVER);
        let paths: Vec<String> = std::iter::from_fn(|| r.read_request().unwrap())
            .map(|q| q.path)
            .collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
    }

    #[test]
    fn sizes_beyond_the_limits_are_clean_errors() {
        assert!(request(b"", 1).unwrap().is_none());
        for size in [
            "ffffffffffffffff",
            "fffffffffffffff0",
            "10000000000000000",
            "100001",
        ] {
            let raw = format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n{size}\r\n"
            );
            assert_eq!(status(request(raw.as_bytes(), 64)), 413, "{size}");
        }
        assert_eq!(
            status(request(
                b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                64
            )),
            413
        );
        assert_eq!(
            status(request(
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                64
            )),
            413
        );
        assert_eq!(
            status(request(
                b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                64
            )),
            400
        );
        assert_eq!(
            status(request(
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                64
            )),
            400
        );
        assert_eq!(status(request(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 64)), 400);
        assert_eq!(
            status(request(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                64
            )),
            501
        );
        assert_eq!(
            status(request(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                64
            )),
            400
        );
        assert_eq!(status(request(b"\x01\x02 nonsense\r\n\r\n", 64)), 400);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(70_000));
        assert_eq!(status(request(long.as_bytes(), 4096)), 431);
        let trailers = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{}\r\n",
            "X: 1\r\n".repeat(20_000)
        );
        assert_eq!(status(request(trailers.as_bytes(), 4096)), 431);
    }

    #[test]
    fn truncated_messages_are_io_errors() {
        for raw in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ] {
            assert!(matches!(request(raw, 3), Err(HttpError::Io(_))), "{raw:?}");
        }
    }

    #[test]
    fn reads_responses_in_any_piece_size() {
        let cases: [(&[u8], u16, &[u8]); 5] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", 200, b"hello"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", 200, b"hello world"),
            (b"HTTP/1.0 500 Internal\r\n\r\n\"boom\"", 500, b"\"boom\""),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", 204, b""),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 200, b""),
        ];
        for (raw, code, body) in cases {
            for step in [1, 2, 7, 4096] {
                let r = response(raw, step).unwrap();
                assert_eq!((r.status, r.body.as_slice()), (code, body), "step {step}");
            }
        }
        assert!(matches!(response(b"", 3), Err(HttpError::Io(_))));
        assert!(matches!(
            response(b"SSH-2.0-OpenSSH\r\n\r\n", 64),
            Err(HttpError::Malformed { .. })
        ));
    }

    #[test]
    fn a_deadline_works_on_tcp_too() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        use std::io::Write;
        client
            .write_all(b"GET /v1/runtime/liveness HTTP/1.1\r\n")
            .unwrap();
        let src = DeadlineReader::new(server, Instant::now() + Duration::from_millis(100));
        let mut r = MessageReader::new(src, Limits::SERVER);
        assert!(matches!(r.read_request(), Err(HttpError::TimedOut)));
        client.write_all(b"\r\n").unwrap();
        r.source_mut()
            .set_deadline(Instant::now() + Duration::from_secs(2));
        assert_eq!(
            r.read_request().unwrap().unwrap().path,
            "/v1/runtime/liveness"
        );
    }

    #[test]
    fn a_deadline_bounds_the_whole_message_not_each_read() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = a.write_all(b"GET / HTTP/1.1\r\n");
            for _ in 0..20 {
                if a.write_all(b"X: 1\r\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let start = Instant::now();
        let src = DeadlineReader::new(b, start + Duration::from_millis(300));
        let mut r = MessageReader::new(src, Limits::SERVER);
        assert!(matches!(r.read_request(), Err(HttpError::TimedOut)));
        assert!(r.in_message());
        assert!(start.elapsed() < Duration::from_millis(600));
        drop(r);
        writer.join().unwrap();
    }
}
