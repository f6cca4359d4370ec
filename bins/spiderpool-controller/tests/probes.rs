//! The controller's probes over HTTP: 200 or 500 by upstream's rules on the facts in
//! `Health`, 404 elsewhere, 405 for other methods.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spiderpool_controller::probes::{self, Health, PATH_LIVENESS, PATH_READINESS, PATH_STARTUP};

fn request(port: u16, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_owned())
}

fn get(port: u16, path: &str) -> (u16, String) {
    request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn statuses(port: u16) -> [u16; 3] {
    [PATH_STARTUP, PATH_LIVENESS, PATH_READINESS].map(|p| get(port, p).0)
}

#[test]
fn probes_follow_upstreams_rules() {
    let health = Arc::new(Health::default());
    let port = probes::spawn(health.clone(), 0).unwrap().port();

    // Nothing up yet.
    assert_eq!(statuses(port), [500, 500, 500]);
    let (_, why) = get(port, PATH_LIVENESS);
    assert!(why.contains("webhook"), "{why}");

    // The webhook serves: started and alive, not ready without a known leader.
    health.webhook_serving.store(true, Ordering::SeqCst);
    assert_eq!(statuses(port), [200, 200, 500]);
    let (_, why) = get(port, PATH_READINESS);
    assert!(why.contains("leader"), "{why}");

    // A leader elsewhere is known: ready.
    health.leader_known.store(true, Ordering::SeqCst);
    assert_eq!(statuses(port), [200, 200, 200]);

    // Leading with the GC's pod cache still syncing: not ready; a follower's readiness does
    // not depend on it.
    health.gc_pending.store(true, Ordering::SeqCst);
    assert_eq!(statuses(port), [200, 200, 200]);
    health.is_leader.store(true, Ordering::SeqCst);
    assert_eq!(statuses(port), [200, 200, 500]);
    let (_, why) = get(port, PATH_READINESS);
    assert!(why.contains("garbage collector"), "{why}");
    health.gc_pending.store(false, Ordering::SeqCst);
    assert_eq!(statuses(port), [200, 200, 200]);

    // The webhook stops: dead and not ready (start-up stays done once `started` is set).
    health.started.store(true, Ordering::SeqCst);
    health.webhook_serving.store(false, Ordering::SeqCst);
    assert_eq!(statuses(port), [200, 500, 500]);
}

#[test]
fn probes_answer_other_paths_methods_and_garbage_cleanly() {
    let health = Arc::new(Health::default());
    let port = probes::spawn(health, 0).unwrap().port();
    assert_eq!(get(port, "/v1/runtime/other").0, 404);
    let (status, _) = request(
        port,
        "POST /v1/runtime/startup HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    let (status, _) = request(port, "NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(status, 400);
    // Still serving after all that.
    assert_eq!(get(port, PATH_STARTUP).0, 500);
}
