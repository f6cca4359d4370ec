//! What every component shares.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::probes::Health;

/// Shared by every component of one controller process.
#[derive(Clone)]
pub struct Ctx {
    /// The apiserver.
    pub client: kube::Client,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// What the probes report.
    pub health: Arc<Health>,
}

impl Ctx {
    /// A context over `client` with fresh metrics and health.
    pub fn new(client: kube::Client) -> Self {
        Ctx {
            client,
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
        }
    }
}
