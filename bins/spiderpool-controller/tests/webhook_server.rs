//! The webhook's HTTPS server on its own (no apiserver): a handler that panics answers 500
//! and the server carries on; bodies over the limit get 413; kept-alive clients are answered
//! once and closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use spiderpool_controller::webhook::certs;
use spiderpool_controller::webhook::server::{self, Bounds, Handler};
use spiderpool_plugin_support::http::{Limits, Response};

fn start() -> (SocketAddr, Vec<u8>) {
    let serving = certs::generate(&["127.0.0.1".to_owned()]).unwrap();
    let handler: Handler = Arc::new(|req| {
        if req.path == "/panic" {
            panic!("a handler bug");
        }
        Response::json(200, &req.body.len())
    });
    let bounds = Bounds {
        workers: 2,
        deadline: Duration::from_secs(2),
        limits: Limits {
            max_head: 4096,
            max_body: 1024,
        },
        ..Bounds::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server::spawn(listener, serving.config, handler, bounds).unwrap();
    (addr, serving.ca_pem.unwrap())
}

fn exchange(addr: SocketAddr, ca: &[u8], bytes: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = tls.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn webhook_server_survives_a_panicking_handler_and_bounds_bodies() {
    let (addr, ca) = start();
    let r = exchange(
        addr,
        &ca,
        b"POST /panic HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
    // Both workers still serve (more requests than workers).
    for _ in 0..4 {
        let r = exchange(
            addr,
            &ca,
            b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(r.contains("Connection: close\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n3"), "{r}");
    }
    let big = format!(
        "POST /x HTTP/1.1\r\nContent-Length: 1025\r\n\r\n{}",
        "a".repeat(1025)
    );
    let r = exchange(addr, &ca, big.as_bytes());
    assert!(r.starts_with("HTTP/1.1 413 "), "{r}");
    let chunked = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n";
    let r = exchange(addr, &ca, chunked.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 413 ") || r.starts_with("HTTP/1.1 400 "),
        "{r}"
    );
    // Plain HTTP on the TLS port is a failed handshake, not a crash.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = plain.read_to_end(&mut sink);
    let r = exchange(addr, &ca, b"GET /y HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
}
