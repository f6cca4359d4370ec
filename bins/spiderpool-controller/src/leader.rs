//! Lease leader election (§7.5): replicas compete for the coordination.k8s.io/v1 Lease
//! `spiderpool-controller-leases` in the controller's namespace; the holder runs the
//! leader-only work (controllers, GC), the others wait.
//!
//! The rules, as client-go's leader election which upstream uses:
//! - a replica takes the Lease when it is absent, released (no `holderIdentity`) or expired:
//!   `renewTime + leaseDurationSeconds` is past, and this replica has seen no change of the
//!   Lease for `leaseDurationSeconds` (client-go's own test, immune to clock skew);
//! - the holder renews it every retry period; if no renewal succeeds for the renew deadline
//!   (shorter than the lease duration), it stops leading before anyone else may take over;
//! - on a clean shutdown the holder releases it ([`release`]), so another replica takes over
//!   at its next retry instead of after the lease duration;
//! - every write carries the `resourceVersion` it read, so two replicas never both win.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::{Ctx, Error, Result};

/// Upstream's Lease name.
pub const LEASE_NAME: &str = "spiderpool-controller-leases";

/// How long [`release`] waits for the apiserver.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The namespace when `SPIDERPOOL_POD_NAMESPACE` is unset (out of cluster): where upstream's
/// chart installs Spiderpool.
pub const DEFAULT_NAMESPACE: &str = "kube-system";

/// Flags and environment of the election.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "leader")]
pub struct Args {
    /// Namespace of the Lease: the controller's own (downward API); default kube-system.
    #[arg(
        id = "leader_namespace",
        long = "leader-namespace",
        env = "SPIDERPOOL_POD_NAMESPACE",
        value_name = "NS"
    )]
    pub namespace: Option<String>,
    /// This replica's identity in the Lease: its pod name; default `<hostname>_<pid>`.
    #[arg(
        id = "leader_identity",
        long = "leader-identity",
        env = "SPIDERPOOL_POD_NAME",
        value_name = "NAME"
    )]
    pub identity: Option<String>,
    /// How long a Lease stays valid after its last renewal (seconds, whole).
    #[arg(
        id = "leader_duration",
        long = "leader-duration",
        env = "SPIDERPOOL_LEADER_DURATION",
        default_value = "15",
        value_parser = parse_secs,
        value_name = "SECONDS",
    )]
    pub duration: Duration,
    /// How long the holder keeps leading without a successful renewal (seconds).
    #[arg(
        id = "leader_renew_deadline",
        long = "leader-renew-deadline",
        env = "SPIDERPOOL_LEADER_RENEW_DEADLINE",
        default_value = "10",
        value_parser = parse_secs,
        value_name = "SECONDS",
    )]
    pub renew_deadline: Duration,
    /// How often the holder renews and the others try to acquire (seconds).
    #[arg(
        id = "leader_retry_period",
        long = "leader-retry-period",
        env = "SPIDERPOOL_LEADER_RETRY_PERIOD",
        default_value = "2",
        value_parser = parse_secs,
        value_name = "SECONDS",
    )]
    pub retry_period: Duration,
    /// Pause before leader-only work starts again after it failed (seconds). Upstream's loops
    /// poll their leadership at this gap; here a change of leadership reaches the work at once.
    #[arg(
        id = "leader_retry_gap",
        long = "leader-retry-gap",
        env = "SPIDERPOOL_LEADER_RETRY_GAP",
        default_value = "1",
        value_parser = parse_secs,
        value_name = "SECONDS",
    )]
    pub retry_gap: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            namespace: None,
            identity: None,
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            retry_gap: Duration::from_secs(1),
        }
    }
}

impl Args {
    /// The Lease's namespace.
    pub fn namespace(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => ns.clone(),
            _ => DEFAULT_NAMESPACE.to_owned(),
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> String {
        match &self.identity {
            Some(id) if !id.is_empty() => id.clone(),
            _ => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_default();
                let host = if host.is_empty() {
                    "localhost".to_owned()
                } else {
                    host
                };
                format!("{host}_{}", std::process::id())
            }
        }
    }

    /// The timings must nest as client-go requires: retry period < renew deadline < duration.
    pub fn check(&self) -> Result<()> {
        if self.duration < Duration::from_secs(1) {
            return Err(Error::Config(
                "SPIDERPOOL_LEADER_DURATION must be at least 1 second".to_owned(),
            ));
        }
        if self.renew_deadline >= self.duration {
            return Err(Error::Config(format!(
                "SPIDERPOOL_LEADER_RENEW_DEADLINE ({:?}) must be shorter than SPIDERPOOL_LEADER_DURATION ({:?})",
                self.renew_deadline, self.duration
            )));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(Error::Config(format!(
                "SPIDERPOOL_LEADER_RETRY_PERIOD ({:?}) must be above zero and shorter than SPIDERPOOL_LEADER_RENEW_DEADLINE ({:?})",
                self.retry_period, self.renew_deadline
            )));
        }
        Ok(())
    }
}

/// Seconds, whole or fractional (`15`, `0.5`).
fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?} is not a number of seconds ≥ 0"))
}

/// Runs `work` while this replica holds the Lease; drops it when the Lease is lost and runs it
/// again when won back. Returns only on an error that ends the process (an invalid argument,
/// or `work` failing). Dropping the future stops electing without releasing: call [`release`]
/// on a clean shutdown.
pub async fn run_while_leader<F, Fut>(ctx: Ctx, args: Args, work: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    args.check()?;
    let elector = Elector::new(&ctx, &args);
    log::info!(
        "leader election: Lease {}/{LEASE_NAME} as {:?}",
        elector.namespace,
        elector.identity
    );
    let (tx, rx) = watch::channel(false);
    // One future holds both halves, so dropping it (a kill in tests) stops both.
    tokio::select! {
        r = elector.run(&ctx, tx) => r,
        r = lead(rx, &args, work) => r,
    }
}

/// Runs `work` each time `leading` turns true, drops it when it turns false.
async fn lead<F, Fut>(mut leading: watch::Receiver<bool>, args: &Args, work: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    loop {
        if !until(&mut leading, true).await {
            return Ok(());
        }
        log::info!("leading: starting the leader-only work");
        let mut lost = leading.clone();
        tokio::select! {
            r = work() => {
                r?;
                // The work has nothing more to do; keep the Lease (others must not start it).
                until(&mut leading, false).await;
            }
            _ = until(&mut lost, false) => {}
        }
        log::warn!("lost the Lease: leader-only work stopped");
        tokio::time::sleep(args.retry_gap).await;
    }
}

/// Waits until the flag equals `want`; false if the sender is gone. (The guard `wait_for`
/// returns is not `Send`: it must not live across an await.)
async fn until(rx: &mut watch::Receiver<bool>, want: bool) -> bool {
    rx.wait_for(|l| *l == want).await.is_ok()
}

struct Elector {
    api: Api<Lease>,
    namespace: String,
    identity: String,
    duration_secs: i32,
    renew_deadline: Duration,
    retry_period: Duration,
}

/// The Lease version this replica last saw and since when it has not changed.
struct Seen {
    version: String,
    since: Instant,
}

/// What one attempt found.
enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Leading,
    /// Someone else holds a valid Lease.
    Follower(String),
}

impl Elector {
    fn new(ctx: &Ctx, args: &Args) -> Self {
        let namespace = args.namespace();
        Elector {
            api: Api::namespaced(ctx.client.clone(), &namespace),
            namespace,
            identity: args.identity(),
            duration_secs: i32::try_from(args.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
        }
    }

    async fn run(&self, ctx: &Ctx, leading: watch::Sender<bool>) -> Result<()> {
        let mut last_renewal: Option<Instant> = None;
        let mut observed: Option<String> = None;
        let mut seen: Option<Seen> = None;
        loop {
            match self.attempt(&mut seen).await {
                Ok(Attempt::Leading) => {
                    if last_renewal.is_none() {
                        log::info!("acquired the Lease {}/{LEASE_NAME}", self.namespace);
                    }
                    last_renewal = Some(Instant::now());
                    observed = None;
                    ctx.health.leader_known.store(true, Ordering::Relaxed);
                    ctx.health.is_leader.store(true, Ordering::Relaxed);
                    leading.send_replace(true);
                }
                Ok(Attempt::Follower(holder)) => {
                    if last_renewal.take().is_some() {
                        log::warn!("{holder} took the Lease: no longer leading");
                    }
                    if observed.as_deref() != Some(holder.as_str()) {
                        log::info!("the leader is {holder}");
                        observed = Some(holder);
                    }
                    ctx.health.leader_known.store(true, Ordering::Relaxed);
                    ctx.health.is_leader.store(false, Ordering::Relaxed);
                    leading.send_replace(false);
                }
                Err(e) => {
                    log::warn!("leader election: {e}");
                    // Keep leading through errors only up to the renew deadline, which ends
                    // before the Lease expires for the others.
                    if last_renewal.is_some_and(|t| t.elapsed() >= self.renew_deadline) {
                        log::warn!(
                            "could not renew the Lease within the renew deadline: no longer leading"
                        );
                        last_renewal = None;
                        ctx.health.is_leader.store(false, Ordering::Relaxed);
                        leading.send_replace(false);
                    }
                    if last_renewal.is_none() {
                        ctx.health.leader_known.store(false, Ordering::Relaxed);
                    }
                }
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// One try to acquire or renew; errors are the apiserver's, including lost races (409).
    /// `seen` remembers when this replica last saw the Lease change.
    async fn attempt(&self, seen: &mut Option<Seen>) -> Result<Attempt> {
        let now = MicroTime(Timestamp::now());
        let what = || format!("Lease {}/{LEASE_NAME}", self.namespace);
        let Some(mut lease) = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(|e| Error::api(format!("get {}", what()), e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_owned()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.api
                .create(&PostParams::default(), &lease)
                .await
                .map_err(|e| Error::api(format!("create {}", what()), e))?;
            return Ok(Attempt::Leading);
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_since = match seen.take() {
            Some(s) if s.version == version => s.since,
            _ => Instant::now(),
        };
        *seen = Some(Seen {
            version,
            since: unchanged_since,
        });
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        // Expired by the holder's clock (renewTime) and by ours (no change seen for the
        // duration, as client-go judges it), so a clock running ahead steals nothing.
        let expired = expired(spec, &now)
            && unchanged_since.elapsed()
                >= Duration::from_secs(u64::from(
                    spec.lease_duration_seconds.unwrap_or(0).unsigned_abs(),
                ));
        match holder {
            Some(h) if h == self.identity => {}
            Some(h) if !expired => return Ok(Attempt::Follower(h)),
            // Absent, released or expired: take it over.
            _ => {
                spec.holder_identity = Some(self.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(self.duration_secs);
        // `replace` sends the resourceVersion read above: a concurrent writer makes it a 409.
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
            .map_err(|e| Error::api(format!("update {}", what()), e))?;
        Ok(Attempt::Leading)
    }
}

/// `renewTime + leaseDurationSeconds` is past (a Lease without them counts as expired).
fn expired(spec: &LeaseSpec, now: &MicroTime) -> bool {
    let (Some(renew), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renew
        .0
        .as_millisecond()
        .saturating_add(i64::from(secs) * 1000)
        < now.0.as_millisecond()
}

/// Releases the Lease if this replica holds it (clears `holderIdentity`, as client-go's
/// release-on-cancel), so another replica takes over at its next retry. Best effort: a failure
/// is logged, the Lease then expires by itself.
pub async fn release(ctx: &Ctx, args: &Args) {
    let namespace = args.namespace();
    let identity = args.identity();
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = async {
        let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(identity.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        api.replace(LEASE_NAME, &PostParams::default(), &lease)
            .await?;
        Ok::<_, kube::Error>(true)
    };
    // Shutdown must not hang on an unreachable apiserver.
    let result = match tokio::time::timeout(RELEASE_TIMEOUT, result).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {RELEASE_TIMEOUT:?}")),
    };
    ctx.health.is_leader.store(false, Ordering::Relaxed);
    match result {
        Ok(true) => log::info!("released the Lease {namespace}/{LEASE_NAME}"),
        Ok(false) => {}
        Err(e) => log::warn!("could not release the Lease {namespace}/{LEASE_NAME}: {e}"),
    }
}
