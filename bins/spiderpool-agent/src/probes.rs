//! Upstream's health probes on a TCP port (default 5710, `SPIDERPOOL_HEALTH_PORT`):
//! `GET /v1/runtime/startup`, `/v1/runtime/readiness`, `/v1/runtime/liveness`. The kubelet
//! probes them; the Helm chart points the agent's probes here.
//!
//! startup and liveness answer 200 while the process serves; readiness answers 200 when the
//! service says it can serve ([`IpamService::healthy`]), else 503 with the reason. Bodies are
//! JSON strings (`"ok"`). Requests are read with the agent's bounded HTTP framing.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{DeadlineReader, Limits, MessageReader, Response, encode_response};
use crate::service::IpamService;

/// Upstream's default port.
pub const DEFAULT_HEALTH_PORT: u16 = 5710;

/// The probe paths.
pub const PATH_STARTUP: &str = "/v1/runtime/startup";
/// Readiness.
pub const PATH_READINESS: &str = "/v1/runtime/readiness";
/// Liveness.
pub const PATH_LIVENESS: &str = "/v1/runtime/liveness";

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

fn answer(stream: TcpStream, service: &dyn IpamService) {
    // One probe at a time is plenty; a client that stalls is dropped after a second.
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let _ = writer.set_write_timeout(Some(Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut reader = MessageReader::new(DeadlineReader::new(stream, deadline), Limits::SERVER);
    let Ok(Some(req)) = reader.read_request() else {
        return;
    };
    let resp = match req.path.as_str() {
        PATH_STARTUP | PATH_LIVENESS => text(200, "ok"),
        PATH_READINESS => match service.healthy() {
            Ok(()) => text(200, "ok"),
            Err(why) => text(503, &why),
        },
        other => text(404, &format!("no probe at {other}")),
    };
    let _ = writer.write_all(&encode_response(&resp, false));
}

/// The body is a JSON string, as every other answer of the agent.
fn text(status: u16, body: &str) -> Response {
    Response::json(status, body)
}
