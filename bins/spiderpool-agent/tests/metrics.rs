//! `--enable-metric`: the local-mode agent counts the ADDs and DELs the real `spiderpool`
//! plugin sends, by upstream's metric names, with upstream's histogram buckets, on
//! `--metric-port`; without the flag nothing listens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{RunningAgent, pool, spiderpool_plugin};
use serde_json::json;

const POOL_NAME: &str = "metrics-pool";

fn plugin(command: &str, plugin: &Path, socket: &Path, log: &Path, pod: &str) -> Output {
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-ens192",
        "type": "macvlan",
        "master": "ens192",
        "ipam": {
            "type": "spiderpool",
            "default_ipv4_ippool": [POOL_NAME],
            "ipam_unix_socket_path": socket,
            "log_file_path": log,
        }
    });
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("cid-{pod}"))
        .env("CNI_NETNS", format!("/var/run/netns/{pod}"))
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", plugin.parent().unwrap())
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// The value of the sample line `name` (exact, labels included).
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_count_adds_and_dels_with_upstreams_names_and_buckets() {
    let plugin_bin = spiderpool_plugin();
    let port = free_port();
    let port_arg = port.to_string();
    let agent = RunningAgent::start(
        &[("pool.yaml", &pool(POOL_NAME, "10.6.100.1-10.6.100.3"))],
        &["--enable-metric", "--metric-port", &port_arg],
    );
    let log = agent.dir.path().join("plugin.log");
    // Three addresses: five ADDs, the last two find the pool used out.
    let outs: Vec<Output> = (0..5)
        .map(|i| plugin("ADD", &plugin_bin, &agent.socket, &log, &format!("pod-{i}")))
        .collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 3, "three ADDs succeed\n{}", agent.log_text());
    for i in 0..2 {
        let out = plugin("DEL", &plugin_bin, &agent.socket, &log, &format!("pod-{i}"));
        assert!(out.status.success(), "{out:?}");
    }

    let (head, body) = scrape(port);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert_eq!(
        sample(&body, "spiderpool_ipam_allocation_counts_total"),
        5.0
    );
    assert_eq!(
        sample(&body, "spiderpool_ipam_allocation_failure_counts_total"),
        2.0
    );
    assert_eq!(
        sample(
            &body,
            "spiderpool_ipam_allocation_err_ip_used_out_counts_total"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &body,
            "spiderpool_ipam_allocation_err_internal_counts_total"
        ),
        0.0
    );
    assert_eq!(sample(&body, "spiderpool_ipam_release_counts_total"), 2.0);
    assert_eq!(
        sample(&body, "spiderpool_ipam_release_failure_counts_total"),
        0.0
    );
    // The histogram: upstream's buckets, every ADD counted.
    for le in [
        "0.1", "0.3", "0.5", "1.0", "3.0", "5.0", "7.0", "10.0", "15.0", "+Inf",
    ] {
        sample(
            &body,
            &format!("spiderpool_ipam_allocation_duration_seconds_bucket{{le=\"{le}\"}}"),
        );
    }
    assert_eq!(
        sample(&body, "spiderpool_ipam_allocation_duration_seconds_count"),
        5.0
    );
    assert_eq!(
        sample(&body, "spiderpool_ipam_release_duration_seconds_count"),
        2.0
    );
    let max = sample(&body, "spiderpool_ipam_allocation_max_duration_seconds");
    let min = sample(&body, "spiderpool_ipam_allocation_min_duration_seconds");
    let avg = sample(&body, "spiderpool_ipam_allocation_average_duration_seconds");
    let latest = sample(&body, "spiderpool_ipam_allocation_latest_duration_seconds");
    assert!(
        min > 0.0 && min <= avg && avg <= max && latest <= max,
        "{body}"
    );
    assert!(body.contains("# TYPE spiderpool_ipam_allocation_duration_seconds histogram"));
}

#[test]
fn metrics_are_off_by_default() {
    let port = free_port();
    let port_arg = port.to_string();
    let _agent = RunningAgent::start(
        &[("pool.yaml", &pool(POOL_NAME, "10.6.100.1-10.6.100.3"))],
        &["--metric-port", &port_arg],
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on --metric-port without --enable-metric"
    );
}

/// The failure kinds are told from the engine's error text: this pins the wording they rely
/// on to `IpamError`'s own messages (as the API passes them on, after a context).
#[test]
fn metrics_failure_kinds_follow_the_engines_errors() {
    use spiderpool_agent::agent::ApiError;
    use spiderpool_agent::metrics::FailureKind;
    use spiderpool_core::ip::IpFamily;
    use spiderpool_core::ipam::IpamError;

    let api = |status: u16, e: &IpamError| ApiError {
        status,
        message: format!("allocate pod default/p NIC net1: {e}"),
    };
    let conflict = IpamError::Conflict {
        object: "SpiderIPPool/p".to_owned(),
        expected: "1".to_owned(),
        found: "2".to_owned(),
    };
    let cases = [
        (api(500, &conflict), FailureKind::Conflict),
        (
            api(
                503,
                &IpamError::RetriesExhausted {
                    attempts: 3,
                    last: Box::new(conflict.clone()),
                },
            ),
            FailureKind::RetriesExhausted,
        ),
        (
            api(
                500,
                &IpamError::NoPoolRules {
                    nic: "net1".to_owned(),
                },
            ),
            FailureKind::NoAvailablePool,
        ),
        (
            api(
                500,
                &IpamError::AllPoolsFiltered {
                    nic: "net1".to_owned(),
                    family: IpFamily::V4,
                    rejections: vec![],
                },
            ),
            FailureKind::NoAvailablePool,
        ),
        (
            api(
                500,
                &IpamError::AllocationFailed {
                    nic: "net1".to_owned(),
                    family: IpFamily::V4,
                    rejections: vec![],
                },
            ),
            FailureKind::IpUsedOut,
        ),
        (
            api(
                503,
                &IpamError::Store {
                    reason: "disk full".to_owned(),
                },
            ),
            FailureKind::Internal,
        ),
        (
            ApiError {
                status: 400,
                message: "missing required fields: podUID".to_owned(),
            },
            FailureKind::BadRequest,
        ),
    ];
    for (err, kind) in cases {
        assert_eq!(FailureKind::of(&err), kind, "{}", err.message);
    }
}
