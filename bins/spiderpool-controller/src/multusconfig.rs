//! SpiderMultusConfig → Multus NetworkAttachmentDefinition (leader only, spec §6).
//!
//! For every SpiderMultusConfig (SMC) the NAD that `spiderpool_core::multus::render_nad`
//! renders is kept in place: same namespace, name = annotation `multus.spidernet.io/cr-name`
//! or the SMC's name, all of the SMC's annotations, a controller ownerReference to the SMC and
//! `spec.config` byte-for-byte as upstream writes it. A NAD edited or deleted by hand is put
//! back (its events wake its owner's reconcile).
//!
//! The SMC is defaulted with the mutating webhook's rules before rendering, so an SMC written
//! while no webhook was registered renders as it would have after admission.
//!
//! **Deletion.** Upstream relies on Kubernetes' garbage collector (the ownerReference) and puts
//! no finalizer on the SMC. We keep the ownerReference for real clusters and, in addition,
//! delete the NAD ourselves when the SMC's delete event arrives, and at every (re)start of the
//! SMC watch sweep NADs whose owning SMC is gone (a deletion missed while this replica was
//! not leading). No finalizer: an SMC must stay deletable when no controller runs, as
//! upstream's is; and clusters without a garbage collector (our test control plane) still lose
//! the NAD. A NAD is only deleted when its controller ownerReference names an SMC whose uid no
//! longer exists, with a uid precondition, so a NAD re-created meanwhile is never removed.
//!
//! An SMC that cannot be read or rendered (written around the webhook) is reported (a log line
//! and a Warning Event) and skipped until it changes; the others keep being reconciled.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions,
};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::watcher;
use serde_json::Value;
use spiderpool_core::admission::{self, ClusterState, Switches};
use spiderpool_core::manifest::SpiderObject;
use spiderpool_core::multus::{NAD_API_VERSION, NAD_KIND, nad_name, nad_namespace, render_nad};
use spiderpool_core::objects::{GROUP, MULTUSCONFIG, SpiderMultusConfig};
use spiderpool_k8s::kinds::{api_resource, display_name, from_dynamic};

use crate::ippool::{log_outcome, parse_secs, recorder, report_broken};
use crate::{Ctx, Error, Result};

/// Flags and environment of this component.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "multusconfig")]
pub struct Args {
    /// Generate NetworkAttachmentDefinitions from SpiderMultusConfigs. Upstream's binary
    /// defaults to false and its chart sets true; ours defaults to true (the chart's value).
    #[arg(
        id = "multus_config_enabled",
        long = "multus-config-enabled",
        env = "SPIDERPOOL_MULTUS_CONFIG_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub enabled: bool,
    /// Every SpiderMultusConfig is reconciled again after this long without a change
    /// (seconds).
    #[arg(
        id = "multus_config_resync_period",
        long = "multus-config-resync-period",
        env = "SPIDERPOOL_MULTUS_CONFIG_INFORMER_RESYNC_PERIOD",
        default_value = "60",
        value_parser = parse_secs,
        value_name = "SECONDS"
    )]
    pub resync_period: Duration,
    /// Pause before a failed reconcile is tried again (seconds).
    #[arg(
        id = "multus_config_retry_delay",
        long = "multus-config-retry-delay",
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
            resync_period: Duration::from_secs(60),
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// The [`ApiResource`] of Multus' NetworkAttachmentDefinition.
pub fn nad_resource() -> ApiResource {
    ApiResource {
        group: "k8s.cni.cncf.io".to_owned(),
        version: "v1".to_owned(),
        api_version: NAD_API_VERSION.to_owned(),
        kind: NAD_KIND.to_owned(),
        plural: "network-attachment-definitions".to_owned(),
    }
}

struct State {
    client: kube::Client,
    smc_ar: ApiResource,
    nad_ar: ApiResource,
    args: Args,
    events: Recorder,
}

impl State {
    fn nads(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &self.nad_ar)
    }
}

/// Runs the component until it fails or is dropped (leader-only components are dropped when
/// the Lease is lost).
pub async fn run(ctx: Ctx, args: Args) -> Result<()> {
    if !args.enabled {
        log::info!("SpiderMultusConfig controller: disabled (SPIDERPOOL_MULTUS_CONFIG_ENABLED)");
        std::future::pending::<()>().await;
        return Ok(());
    }
    let smc_ar = api_resource(&MULTUSCONFIG);
    let nad_ar = nad_resource();
    let smcs: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &smc_ar);
    let nads: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &nad_ar);
    let state = Arc::new(State {
        client: ctx.client.clone(),
        smc_ar: smc_ar.clone(),
        nad_ar: nad_ar.clone(),
        args: args.clone(),
        events: recorder(&ctx),
    });
    log::info!("SpiderMultusConfig controller: started");
    let controller = Controller::new_with(smcs.clone(), watcher::Config::default(), smc_ar)
        .owns_with(nads, nad_ar, watcher::Config::default())
        // Upstream runs one worker.
        .with_config(controller::Config::default().concurrency(1))
        .run(reconcile, error_policy, state.clone())
        .for_each(|res| async move { log_outcome("SpiderMultusConfig", res) });
    tokio::join!(controller, deletions(smcs, state));
    Ok(())
}

fn error_policy(obj: Arc<DynamicObject>, err: &Error, st: Arc<State>) -> Action {
    log::warn!("SpiderMultusConfig {}: {err}", display_name(&obj));
    Action::requeue(st.args.retry_delay)
}

/// Moves the older spellings of an SMC (its JSON, as stored) to the current fields, in place:
/// `<block>.spiderpoolConfigPools` (with `IPv4IPPool` / `IPv6IPPool`) to `<block>.ippools`,
/// and `coordinator.tuneMode` to `coordinator.mode`.
///
/// Core reads either spelling, but not both at once; and the apiserver may have added the
/// current field next to the old one: the CRD's default `mode: auto` (applied before any
/// webhook), or defaulted empty pool lists. So the old value wins over an absent, empty or
/// default current one; an explicit current value wins otherwise. The mutating webhook needs
/// the same step before decoding an SMC the apiserver has defaulted.
pub fn normalize_legacy(data: &mut Value) {
    fn is_empty(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        }
    }
    fn pools(p: &mut serde_json::Map<String, Value>) {
        for (old, new) in [("IPv4IPPool", "ipv4"), ("IPv6IPPool", "ipv6")] {
            if let Some(v) = p.remove(old)
                && is_empty(p.get(new))
            {
                p.insert(new.to_owned(), v);
            }
        }
    }
    let Some(spec) = data.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for block in spec.values_mut().filter_map(Value::as_object_mut) {
        if let Some(Value::Object(mut legacy)) = block.remove("spiderpoolConfigPools") {
            pools(&mut legacy);
            let current = block
                .entry("ippools")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !current.is_object() {
                *current = Value::Object(serde_json::Map::new());
            }
            if let Some(current) = current.as_object_mut() {
                for (k, v) in legacy {
                    if is_empty(current.get(&k)) {
                        current.insert(k, v);
                    }
                }
            }
        }
        if let Some(p) = block.get_mut("ippools").and_then(Value::as_object_mut) {
            pools(p);
        }
    }
    if let Some(coord) = spec.get_mut("coordinator").and_then(Value::as_object_mut)
        && let Some(old) = coord.remove("tuneMode")
    {
        let default_or_absent = coord
            .get("mode")
            .is_none_or(|m| m.is_null() || m.as_str() == Some("auto"));
        if default_or_absent {
            coord.insert("mode".to_owned(), old);
        }
    }
}

/// The NAD `obj` should have, or why there is none (reported by the caller).
fn desired_nad(obj: &DynamicObject) -> std::result::Result<DynamicObject, String> {
    let mut current = obj.clone();
    normalize_legacy(&mut current.data);
    let smc: SpiderMultusConfig = from_dynamic(&current).map_err(|e| e.to_string())?;
    let mut defaulted = SpiderObject::MultusConfig(smc);
    admission::mutate(
        &mut defaulted,
        &ClusterState::default(),
        &Switches::default(),
    );
    let SpiderObject::MultusConfig(smc) = defaulted else {
        return Err("defaulting changed the kind".to_owned());
    };
    let nad = render_nad(&smc).map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&nad).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

async fn reconcile(obj: Arc<DynamicObject>, st: Arc<State>) -> Result<Action> {
    let id = display_name(&obj);
    // As upstream: a terminating SMC is left alone (its NAD goes with it).
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let want = match desired_nad(&obj) {
        Ok(n) => n,
        Err(why) => {
            report_broken(
                &st.events,
                &st.smc_ar,
                &obj,
                "InvalidSpiderMultusConfig",
                &why,
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let ns = want.metadata.namespace.clone().unwrap_or_default();
    let name = want.metadata.name.clone().unwrap_or_default();
    let api = st.nads(&ns);
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::api(format!("get NetworkAttachmentDefinition {ns}/{name}"), e))?;
    let Some(have) = existing else {
        return match api.create(&PostParams::default(), &want).await {
            Ok(_) => {
                log::info!(
                    "SpiderMultusConfig {id}: created NetworkAttachmentDefinition {ns}/{name}"
                );
                Ok(Action::requeue(st.args.resync_period))
            }
            // Created by someone else meanwhile: look at it again.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => Err(Error::api(
                format!("create NetworkAttachmentDefinition {ns}/{name}"),
                e,
            )),
        };
    };
    if have.metadata.deletion_timestamp.is_some() {
        return Err(Error::Config(format!(
            "NetworkAttachmentDefinition {ns}/{name} is being deleted; will re-create it"
        )));
    }
    let Some(next) = updated(&have, &want) else {
        return Ok(Action::requeue(st.args.resync_period));
    };
    match api.replace(&name, &PostParams::default(), &next).await {
        Ok(_) => {
            log::info!("SpiderMultusConfig {id}: updated NetworkAttachmentDefinition {ns}/{name}");
            Ok(Action::requeue(st.args.resync_period))
        }
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(Error::api(
            format!("update NetworkAttachmentDefinition {ns}/{name}"),
            e,
        )),
    }
}

/// `have` changed to match `want` (annotations, `spec.config`, the controller
/// ownerReference; everything else kept), or `None` when it already does.
fn updated(have: &DynamicObject, want: &DynamicObject) -> Option<DynamicObject> {
    let want_config = want.data.pointer("/spec/config");
    let have_config = have.data.pointer("/spec/config");
    let want_annotations = want.metadata.annotations.clone().unwrap_or_default();
    let have_annotations = have.metadata.annotations.clone().unwrap_or_default();
    let want_owner = want
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first());
    let have_refs = have.metadata.owner_references.clone().unwrap_or_default();
    let owner_ok = match want_owner {
        Some(w) => have_refs
            .iter()
            .any(|h| h.controller == Some(true) && h.uid == w.uid && h.kind == w.kind),
        None => true,
    };
    if want_config == have_config && want_annotations == have_annotations && owner_ok {
        return None;
    }
    let mut next = have.clone();
    next.metadata.annotations = (!want_annotations.is_empty()).then_some(want_annotations);
    if let Some(w) = want_owner {
        // One controller per object: another controller reference is replaced by ours, as
        // upstream does; plain (non-controller) references stay.
        let mut refs: Vec<_> = have_refs
            .into_iter()
            .filter(|h| h.controller != Some(true))
            .collect();
        refs.push(w.clone());
        next.metadata.owner_references = Some(refs);
    }
    if !next.data.get("spec").is_some_and(Value::is_object) {
        next.data["spec"] = Value::Object(serde_json::Map::new());
    }
    match (want_config, next.data["spec"].as_object_mut()) {
        (Some(c), Some(spec)) => {
            spec.insert("config".to_owned(), c.clone());
        }
        (None, Some(spec)) => {
            spec.remove("config");
        }
        _ => {}
    }
    Some(next)
}

/// Deletes the NADs of deleted SMCs: on each delete event, and by a sweep over every NAD each
/// time the watch (re)lists (deletions missed while not watching).
async fn deletions(smcs: Api<DynamicObject>, st: Arc<State>) {
    let mut events = watcher(smcs, watcher::Config::default()).boxed();
    let mut listing: HashSet<String> = HashSet::new();
    while let Some(ev) = events.next().await {
        match ev {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                if let Some(uid) = o.metadata.uid {
                    listing.insert(uid);
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Err(e) = sweep(&st, &listing).await {
                    log::warn!("SpiderMultusConfig controller: orphan sweep: {e}");
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                if let Err(e) = delete_nad_of(&st, &o).await {
                    log::warn!(
                        "SpiderMultusConfig {}: deleting its NetworkAttachmentDefinition: {e}",
                        display_name(&o)
                    );
                }
            }
            Ok(watcher::Event::Apply(_)) => {}
            Err(e) => {
                log::warn!("SpiderMultusConfig watch: {e}");
                tokio::time::sleep(st.args.retry_delay).await;
            }
        }
    }
}

/// The uid of the SMC named by `nad`'s controller ownerReference (`None`: not ours).
fn owning_smc(nad: &DynamicObject) -> Option<(String, String)> {
    nad.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == MULTUSCONFIG.kind
                && o.api_version.split('/').next() == Some(GROUP)
        })
        .map(|o| (o.name.clone(), o.uid.clone()))
}

/// Deletes `nad` if its uid is still `nad`'s (a NAD re-created meanwhile is kept).
async fn delete_nad(st: &State, nad: &DynamicObject) -> Result<()> {
    let ns = nad.metadata.namespace.clone().unwrap_or_default();
    let name = nad.metadata.name.clone().unwrap_or_default();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: nad.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match st.nads(&ns).delete(&name, &dp).await {
        Ok(_) => {
            log::info!(
                "deleted NetworkAttachmentDefinition {ns}/{name}: its SpiderMultusConfig is gone"
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(Error::api(
            format!("delete NetworkAttachmentDefinition {ns}/{name}"),
            e,
        )),
    }
}

/// A deleted SMC: delete the NAD it owned.
async fn delete_nad_of(st: &State, smc: &DynamicObject) -> Result<()> {
    let Some(uid) = smc.metadata.uid.as_deref() else {
        return Ok(());
    };
    let (ns, name) = match from_dynamic::<SpiderMultusConfig>(smc) {
        Ok(s) => (
            nad_namespace(&s).to_owned(),
            nad_name(&s).unwrap_or_default().to_owned(),
        ),
        Err(_) => (
            smc.metadata.namespace.clone().unwrap_or_default(),
            smc.metadata.name.clone().unwrap_or_default(),
        ),
    };
    let Some(nad) = st
        .nads(&ns)
        .get_opt(&name)
        .await
        .map_err(|e| Error::api(format!("get NetworkAttachmentDefinition {ns}/{name}"), e))?
    else {
        return Ok(());
    };
    match owning_smc(&nad) {
        Some((_, owner)) if owner == uid => delete_nad(st, &nad).await,
        _ => Ok(()),
    }
}

/// Deletes every NAD whose owning SMC no longer exists. `listed` holds the uids of the SMCs
/// the watch just listed; an owner missing from it is looked up once more before its NAD
/// goes (it may have been created after the list).
async fn sweep(st: &State, listed: &HashSet<String>) -> Result<()> {
    let all: Api<DynamicObject> = Api::all_with(st.client.clone(), &st.nad_ar);
    let nads = all
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api("list NetworkAttachmentDefinitions", e))?;
    let mut gone: BTreeMap<String, usize> = BTreeMap::new();
    for nad in &nads.items {
        let Some((owner, uid)) = owning_smc(nad) else {
            continue;
        };
        if listed.contains(&uid) {
            continue;
        }
        let ns = nad.metadata.namespace.clone().unwrap_or_default();
        let smcs: Api<DynamicObject> = Api::namespaced_with(st.client.clone(), &ns, &st.smc_ar);
        let current = smcs
            .get_opt(&owner)
            .await
            .map_err(|e| Error::api(format!("get SpiderMultusConfig {ns}/{owner}"), e))?;
        if current.and_then(|s| s.metadata.uid).as_deref() == Some(uid.as_str()) {
            continue;
        }
        delete_nad(st, nad).await?;
        *gone.entry(ns).or_default() += 1;
    }
    if !gone.is_empty() {
        log::info!("SpiderMultusConfig controller: removed orphaned NADs: {gone:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn seed_smc() -> DynamicObject {
        dynamic(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderMultusConfig",
            "metadata": {"name": "macvlan-ens192", "namespace": "default", "uid": "u-1"},
            "spec": {"cniType": "macvlan",
                     "macvlan": {"master": ["ens192"], "ippools": {"ipv4": ["10-6-v4"]}, "vlanID": 0}}
        }))
    }

    #[test]
    fn an_smc_written_without_the_webhook_renders_the_seed_nad() {
        let nad = desired_nad(&seed_smc()).unwrap();
        assert_eq!(
            nad.data["spec"]["config"],
            json!(
                r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
            )
        );
        assert_eq!(
            owning_smc(&nad),
            Some(("macvlan-ens192".into(), "u-1".into()))
        );
    }

    #[test]
    fn old_spellings_next_to_apiserver_defaults_render_the_seed_pool_and_mode() {
        // The seed's last-applied-configuration as a CRD that keeps the old fields stores
        // it: the schema default `mode: auto` sits next to `tuneMode`.
        let smc = dynamic(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderMultusConfig",
            "metadata": {"name": "macvlan-ens192", "namespace": "default", "uid": "u-1"},
            "spec": {"cniType": "macvlan", "enableCoordinator": true,
                     "coordinator": {"podCIDRType": "cluster", "tuneMode": "overlay",
                                     "mode": "auto", "tunePodRoutes": true,
                                     "podRPFilter": 0, "hostRuleTable": 500},
                     "macvlan": {"master": ["ens192"], "vlanID": 0,
                                 "spiderpoolConfigPools": {"IPv4IPPool": ["10-6-v4"]}}}
        }));
        let nad = desired_nad(&smc).unwrap();
        assert_eq!(
            nad.data["spec"]["config"],
            json!(
                r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"txQueueLen":0,"tunePodRoutes":true,"mode":"overlay","type":"coordinator","podRPFilter":0}]}"#
            )
        );
        // An explicit current value wins over the old one.
        let mut v = json!({"spec": {"coordinator": {"tuneMode": "overlay", "mode": "underlay"},
            "macvlan": {"ippools": {"ipv4": ["new"]}, "spiderpoolConfigPools": {"IPv4IPPool": ["old"], "IPv6IPPool": ["old6"]}}}});
        normalize_legacy(&mut v);
        assert_eq!(
            v,
            json!({"spec": {"coordinator": {"mode": "underlay"},
                "macvlan": {"ippools": {"ipv4": ["new"], "ipv6": ["old6"]}}}})
        );
    }

    #[test]
    fn a_matching_nad_needs_no_update_and_a_drifted_one_is_put_back() {
        let want = desired_nad(&seed_smc()).unwrap();
        let mut have = want.clone();
        have.metadata.resource_version = Some("7".into());
        assert!(updated(&have, &want).is_none());
        have.data["spec"]["config"] = json!("{}");
        have.metadata.annotations = Some([("x".to_owned(), "y".to_owned())].into());
        let next = updated(&have, &want).unwrap();
        assert_eq!(next.data["spec"]["config"], want.data["spec"]["config"]);
        assert_eq!(next.metadata.annotations, None);
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn an_smc_without_a_master_is_reported_not_rendered() {
        let smc = dynamic(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderMultusConfig",
            "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"cniType": "macvlan", "macvlan": {"master": []}}
        }));
        assert!(desired_nad(&smc).is_err());
    }
}
