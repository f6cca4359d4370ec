//! A tiny synchronous client of the spiderpool-agent API (HTTP/1.1 + JSON on a UNIX socket).
//!
//! One request per connection (`Connection: close`), as upstream's plugins do (keep-alive off):
//! a plugin makes two or three requests in its whole life, so pooling buys nothing.
//!
//! Requests carry `Host: localhost`, `Accept` and `Content-Type: application/json`, and, with a
//! body, `Content-Length` and the JSON followed by a newline (what Go's `json.Encoder` sends).
//! Responses are read by [`crate::http`], the framing the agent's server uses too: by
//! `Content-Length`, by `Transfer-Encoding: chunked` (a hyper-based agent chunks when it
//! streams), or until EOF; interim `1xx` responses are skipped; at most
//! [`Limits::CLIENT`](crate::http::Limits::CLIENT), and the whole answer within the request's
//! deadline however slowly it arrives.
//!
//! ```no_run
//! use spiderpool_plugin_support::AgentClient;
//!
//! let client = AgentClient::new("/var/run/spidernet/spiderpool.sock");
//! client.healthy()?;
//! # Ok::<(), spiderpool_plugin_support::ClientError>(())
//! ```

use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use serde::Serialize;
use serde::de::DeserializeOwned;
use spiderpool_core::agentapi::{
    GetCoordinatorArgs, IpamAddArgs, IpamAddResponse, IpamBatchDelArgs, IpamDelArgs,
    PATH_COORDINATOR_CONFIG, PATH_HEALTHY, PATH_IP, PATH_IPS, PATH_WORKLOAD_ENDPOINT,
};
use spiderpool_core::cni::{CniError, ERR_INTERNAL, ERR_TRY_AGAIN_LATER};
use spiderpool_core::coordinator::AgentCoordinatorConfig;
use spiderpool_core::objects::SpiderEndpointStatus;

use crate::http::{DeadlineReader, HttpError, Limits, MessageReader, encode_request, query_escape};

/// Upstream's plugins give the agent 100 s per IPAM request (allocation may wait on the
/// apiserver and on a per-pool queue).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(100);
/// Connecting to a local socket is immediate unless the agent's accept backlog is full.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The health check should answer at once; a hung agent should not stall a pod for 100 s.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected (missing, refused, permission...): the agent is not
    /// running, or not yet.
    #[error("spiderpool-agent is unreachable at {}: {source}", socket.display())]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// Connecting, sending or waiting for the answer took longer than allowed.
    #[error("spiderpool-agent at {} did not answer {what} within {}s", socket.display(), timeout.as_secs_f64())]
    Timeout {
        /// The socket path.
        socket: PathBuf,
        /// The request (`POST /v1/ipam/ip`...).
        what: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// The connection broke during the exchange (reset, EOF before the end of the answer).
    #[error("spiderpool-agent at {} broke off {what}: {source}", socket.display())]
    Io {
        /// The socket path.
        socket: PathBuf,
        /// The request.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The agent answered with a non-2xx status. `message` is the JSON string body (upstream's
    /// error format), else the raw body, else the status text.
    #[error("{message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The agent's message.
        message: String,
    },
    /// The answer is not HTTP, or its JSON does not match the API.
    #[error("invalid answer from spiderpool-agent to {what}: {reason}")]
    BadResponse {
        /// The request.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

impl ClientError {
    /// Whether the failure is transient (agent not there, slow, restarting, or answering 503
    /// Service Unavailable: its store cannot serve now, or too many connections): the
    /// runtime should retry, so it maps to CNI code 11.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::Timeout { .. }
                | ClientError::Io { .. }
                | ClientError::Status { status: 503, .. }
        )
    }

    /// The CNI error: code 11 (try again later) for transient failures, else 999 with
    /// `prefix` before the message (upstream writes e.g. `spiderpool IP allocation error: `).
    pub fn to_cni(&self, prefix: &str) -> CniError {
        if self.is_transient() {
            CniError::new(ERR_TRY_AGAIN_LATER, format!("{self}; try again later"))
        } else {
            CniError::new(ERR_INTERNAL, format!("{prefix}{self}"))
        }
    }
}

impl From<ClientError> for CniError {
    fn from(e: ClientError) -> Self {
        e.to_cni("")
    }
}

/// A raw answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// A client of one agent socket. Cheap to create; each call opens its own connection.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
    connect_timeout: Duration,
    request_timeout: Duration,
    health_timeout: Duration,
}

impl AgentClient {
    /// A client of the agent listening on `socket`, with upstream's timeouts.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
        }
    }

    /// The same client with every timeout (connect, health check, request) capped at
    /// `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = self.connect_timeout.min(timeout);
        self.health_timeout = self.health_timeout.min(timeout);
        self.request_timeout = timeout;
        self
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/ipam/healthy`: `Ok` on a 2xx answer.
    pub fn healthy(&self) -> Result<(), ClientError> {
        self.expect_ok(self.request("GET", PATH_HEALTHY, None, self.health_timeout)?)
            .map(drop)
    }

    /// `POST /v1/ipam/ip`: allocate this NIC's addresses.
    pub fn post_ip(&self, args: &IpamAddArgs) -> Result<IpamAddResponse, ClientError> {
        self.call_json("POST", PATH_IP, Some(args))
    }

    /// `DELETE /v1/ipam/ip`: release this NIC's addresses.
    pub fn delete_ip(&self, args: &IpamDelArgs) -> Result<(), ClientError> {
        let body = encode(args, "DELETE", PATH_IP)?;
        let raw = self.request("DELETE", PATH_IP, Some(&body), self.request_timeout)?;
        self.expect_ok(raw).map(drop)
    }

    /// `DELETE /v1/ipam/ips`: release every address of a pod (after an IP conflict).
    pub fn delete_ips(&self, args: &IpamBatchDelArgs) -> Result<(), ClientError> {
        let body = encode(args, "DELETE", PATH_IPS)?;
        let raw = self.request("DELETE", PATH_IPS, Some(&body), self.request_timeout)?;
        self.expect_ok(raw).map(drop)
    }

    /// `GET /v1/coordinator/config` with the pod as a JSON body (as upstream sends it).
    pub fn coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<AgentCoordinatorConfig, ClientError> {
        self.call_json("GET", PATH_COORDINATOR_CONFIG, Some(args))
    }

    /// `GET /v1/workloadendpoint?podNamespace=..&podName=..`: the pod's SpiderEndpoint status.
    pub fn workload_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SpiderEndpointStatus, ClientError> {
        let path = format!(
            "{PATH_WORKLOAD_ENDPOINT}?podNamespace={}&podName={}",
            query_escape(namespace),
            query_escape(name)
        );
        self.call_json::<(), _>("GET", &path, None)
    }

    /// Sends `body` (already JSON) and returns the raw answer, whatever its status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<RawResponse, ClientError> {
        self.send(method, path, body, timeout)?.wait()
    }

    /// Connects and sends the request, without waiting for the answer: the caller can do
    /// other work while the agent handles it, then [`PendingResponse::wait`]. `timeout` counts
    /// from now.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<PendingResponse, ClientError> {
        let what = format!("{method} {path}");
        let deadline = Instant::now() + timeout;
        let mut stream = self.connect(&what)?;
        let io_err = |e: io::Error| io_error(&self.socket, &what, timeout, e);
        stream
            .set_write_timeout(Some(remaining(deadline)))
            .map_err(io_err)?;
        stream
            .write_all(&request_bytes(method, path, body))
            .map_err(io_err)?;
        Ok(PendingResponse {
            reader: MessageReader::new(DeadlineReader::new(stream, deadline), Limits::CLIENT),
            socket: self.socket.clone(),
            what,
            timeout,
        })
    }

    /// [`AgentClient::coordinator_config`] in two halves: this sends the request; the
    /// returned call's [`PendingCall::wait`] reads and decodes the answer.
    pub fn send_coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<PendingCall<AgentCoordinatorConfig>, ClientError> {
        self.send_json("GET", PATH_COORDINATOR_CONFIG, Some(args))
    }

    fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<PendingCall<T>, ClientError> {
        let bytes = body.map(|b| encode(b, method, path)).transpose()?;
        Ok(PendingCall {
            pending: self.send(method, path, bytes.as_deref(), self.request_timeout)?,
            _answer: PhantomData,
        })
    }

    fn call_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.send_json(method, path, body)?.wait()
    }

    fn expect_ok(&self, raw: RawResponse) -> Result<Vec<u8>, ClientError> {
        expect_ok(raw)
    }

    /// `UnixStream::connect` has no timeout, and a full accept backlog would block it. On
    /// Linux a UNIX stream connect waits for backlog room at most the socket's send timeout
    /// (`SO_SNDTIMEO`), so the socket is made by hand with that timeout set: no helper thread
    /// (starting one cost more than the whole connect).
    fn connect(&self, what: &str) -> Result<UnixStream, ClientError> {
        let unreachable = |source: io::Error| ClientError::Unreachable {
            socket: self.socket.clone(),
            source,
        };
        let errno = |e: Errno| io::Error::from_raw_os_error(e as i32);
        let addr = UnixAddr::new(self.socket.as_path()).map_err(|e| unreachable(errno(e)))?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| unreachable(errno(e)))?;
        // A zero timeval means "wait forever": keep at least a millisecond.
        let timeout = TimeVal::from(libc_timeval(
            self.connect_timeout.max(Duration::from_millis(1)),
        ));
        setsockopt(&fd, sockopt::SendTimeout, &timeout).map_err(|e| unreachable(errno(e)))?;
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => return Ok(UnixStream::from(fd)),
                Err(Errno::EINTR) => continue,
                // The send timeout ran out while the backlog stayed full.
                Err(Errno::EAGAIN) => {
                    return Err(ClientError::Timeout {
                        socket: self.socket.clone(),
                        what: format!("{what} (connect)"),
                        timeout: self.connect_timeout,
                    });
                }
                Err(e) => return Err(unreachable(errno(e))),
            }
        }
    }
}

fn io_error(socket: &Path, what: &str, timeout: Duration, e: io::Error) -> ClientError {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        ClientError::Timeout {
            socket: socket.to_path_buf(),
            what: what.to_owned(),
            timeout,
        }
    } else {
        ClientError::Io {
            socket: socket.to_path_buf(),
            what: what.to_owned(),
            source: e,
        }
    }
}

fn expect_ok(raw: RawResponse) -> Result<Vec<u8>, ClientError> {
    if (200..300).contains(&raw.status) {
        Ok(raw.body)
    } else {
        Err(ClientError::Status {
            status: raw.status,
            message: error_message(raw.status, &raw.body),
        })
    }
}

/// A request already sent ([`AgentClient::send`]); the answer is read by [`Self::wait`].
#[derive(Debug)]
pub struct PendingResponse {
    reader: MessageReader<DeadlineReader<UnixStream>>,
    socket: PathBuf,
    what: String,
    timeout: Duration,
}

impl PendingResponse {
    /// Reads the raw answer, whatever its status, within the request's deadline.
    pub fn wait(mut self) -> Result<RawResponse, ClientError> {
        match self.reader.read_response() {
            Ok(r) => Ok(RawResponse {
                status: r.status,
                body: r.body,
            }),
            Err(HttpError::Io(e)) => Err(io_error(&self.socket, &self.what, self.timeout, e)),
            Err(HttpError::TimedOut) => Err(ClientError::Timeout {
                socket: self.socket,
                what: self.what,
                timeout: self.timeout,
            }),
            Err(HttpError::Malformed { reason, .. }) => Err(ClientError::BadResponse {
                what: self.what,
                reason,
            }),
        }
    }
}

/// A JSON call already sent; [`Self::wait`] reads the answer and decodes a 2xx body as `T`.
#[derive(Debug)]
pub struct PendingCall<T> {
    pending: PendingResponse,
    _answer: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> PendingCall<T> {
    /// The decoded answer; a non-2xx status is [`ClientError::Status`].
    pub fn wait(self) -> Result<T, ClientError> {
        let what = self.pending.what.clone();
        let body = expect_ok(self.pending.wait()?)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
            what,
            reason: format!("decoding JSON: {e}"),
        })
    }
}

fn encode<B: Serialize + ?Sized>(
    body: &B,
    method: &str,
    path: &str,
) -> Result<Vec<u8>, ClientError> {
    let mut bytes = serde_json::to_vec(body).map_err(|e| ClientError::BadResponse {
        what: format!("{method} {path}"),
        reason: format!("encoding the request: {e}"),
    })?;
    // Go's json.Encoder ends the body with a newline; upstream agents see the same bytes.
    bytes.push(b'\n');
    Ok(bytes)
}

fn libc_timeval(d: Duration) -> nix::libc::timeval {
    nix::libc::timeval {
        tv_sec: nix::libc::time_t::try_from(d.as_secs()).unwrap_or(nix::libc::time_t::MAX),
        tv_usec: nix::libc::suseconds_t::from(d.subsec_micros()),
    }
}

fn remaining(deadline: Instant) -> Duration {
    // A zero timeout means "none" to std; keep at least a millisecond so a passed deadline
    // still times out.
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// The request head and body, as [`encode_request`] writes them.
pub fn request_bytes(method: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    encode_request(method, path, body)
}

/// The message of an error answer: a JSON string body as the string; other bodies as text
/// (trimmed); an empty body as `HTTP <status>`.
pub fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(s) = serde_json::from_slice::<String>(body) {
        return s;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    #[test]
    fn error_messages_and_query_escaping() {
        assert_eq!(
            error_message(500, br#""all IP addresses used out""#),
            "all IP addresses used out"
        );
        assert_eq!(error_message(404, b"  not found\n"), "not found");
        assert_eq!(error_message(500, b""), "HTTP 500");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn request_head_shape() {
        let r = String::from_utf8(request_bytes("POST", "/v1/ipam/ip", Some(b"{}\n"))).unwrap();
        assert_eq!(
            r,
            "POST /v1/ipam/ip HTTP/1.1\r\nHost: localhost\r\nUser-Agent: spiderpool-plugin\r\nAccept: application/json\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{}\n"
        );
        let r = String::from_utf8(request_bytes("GET", "/v1/ipam/healthy", None)).unwrap();
        assert!(!r.contains("Content-Length"));
    }

    /// A one-shot agent: serves `answers` in order, one per connection, and records each
    /// request (head + body as text).
    struct FakeAgent {
        path: PathBuf,
        requests: Arc<Mutex<Vec<String>>>,
        _dir: tempfile::TempDir,
    }

    fn fake_agent(answers: Vec<Vec<u8>>, delay: Duration) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&requests);
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                let req = read_request(&mut conn);
                rec.lock().unwrap().push(req);
                std::thread::sleep(delay);
                let _ = conn.write_all(&answer);
            }
        });
        FakeAgent {
            path,
            requests,
            _dir: dir,
        }
    }

    fn read_request(conn: &mut UnixStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.parse::<usize>().unwrap());
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn post_ip_sends_json_and_decodes_a_chunked_answer() {
        let body = br#"{"ips":[{"version":4,"address":"10.6.100.1/16","nic":"eth0","gateway":"10.6.0.1"}]}"#;
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.chunks(10) {
            answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            answer.extend_from_slice(part);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        let agent = fake_agent(vec![answer], Duration::ZERO);
        let client = AgentClient::new(&agent.path);
        let args = IpamAddArgs {
            container_id: "c1".into(),
            if_name: "eth0".into(),
            pod_name: "p".into(),
            ..Default::default()
        };
        let r = client.post_ip(&args).unwrap();
        assert_eq!(r.ips[0].address, "10.6.100.1/16");
        let req = agent.requests.lock().unwrap()[0].clone();
        let (head, sent) = req.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /v1/ipam/ip HTTP/1.1\r\n"));
        assert!(head.contains("\r\nConnection: close"));
        assert!(head.contains("\r\nContent-Type: application/json"));
        assert!(sent.ends_with('\n'));
        let back: IpamAddArgs = serde_json::from_str(sent).unwrap();
        assert_eq!(back, args);
    }

    #[test]
    fn status_500_with_a_json_string_is_the_message() {
        let answer = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n\"all IP addresses used out\"".to_vec();
        let agent = fake_agent(vec![answer], Duration::ZERO);
        let e = AgentClient::new(&agent.path)
            .post_ip(&IpamAddArgs::default())
            .unwrap_err();
        assert!(matches!(e, ClientError::Status { status: 500, .. }));
        let cni = e.to_cni("spiderpool IP allocation error: ");
        assert_eq!(
            (cni.code, cni.msg.as_str()),
            (
                999,
                "spiderpool IP allocation error: all IP addresses used out"
            )
        );
    }

    #[test]
    fn healthy_get_coordinator_config_and_workload_endpoint() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        let cfg = br#"{"mode":"auto","podDefaultRouteNIC":"net1","policyRoutes":null}"#;
        let mut cfg_answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", cfg.len()).into_bytes();
        cfg_answer.extend_from_slice(cfg);
        let ep = br#"{"current":{"uid":"u1","node":"n1","ips":[]},"ownerControllerType":"Pod","ownerControllerName":"p"}"#;
        // No Content-Length: read until the agent closes.
        let mut ep_answer = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        ep_answer.extend_from_slice(ep);
        let agent = fake_agent(vec![ok, cfg_answer, ep_answer], Duration::ZERO);
        let client = AgentClient::new(&agent.path);
        client.healthy().unwrap();
        let c = client
            .coordinator_config(&GetCoordinatorArgs {
                pod_name: "p".into(),
                pod_namespace: "ns".into(),
            })
            .unwrap();
        assert_eq!(c.pod_default_route_nic.as_deref(), Some("net1"));
        let e = client.workload_endpoint("default", "web 0").unwrap();
        assert_eq!(e.current.uid, "u1");
        let reqs = agent.requests.lock().unwrap().clone();
        assert!(reqs[0].starts_with("GET /v1/ipam/healthy HTTP/1.1\r\n"));
        assert!(reqs[1].starts_with("GET /v1/coordinator/config HTTP/1.1\r\n"));
        assert!(reqs[1].ends_with("\r\n\r\n{\"podName\":\"p\",\"podNamespace\":\"ns\"}\n"));
        assert!(reqs[2].starts_with(
            "GET /v1/workloadendpoint?podNamespace=default&podName=web%200 HTTP/1.1\r\n"
        ));
    }

    #[test]
    fn a_sent_coordinator_config_is_read_when_waited_for() {
        let cfg = br#"{"mode":"auto","podDefaultRouteNIC":"net1"}"#;
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", cfg.len()).into_bytes();
        answer.extend_from_slice(cfg);
        let refusal = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno".to_vec();
        let agent = fake_agent(vec![answer, refusal], Duration::ZERO);
        let client = AgentClient::new(&agent.path);
        let args = GetCoordinatorArgs {
            pod_name: "p".into(),
            pod_namespace: "ns".into(),
        };
        let pending = client.send_coordinator_config(&args).unwrap();
        // Other work happens here in the plugin; the answer waits in the socket.
        let c = pending.wait().unwrap();
        assert_eq!(c.pod_default_route_nic.as_deref(), Some("net1"));
        let e = client
            .send_coordinator_config(&args)
            .unwrap()
            .wait()
            .unwrap_err();
        assert!(
            matches!(e, ClientError::Status { status: 500, .. }),
            "{e:?}"
        );
        let reqs = agent.requests.lock().unwrap().clone();
        assert!(reqs[0].starts_with("GET /v1/coordinator/config HTTP/1.1\r\n"));
        assert!(reqs[0].ends_with("\r\n\r\n{\"podName\":\"p\",\"podNamespace\":\"ns\"}\n"));
    }

    #[test]
    fn missing_socket_and_refused_connection_are_code_11() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.sock");
        let e = AgentClient::new(&missing).healthy().unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }));
        let cni = CniError::from(e);
        assert_eq!(cni.code, 11);
        assert!(
            cni.msg.contains(&missing.display().to_string()),
            "{}",
            cni.msg
        );
        assert!(cni.msg.ends_with("try again later"), "{}", cni.msg);

        // A socket file nobody listens on any more: ECONNREFUSED.
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let e = AgentClient::new(&stale).healthy().unwrap_err();
        match &e {
            ClientError::Unreachable { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.to_cni("x: ").code, 11);
    }

    #[test]
    fn a_slow_agent_times_out_with_code_11() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
        let agent = fake_agent(vec![ok], Duration::from_millis(800));
        let client = AgentClient::new(&agent.path).with_timeout(Duration::from_millis(150));
        let start = Instant::now();
        let e = client.delete_ip(&IpamDelArgs::default()).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(700));
        assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
        let cni = e.to_cni("");
        assert_eq!(cni.code, 11);
        assert!(cni.msg.contains("DELETE /v1/ipam/ip"), "{}", cni.msg);
    }

    #[test]
    fn a_full_accept_backlog_times_out_the_connect_with_code_11() {
        use nix::sys::socket::{Backlog, bind, listen};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.sock");
        let listener = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(listener.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        // Backlog 0: one pending connection fills it; nobody accepts.
        listen(&listener, Backlog::new(0).unwrap()).unwrap();
        let _pending = UnixStream::connect(&path).unwrap();
        let client = AgentClient::new(&path).with_timeout(Duration::from_millis(100));
        let e = client.healthy().unwrap_err();
        match &e {
            ClientError::Timeout { what, .. } => assert!(what.ends_with("(connect)"), "{what}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.to_cni("").code, 11);
    }

    #[test]
    fn status_503_is_transient_and_other_errors_are_not() {
        let unavailable =
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\n\r\n\"store down\""
                .to_vec();
        let internal =
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\n\"no\"".to_vec();
        let agent = fake_agent(vec![unavailable, internal], Duration::ZERO);
        let client = AgentClient::new(&agent.path);
        let e = client.delete_ip(&IpamDelArgs::default()).unwrap_err();
        let cni = e.to_cni("x: ");
        assert_eq!(
            (cni.code, cni.msg.as_str()),
            (11, "store down; try again later")
        );
        let e = client.delete_ip(&IpamDelArgs::default()).unwrap_err();
        assert_eq!(e.to_cni("x: ").code, 999);
    }

    #[test]
    fn agent_closing_without_answer_is_transient() {
        let agent = fake_agent(vec![Vec::new()], Duration::ZERO);
        let e = AgentClient::new(&agent.path).healthy().unwrap_err();
        assert!(matches!(e, ClientError::Io { .. }), "{e:?}");
        assert!(e.is_transient());
    }
}
