//! The HTTPS server: rustls over blocking sockets on a fixed set of worker threads, each
//! request read with plugin-support's bounded HTTP framing ([`MessageReader`] within
//! [`Limits`], the whole exchange, TLS handshake included, under one [`DeadlineReader`]
//! deadline). One request per connection (`Connection: close`), so a worker never idles on
//! a kept-alive connection. At most `workers` connections are served and `backlog` wait;
//! more are closed at once. A panicking handler answers 500 and the worker carries on.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use spiderpool_plugin_support::http::{
    DeadlineReader, HttpError, Limits, MessageReader, Request, Response, encode_response,
};

/// How the server bounds its work.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Worker threads (connections served at once).
    pub workers: usize,
    /// Accepted connections waiting for a worker; beyond that they are closed.
    pub backlog: usize,
    /// Time for one whole exchange: handshake, request, answer.
    pub deadline: Duration,
    /// Sizes of one request.
    pub limits: Limits,
}

impl Default for Bounds {
    /// 4 workers, 64 waiting, 10 s (the apiserver's default webhook timeout), 8 MiB bodies
    /// (an AdmissionReview carries the object and the old object, each up to etcd's 1.5 MiB).
    fn default() -> Self {
        Bounds {
            workers: 4,
            backlog: 64,
            deadline: Duration::from_secs(10),
            limits: Limits {
                max_head: 64 * 1024,
                max_body: 8 * 1024 * 1024,
            },
        }
    }
}

/// What answers a request.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves `listener` with `tls` and `handler` on threads of their own; returns at once.
pub fn spawn(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handler: Handler,
    bounds: Bounds,
) -> io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let (tx, rx): (SyncSender<TcpStream>, Receiver<TcpStream>) =
        sync_channel(bounds.backlog.max(1));
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..bounds.workers.max(1) {
        let (rx, tls, handler) = (rx.clone(), tls.clone(), handler.clone());
        std::thread::Builder::new()
            .name(format!("webhook-{i}"))
            .spawn(move || {
                loop {
                    let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(stream) = next else { return };
                    serve_one(stream, &tls, &handler, &bounds);
                }
            })?;
    }
    std::thread::Builder::new()
        .name("webhook-accept".to_owned())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => match tx.try_send(stream) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            log::warn!("webhook: every worker is busy: connection closed")
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    },
                    Err(e) => log::debug!("webhook accept on {bound}: {e}"),
                }
            }
        })?;
    Ok(bound)
}

/// A socket whose reads end at one deadline (plugin-support's [`DeadlineReader`]) and whose
/// writes time out: what TLS runs over.
struct Socket {
    read: DeadlineReader<TcpStream>,
    write: TcpStream,
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.write.flush()
    }
}

fn serve_one(stream: TcpStream, tls: &Arc<ServerConfig>, handler: &Handler, bounds: &Bounds) {
    let deadline = Instant::now() + bounds.deadline;
    let Ok(write) = stream.try_clone() else {
        return;
    };
    let _ = write.set_write_timeout(Some(bounds.deadline));
    let socket = Socket {
        read: DeadlineReader::new(stream, deadline),
        write,
    };
    let conn = match ServerConnection::new(tls.clone()) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("webhook: TLS: {e}");
            return;
        }
    };
    let mut tls_stream = StreamOwned::new(conn, socket);
    let read = {
        let mut reader = MessageReader::new(&mut tls_stream, bounds.limits);
        let r = reader.read_request();
        (r, reader.in_message())
    };
    let response = match read {
        (Ok(Some(req)), _) => match catch_unwind(AssertUnwindSafe(|| handler(&req))) {
            Ok(r) => r,
            Err(_) => {
                log::error!(
                    "webhook: the handler of {} {} panicked",
                    req.method,
                    req.path
                );
                Response::error(500, "internal error")
            }
        },
        (Ok(None), _) => return,
        (Err(HttpError::Malformed { status, reason }), _) => {
            log::debug!("webhook: refused a request: {reason}");
            Response::error(status, &reason)
        }
        (Err(HttpError::TimedOut), true) => {
            Response::error(408, "the request did not arrive in time")
        }
        (Err(e), _) => {
            log::debug!("webhook: connection dropped: {e}");
            return;
        }
    };
    let _ = tls_stream.write_all(&encode_response(&response, false));
    tls_stream.conn.send_close_notify();
    let _ = tls_stream.flush();
}
