//! Upstream's health probes on a TCP port (default 5710, `SPIDERPOOL_HEALTH_PORT`):
//! `GET /v1/runtime/startup`, `/v1/runtime/readiness`, `/v1/runtime/liveness`. The kubelet
//! probes them; the Helm chart points the agent's probes here.
//!
//! startup and liveness answer 200 while the process serves; readiness answers 200 when the
//! service says it can serve ([`IpamService::healthy`]), else 503 with the reason.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::service::IpamService;

/// Upstream's default port.
pub const DEFAULT_HEALTH_PORT: u16 = 5710;

/// The probe paths.
pub const PATH_STARTUP: &str = "/v1/runtime/startup";
/// Readiness.
pub const PATH_READINESS: &str = "/v1/runtime/readiness";
/// Liveness.
pub const PATH_LIVENESS: &str = "/v1/runtime/liveness";

// A probe request is one line and a few headers; anything longer is not a probe.
const MAX_HEAD: usize = 8 * 1024;

/// Binds `0.0.0.0:port` and answers probes on a thread of its own. Returns the bound port.
pub fn spawn(port: u16, service: Arc<dyn IpamService>) -> std::io::Result<u16> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let bound = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("probes".to_owned())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => answer(stream, service.as_ref()),
                    Err(e) => log::debug!("probe accept: {e}"),
                }
            }
        })?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, service: &dyn IpamService) {
    // One probe at a time is plenty; a client that stalls is dropped after a second.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let path = loop {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => break req.path.unwrap_or_default().to_owned(),
            Ok(httparse::Status::Partial) if len < MAX_HEAD => continue,
            _ => return,
        }
    };
    let (status, body) = match path.as_str() {
        PATH_STARTUP | PATH_LIVENESS => (200, "ok".to_owned()),
        PATH_READINESS => match service.healthy() {
            Ok(()) => (200, "ok".to_owned()),
            Err(why) => (503, why),
        },
        _ => (404, format!("no probe at {path}")),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
