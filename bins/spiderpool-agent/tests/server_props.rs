//! The socket server survives any request: whatever bytes a client sends (and whatever the
//! handler does with a request), the next ordinary request is answered, with one worker, so
//! a lost worker would show at once.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use spiderpool_agent::http::{Request, Response};
use spiderpool_agent::server::{Handler, ServerConfig, Shutdown, bind, serve_with};

/// Sends `bytes`, half-closes, and returns the answer (possibly empty).
fn send(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // The server may answer and close before it has read everything.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"POST /v1/ipam/ip HTTP/1.1\r\n".to_vec()),
        Just(b"GET /panic HTTP/1.1\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Connection: keep-alive\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"1\r\nx\r\n".to_vec()),
        Just(b"fffffffffffffff0\r\n".to_vec()),
        "[0-9a-fA-F]{1,20}\r\n".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..20).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_server_answers_after_any_request(inputs in proptest::collection::vec(http_ish(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = bind(&path).unwrap();
        let shutdown = Shutdown::new(&path);
        let handler: Handler = Arc::new(|req: &Request| {
            assert!(req.path != "/panic", "a handler bug");
            Response::json(200, &req.body.len())
        });
        let mut config = ServerConfig::new(1);
        config.request_timeout = Duration::from_millis(500);
        let server = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || serve_with(listener, handler, &config, &shutdown))
        };
        for bytes in &inputs {
            send(&path, bytes);
        }
        let answer = send(&path, b"GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n");
        prop_assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&answer));
        shutdown.trigger();
        prop_assert!(server.join().unwrap().is_ok());
    }
}
