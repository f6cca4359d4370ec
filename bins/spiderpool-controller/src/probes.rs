//! Health probes. TODO(issue 8): being written.

use std::sync::atomic::AtomicBool;

use crate::{Ctx, Result};

/// What the probes report; components set their part.
#[derive(Debug, Default)]
pub struct Health {
    /// Start-up finished (webhook serving, caches synced).
    pub started: AtomicBool,
    /// A leader is known.
    pub leader_known: AtomicBool,
}

/// Flags and environment of the probes.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "probes")]
pub struct Args {}

/// Serves the probes until the process ends.
pub async fn serve(ctx: Ctx, args: Args) -> Result<()> {
    let _ = (ctx, args);
    std::future::pending().await
}
