//! Two `spiderpool-controller` processes on a private control plane: one holds the Lease;
//! after `kill -9` of the holder the other takes over once the Lease expires; SIGTERM releases
//! the Lease. Each also serves its probes and (enabled) metrics on the ports it was given.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use spiderpool_controller::leader::LEASE_NAME;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// A child process killed (SIGKILL) when dropped, its output kept in files.
struct Replica {
    name: String,
    child: Child,
    log: std::path::PathBuf,
    health_port: u16,
    metric_port: u16,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(kubeconfig: &Path, ns: &str, name: &str, dir: &Path, extra: &[&str]) -> Replica {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let (health_port, metric_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .env_remove("KUBECONFIG")
        .env("SPIDERPOOL_LOG_LEVEL", "debug")
        .env("SPIDERPOOL_POD_NAMESPACE", ns)
        .env("SPIDERPOOL_POD_NAME", name)
        .env("SPIDERPOOL_LEADER_DURATION", "4")
        .env("SPIDERPOOL_LEADER_RENEW_DEADLINE", "3")
        .env("SPIDERPOOL_LEADER_RETRY_PERIOD", "0.5")
        .env("SPIDERPOOL_LEADER_RETRY_GAP", "0.2")
        .env("SPIDERPOOL_HEALTH_PORT", health_port.to_string())
        .env("SPIDERPOOL_ENABLED_METRIC", "true")
        .env("SPIDERPOOL_METRIC_HTTP_PORT", metric_port.to_string())
        .env("SPIDERPOOL_WEBHOOK_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Replica {
        name: name.to_owned(),
        child,
        log,
        health_port,
        metric_port,
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt(LEASE_NAME)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn wait_holder(
    api: &Api<Lease>,
    limit: Duration,
    replicas: &[&Replica],
    pred: impl Fn(Option<&str>) -> bool,
) -> Option<String> {
    let start = Instant::now();
    loop {
        let h = holder(api).await;
        if pred(h.as_deref()) {
            return h;
        }
        if start.elapsed() > limit {
            let logs: Vec<String> = replicas
                .iter()
                .map(|r| format!("--- {} ---\n{}", r.name, r.log()))
                .collect();
            panic!("holder still {h:?} after {limit:?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
#[ignore = "needs apiserver"]
fn leader_binary_kill_9_hands_over_and_sigterm_releases() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = TestCluster::on(&plane, "leader-bin").await.unwrap();
        let ns = cluster.namespace.clone();
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
        let a = start(
            &plane.kubeconfig,
            &ns,
            "ctl-a",
            dir.path(),
            &["--log-format", "json"],
        );
        let b = start(&plane.kubeconfig, &ns, "ctl-b", dir.path(), &[]);
        let first = wait_holder(&leases, Duration::from_secs(20), &[&a, &b], |h| {
            matches!(h, Some("ctl-a" | "ctl-b"))
        })
        .await
        .unwrap();
        // --log-format json: every line of ctl-a is one JSON object.
        let a_log = a.log();
        assert!(a_log.lines().count() > 0);
        for line in a_log.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(v["logger"], "spiderpool-controller", "{line}");
        }
        assert!(a_log.contains("leader election: Lease"), "{a_log}");
        let (mut leader, follower) = if first == "ctl-a" { (a, b) } else { (b, a) };

        // Both serve metrics (enabled) and probes on the ports they were given.
        for r in [&leader, &follower] {
            let (status, body) = get(r.metric_port, "/metrics")
                .unwrap_or_else(|| panic!("no metrics from {}\n{}", r.name, r.log()));
            assert_eq!(status, 200);
            assert!(body.contains("spiderpool_ip_gc_counts_total 0"), "{body}");
            let (status, _) = get(r.health_port, "/v1/runtime/nothing").unwrap();
            assert_eq!(status, 404, "the probe server of {} answers", r.name);
        }

        leader.child.kill().unwrap(); // SIGKILL: no release
        leader.child.wait().unwrap();
        let killed_at = Instant::now();
        let second = wait_holder(&leases, Duration::from_secs(20), &[&follower], |h| {
            h == Some(follower.name.as_str())
        })
        .await;
        assert_eq!(second.as_deref(), Some(follower.name.as_str()));
        assert!(
            killed_at.elapsed() >= Duration::from_millis(2500),
            "took over after {:?}, before the killed holder's Lease expired",
            killed_at.elapsed()
        );

        // SIGTERM: the process releases the Lease on its way out.
        let pid = follower.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let mut follower = follower;
        let start = Instant::now();
        loop {
            if follower.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "still running after SIGTERM\n{}",
                follower.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            holder(&leases).await,
            None,
            "released on SIGTERM\n{}",
            follower.log()
        );
    });
}
