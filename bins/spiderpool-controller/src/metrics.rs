//! Prometheus metrics with upstream's names (§8.2), served on `/metrics` (any path, as
//! upstream's handler) of `--metric-port` / `SPIDERPOOL_METRIC_HTTP_PORT` (5721) when
//! `--enable-metric` / `SPIDERPOOL_ENABLED_METRIC` is on.
//!
//! Components update the public fields of [`Metrics`] (`ctx.metrics.ip_gc_counts.inc()`);
//! each field is named after its metric without the `spiderpool_` prefix. Counters are
//! exposed with the `_total` suffix (`spiderpool_ip_gc_counts_total`), as upstream's
//! OpenTelemetry exporter does and its Grafana dashboards expect. The per-object `debug_*`
//! gauges are exposed only with `--enable-debug-metric` / `SPIDERPOOL_ENABLED_DEBUG_METRIC`.

use std::net::{Ipv4Addr, SocketAddr};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use spiderpool_plugin_support::http::tiny_server::{self, Reply};

use crate::{Ctx, Error, Result};

/// Upstream's default metrics port of the controller.
pub const DEFAULT_METRIC_PORT: u16 = 5721;

/// The OpenMetrics content type `/metrics` answers with (Prometheus negotiates it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A per-object gauge family: one label naming the object (`ippool` or `subnet`).
pub type PerObject = Family<Vec<(String, String)>, Gauge>;

/// The controller's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// `spiderpool_ip_gc_counts`: addresses released by the garbage collector.
    pub ip_gc_counts: Counter,
    /// `spiderpool_ip_gc_failure_counts`: garbage-collection releases that failed.
    pub ip_gc_failure_counts: Counter,
    /// `spiderpool_total_ippool_counts`: SpiderIPPools in the cluster.
    pub total_ippool_counts: Gauge,
    /// `spiderpool_total_subnet_counts`: SpiderSubnets in the cluster.
    pub total_subnet_counts: Gauge,
    /// `spiderpool_debug_ippool_total_ip_counts{ippool}`: a pool's `totalIPCount` (debug).
    pub debug_ippool_total_ip_counts: PerObject,
    /// `spiderpool_debug_ippool_available_ip_counts{ippool}`: a pool's free addresses (debug).
    pub debug_ippool_available_ip_counts: PerObject,
    /// `spiderpool_debug_subnet_ippool_counts{subnet}`: pools a subnet controls (debug).
    pub debug_subnet_ippool_counts: PerObject,
    /// `spiderpool_debug_subnet_total_ip_counts{subnet}`: a subnet's `totalIPCount` (debug).
    pub debug_subnet_total_ip_counts: PerObject,
    /// `spiderpool_debug_subnet_available_ip_counts{subnet}`: a subnet's free addresses (debug).
    pub debug_subnet_available_ip_counts: PerObject,
    registry: Registry,
    debug_registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        let m = Metrics {
            ip_gc_counts: Counter::default(),
            ip_gc_failure_counts: Counter::default(),
            total_ippool_counts: Gauge::default(),
            total_subnet_counts: Gauge::default(),
            debug_ippool_total_ip_counts: PerObject::default(),
            debug_ippool_available_ip_counts: PerObject::default(),
            debug_subnet_ippool_counts: PerObject::default(),
            debug_subnet_total_ip_counts: PerObject::default(),
            debug_subnet_available_ip_counts: PerObject::default(),
            registry: Registry::with_prefix("spiderpool"),
            debug_registry: Registry::with_prefix("spiderpool"),
        };
        m.registered()
    }

    // The metric handles share their values with their clones, so the registries hold clones.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "ip_gc_counts",
            "Number of Spiderpool Controller IP garbage collection",
            self.ip_gc_counts.clone(),
        );
        r.register(
            "ip_gc_failure_counts",
            "Number of Spiderpool Controller IP garbage collection failures",
            self.ip_gc_failure_counts.clone(),
        );
        r.register(
            "total_ippool_counts",
            "Number of Spiderpool IPPools",
            self.total_ippool_counts.clone(),
        );
        r.register(
            "total_subnet_counts",
            "Number of Spiderpool Subnets",
            self.total_subnet_counts.clone(),
        );
        let d = &mut self.debug_registry;
        d.register(
            "debug_ippool_total_ip_counts",
            "Number of Spiderpool IPPool corresponding total IPs (per-IPPool)",
            self.debug_ippool_total_ip_counts.clone(),
        );
        d.register(
            "debug_ippool_available_ip_counts",
            "Number of Spiderpool IPPool corresponding available IPs (per-IPPool)",
            self.debug_ippool_available_ip_counts.clone(),
        );
        d.register(
            "debug_subnet_ippool_counts",
            "Number of Spiderpool Subnet corresponding IPPools (per-Subnet)",
            self.debug_subnet_ippool_counts.clone(),
        );
        d.register(
            "debug_subnet_total_ip_counts",
            "Number of Spiderpool Subnet corresponding total IPs (per-Subnet)",
            self.debug_subnet_total_ip_counts.clone(),
        );
        d.register(
            "debug_subnet_available_ip_counts",
            "Number of Spiderpool Subnet corresponding available IPs (per-Subnet)",
            self.debug_subnet_available_ip_counts.clone(),
        );
        self
    }

    /// The label set of a per-pool gauge: `ippool="<name>"`.
    pub fn ippool_label(name: &str) -> Vec<(String, String)> {
        vec![("ippool".to_owned(), name.to_owned())]
    }

    /// The label set of a per-subnet gauge: `subnet="<name>"`.
    pub fn subnet_label(name: &str) -> Vec<(String, String)> {
        vec![("subnet".to_owned(), name.to_owned())]
    }

    /// The exposition in OpenMetrics text, with the debug gauges when `debug`.
    pub fn encode(&self, debug: bool) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoding error would be a bug in the crate.
        let _ = encode_registry(&mut out, &self.registry);
        if debug {
            let _ = encode_registry(&mut out, &self.debug_registry);
        }
        let _ = encode_eof(&mut out);
        out
    }
}

/// Flags and environment of the metrics endpoint.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "metrics")]
pub struct Args {
    /// Serve Prometheus metrics.
    #[arg(
        id = "metric_enabled",
        long = "enable-metric",
        env = "SPIDERPOOL_ENABLED_METRIC",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
    )]
    pub enabled: bool,
    /// Also serve the per-pool and per-subnet debug gauges.
    #[arg(
        id = "metric_debug",
        long = "enable-debug-metric",
        env = "SPIDERPOOL_ENABLED_DEBUG_METRIC",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
    )]
    pub debug: bool,
    /// TCP port of `/metrics` (all addresses).
    #[arg(
        id = "metric_port",
        long = "metric-port",
        env = "SPIDERPOOL_METRIC_HTTP_PORT",
        default_value_t = DEFAULT_METRIC_PORT,
        value_name = "PORT",
    )]
    pub port: u16,
}

/// Starts serving `/metrics` on a thread of its own when enabled; returns the bound address
/// (`None` when disabled).
pub fn spawn(ctx: &Ctx, args: &Args) -> Result<Option<SocketAddr>> {
    if !args.enabled {
        return Ok(None);
    }
    let metrics = ctx.metrics.clone();
    let debug = args.debug;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.port));
    let bound = tiny_server::spawn("metrics", addr, move |_req| Reply {
        status: 200,
        content_type: CONTENT_TYPE.to_owned(),
        body: metrics.encode(debug).into_bytes(),
    })
    .map_err(|e| Error::io(format!("metrics: cannot listen on {addr}"), e))?;
    log::info!("metrics on http://{bound}/metrics");
    Ok(Some(bound))
}

/// Serves `/metrics` until the process ends (returns at once with an error if the port cannot
/// be bound; never returns when metrics are disabled).
pub async fn serve(ctx: Ctx, args: Args) -> Result<()> {
    spawn(&ctx, &args)?;
    std::future::pending().await
}
