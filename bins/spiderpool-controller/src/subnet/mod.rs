//! SpiderSubnet controllers (leader only, spec §1.2 and §3.12).
//!
//! * [`status`]: per subnet: the `subnet-cidr` label, adoption of the pools with the subnet's
//!   CIDR (controller ownerReference, `owner-spider-subnet` label, gateway and routes
//!   inherited), `status.controlledIPPools` (a JSON string, as upstream) with
//!   `totalIPCount` / `allocatedIPCount`, and deletion (owned pools first, then the finalizer).
//! * [`app`]: auto-created pools for Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs
//!   and CronJobs whose pod template carries `ipam.spidernet.io/subnet(s)`: created with the
//!   labels the agents look for, sized to the replicas plus `ippool-ip-number`, grown and
//!   shrunk with the workload, deleted with it (`ippool-reclaim`, default true).
//! * [`plan`]: the pure part (names, labels, sizes, which addresses come and go).
//!
//! Every change of a subnet's `controlledIPPools` and of the addresses of its auto-created
//! pools happens under one lock per subnet inside this process (the controllers run on the
//! leader only), and every write is resourceVersion-checked, so two pools never receive the
//! same free address. Pool specs are written with a JSON merge patch of `spec` carrying the
//! resourceVersion read: the agents write the pool's `status.blocks` concurrently, and a
//! block claimed after the read makes the write fail (409) instead of taking the claimed
//! address away.

pub mod app;
pub mod plan;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ippool::parse_secs;
use crate::{Ctx, Result};

/// Flags and environment of this component.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "subnet")]
pub struct Args {
    /// The SpiderSubnet feature (upstream's ConfigMap `enableSpiderSubnet`, Helm
    /// `ipam.spiderSubnet.enable`, default true). When false this component does nothing.
    #[arg(
        id = "enable_spider_subnet",
        long = "enable-spider-subnet",
        env = "SPIDERPOOL_ENABLE_SPIDER_SUBNET",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub enabled: bool,
    /// Auto-created pools for applications (upstream's ConfigMap
    /// `enableAutoPoolForApplication`, Helm `ipam.spiderSubnet.autoPool.enable`, default true).
    #[arg(
        id = "enable_auto_pool",
        long = "enable-auto-pool",
        env = "SPIDERPOOL_ENABLE_AUTO_POOL_FOR_APPLICATION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub auto_pool: bool,
    /// Every subnet (and every application) is reconciled again after this long (seconds).
    #[arg(
        id = "subnet_resync_period",
        long = "subnet-resync-period",
        env = "SPIDERPOOL_SUBNET_INFORMER_RESYNC_PERIOD",
        default_value = "300",
        value_parser = parse_secs,
        value_name = "SECONDS"
    )]
    pub resync_period: Duration,
    /// How many subnets are reconciled at the same time.
    #[arg(
        id = "subnet_workers",
        long = "subnet-workers",
        env = "SPIDERPOOL_SUBNET_INFORMER_WORKERS",
        default_value = "5",
        value_parser = clap::value_parser!(u16).range(1..),
        value_name = "N"
    )]
    pub workers: u16,
    /// Pause before a failed reconcile is tried again (seconds).
    #[arg(
        id = "subnet_retry_delay",
        long = "subnet-retry-delay",
        env = "SPIDERPOOL_WORKQUEUE_RETRY_DELAY_DURATION",
        default_value = "5",
        value_parser = parse_secs,
        value_name = "SECONDS"
    )]
    pub retry_delay: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            enabled: true,
            auto_pool: true,
            resync_period: Duration::from_secs(300),
            workers: 5,
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// Why a subnet or an application could not be brought to its wanted state.
#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    /// A call to the apiserver failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The object cannot be used as it is (bad annotation, unreadable spec, missing subnet);
    /// reported as a Warning Event and retried only when it changes (or at the resync).
    #[error("{0}")]
    Invalid(String),
    /// Something the application needs is not there yet (its SpiderSubnet); retried after the
    /// delay.
    #[error("{0}")]
    NotReady(String),
    /// The pool cannot be sized now (not enough free addresses); retried after the delay.
    #[error("{0}")]
    Resize(#[from] plan::ResizeError),
    /// Others kept writing the same objects; retried after the delay.
    #[error("{0}: still conflicting after several attempts")]
    Busy(String),
}

impl SubnetError {
    pub(crate) fn api(what: impl Into<String>, source: kube::Error) -> Self {
        SubnetError::Api {
            what: what.into(),
            source,
        }
    }
}

/// One async lock per subnet: the app and subnet controllers change a subnet's records and
/// its auto-created pools' addresses only while holding it.
#[derive(Default)]
pub(crate) struct SubnetLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl SubnetLocks {
    pub(crate) fn of(&self, subnet: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.0.lock() {
            Ok(mut m) => m.entry(subnet.to_owned()).or_default().clone(),
            // A poisoned map only means a panic elsewhere; a fresh lock is still correct for
            // this process's single leader.
            Err(p) => p.into_inner().entry(subnet.to_owned()).or_default().clone(),
        }
    }
}

/// Runs the component until it fails or is dropped (leader-only components are dropped when
/// the Lease is lost); never returns when the feature is disabled.
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    if !args.enabled {
        log::info!("SpiderSubnet controllers: disabled (--enable-spider-subnet=false)");
        return std::future::pending().await;
    }
    let locks = Arc::new(SubnetLocks::default());
    let apps = async {
        if args.auto_pool {
            app::run(ctx.clone(), args.clone(), locks.clone()).await
        } else {
            log::info!("SpiderSubnet auto-created pools: disabled (--enable-auto-pool=false)");
            std::future::pending().await
        }
    };
    tokio::try_join!(status::run(ctx.clone(), args.clone(), locks.clone()), apps)?;
    Ok(())
}
