//! Prometheus metrics with upstream's names. TODO(issue 8): being written.

use crate::{Ctx, Result};

/// The controller's metrics.
#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        Metrics::default()
    }
}

/// Flags and environment of the metrics endpoint.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "metrics")]
pub struct Args {}

/// Serves `/metrics` until the process ends.
pub async fn serve(ctx: Ctx, args: Args) -> Result<()> {
    let _ = (ctx, args);
    std::future::pending().await
}
