//! Property tests of the shared HTTP/1.1 framing: any bytes, read in any piece sizes, give a
//! message or a clean error (never a panic, never more than the limits); chunk sizes up to
//! `u64::MAX` are refused cleanly; what we encode decodes to the same message.

use std::io::{self, Read};

use proptest::prelude::*;
use spiderpool_plugin_support::http::{
    HttpError, Limits, MessageReader, Request, Response, chunked, encode_request, encode_response,
};

/// `data` read in pieces whose sizes cycle through `steps` (each at least 1).
struct Pieces {
    data: Vec<u8>,
    at: usize,
    steps: Vec<usize>,
    turn: usize,
}

impl Pieces {
    fn new(data: Vec<u8>, steps: Vec<usize>) -> Self {
        Pieces {
            data,
            at: 0,
            steps,
            turn: 0,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = self
            .steps
            .get(self.turn % self.steps.len().max(1))
            .copied()
            .unwrap_or(4096)
            .max(1);
        self.turn += 1;
        let n = step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn small() -> Limits {
    Limits {
        max_head: 512,
        max_body: 1024,
    }
}

fn requests(data: Vec<u8>, steps: Vec<usize>, limits: Limits) -> Vec<Request> {
    let mut reader = MessageReader::new(Pieces::new(data, steps), limits);
    let mut out = Vec::new();
    // Ok(None) (end), an error, or a request; a request always consumes bytes, so this ends.
    while let Ok(Some(req)) = reader.read_request() {
        assert!(req.body.len() <= limits.max_body);
        out.push(req);
    }
    out
}

/// Bytes that look like HTTP often enough to reach the body decoders.
fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"POST /v1/ipam/ip HTTP/1.1\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Connection: keep-alive\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"0\r\n".to_vec()),
        Just(b"ffffffffffffffff\r\n".to_vec()),
        Just(b";ext".to_vec()),
        "[0-9a-fA-F]{1,20}\r\n".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn steps() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..64, 1..6)
}

/// A chunked request whose chunk sizes are written as given, with that much data up to 2 KiB
/// (a larger chunk exceeds the limit before its data is read).
fn chunked_request(sizes: &[u64]) -> Vec<u8> {
    let mut raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for &size in sizes {
        raw.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        let sent = if size <= 2048 { size as usize } else { 0 };
        raw.extend(std::iter::repeat_n(b'x', sent));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._~-]{1,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_as_requests(data in proptest::collection::vec(any::<u8>(), 0..2048), steps in steps()) {
        requests(data, steps, small());
    }

    #[test]
    fn http_like_bytes_never_panic_as_requests_or_responses(data in http_ish(), steps in steps()) {
        requests(data.clone(), steps.clone(), small());
        let mut reader = MessageReader::new(Pieces::new(data, steps), small());
        if let Ok(resp) = reader.read_response() {
            prop_assert!(resp.body.len() <= small().max_body);
        }
    }

    #[test]
    fn any_chunk_size_is_a_body_or_a_clean_error(
        sizes in proptest::collection::vec(prop_oneof![0u64..600, any::<u64>(), (u64::MAX - 1024)..=u64::MAX], 1..6),
        steps in steps(),
    ) {
        let raw = chunked_request(&sizes);
        let mut reader = MessageReader::new(Pieces::new(raw, steps), small());
        // A zero size ends the body: only the sizes before it count.
        let counted: Vec<u64> = sizes.iter().copied().take_while(|&s| s != 0).collect();
        let total = counted.iter().try_fold(0u64, |a, &s| a.checked_add(s));
        let fits = total.is_some_and(|t| t <= small().max_body as u64);
        match reader.read_request() {
            Ok(Some(req)) => {
                prop_assert!(fits, "{sizes:?} accepted");
                prop_assert_eq!(Some(req.body.len() as u64), total);
            }
            Err(HttpError::Malformed { status: 413, .. }) => prop_assert!(!fits, "{sizes:?} refused"),
            other => prop_assert!(false, "{sizes:?}: {other:?}"),
        }
    }

    #[test]
    fn requests_round_trip_with_length_or_chunks(
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
        path in proptest::collection::vec(token(), 1..4),
        query in proptest::collection::vec((token(), token()), 0..3),
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        max_chunk in 1usize..5000,
        chunk in any::<bool>(),
        steps in steps(),
    ) {
        let path = format!("/{}", path.join("/"));
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let query = query.join("&");
        let target = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        let raw = if chunk {
            let mut raw = format!("{method} {target} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
            raw.extend_from_slice(&chunked(&body, max_chunk));
            raw
        } else {
            encode_request(method, &target, Some(&body))
        };
        let got = requests(raw, steps, Limits::SERVER);
        prop_assert_eq!(got.len(), 1);
        let want = Request { method: method.to_owned(), path, query, body, keep_alive: chunk };
        prop_assert_eq!(&got[0], &want);
    }

    #[test]
    fn responses_round_trip(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..3000), keep_alive in any::<bool>(), steps in steps()) {
        // 1xx are interim and 204/304 carry no body by definition.
        prop_assume!(status >= 200 && status != 204 && status != 304);
        let sent = Response { status, body };
        let raw = encode_response(&sent, keep_alive);
        let got = MessageReader::new(Pieces::new(raw, steps), Limits::CLIENT).read_response();
        prop_assert_eq!(got.ok(), Some(sent));
    }
}
