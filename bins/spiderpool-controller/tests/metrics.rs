//! The controller's metrics: upstream's names, counters with `_total`, debug gauges only when
//! asked, served over HTTP when enabled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Parser;
use spiderpool_controller::Ctx;
use spiderpool_controller::metrics::{self, Metrics};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    metrics: metrics::Args,
}

fn offline_ctx() -> Ctx {
    // The metrics never touch the apiserver: a client pointing nowhere will do.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    Ctx::new(kube::Client::try_from(config).unwrap())
}

fn get(port: u16) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[test]
fn metrics_have_upstreams_names_and_debug_gauges_on_request() {
    let m = Metrics::new();
    m.ip_gc_counts.inc_by(3);
    m.ip_gc_failure_counts.inc();
    m.total_ippool_counts.set(2);
    m.total_subnet_counts.set(1);
    m.debug_ippool_total_ip_counts
        .get_or_create(&Metrics::ippool_label("10-6-v4"))
        .set(100);
    m.debug_subnet_available_ip_counts
        .get_or_create(&Metrics::subnet_label("s1"))
        .set(7);
    let plain = m.encode(false);
    for line in [
        "spiderpool_ip_gc_counts_total 3",
        "spiderpool_ip_gc_failure_counts_total 1",
        "spiderpool_total_ippool_counts 2",
        "spiderpool_total_subnet_counts 1",
        "# TYPE spiderpool_ip_gc_counts counter",
        "# TYPE spiderpool_total_ippool_counts gauge",
    ] {
        assert!(
            plain.lines().any(|l| l == line),
            "{line:?} missing in\n{plain}"
        );
    }
    assert!(!plain.contains("debug"), "{plain}");
    assert!(plain.ends_with("# EOF\n"));
    let debug = m.encode(true);
    assert!(
        debug.contains("spiderpool_debug_ippool_total_ip_counts{ippool=\"10-6-v4\"} 100"),
        "{debug}"
    );
    assert!(
        debug.contains("spiderpool_debug_subnet_available_ip_counts{subnet=\"s1\"} 7"),
        "{debug}"
    );
}

#[test]
fn metrics_are_served_only_when_enabled() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let ctx = offline_ctx();
    let off = Cli::try_parse_from(["x", "--metric-port", "0"]).unwrap();
    assert!(!off.metrics.enabled, "off by default, as upstream");
    assert_eq!(metrics::spawn(&ctx, &off.metrics).unwrap(), None);

    let on = Cli::try_parse_from(["x", "--enable-metric", "--metric-port", "0"]).unwrap();
    let addr = metrics::spawn(&ctx, &on.metrics).unwrap().unwrap();
    ctx.metrics.ip_gc_counts.inc();
    let (head, body) = get(addr.port());
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.contains("spiderpool_ip_gc_counts_total 1\n"), "{body}");

    let defaults = Cli::try_parse_from(["x"]).unwrap();
    assert_eq!(defaults.metrics.port, 5721, "upstream's port");
}
