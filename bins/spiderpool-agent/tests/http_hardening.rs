//! The agent's socket under hostile or broken clients (issue 9, defects 1, 4 and 6): a chunk
//! size near `u64::MAX`, clients that drip a byte a second, SIGTERM with the socket file gone.
//! Each test runs the real binary with few workers, so a lost or held worker shows at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::{Duration, Instant};

use common::RunningAgent;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use spiderpool_plugin_support::agent_client::AgentClient;

/// Sends `raw` on a new connection and returns what the agent answers before it closes (or
/// before `timeout`).
fn exchange(agent: &RunningAgent, raw: &[u8], timeout: Duration) -> String {
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A client that gives up after `timeout`.
fn quick(agent: &RunningAgent, timeout: Duration) -> AgentClient {
    AgentClient::new(&agent.socket).with_timeout(timeout)
}

/// A normal request (the pod has no endpoint: 404) and the health check both answer.
fn assert_answers(agent: &RunningAgent, timeout: Duration) {
    let start = Instant::now();
    quick(agent, timeout)
        .healthy()
        .expect("the health check answers");
    let raw = quick(agent, timeout)
        .request(
            "GET",
            "/v1/workloadendpoint?podNamespace=ns&podName=p",
            None,
            timeout,
        )
        .expect("a normal request answers");
    assert_eq!(raw.status, 404, "{}", String::from_utf8_lossy(&raw.body));
    assert!(start.elapsed() < timeout * 2, "{:?}", start.elapsed());
}

/// SIGTERM, then the exit status within `limit`.
fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() >= limit {
            // Do not leave a hung agent behind.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn chunk_sizes_near_u64_max_neither_kill_workers_nor_wedge_the_agent() {
    let mut agent = RunningAgent::start(&[], &["--store", "memory", "--workers", "2"]);
    let sizes = [
        "ffffffffffffffff",
        "fffffffffffffff0",
        "10000000000000000",
        "7fffffffffffffff",
    ];
    for i in 0..40 {
        let raw = format!(
            "POST /v1/ipam/ip HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n{}\r\n",
            sizes[i % sizes.len()]
        );
        let answer = exchange(&agent, raw.as_bytes(), Duration::from_secs(5));
        assert!(
            answer.starts_with("HTTP/1.1 413 ") || answer.starts_with("HTTP/1.1 400 "),
            "request {i}: {answer:?}"
        );
    }
    assert_answers(&agent, Duration::from_secs(5));
    let mut child = agent.child.take().unwrap();
    assert!(terminate(&mut child, Duration::from_secs(5)).success());
}

/// Opens `n` connections that each send the start of a request and then one byte a second,
/// until `stop` is set.
fn drippers(
    agent: &RunningAgent,
    n: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let socket = agent.socket.clone();
            let stop = std::sync::Arc::clone(stop);
            std::thread::spawn(move || {
                let Ok(mut s) = UnixStream::connect(&socket) else {
                    return;
                };
                let _ = s.write_all(b"GET /v1/ipam/healthy HTTP/1.1\r\nX-Drip: ");
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if s.write_all(b"a").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        })
        .collect()
}

#[test]
fn dripping_clients_do_not_stall_requests_or_health_checks() {
    let agent = RunningAgent::start(&[], &["--store", "memory", "--workers", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads = drippers(&agent, 40, &stop);
    // Let every dripper connect and start its request.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..3 {
        assert_answers(&agent, Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_request_is_cut_off_at_the_total_time_limit_with_408() {
    let agent = RunningAgent::start(&[], &["--store", "memory", "--request-timeout", "2"]);
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    s.write_all(b"GET /v1/ipam/healthy HTTP/1.1\r\nX-Drip: ")
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let mut byte = [0u8; 256];
    // Each byte arrives well within any per-read timeout; only a total limit ends this.
    while start.elapsed() < Duration::from_secs(8) {
        if s.write_all(b"a").is_err() {
            break;
        }
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&byte[..n]),
            Err(_) => {}
        }
    }
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[test]
fn sigterm_exits_promptly_when_the_socket_file_is_gone() {
    let mut agent = RunningAgent::start(&[], &["--store", "memory"]);
    std::fs::remove_file(&agent.socket).unwrap();
    let mut child = agent.child.take().unwrap();
    assert!(terminate(&mut child, Duration::from_secs(3)).success());
}

#[test]
fn sigterm_exits_promptly_while_clients_drip() {
    let mut agent = RunningAgent::start(&[], &["--store", "memory", "--workers", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads = drippers(&agent, 10, &stop);
    std::thread::sleep(Duration::from_secs(2));
    let mut child = agent.child.take().unwrap();
    assert!(terminate(&mut child, Duration::from_secs(3)).success());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
}
