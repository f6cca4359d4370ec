//! Health probes (§7.5, §8.1) on `--health-port` / `SPIDERPOOL_HEALTH_PORT` (5720; 0 turns
//! them off): `GET /v1/runtime/startup`, `/v1/runtime/readiness`, `/v1/runtime/liveness`,
//! 200 with `ok` or 500 with the reason, as upstream's rules with the facts our components
//! report in [`Health`]:
//!
//! - startup: start-up finished: the admission webhook answers ([`Health::webhook_serving`]),
//!   as upstream's start-up ends by waiting for its own webhook, or [`Health::started`] is set;
//! - liveness: the admission webhook serves ([`Health::webhook_serving`]);
//! - readiness: the webhook serves, a leader is known ([`Health::leader_known`]), and, on the
//!   leader, the GC's pod cache is not still syncing ([`Health::gc_pending`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use spiderpool_plugin_support::http::tiny_server::{self, Reply};

use crate::{Ctx, Error, Result};

/// Upstream's default probe port of the controller.
pub const DEFAULT_HEALTH_PORT: u16 = 5720;
/// Start-up probe path.
pub const PATH_STARTUP: &str = "/v1/runtime/startup";
/// Readiness probe path.
pub const PATH_READINESS: &str = "/v1/runtime/readiness";
/// Liveness probe path.
pub const PATH_LIVENESS: &str = "/v1/runtime/liveness";

/// What the probes report; each component sets its part (all start false).
#[derive(Debug, Default)]
pub struct Health {
    /// Start-up finished, whatever the webhook says (for a binary that runs without it).
    pub started: AtomicBool,
    /// The admission webhook answers (set by [`crate::webhook`]).
    pub webhook_serving: AtomicBool,
    /// A leader is known: this replica leads, or another replica's Lease is valid (set by
    /// [`crate::leader`]).
    pub leader_known: AtomicBool,
    /// This replica holds the Lease (set by [`crate::leader`]).
    pub is_leader: AtomicBool,
    /// The GC runs here and its pod cache has not synced yet (set by [`crate::gc`]); only
    /// the leader's readiness depends on it.
    pub gc_pending: AtomicBool,
}

impl Health {
    /// The start-up probe's verdict: `Err` holds the reason.
    pub fn startup(&self) -> std::result::Result<(), String> {
        if self.started.load(Ordering::Relaxed) || self.webhook_serving.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("start-up has not finished".to_owned())
        }
    }

    /// The liveness probe's verdict.
    pub fn liveness(&self) -> std::result::Result<(), String> {
        if self.webhook_serving.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("the admission webhook is not serving".to_owned())
        }
    }

    /// The readiness probe's verdict.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        self.liveness()?;
        if !self.leader_known.load(Ordering::Relaxed) {
            return Err("no leader is known".to_owned());
        }
        if self.is_leader.load(Ordering::Relaxed) && self.gc_pending.load(Ordering::Relaxed) {
            return Err("the garbage collector's pod cache has not synced".to_owned());
        }
        Ok(())
    }

    /// The answer to a probe `path`.
    pub fn answer(&self, path: &str) -> Reply {
        let verdict = match path {
            PATH_STARTUP => self.startup(),
            PATH_LIVENESS => self.liveness(),
            PATH_READINESS => self.readiness(),
            other => return Reply::text(404, format!("no probe at {other}")),
        };
        match verdict {
            Ok(()) => Reply::text(200, "ok"),
            Err(why) => Reply::text(500, why),
        }
    }
}

/// Flags and environment of the probes.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "probes")]
pub struct Args {
    /// TCP port of the probes (all addresses); 0 turns them off.
    #[arg(
        id = "health_port",
        long = "health-port",
        env = "SPIDERPOOL_HEALTH_PORT",
        default_value_t = DEFAULT_HEALTH_PORT,
        value_name = "PORT",
    )]
    pub port: u16,
}

/// Starts answering probes on `0.0.0.0:port` on a thread of its own; returns the bound
/// address (here port 0 picks a free one; [`serve`] treats 0 as "off").
pub fn spawn(health: Arc<Health>, port: u16) -> Result<SocketAddr> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let bound = tiny_server::spawn("probes", addr, move |req| health.answer(&req.path))
        .map_err(|e| Error::io(format!("probes: cannot listen on {addr}"), e))?;
    log::info!("probes on http://{bound}/v1/runtime/*");
    Ok(bound)
}

/// Serves the probes until the process ends (returns at once with an error if the port
/// cannot be bound; never returns when turned off).
pub async fn serve(ctx: Ctx, args: Args) -> Result<()> {
    if args.port != 0 {
        spawn(ctx.health.clone(), args.port)?;
    }
    std::future::pending().await
}
