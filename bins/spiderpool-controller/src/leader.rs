//! Lease leader election. TODO(issue 8): being written; for now every replica leads.

use std::future::Future;

use crate::{Ctx, Result};

/// Flags and environment of the election.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "leader")]
pub struct Args {}

/// Runs `work` while this replica holds the Lease; drops it when the Lease is lost and runs it
/// again when won back. Returns only on an error that ends the process.
pub async fn run_while_leader<F, Fut>(ctx: Ctx, args: Args, work: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let _ = (ctx, args);
    work().await
}
