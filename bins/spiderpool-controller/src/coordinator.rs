//! TODO(issue 8): being written.

use crate::{Ctx, Result};

/// Flags and environment of this component.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "coordinator")]
pub struct Args {}

/// Runs the component until it fails or is dropped (leader-only components are dropped when
/// the Lease is lost).
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    let _ = (ctx, args);
    std::future::pending().await
}
