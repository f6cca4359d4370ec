//! SpiderCoordinator status (leader only): the cluster's pod and service CIDRs in the default
//! SpiderCoordinator's `status` (`overlayPodCIDR`, `serviceCIDR`, `phase: Synced`), or
//! `phase: NotReady` with a `reason` that says what to fix (spec §5).
//!
//! | module | what |
//! |---|---|
//! | [`cidrs`] | reading CIDRs out of kubeadm's ClusterConfiguration, kube-controller-manager flags, Cilium's ConfigMap; detecting the CNI (pure) |
//! | [`status`] | the status from what was found, per `podCIDRType` (pure) |
//! | [`sources`] | reading those inputs from the apiserver |
//!
//! One loop recomputes the whole status whenever something it depends on changes: the
//! coordinator, `kube-system/kubeadm-config`, Cilium's ConfigMap, kube-controller-manager
//! Pods, ServiceCIDRs, and Calico IPPools / CiliumPodIPPools once their CRDs are served (a CRD
//! installed later is picked up at the next periodic resync). Changes are debounced, and the
//! status is written only when it differs, with the resourceVersion that was read (a
//! conflicting write is simply recomputed).

pub mod cidrs;
pub mod sources;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use spiderpool_core::objects::{COORDINATOR, CoordinatorStatus, PHASE_NOT_READY};
use spiderpool_k8s::kinds::api_resource;
use tokio::sync::Notify;

use crate::{Ctx, Error, Result};
use sources::{Places, Served};

/// Flags and environment of this component.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "coordinator")]
pub struct Args {
    /// Keep the SpiderCoordinator's status (upstream's default is false, its chart sets true).
    #[arg(
        id = "coordinator_enabled",
        long = "coordinator-enabled",
        env = "SPIDERPOOL_COORDINATOR_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
    )]
    pub enabled: bool,
    /// Name of the SpiderCoordinator to keep (upstream's env name, misspelling included).
    #[arg(
        id = "coordinator_name",
        long = "coordinator-name",
        env = "SPIDERPOOL_COORDINATOR_DEAFULT_NAME",
        default_value = "default",
        value_name = "NAME"
    )]
    pub name: String,
    /// Full recompute at least this often (seconds); also when CRDs installed later are
    /// picked up.
    #[arg(
        id = "coordinator_resync",
        long = "coordinator-resync-period",
        env = "SPIDERPOOL_COORDINATOR_INFORMER_RESYNC_PERIOD",
        default_value = "60",
        value_parser = parse_secs,
        value_name = "SECONDS"
    )]
    pub resync: Duration,
    /// Where the node's CNI configuration lives (host-mounted), for `podCIDRType: auto`.
    #[arg(
        id = "coordinator_cni_config_dir",
        long = "cni-config-dir",
        env = "SPIDERPOOL_CNI_CONFIG_DIR",
        default_value = "/etc/cni/net.d",
        value_name = "DIR"
    )]
    pub cni_config_dir: PathBuf,
    /// Cilium's ConfigMap as `namespace/name`.
    #[arg(
        id = "coordinator_cilium_config",
        long = "cilium-configmap",
        env = "SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME",
        default_value = "kube-system/cilium-config",
        value_name = "NAMESPACE/NAME"
    )]
    pub cilium_config: String,
    /// Quiet time after a change before recomputing (seconds), so a burst is one write.
    #[arg(
        id = "coordinator_debounce",
        long = "coordinator-debounce",
        default_value = "0.2",
        value_parser = parse_secs,
        value_name = "SECONDS",
        hide = true
    )]
    pub debounce: Duration,
}

impl Args {
    /// Upstream's defaults.
    pub fn new() -> Self {
        Args {
            enabled: true,
            name: "default".to_owned(),
            resync: Duration::from_secs(60),
            cni_config_dir: PathBuf::from("/etc/cni/net.d"),
            cilium_config: "kube-system/cilium-config".to_owned(),
            debounce: Duration::from_millis(200),
        }
    }

    fn check(&self) -> Result<()> {
        match self.cilium_config.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {}
            _ => {
                return Err(Error::Config(format!(
                    "SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME / --cilium-configmap {:?}: \
                     expected namespace/name",
                    self.cilium_config
                )));
            }
        }
        if self.resync.is_zero() {
            return Err(Error::Config(
                "SPIDERPOOL_COORDINATOR_INFORMER_RESYNC_PERIOD must be > 0".to_owned(),
            ));
        }
        if self.name.is_empty() {
            return Err(Error::Config(
                "SPIDERPOOL_COORDINATOR_DEAFULT_NAME is empty".to_owned(),
            ));
        }
        Ok(())
    }
}

impl Default for Args {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds, whole or fractional (`60`, `0.5`).
fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?} is not a number of seconds ≥ 0"))
}

/// What one recompute did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The coordinator does not exist: nothing to do.
    NoCoordinator,
    /// The status already said this.
    Unchanged(CoordinatorStatus),
    /// The status was written.
    Written(CoordinatorStatus),
    /// Someone else wrote the coordinator in between: recompute.
    Conflict,
}

/// What one recompute found and did.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was done.
    pub outcome: Outcome,
    /// Which optional resources are served.
    pub served: Served,
    /// The coordinator's `spec.podCIDRType` and reference (for events), when it exists.
    pub seen: Option<(Option<String>, ObjectReference)>,
}

/// Reads everything and writes the status if it changed.
pub async fn sync_once(client: &Client, args: &Args) -> Result<Report> {
    let places = Places {
        coordinator: &args.name,
        cilium_config: &args.cilium_config,
        cni_dir: &args.cni_config_dir,
    };
    let Some(snap) = sources::read(client, &places).await? else {
        return Ok(Report {
            outcome: Outcome::NoCoordinator,
            served: Served::default(),
            seen: None,
        });
    };
    let resource = api_resource(&COORDINATOR);
    let wanted = status::compute(&snap.inputs);
    let sources::Coordinator {
        object: obj,
        pod_cidr_type,
        status: current,
    } = snap.coordinator;
    let report = |outcome| Report {
        outcome,
        served: snap.served,
        seen: Some((pod_cidr_type.clone(), obj.object_ref(&resource))),
    };
    if current.as_ref() == Some(&wanted) {
        return Ok(report(Outcome::Unchanged(wanted)));
    }
    let value = serde_json::to_value(&wanted)
        .map_err(|e| Error::Config(format!("encode SpiderCoordinator status: {e}")))?;
    let mut updated = obj.clone();
    if let Some(map) = updated.data.as_object_mut() {
        map.insert("status".to_owned(), value);
    }
    // The whole object goes back with the resourceVersion read: a write that raced another
    // one is refused (409) instead of overwriting newer data.
    updated.metadata.managed_fields = None;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    match api
        .replace_status(&args.name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(report(Outcome::Written(wanted))),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(report(Outcome::Conflict)),
        Err(e) => Err(Error::api(
            format!("write SpiderCoordinator {} status", args.name),
            e,
        )),
    }
}

/// Records upstream's events on the coordinator: `PodCIDRTypeChanged` (Normal) when
/// `spec.podCIDRType` changed since the last recompute, and `ClusterNotReady` /
/// `CiliumNotReady` (Warning, with the reason) when the status was just written NotReady.
/// Best effort: a failed event is only logged.
async fn record_events(events: &Recorder, report: &Report, last_type: &mut Option<Option<String>>) {
    let Some((ty, reference)) = &report.seen else {
        *last_type = None;
        return;
    };
    let mut out = Vec::new();
    if let Some(before) = last_type.as_ref().filter(|before| *before != ty) {
        out.push(Event {
            type_: EventType::Normal,
            reason: "PodCIDRTypeChanged".to_owned(),
            note: Some(format!(
                "podCIDRType changed from {} to {}",
                before.as_deref().unwrap_or("(unset)"),
                ty.as_deref().unwrap_or("(unset)")
            )),
            action: "Sync".to_owned(),
            secondary: None,
        });
    }
    *last_type = Some(ty.clone());
    if let Outcome::Written(s) = &report.outcome
        && s.phase == PHASE_NOT_READY
    {
        let mut note = s.reason.clone().unwrap_or_default();
        note.truncate(1000);
        out.push(Event {
            type_: EventType::Warning,
            reason: if ty.as_deref() == Some("cilium") {
                "CiliumNotReady"
            } else {
                "ClusterNotReady"
            }
            .to_owned(),
            note: Some(note),
            action: "Sync".to_owned(),
            secondary: None,
        });
    }
    for ev in out {
        if let Err(e) = events.publish(&ev, reference).await {
            log::debug!("event {} on SpiderCoordinator: {e}", ev.reason);
        }
    }
}

/// Spawns a watch whose every event pokes `wake`; it lives as long as the returned handle.
fn poke_on_change<K>(api: Api<K>, cfg: watcher::Config, wake: Arc<Notify>, what: String) -> Task
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    Task(tokio::spawn(async move {
        let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => wake.notify_one(),
                Err(e) => log::debug!("watch {what}: {e}"),
            }
        }
    }))
}

/// A spawned watch, stopped when dropped (so losing the Lease stops every watch).
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the component until it fails or is dropped (leader-only components are dropped when
/// the Lease is lost).
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    args.check()?;
    if !args.enabled {
        log::info!("SpiderCoordinator status: disabled (SPIDERPOOL_COORDINATOR_ENABLED=false)");
        return std::future::pending().await;
    }
    let client = ctx.client.clone();
    let wake = Arc::new(Notify::new());
    let field = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (cilium_ns, cilium_name) = args
        .cilium_config
        .split_once('/')
        .unwrap_or(("kube-system", "cilium-config"));
    let mut tasks = vec![
        poke_on_change(
            Api::<DynamicObject>::all_with(client.clone(), &api_resource(&COORDINATOR)),
            field(&args.name),
            wake.clone(),
            "SpiderCoordinator".to_owned(),
        ),
        poke_on_change(
            Api::<ConfigMap>::namespaced(client.clone(), sources::KUBEADM_CONFIG.0),
            field(sources::KUBEADM_CONFIG.1),
            wake.clone(),
            "kubeadm-config".to_owned(),
        ),
        poke_on_change(
            Api::<ConfigMap>::namespaced(client.clone(), cilium_ns),
            field(cilium_name),
            wake.clone(),
            args.cilium_config.clone(),
        ),
        poke_on_change(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(sources::KCM_SELECTOR),
            wake.clone(),
            "kube-controller-manager Pods".to_owned(),
        ),
    ];
    // Optional resources get a watch once a read finds them served.
    let mut watching = Served::default();
    // Held for the loop's lifetime: dropping the future stops it with the watches.
    let _resync = {
        let wake = wake.clone();
        let period = args.resync;
        Task(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                wake.notify_one();
            }
        }))
    };
    let events = crate::ippool::recorder(&ctx);
    let mut last_type = None;
    let mut failures: u32 = 0;
    loop {
        wake.notified().await;
        tokio::time::sleep(args.debounce).await;
        match sync_once(&client, &args).await {
            Ok(report) => {
                failures = 0;
                match &report.outcome {
                    Outcome::Written(s) => log::info!(
                        "SpiderCoordinator {}: phase {}{}, overlayPodCIDR {:?}, serviceCIDR {:?}",
                        args.name,
                        s.phase,
                        s.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        s.overlay_pod_cidr.as_deref().unwrap_or_default(),
                        s.service_cidr.as_deref().unwrap_or_default(),
                    ),
                    Outcome::Conflict => wake.notify_one(),
                    Outcome::Unchanged(_) | Outcome::NoCoordinator => {}
                }
                record_events(&events, &report, &mut last_type).await;
                start_optional_watches(&client, report.served, &mut watching, &mut tasks, &wake);
            }
            Err(e) => {
                // An apiserver hiccup: keep the status as it is and try again, backing off.
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(500)
                    .saturating_mul(1 << failures.min(6))
                    .min(Duration::from_secs(30));
                log::warn!(
                    "SpiderCoordinator {}: {e}; retrying in {delay:?}",
                    args.name
                );
                tokio::time::sleep(delay).await;
                wake.notify_one();
            }
        }
    }
}

fn start_optional_watches(
    client: &Client,
    served: Served,
    watching: &mut Served,
    tasks: &mut Vec<Task>,
    wake: &Arc<Notify>,
) {
    let all = watcher::Config::default;
    if served.calico && !watching.calico {
        watching.calico = true;
        tasks.push(poke_on_change(
            Api::<DynamicObject>::all_with(client.clone(), &sources::calico_ippool()),
            all(),
            wake.clone(),
            "Calico IPPools".to_owned(),
        ));
    }
    if served.cilium_pools && !watching.cilium_pools {
        watching.cilium_pools = true;
        tasks.push(poke_on_change(
            Api::<DynamicObject>::all_with(client.clone(), &sources::cilium_pod_ippool()),
            all(),
            wake.clone(),
            "CiliumPodIPPools".to_owned(),
        ));
    }
    if served.service_cidrs && !watching.service_cidrs {
        watching.service_cidrs = true;
        tasks.push(poke_on_change(
            Api::<ServiceCIDR>::all(client.clone()),
            all(),
            wake.clone(),
            "ServiceCIDRs".to_owned(),
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_settings_are_refused_at_start() {
        assert!(Args::new().check().is_ok());
        for bad in ["cilium-config", "/cilium-config", "kube-system/", "a/b/c"] {
            let args = Args {
                cilium_config: bad.to_owned(),
                ..Args::new()
            };
            let err = args.check().unwrap_err().to_string();
            assert!(
                err.contains("SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME"),
                "{err}"
            );
        }
        let zero = Args {
            resync: Duration::ZERO,
            ..Args::new()
        };
        assert!(zero.check().is_err());
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_secs("-1").is_err() && parse_secs("soon").is_err());
    }
}
