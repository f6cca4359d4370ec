//! The agent's Prometheus metrics (§8.2): allocations (`POST /v1/ipam/ip`) and releases
//! (`DELETE /v1/ipam/ip`, `DELETE /v1/ipam/ips`), counted by [`Metered`], which wraps either
//! mode's [`IpamService`], and served on `/metrics` (any path, as upstream) of
//! `--metric-port` / `SPIDERPOOL_METRIC_HTTP_PORT` (5711) when `--enable-metric` /
//! `SPIDERPOOL_ENABLED_METRIC` is on.
//!
//! Names are upstream's documented snake_case ones (`spiderpool_ipam_allocation_counts`...;
//! counters exposed with `_total`), not the camelCase its current code emits by accident.
//! Failure kinds are told from the engine's error text (see [`FailureKind::of`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use spiderpool_core::agentapi::{
    GetCoordinatorArgs, IpamAddArgs, IpamAddResponse, IpamBatchDelArgs, IpamDelArgs,
};
use spiderpool_core::coordinator::AgentCoordinatorConfig;
use spiderpool_core::objects::SpiderEndpointStatus;
use spiderpool_plugin_support::http::tiny_server::{self, Reply};

use crate::agent::ApiError;
use crate::service::IpamService;

/// Upstream's default metrics port of the agent.
pub const DEFAULT_METRIC_PORT: u16 = 5711;

/// Upstream's histogram buckets (seconds).
pub const BUCKETS: [f64; 9] = [0.1, 0.3, 0.5, 1.0, 3.0, 5.0, 7.0, 10.0, 15.0];

/// The OpenMetrics content type `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A gauge of seconds.
pub type Seconds = Gauge<f64, AtomicU64>;

/// Why an operation failed, as upstream's per-kind counters tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A compare-and-swap write lost to a concurrent one (`…_update_ippool_conflict_counts`).
    Conflict,
    /// Conflicts persisted through every retry (`…_err_retries_exhausted_counts`).
    RetriesExhausted,
    /// No pool applies, or every candidate was filtered out
    /// (`…_allocation_err_no_available_pool_counts`).
    NoAvailablePool,
    /// Every eligible pool failed to give an address (`…_allocation_err_ip_used_out_counts`).
    IpUsedOut,
    /// Anything else the agent answers with a 5xx (`…_err_internal_counts`).
    Internal,
    /// The request was refused as wrong input (4xx): only the failure count.
    BadRequest,
}

impl FailureKind {
    /// The kind of `e`, from its status and the engine's wording (`spiderpool_core::ipam::
    /// IpamError`'s messages, which the API passes on).
    pub fn of(e: &ApiError) -> Self {
        let m = e.message.as_str();
        if m.contains("conflicting attempts") {
            FailureKind::RetriesExhausted
        } else if m.contains("conflict: ") {
            FailureKind::Conflict
        } else if m.contains("no IPPool available") {
            FailureKind::NoAvailablePool
        } else if m.contains("failed to allocate any") {
            FailureKind::IpUsedOut
        } else if e.status < 500 {
            FailureKind::BadRequest
        } else {
            FailureKind::Internal
        }
    }
}

/// Durations of one operation: the histogram and the average / max / min / latest gauges.
#[derive(Debug)]
pub struct Durations {
    /// `…_duration_seconds` (upstream's buckets).
    pub histogram: Histogram,
    /// `…_average_duration_seconds`: the mean over the process's life.
    pub average: Seconds,
    /// `…_max_duration_seconds`.
    pub max: Seconds,
    /// `…_min_duration_seconds`.
    pub min: Seconds,
    /// `…_latest_duration_seconds`.
    pub latest: Seconds,
    // (count, sum, max, min) updated together.
    stats: Mutex<(u64, f64, f64, f64)>,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            histogram: Histogram::new(BUCKETS),
            average: Seconds::default(),
            max: Seconds::default(),
            min: Seconds::default(),
            latest: Seconds::default(),
            stats: Mutex::new((0, 0.0, 0.0, f64::INFINITY)),
        }
    }
}

impl Durations {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        self.histogram.observe(s);
        self.latest.set(s);
        let mut st = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        st.0 += 1;
        st.1 += s;
        st.2 = st.2.max(s);
        st.3 = st.3.min(s);
        self.average.set(st.1 / st.0 as f64);
        self.max.set(st.2);
        self.min.set(st.3);
    }

    fn register(&self, r: &mut Registry, op: &str, what: &str) {
        r.register(
            format!("{op}_duration_seconds"),
            format!("Histogram of IPAM {what} duration"),
            self.histogram.clone(),
        );
        for (name, gauge) in [
            ("average", &self.average),
            ("max", &self.max),
            ("min", &self.min),
            ("latest", &self.latest),
        ] {
            r.register(
                format!("{op}_{name}_duration_seconds"),
                format!("The {name} duration of IPAM {what}"),
                gauge.clone(),
            );
        }
    }
}

/// The agent's metrics; fields are named after the metrics without `spiderpool_ipam_`.
#[derive(Debug)]
pub struct AgentMetrics {
    /// `spiderpool_ipam_allocation_counts`: allocation requests.
    pub allocation_counts: Counter,
    /// `spiderpool_ipam_allocation_failure_counts`.
    pub allocation_failure_counts: Counter,
    /// `spiderpool_ipam_allocation_update_ippool_conflict_counts`.
    pub allocation_update_ippool_conflict_counts: Counter,
    /// `spiderpool_ipam_allocation_err_internal_counts`.
    pub allocation_err_internal_counts: Counter,
    /// `spiderpool_ipam_allocation_err_no_available_pool_counts`.
    pub allocation_err_no_available_pool_counts: Counter,
    /// `spiderpool_ipam_allocation_err_retries_exhausted_counts`.
    pub allocation_err_retries_exhausted_counts: Counter,
    /// `spiderpool_ipam_allocation_err_ip_used_out_counts`.
    pub allocation_err_ip_used_out_counts: Counter,
    /// `spiderpool_ipam_allocation_{,average_,max_,min_,latest_}duration_seconds`.
    pub allocation_duration: Durations,
    /// `spiderpool_ipam_release_counts`: release requests (single and batch).
    pub release_counts: Counter,
    /// `spiderpool_ipam_release_failure_counts`.
    pub release_failure_counts: Counter,
    /// `spiderpool_ipam_release_update_ippool_conflict_counts`.
    pub release_update_ippool_conflict_counts: Counter,
    /// `spiderpool_ipam_release_err_internal_counts`.
    pub release_err_internal_counts: Counter,
    /// `spiderpool_ipam_release_err_retries_exhausted_counts`.
    pub release_err_retries_exhausted_counts: Counter,
    /// `spiderpool_ipam_release_{,average_,max_,min_,latest_}duration_seconds`.
    pub release_duration: Durations,
    registry: Registry,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}

impl AgentMetrics {
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        let mut m = AgentMetrics {
            allocation_counts: Counter::default(),
            allocation_failure_counts: Counter::default(),
            allocation_update_ippool_conflict_counts: Counter::default(),
            allocation_err_internal_counts: Counter::default(),
            allocation_err_no_available_pool_counts: Counter::default(),
            allocation_err_retries_exhausted_counts: Counter::default(),
            allocation_err_ip_used_out_counts: Counter::default(),
            allocation_duration: Durations::default(),
            release_counts: Counter::default(),
            release_failure_counts: Counter::default(),
            release_update_ippool_conflict_counts: Counter::default(),
            release_err_internal_counts: Counter::default(),
            release_err_retries_exhausted_counts: Counter::default(),
            release_duration: Durations::default(),
            registry: Registry::with_prefix("spiderpool_ipam"),
        };
        // The registry holds clones: metric handles share their values.
        let r = &mut m.registry;
        for (name, help, c) in [
            (
                "allocation_counts",
                "Number of IPAM allocation requests",
                &m.allocation_counts,
            ),
            (
                "allocation_failure_counts",
                "Number of IPAM allocation failures",
                &m.allocation_failure_counts,
            ),
            (
                "allocation_update_ippool_conflict_counts",
                "Number of IPAM allocation conflicts updating an IPPool",
                &m.allocation_update_ippool_conflict_counts,
            ),
            (
                "allocation_err_internal_counts",
                "Number of IPAM allocation internal errors",
                &m.allocation_err_internal_counts,
            ),
            (
                "allocation_err_no_available_pool_counts",
                "Number of IPAM allocations that found no available IPPool",
                &m.allocation_err_no_available_pool_counts,
            ),
            (
                "allocation_err_retries_exhausted_counts",
                "Number of IPAM allocations that exhausted their retries",
                &m.allocation_err_retries_exhausted_counts,
            ),
            (
                "allocation_err_ip_used_out_counts",
                "Number of IPAM allocations that found every IPPool used out",
                &m.allocation_err_ip_used_out_counts,
            ),
            (
                "release_counts",
                "Number of IPAM release requests",
                &m.release_counts,
            ),
            (
                "release_failure_counts",
                "Number of IPAM release failures",
                &m.release_failure_counts,
            ),
            (
                "release_update_ippool_conflict_counts",
                "Number of IPAM release conflicts updating an IPPool",
                &m.release_update_ippool_conflict_counts,
            ),
            (
                "release_err_internal_counts",
                "Number of IPAM release internal errors",
                &m.release_err_internal_counts,
            ),
            (
                "release_err_retries_exhausted_counts",
                "Number of IPAM releases that exhausted their retries",
                &m.release_err_retries_exhausted_counts,
            ),
        ] {
            r.register(name, help, c.clone());
        }
        m.allocation_duration
            .register(r, "allocation", "allocation");
        m.release_duration.register(r, "release", "release");
        m
    }

    /// Counts one allocation that took `took` and ended with `result`.
    pub fn allocation<T>(&self, took: Duration, result: &Result<T, ApiError>) {
        self.allocation_counts.inc();
        self.allocation_duration.observe(took);
        let Err(e) = result else { return };
        self.allocation_failure_counts.inc();
        match FailureKind::of(e) {
            FailureKind::Conflict => self.allocation_update_ippool_conflict_counts.inc(),
            FailureKind::RetriesExhausted => self.allocation_err_retries_exhausted_counts.inc(),
            FailureKind::NoAvailablePool => self.allocation_err_no_available_pool_counts.inc(),
            FailureKind::IpUsedOut => self.allocation_err_ip_used_out_counts.inc(),
            FailureKind::Internal => self.allocation_err_internal_counts.inc(),
            FailureKind::BadRequest => 0,
        };
    }

    /// Counts one release that took `took` and ended with `result`.
    pub fn release<T>(&self, took: Duration, result: &Result<T, ApiError>) {
        self.release_counts.inc();
        self.release_duration.observe(took);
        let Err(e) = result else { return };
        self.release_failure_counts.inc();
        match FailureKind::of(e) {
            FailureKind::Conflict => self.release_update_ippool_conflict_counts.inc(),
            FailureKind::RetriesExhausted => self.release_err_retries_exhausted_counts.inc(),
            FailureKind::Internal | FailureKind::NoAvailablePool | FailureKind::IpUsedOut => {
                self.release_err_internal_counts.inc()
            }
            FailureKind::BadRequest => 0,
        };
    }

    /// The exposition in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// An [`IpamService`] that counts and times the allocations and releases of the one it wraps.
pub struct Metered {
    inner: Arc<dyn IpamService>,
    metrics: Arc<AgentMetrics>,
}

impl Metered {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn IpamService>, metrics: Arc<AgentMetrics>) -> Self {
        Metered { inner, metrics }
    }
}

impl IpamService for Metered {
    fn add(&self, args: &IpamAddArgs) -> Result<IpamAddResponse, ApiError> {
        let start = Instant::now();
        let r = self.inner.add(args);
        self.metrics.allocation(start.elapsed(), &r);
        r
    }

    fn del(&self, args: &IpamDelArgs) -> Result<(), ApiError> {
        let start = Instant::now();
        let r = self.inner.del(args);
        self.metrics.release(start.elapsed(), &r);
        r
    }

    fn batch_del(&self, args: &IpamBatchDelArgs) -> Result<(), ApiError> {
        let start = Instant::now();
        let r = self.inner.batch_del(args);
        self.metrics.release(start.elapsed(), &r);
        r
    }

    fn coordinator_config(
        &self,
        args: &GetCoordinatorArgs,
    ) -> Result<AgentCoordinatorConfig, ApiError> {
        self.inner.coordinator_config(args)
    }

    fn workload_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SpiderEndpointStatus, ApiError> {
        self.inner.workload_endpoint(namespace, name)
    }

    fn dump_json(&self) -> Result<serde_json::Value, ApiError> {
        self.inner.dump_json()
    }

    fn healthy(&self) -> Result<(), String> {
        self.inner.healthy()
    }
}

/// Serves `metrics` on `0.0.0.0:port` (any path) on a thread of its own; returns the bound
/// address (port 0 picks a free one).
pub fn spawn(port: u16, metrics: Arc<AgentMetrics>) -> std::io::Result<SocketAddr> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    tiny_server::spawn("metrics", addr, move |_req| Reply {
        status: 200,
        content_type: CONTENT_TYPE.to_owned(),
        body: metrics.encode().into_bytes(),
    })
}
