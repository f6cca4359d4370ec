//! The UNIX-socket HTTP server: a bounded pool of worker threads, one connection at a time
//! each.
//!
//! Why synchronous threads and `httparse` rather than tokio + hyper: the API is a handful of
//! small JSON calls from local plugin processes, each answered in microseconds from memory
//! or one store commit (which blocks on disk anyway). A fixed pool of threads serves them with
//! no runtime, a small binary and a dependency tree we already have (`httparse` backs the
//! plugins' client too). The pool is bounded, and the accept loop waits when every worker and
//! the queue are busy, so a burst of pods cannot make the agent spawn without limit.

use std::io::{self, BufReader};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{HttpError, Request, Response, read_request, write_response};

/// How long a connection may sit idle between requests (or mid-request) before the worker
/// drops it, so idle keep-alive clients cannot hold the pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process answers on the socket.
    #[error("another agent is already listening on {0}")]
    InUse(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// An I/O failure.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Creates the listening socket at `path`, mode 0600, its parent directory if needed. A stale
/// socket file (nobody answering) is removed first; a live one is refused.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BindError::Io { path: p, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_err(path))?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    // The umask makes the socket 0600 from its creation, with no window where other users
    // could connect; chmod afterwards as well in case the filesystem ignores it.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(listener)
}

/// Stops a running [`serve`] from any thread: no new connections are accepted, requests in
/// flight finish, then `serve` removes the socket and returns.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    path: PathBuf,
}

impl Shutdown {
    /// A handle for the server on `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            path: path.into(),
        }
    }

    /// Asks the server to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag on the connection it accepts.
        let _ = UnixStream::connect(&self.path);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A request handler shared by the workers.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves `listener` with `workers` threads until `shutdown` is triggered; then removes the
/// socket file at `shutdown`'s path.
pub fn serve(
    listener: UnixListener,
    handler: Handler,
    workers: usize,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let workers = workers.max(1);
    let (tx, rx) = sync_channel::<UnixStream>(workers);
    let rx = Arc::new(Mutex::new(rx));
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let rx = Arc::clone(&rx);
        let handler = Arc::clone(&handler);
        let shutdown = shutdown.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("api-{i}"))
                .spawn(move || worker(&rx, &handler, &shutdown))?,
        );
    }
    for conn in listener.incoming() {
        if shutdown.is_triggered() {
            break;
        }
        match conn {
            // Blocks while every worker is busy and the queue is full: back-pressure.
            Ok(stream) => {
                if tx.send(stream).is_err() {
                    break;
                }
            }
            Err(e) => {
                log::warn!("accept on {}: {e}", shutdown.path.display());
                // Out of file descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(listener);
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    match std::fs::remove_file(&shutdown.path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn worker(rx: &Mutex<Receiver<UnixStream>>, handler: &Handler, shutdown: &Shutdown) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(p) => p.into_inner().recv(),
        };
        let Ok(stream) = next else {
            return;
        };
        if let Err(e) = connection(stream, handler, shutdown) {
            log::debug!("connection: {e}");
        }
    }
}

fn connection(stream: UnixStream, handler: &Handler, shutdown: &Shutdown) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(HttpError::Io(e)) => return Err(e),
            Err(HttpError::Bad { status, reason }) => {
                return write_response(&mut writer, &Response::error(status, &reason), false);
            }
        };
        let resp = std::panic::catch_unwind(AssertUnwindSafe(|| handler(&req)))
            .unwrap_or_else(|_| Response::error(500, "internal error while handling the request"));
        log::debug!("{} {} -> {}", req.method, req.path, resp.status);
        let keep_alive = req.keep_alive && !shutdown.is_triggered();
        write_response(&mut writer, &resp, keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn serves_refuses_a_second_bind_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/agent.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let shutdown = Shutdown::new(&path);
        let handler: Handler = Arc::new(|req: &Request| Response::json(200, &req.path));
        let server = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || serve(listener, handler, 2, &shutdown))
        };
        assert!(matches!(bind(&path), Err(BindError::InUse(_))));
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\"/x\""), "{out}");
        shutdown.trigger();
        server.join().unwrap().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(bind(&path).is_ok());
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(bind(&file), Err(BindError::NotASocket(_))));
    }
}
