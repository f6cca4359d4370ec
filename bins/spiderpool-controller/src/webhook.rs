//! Admission webhooks over HTTPS. TODO(issue 8): being written.

use crate::{Ctx, Result};

/// Flags and environment of the webhook server.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "webhook")]
pub struct Args {}

/// Serves the webhooks (and registers them) until the process ends.
pub async fn serve(ctx: Ctx, args: Args) -> Result<()> {
    let _ = (ctx, args);
    std::future::pending().await
}
