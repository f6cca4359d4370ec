//! The UNIX-socket HTTP server: a thread per connection reads its requests within a total
//! time limit, and a bounded number of handlers run at once, with slots of their own for the
//! health checks. Threads are reused (up to 64 wait 30 s for a next connection): spawning
//! one costs more than a whole request.
//!
//! Why synchronous threads rather than tokio + hyper: the API is a handful of small JSON calls
//! from local plugin processes, each answered in microseconds from memory or one store commit
//! (which blocks on disk anyway). Threads serve them with no runtime and a dependency tree we
//! already have; the framing is [`crate::http`], shared with the plugins' client.
//!
//! What a client cannot do, whatever it sends:
//! * hold a handler while it sends slowly: reading a request takes no handler slot, and the
//!   whole request must arrive within [`ServerConfig::request_timeout`] (else 408 and close);
//! * starve the health checks: `GET /v1/ipam/healthy` and `/v1/runtime/*` run on
//!   [`ServerConfig::health_workers`] slots of their own, even when every worker is busy;
//! * kill a worker: a panic anywhere in a connection (reading, handling, writing) is caught,
//!   its slot returns, and the server carries on; a panicking handler answers 500;
//! * make the agent allocate without limit: sizes are [`crate::http::Limits::SERVER`], and at
//!   most [`ServerConfig::max_connections`] connections are open (more are answered 503);
//! * delay shutdown: connections waiting for a request are closed at once; only handlers
//!   already running are waited for (at most [`ServerConfig::shutdown_grace`]).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use spiderpool_core::agentapi::PATH_HEALTHY;

use crate::http::{DeadlineReader, HttpError, Limits, MessageReader, Request, Response};

/// How long a client has to send one whole request (from the moment the agent starts
/// waiting for it, i.e. after the connection is accepted or the previous answer was sent).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Handler slots kept for health checks.
pub const HEALTH_WORKERS: usize = 2;
/// Connections open at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a stop waits for handlers already running.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

/// How the server behaves; [`ServerConfig::new`] gives the defaults above.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Handlers running at once for ordinary requests (at least 1).
    pub workers: usize,
    /// Further handler slots only health checks use (at least 1).
    pub health_workers: usize,
    /// The total time allowed to receive one request.
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a stop waits for running handlers.
    pub shutdown_grace: Duration,
    /// Which requests are health checks.
    pub is_health_check: fn(&Request) -> bool,
}

impl ServerConfig {
    /// The defaults with `workers` handler slots.
    pub fn new(workers: usize) -> Self {
        ServerConfig {
            workers,
            health_workers: HEALTH_WORKERS,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            shutdown_grace: SHUTDOWN_GRACE,
            is_health_check,
        }
    }
}

/// `GET /v1/ipam/healthy` and `GET /v1/runtime/...` (upstream's probe paths).
pub fn is_health_check(req: &Request) -> bool {
    req.method == "GET"
        && (req.path.trim_end_matches('/') == PATH_HEALTHY || req.path.starts_with("/v1/runtime/"))
}

/// Stops a running [`serve`] from any thread: no new connections are accepted, connections
/// waiting for a request are closed, running handlers finish, then `serve` removes the
/// socket and returns. Works whether or not the socket file still exists.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug)]
struct ShutdownInner {
    flag: AtomicBool,
    path: PathBuf,
    /// The write end of the accept loop's wake-up pair, while `serve` runs.
    waker: Mutex<Option<UnixStream>>,
}

impl Shutdown {
    /// A handle for the server on `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Shutdown {
            inner: Arc::new(ShutdownInner {
                flag: AtomicBool::new(false),
                path: path.into(),
                waker: Mutex::new(None),
            }),
        }
    }

    /// Asks the server to stop.
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        // Wake the accept loop through its own socket pair, not through the path: the file
        // may be gone.
        if let Some(w) = lock(&self.inner.waker).as_ref() {
            let _ = (&*w).write(&[1]);
        }
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// A request handler shared by the connections.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves `listener` with `workers` handler slots and the other defaults of
/// [`ServerConfig::new`] until `shutdown` is triggered; then removes the socket file.
pub fn serve(
    listener: UnixListener,
    handler: Handler,
    workers: usize,
    shutdown: &Shutdown,
) -> io::Result<()> {
    serve_with(listener, handler, &ServerConfig::new(workers), shutdown)
}

/// [`serve`] with every setting given.
pub fn serve_with(
    listener: UnixListener,
    handler: Handler,
    config: &ServerConfig,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let (wake_rx, wake_tx) = UnixStream::pair()?;
    wake_tx.set_nonblocking(true)?;
    *lock(&shutdown.inner.waker) = Some(wake_tx);
    // Non-blocking, so a connection that went away between poll and accept cannot block us.
    listener.set_nonblocking(true)?;
    let shared = Arc::new(Shared::new(handler, config, shutdown));
    accept_loop(&listener, &wake_rx, &shared);
    drop(listener);
    shared.spare.wake_all();
    shared.close_waiting();
    if !shared.wait_idle(config.shutdown_grace) {
        log::warn!(
            "stopping with requests still running after {:?}",
            config.shutdown_grace
        );
    }
    *lock(&shutdown.inner.waker) = None;
    match std::fs::remove_file(shutdown.path()) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn accept_loop(listener: &UnixListener, wake: &UnixStream, shared: &Arc<Shared>) {
    while !shared.shutdown.is_triggered() {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log::warn!("poll on {}: {e}", shared.shutdown.path().display());
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        if shared.shutdown.is_triggered() {
            return;
        }
        match listener.accept() {
            Ok((stream, _)) => shared.start_connection(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                log::warn!("accept on {}: {e}", shared.shutdown.path().display());
                // Out of file descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A counting semaphore; its permits come back when the guard drops, also on a panic.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Self {
        Slots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

/// What the accept loop and the connection threads share.
struct Shared {
    handler: Handler,
    config: ServerConfig,
    shutdown: Shutdown,
    workers: Slots,
    health: Slots,
    /// Open connections; `idle` is signalled when it drops to 0.
    open: Mutex<usize>,
    idle: Condvar,
    /// Connections waiting for a request, closed at once on a stop.
    waiting: Mutex<HashMap<u64, UnixStream>>,
    next_id: AtomicU64,
    /// Connection threads that finished a connection and wait for the next one.
    spare: Spare,
}

impl Shared {
    fn new(handler: Handler, config: &ServerConfig, shutdown: &Shutdown) -> Self {
        Shared {
            handler,
            config: config.clone(),
            shutdown: shutdown.clone(),
            workers: Slots::new(config.workers),
            health: Slots::new(config.health_workers),
            open: Mutex::new(0),
            idle: Condvar::new(),
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            spare: Spare::default(),
        }
    }

    fn start_connection(self: &Arc<Self>, stream: UnixStream) {
        {
            let mut open = lock(&self.open);
            if *open >= self.config.max_connections {
                drop(open);
                refuse(stream, "too many connections to the agent; try again");
                return;
            }
            *open += 1;
        }
        // Made before the thread, so a thread that cannot start still gives the count back.
        let job = Job {
            stream,
            _open: OpenGuard(Arc::clone(self)),
        };
        // A spare thread saves a spawn (which costs more than a whole request).
        let Err(job) = self.spare.hand_over(job) else {
            return;
        };
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("api-conn".to_owned())
            .spawn(move || {
                let mut next = Some(job);
                while let Some(job) = next {
                    shared.run(job);
                    next = shared.spare.next_job(&shared.shutdown);
                }
            });
        if let Err(e) = spawned {
            // The closure (and the job's guard) was dropped unrun: the count is already back.
            log::warn!("cannot start a connection thread: {e}");
        }
    }

    /// Serves one connection; a panic in it is caught here.
    fn run(&self, job: Job) {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.connection(job.stream)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!("connection: {e}"),
            Err(_) => log::error!("a connection panicked; closed it, serving on"),
        }
    }

    fn connection(&self, stream: UnixStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        let mut writer = stream.try_clone()?;
        writer.set_write_timeout(Some(self.config.request_timeout))?;
        let mut waiting = Some(stream.try_clone()?);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut reader = MessageReader::new(
            DeadlineReader::new(stream, Instant::now() + self.config.request_timeout),
            Limits::SERVER,
        );
        loop {
            reader
                .source_mut()
                .set_deadline(Instant::now() + self.config.request_timeout);
            if !self.wait_for_request(id, &mut waiting) {
                return Ok(());
            }
            let read = reader.read_request();
            waiting = lock(&self.waiting).remove(&id);
            let req = match read {
                Ok(Some(req)) => req,
                Ok(None) | Err(HttpError::Io(_)) => return Ok(()),
                // Quiet close of an idle connection, 408 to a client that stopped midway.
                Err(HttpError::TimedOut) if !reader.in_message() => return Ok(()),
                Err(HttpError::TimedOut) => {
                    return send(
                        &mut writer,
                        &Response::error(408, "request not received in time"),
                        false,
                    );
                }
                Err(HttpError::Malformed { status, reason }) => {
                    return send(&mut writer, &Response::error(status, &reason), false);
                }
            };
            let resp = self.handle(&req);
            log::debug!("{} {} -> {}", req.method, req.path, resp.status);
            let keep_alive = req.keep_alive && !self.shutdown.is_triggered();
            send(&mut writer, &resp, keep_alive)?;
            if !keep_alive {
                return Ok(());
            }
        }
    }

    /// Lists the connection as waiting (a stop closes it); `false` when stopping already.
    fn wait_for_request(&self, id: u64, stream: &mut Option<UnixStream>) -> bool {
        let mut waiting = lock(&self.waiting);
        // Checked under the lock `close_waiting` takes after the flag is set: a connection
        // is either seen by the stop or sees it.
        if self.shutdown.is_triggered() {
            return false;
        }
        if let Some(s) = stream.take() {
            waiting.insert(id, s);
        }
        true
    }

    fn handle(&self, req: &Request) -> Response {
        let slots = if (self.config.is_health_check)(req) {
            &self.health
        } else {
            &self.workers
        };
        let _permit = slots.acquire();
        std::panic::catch_unwind(AssertUnwindSafe(|| (self.handler)(req))).unwrap_or_else(|_| {
            log::error!(
                "handling {} {} panicked; answered 500",
                req.method,
                req.path
            );
            Response::error(500, "internal error while handling the request")
        })
    }

    fn close_waiting(&self) {
        for (_, s) in lock(&self.waiting).drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Waits until no connection is open, at most `grace`; whether they all closed.
    fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut open = lock(&self.open);
        while *open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            open = match self.idle.wait_timeout(open, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// An accepted connection and its place in the open count.
struct Job {
    stream: UnixStream,
    _open: OpenGuard,
}

/// How many connection threads may wait for a next connection, and for how long.
const SPARE_THREADS: usize = 64;
const SPARE_KEEP: Duration = Duration::from_secs(30);

/// Connection threads waiting for a next connection, and the connections handed to them.
#[derive(Default)]
struct Spare {
    state: Mutex<SpareState>,
    ready: Condvar,
}

#[derive(Default)]
struct SpareState {
    waiting: usize,
    jobs: std::collections::VecDeque<Job>,
}

impl Spare {
    /// Gives `job` to a waiting thread; `Err(job)` when none is free.
    fn hand_over(&self, job: Job) -> Result<(), Job> {
        let mut st = lock(&self.state);
        if st.waiting > st.jobs.len() {
            st.jobs.push_back(job);
            self.ready.notify_one();
            Ok(())
        } else {
            Err(job)
        }
    }

    /// The next connection for a thread that finished one; `None`: the thread ends (enough
    /// spare threads, none came within [`SPARE_KEEP`], or the server stops).
    fn next_job(&self, shutdown: &Shutdown) -> Option<Job> {
        let mut st = lock(&self.state);
        if st.waiting >= SPARE_THREADS {
            return None;
        }
        st.waiting += 1;
        let deadline = Instant::now() + SPARE_KEEP;
        let job = loop {
            // Handed-over jobs first, so none is stranded by a stop.
            if let Some(job) = st.jobs.pop_front() {
                break Some(job);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if shutdown.is_triggered() || left.is_zero() {
                break None;
            }
            st = match self.ready.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        };
        st.waiting -= 1;
        job
    }

    /// Lets every waiting thread see the stop.
    fn wake_all(&self) {
        // Under the lock: a thread checks the flag under it before it waits.
        let _st = lock(&self.state);
        self.ready.notify_all();
    }
}

/// Counts a connection as open until it is closed, panics included.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut open = lock(&self.0.open);
        *open = open.saturating_sub(1);
        if *open == 0 {
            self.0.idle.notify_all();
        }
    }
}

fn send(w: &mut UnixStream, resp: &Response, keep_alive: bool) -> io::Result<()> {
    w.write_all(&crate::http::encode_response(resp, keep_alive))
}

/// Answers 503 without blocking the accept loop, and closes.
fn refuse(stream: UnixStream, why: &str) {
    log::warn!("{why}");
    if stream.set_nonblocking(true).is_ok() {
        let mut s = stream;
        let _ = s.write_all(&crate::http::encode_response(
            &Response::error(503, why),
            false,
        ));
    }
}

/// A mutex's data even if a panic poisoned it: every critical section here leaves the data
/// consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

    /// A server on a temp socket with `handler`; stopped and joined on drop.
    struct Running {
        path: PathBuf,
        shutdown: Shutdown,
        thread: Option<std::thread::JoinHandle<io::Result<()>>>,
        _dir: tempfile::TempDir,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.shutdown.trigger();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn start(handler: Handler, config: ServerConfig) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = bind(&path).unwrap();
        let shutdown = Shutdown::new(&path);
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || serve_with(listener, handler, &config, &shutdown))
        };
        Running {
            path,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The status line of the answer to `GET path`, within 2 s.
    fn get(path: &Path, target: &str) -> String {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // A refused connection may be closed before the request is written.
        let _ =
            s.write_all(format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.lines().next().unwrap_or_default().to_owned()
    }

    #[test]
    fn panicking_handlers_cost_no_worker() {
        let handler: Handler = Arc::new(|req: &Request| {
            assert!(req.path != "/panic", "a handler bug");
            Response::empty(200)
        });
        let server = start(handler, ServerConfig::new(1));
        for _ in 0..10 {
            assert_eq!(
                get(&server.path, "/panic"),
                "HTTP/1.1 500 Internal Server Error"
            );
        }
        assert_eq!(get(&server.path, "/ok"), "HTTP/1.1 200 OK");
    }

    #[test]
    fn health_checks_answer_while_every_worker_is_busy() {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = Mutex::new(blocked);
        let handler: Handler = Arc::new(move |req: &Request| {
            if req.path == "/slow" {
                let _ = lock(&blocked).recv_timeout(Duration::from_secs(10));
            }
            Response::empty(200)
        });
        let server = start(handler, ServerConfig::new(1));
        let path = server.path.clone();
        let slow = std::thread::spawn(move || get(&path, "/slow"));
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        assert_eq!(get(&server.path, PATH_HEALTHY), "HTTP/1.1 200 OK");
        assert_eq!(get(&server.path, "/v1/runtime/liveness"), "HTTP/1.1 200 OK");
        assert!(started.elapsed() < Duration::from_secs(1));
        release.send(()).unwrap();
        assert_eq!(slow.join().unwrap(), "HTTP/1.1 200 OK");
    }

    #[test]
    fn a_stop_needs_no_socket_file_and_closes_waiting_connections() {
        let handler: Handler = Arc::new(|_: &Request| Response::empty(200));
        let mut server = start(handler, ServerConfig::new(1));
        let mut waiting = UnixStream::connect(&server.path).unwrap();
        waiting.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::fs::remove_file(&server.path).unwrap();
        let started = Instant::now();
        server.shutdown.trigger();
        server.thread.take().unwrap().join().unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut rest = Vec::new();
        waiting
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        // Closed by the server (EOF, or a reset when it closed with our bytes unread), not
        // left to time out.
        match waiting.read_to_end(&mut rest) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connections_beyond_the_limit_are_answered_503() {
        let handler: Handler = Arc::new(|_: &Request| Response::empty(200));
        let mut config = ServerConfig::new(1);
        config.max_connections = 2;
        let server = start(handler, config);
        let held: Vec<UnixStream> = (0..2)
            .map(|_| UnixStream::connect(&server.path).unwrap())
            .collect();
        // Until the server has taken both in, a third connection may still be let in.
        let refused = (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            get(&server.path, "/") == "HTTP/1.1 503 Service Unavailable"
        });
        assert!(refused);
        drop(held);
        let served = (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            get(&server.path, "/") == "HTTP/1.1 200 OK"
        });
        assert!(served);
    }
}
