//! Auto-created pools for applications (spec §3.12): the application controller.
//!
//! Watches the six Kubernetes-native kinds of [`plan::APP_KINDS`]. An application whose pod
//! template carries `ipam.spidernet.io/subnets` or `ipam.spidernet.io/subnet` gets, per
//! interface and family, one pool named and labelled as upstream's (the agent finds it by
//! those labels), sized to `ippool-ip-number` (`N`, or replicas `+N`; absent means `+0`). The
//! pool is reconciled when the application appears, when its subnet annotations or replicas
//! change, after a failure (the retry delay) and at every resync. A deleted application's pools
//! labelled `ippool-reclaim=true` are deleted at once; a sweep at start and at every resync
//! deletes those whose application is gone or was re-created (another UID).
//!
//! Sizing, under the subnet's lock: the addresses are first recorded in the subnet's
//! `status.controlledIPPools` and then written to the pool's `spec.ips` (the order the pool
//! webhook checks). Growing takes the lowest free addresses of the subnet (not in another
//! pool's record or spec, not reserved); shrinking drops the lowest addresses of the pool that
//! no SpiderEndpoint holds and no node's block (`status.blocks`) claims. Either is all or
//! nothing: not enough addresses is an error reported on the application (log line and
//! Warning Event), and nothing is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use spiderpool_core::ip::{IpFamily, IpRange, IpRangeSet};
use spiderpool_core::ipam::{
    IpNumber, parse_ip_number, parse_reclaim, parse_subnet, parse_subnets,
};
use spiderpool_core::objects::keys::{
    ANNO_IPPOOL_IP_NUMBER, ANNO_IPPOOL_RECLAIM, ANNO_POD_SUBNET, ANNO_POD_SUBNETS,
    LABEL_IPPOOL_RECLAIM, LABEL_OWNER_APPLICATION_GV, LABEL_OWNER_APPLICATION_KIND,
    LABEL_OWNER_APPLICATION_NAME, LABEL_OWNER_APPLICATION_NAMESPACE, LABEL_OWNER_APPLICATION_UID,
    LABEL_OWNER_SPIDER_SUBNET, SPIDER_FINALIZER,
};
use spiderpool_core::objects::{
    API_VERSION, ENDPOINT, IPPOOL, PoolIPPreAllocation, RESERVEDIP, SUBNET, SpiderSubnet,
};
use spiderpool_k8s::kinds::{api_resource, display_name, from_dynamic};

use super::plan::{self, APP_KINDS, AppKind, AppRef};
use super::status::{owner_reference, pool_addresses, subnet_addresses, write_status};
use super::{Args, SubnetError, SubnetLocks};
use crate::ippool::recorder;
use crate::{Ctx, Result};

/// How many times one pool's sizing is retried after a 409 before it is requeued.
const WRITE_ATTEMPTS: u32 = 8;

/// The API resource of a native application kind.
fn app_resource(k: &AppKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(k.group, k.version, k.kind), k.plural)
}

/// Whether the application of `key` (`controlledIPPools`' `application`) exists. A kind this
/// controller cannot look up counts as existing (its record is kept rather than freed).
pub(crate) async fn exists(
    client: &kube::Client,
    key: &str,
) -> std::result::Result<bool, SubnetError> {
    let Some((group, version, kind, ns, name)) = plan::parse_app_key(key) else {
        return Ok(true);
    };
    let ar = match APP_KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
    {
        Some(k) => app_resource(k),
        None => match kube::discovery::pinned_kind(
            client,
            &GroupVersionKind::gvk(&group, &version, &kind),
        )
        .await
        {
            Ok((ar, _)) => ar,
            Err(e) => {
                log::debug!("application {key}: kind not found ({e}): counted as existing");
                return Ok(true);
            }
        },
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    api.get_opt(&name)
        .await
        .map(|o| o.is_some())
        .map_err(|e| SubnetError::api(format!("get {kind} {ns}/{name}"), e))
}

struct State {
    client: kube::Client,
    subnets: Api<DynamicObject>,
    pools: Api<DynamicObject>,
    reserved: Api<DynamicObject>,
    locks: Arc<SubnetLocks>,
    events: Recorder,
    args: Args,
}

/// What the worker remembers of one application.
struct Known {
    obj: DynamicObject,
    /// What the last successful reconcile saw (UID, annotations, replicas).
    done: Option<String>,
}

type Key = (usize, String, String);

/// An application's name (without its namespace).
fn app_name(obj: &DynamicObject) -> String {
    obj.metadata.name.clone().unwrap_or_default()
}

/// Runs the application controller until it fails or is dropped.
pub(crate) async fn run(ctx: Ctx, args: Args, locks: Arc<SubnetLocks>) -> Result<()> {
    let st = State {
        client: ctx.client.clone(),
        subnets: Api::all_with(ctx.client.clone(), &api_resource(&SUBNET)),
        pools: Api::all_with(ctx.client.clone(), &api_resource(&IPPOOL)),
        reserved: Api::all_with(ctx.client.clone(), &api_resource(&RESERVEDIP)),
        locks,
        events: recorder(&ctx),
        args: args.clone(),
    };
    let watches = APP_KINDS.iter().enumerate().map(|(i, k)| {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &app_resource(k));
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |ev| (i, ev))
            .boxed()
    });
    let mut events = stream::select_all(watches);
    let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<Key>();
    let mut retrying: HashSet<Key> = HashSet::new();
    let mut known: HashMap<Key, Known> = HashMap::new();
    let mut resync = tokio::time::interval(args.resync_period);
    log::info!("SpiderSubnet application controller: started");
    loop {
        let key = tokio::select! {
            ev = events.next() => {
                let Some((i, ev)) = ev else { return Ok(()) };
                match ev {
                    Ok(Event::Apply(obj) | Event::InitApply(obj)) => {
                        let key = (i, obj.metadata.namespace.clone().unwrap_or_default(), app_name(&obj));
                        let done = known.remove(&key).and_then(|k| k.done);
                        // Only applications asking for auto-created pools are kept (most
                        // ReplicaSets and Jobs are not).
                        let v = serde_json::to_value(&obj).unwrap_or(Value::Null);
                        if signature(&APP_KINDS[i], &v).is_none() {
                            continue;
                        }
                        known.insert(key.clone(), Known { obj, done });
                        key
                    }
                    Ok(Event::Delete(obj)) => {
                        let key = (i, obj.metadata.namespace.clone().unwrap_or_default(), app_name(&obj));
                        known.remove(&key);
                        if let Some(uid) = obj.metadata.uid.as_deref()
                            && let Err(e) = delete_pools_of(&st, &APP_KINDS[i], &obj, uid).await
                        {
                            log::warn!("{} {}/{}: {e}", APP_KINDS[i].kind, key.1, key.2);
                        }
                        continue;
                    }
                    Ok(Event::Init | Event::InitDone) => continue,
                    Err(e) => {
                        log::warn!("SpiderSubnet application controller: watch {}: {e}", APP_KINDS[i].kind);
                        continue;
                    }
                }
            }
            Some(key) = retry_rx.recv() => {
                retrying.remove(&key);
                if let Some(k) = known.get_mut(&key) {
                    k.done = None;
                }
                key
            }
            _ = resync.tick() => {
                if let Err(e) = sweep(&st).await {
                    log::warn!("SpiderSubnet application controller: sweep: {e}");
                }
                for k in known.values_mut() {
                    k.done = None;
                }
                let keys: Vec<Key> = known.keys().cloned().collect();
                for key in keys {
                    handle(&st, &mut known, &key, &retry_tx, &mut retrying).await;
                }
                continue;
            }
        };
        handle(&st, &mut known, &key, &retry_tx, &mut retrying).await;
    }
}

/// Reconciles one application if what matters of it changed since its last success;
/// schedules a retry on failure.
async fn handle(
    st: &State,
    known: &mut HashMap<Key, Known>,
    key: &Key,
    retry_tx: &tokio::sync::mpsc::UnboundedSender<Key>,
    retrying: &mut HashSet<Key>,
) {
    let Some(k) = known.get_mut(key) else { return };
    let kind = &APP_KINDS[key.0];
    let v = serde_json::to_value(&k.obj).unwrap_or(Value::Null);
    let sig = signature(kind, &v);
    if sig.is_none() || k.done == sig {
        return;
    }
    match reconcile(st, kind, &k.obj, &v).await {
        Ok(()) => k.done = sig,
        Err(e) => {
            let what = format!("{} {}/{}", kind.kind, key.1, key.2);
            log::warn!("{what}: auto-created pool: {e}");
            report(st, kind, &k.obj, &e).await;
            if !matches!(e, SubnetError::Invalid(_)) && retrying.insert(key.clone()) {
                let tx = retry_tx.clone();
                let key = key.clone();
                let delay = st.args.retry_delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(key);
                });
            } else {
                // Bad input: wait for the application to change (or the resync).
                k.done = sig;
            }
        }
    }
}

/// What a reconcile depends on, or `None` for an application without subnet annotations
/// (or one handled through its owner).
fn signature(kind: &AppKind, v: &Value) -> Option<String> {
    if plan::skip_reason(kind.kind, v).is_some() {
        return None;
    }
    let annos = plan::pod_template(kind.kind, v)?.pointer("/metadata/annotations")?;
    if annos.get(ANNO_POD_SUBNETS).is_none() && annos.get(ANNO_POD_SUBNET).is_none() {
        return None;
    }
    let pick = |k: &str| annos.get(k).cloned().unwrap_or(Value::Null);
    Some(
        json!([
            v.pointer("/metadata/uid"),
            pick(ANNO_POD_SUBNETS),
            pick(ANNO_POD_SUBNET),
            pick(ANNO_IPPOOL_IP_NUMBER),
            pick(ANNO_IPPOOL_RECLAIM),
            plan::replicas(kind.kind, v),
        ])
        .to_string(),
    )
}

/// Records a Warning Event on the application (best effort).
async fn report(st: &State, kind: &AppKind, obj: &DynamicObject, err: &SubnetError) {
    let reference = ObjectReference {
        api_version: Some(format!("{}/{}", kind.group, kind.version)),
        kind: Some(kind.kind.to_owned()),
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    let mut note = err.to_string();
    note.truncate(1000);
    let ev = KubeEvent {
        type_: EventType::Warning,
        reason: "AutoIPPoolFailed".to_owned(),
        note: Some(note),
        action: "CreateOrScaleAutoIPPool".to_owned(),
        secondary: None,
    };
    if let Err(e) = st.events.publish(&ev, &reference).await {
        log::debug!("event on {} {}: {e}", kind.kind, app_name(obj));
    }
}

fn invalid(kind: &AppKind, obj: &DynamicObject, why: impl std::fmt::Display) -> SubnetError {
    SubnetError::Invalid(format!(
        "{} {}/{}: {why}",
        kind.kind,
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        app_name(obj)
    ))
}

/// Brings every auto-created pool the application asks for to its size.
async fn reconcile(
    st: &State,
    kind: &AppKind,
    obj: &DynamicObject,
    v: &Value,
) -> std::result::Result<(), SubnetError> {
    let Some(annos) =
        plan::pod_template(kind.kind, v).and_then(|t| t.pointer("/metadata/annotations"))
    else {
        return Ok(());
    };
    let text = |k: &str| annos.get(k).and_then(Value::as_str);
    let items = match (text(ANNO_POD_SUBNETS), text(ANNO_POD_SUBNET)) {
        (Some(t), _) => parse_subnets(t).map_err(|e| invalid(kind, obj, e))?,
        (None, Some(t)) => vec![parse_subnet(t).map_err(|e| invalid(kind, obj, e))?],
        (None, None) => return Ok(()),
    };
    let number = match text(ANNO_IPPOOL_IP_NUMBER) {
        Some(t) => parse_ip_number(t).map_err(|e| invalid(kind, obj, e))?,
        // Upstream's effective cluster default (spec §3.12 quirk): `+0`.
        None => IpNumber::Flexible(0),
    };
    let reclaim = match text(ANNO_IPPOOL_RECLAIM) {
        Some(t) => parse_reclaim(t).map_err(|e| invalid(kind, obj, e))?,
        None => true,
    };
    let desired = plan::desired_size(number, plan::replicas(kind.kind, v));
    let app = AppRef {
        group: kind.group.to_owned(),
        version: kind.version.to_owned(),
        kind: kind.kind.to_owned(),
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        name: app_name(obj),
        uid: obj.metadata.uid.clone().unwrap_or_default(),
    };
    let mut first_err = None;
    for item in &items {
        for family in [IpFamily::V4, IpFamily::V6] {
            let Some(subnet) = item.of(family) else {
                continue;
            };
            let want = Want {
                app: &app,
                interface: &item.interface,
                family,
                subnet,
                desired,
                number,
                reclaim,
            };
            if let Err(e) = ensure_pool(st, &want).await {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// One auto-created pool an application asks for.
struct Want<'a> {
    app: &'a AppRef,
    interface: &'a str,
    family: IpFamily,
    subnet: &'a str,
    desired: u64,
    number: IpNumber,
    reclaim: bool,
}

/// Creates or resizes one auto-created pool (record first, then the pool).
async fn ensure_pool(st: &State, w: &Want<'_>) -> std::result::Result<(), SubnetError> {
    let lock = st.locks.of(w.subnet);
    let _held = lock.lock().await;
    for _ in 0..WRITE_ATTEMPTS {
        match try_ensure_pool(st, w).await {
            Err(SubnetError::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 409 => {}
            // The webhook's cache may lag behind the record just written: try again shortly.
            Err(SubnetError::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 403 => tokio::time::sleep(Duration::from_millis(250)).await,
            other => return other,
        }
    }
    Err(SubnetError::Busy(format!(
        "auto-created pool of {} from SpiderSubnet {}",
        w.app.key(),
        w.subnet
    )))
}

async fn try_ensure_pool(st: &State, w: &Want<'_>) -> std::result::Result<(), SubnetError> {
    let app = w.app;
    let Some(subnet_obj) = st
        .subnets
        .get_opt(w.subnet)
        .await
        .map_err(|e| SubnetError::api(format!("get SpiderSubnet {}", w.subnet), e))?
    else {
        return Err(SubnetError::NotReady(format!(
            "{} {}/{}: SpiderSubnet {} does not exist",
            app.kind, app.namespace, app.name, w.subnet
        )));
    };
    let bad_subnet =
        |why: String| SubnetError::Invalid(format!("SpiderSubnet {}: {why}", w.subnet));
    if subnet_obj.metadata.deletion_timestamp.is_some() {
        return Err(SubnetError::NotReady(format!(
            "SpiderSubnet {} is being deleted",
            w.subnet
        )));
    }
    let subnet: SpiderSubnet = from_dynamic(&subnet_obj).map_err(|e| bad_subnet(e.to_string()))?;
    let (family, subnet_ips) = subnet_addresses(&subnet).map_err(bad_subnet)?;
    if family != w.family {
        return Err(SubnetError::Invalid(format!(
            "{} {}/{}: SpiderSubnet {} is {family}, named as {}",
            app.kind, app.namespace, app.name, w.subnet, w.family
        )));
    }
    let mut status = subnet.status.clone().unwrap_or_default();
    let mut controlled = status
        .controlled_ip_pools()
        .map_err(|e| bad_subnet(e.to_string()))?;
    let cidr = subnet.spec.subnet.clone();
    let all = st
        .pools
        .list(&ListParams::default())
        .await
        .map_err(|e| SubnetError::api("list SpiderIPPools", e))?;
    let identity = plan::identity_labels(app, w.subnet, w.interface, w.family);
    let matches = |p: &&DynamicObject| {
        let l = p.metadata.labels.clone().unwrap_or_default();
        p.metadata.deletion_timestamp.is_none() && identity.iter().all(|(k, v)| l.get(k) == Some(v))
    };
    let label_of =
        |p: &DynamicObject, k: &str| p.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let existing = all
        .items
        .iter()
        .filter(matches)
        .find(|p| label_of(p, LABEL_OWNER_APPLICATION_UID).as_deref() == Some(app.uid.as_str()))
        .or_else(|| {
            // A pool kept from an earlier instance of the application (reclaim false) is
            // taken over.
            all.items
                .iter()
                .filter(matches)
                .find(|p| label_of(p, LABEL_IPPOOL_RECLAIM).as_deref() == Some("false"))
        });
    let name = existing.map_or_else(|| plan::pool_name(w.family, app, w.interface), display_name);
    let current = match existing {
        Some(p) => pool_addresses(w.family, p).ok_or_else(|| {
            SubnetError::Invalid(format!("SpiderIPPool {name}: spec.ips cannot be read"))
        })?,
        None => IpRangeSet::new(w.family),
    };
    // Taken: other pools' records and specs (a spec may be ahead of its record after a crash),
    // and reserved addresses.
    let mut taken = plan::controlled_union(w.family, &controlled, Some(&name));
    for p in all.items.iter().filter(|p| display_name(p) != name) {
        let same = p.data.pointer("/spec/subnet").and_then(Value::as_str) == Some(cidr.as_str())
            || label_of(p, LABEL_OWNER_SPIDER_SUBNET).as_deref() == Some(w.subnet);
        if same && let Some(s) = pool_addresses(w.family, p) {
            taken = taken.union(&s).unwrap_or(taken);
        }
    }
    taken = taken
        .union(&reserved_ips(st, w.family).await?)
        .unwrap_or(taken);
    let free = subnet_ips.difference(&taken);
    let desired = u128::from(w.desired);
    let removable = match existing {
        Some(p) if current.len() > desired => removable(st, w.family, p, &current).await?,
        _ => IpRangeSet::new(w.family),
    };
    let target = plan::resize(&current, desired, &free, &removable)?;
    let target_ips = target.to_strings();

    // 1. The subnet's record.
    let entry = PoolIPPreAllocation {
        ips: target_ips.clone(),
        application: Some(app.key()),
    };
    if controlled.get(&name) != Some(&entry) {
        controlled.insert(name.clone(), entry);
        status.set_controlled_ip_pools(&controlled);
        status.total_ip_count = Some(subnet_ips.len_saturating_i64());
        status.allocated_ip_count =
            Some(i64::try_from(plan::controlled_count(w.family, &controlled)).unwrap_or(i64::MAX));
        write_status(&st.subnets, &subnet_obj, &status).await?;
    }

    // 2. The pool.
    let labels = plan::pool_labels(app, w.subnet, &cidr, w.interface, w.family, w.reclaim);
    let number = plan::ip_number_text(w.number);
    let subnet_uid = subnet_obj.metadata.uid.clone().unwrap_or_default();
    match existing {
        None => {
            let mut spec = json!({
                "ipVersion": w.family.version(),
                "subnet": cidr,
                "ips": target_ips,
                "podAffinity": plan::pool_affinity(app),
            });
            if let Some(gw) = &subnet.spec.gateway {
                spec["gateway"] = gw.clone().into();
            }
            if let Some(routes) = subnet.spec.routes.as_ref().filter(|r| !r.is_empty()) {
                spec["routes"] = serde_json::to_value(routes).unwrap_or(Value::Null);
            }
            let pool: DynamicObject = serde_json::from_value(json!({
                "apiVersion": API_VERSION, "kind": IPPOOL.kind,
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {ANNO_IPPOOL_IP_NUMBER: number},
                    "ownerReferences": [owner_reference(w.subnet, &subnet_uid)],
                    "finalizers": [SPIDER_FINALIZER],
                },
                "spec": spec,
            }))
            .map_err(|e| SubnetError::Invalid(format!("SpiderIPPool {name}: {e}")))?;
            if let Err(e) = st.pools.create(&PostParams::default(), &pool).await {
                let refused = matches!(&e, kube::Error::Api(s) if matches!(s.code, 400 | 422));
                if refused {
                    // Nothing half-done: the addresses recorded for a pool that could not be
                    // created go back to the subnet.
                    unrecord(st, w.subnet, &name).await;
                }
                return Err(pool_write_error(format!("create SpiderIPPool {name}"), e));
            }
            log::info!(
                "SpiderSubnet {}: created SpiderIPPool {name} for {} with {} addresses",
                w.subnet,
                app.key(),
                target.len()
            );
        }
        Some(p) => {
            let have_labels = p.metadata.labels.clone().unwrap_or_default();
            let labels_ok = labels.iter().all(|(k, v)| have_labels.get(k) == Some(v));
            let anno_ok = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNO_IPPOOL_IP_NUMBER))
                == Some(&number);
            let ips_ok = p.data.pointer("/spec/ips") == Some(&json!(target_ips));
            if labels_ok && anno_ok && ips_ok {
                return Ok(());
            }
            // Only spec.ips and our labels/annotation, with the resourceVersion read: an
            // agent's block claim since then makes this fail instead of being overwritten.
            let mut patch = json!({"metadata": {
                "resourceVersion": p.metadata.resource_version,
                "labels": labels,
                "annotations": {ANNO_IPPOOL_IP_NUMBER: number},
            }});
            if !ips_ok {
                patch["spec"] = json!({"ips": target_ips});
            }
            st.pools
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| pool_write_error(format!("update SpiderIPPool {name}"), e))?;
            if !ips_ok {
                log::info!(
                    "SpiderSubnet {}: SpiderIPPool {name} of {} now has {} addresses",
                    w.subnet,
                    app.key(),
                    target.len()
                );
            }
        }
    }
    Ok(())
}

/// A refused pool write: the apiserver's refusal (400, 422: an application name too long for
/// a label, say) is bad input, reported and not retried until the application changes;
/// anything else is retried, a 403 too: the pool webhook compares the pool's addresses with
/// the subnet's record in its watch cache, which may not have the record just written yet.
fn pool_write_error(what: String, e: kube::Error) -> SubnetError {
    match &e {
        kube::Error::Api(s) if matches!(s.code, 400 | 422) => {
            SubnetError::Invalid(format!("{what}: {}", s.message))
        }
        _ => SubnetError::api(what, e),
    }
}

/// Removes the record of `pool` from the subnet (best effort: the subnet controller drops a
/// record whose pool is missing once its application is gone too).
async fn unrecord(st: &State, subnet: &str, pool: &str) {
    for _ in 0..WRITE_ATTEMPTS {
        let Ok(Some(obj)) = st.subnets.get_opt(subnet).await else {
            return;
        };
        let Ok(s) = from_dynamic::<SpiderSubnet>(&obj) else {
            return;
        };
        let mut status = s.status.clone().unwrap_or_default();
        let Ok(mut controlled) = status.controlled_ip_pools() else {
            return;
        };
        if controlled.remove(pool).is_none() {
            return;
        }
        let Ok((family, _)) = subnet_addresses(&s) else {
            return;
        };
        status.set_controlled_ip_pools(&controlled);
        status.allocated_ip_count =
            Some(i64::try_from(plan::controlled_count(family, &controlled)).unwrap_or(i64::MAX));
        match write_status(&st.subnets, &obj, &status).await {
            Err(SubnetError::Api {
                source: kube::Error::Api(e),
                ..
            }) if e.code == 409 => {}
            Err(e) => {
                log::warn!("SpiderSubnet {subnet}: record of {pool} kept: {e}");
                return;
            }
            Ok(()) => return,
        }
    }
}

/// Every reserved address of `family` (entries of the other family are skipped).
async fn reserved_ips(
    st: &State,
    family: IpFamily,
) -> std::result::Result<IpRangeSet, SubnetError> {
    let list = st
        .reserved
        .list(&ListParams::default())
        .await
        .map_err(|e| SubnetError::api("list SpiderReservedIPs", e))?;
    let ranges = list
        .items
        .iter()
        .filter_map(|r| r.data.pointer("/spec/ips").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|s| IpRange::parse_in(family, s).ok())
        .collect::<Vec<_>>();
    Ok(IpRangeSet::from_ranges(family, ranges).unwrap_or_else(|_| IpRangeSet::new(family)))
}

/// The addresses of `pool` that may be discarded: held by no SpiderEndpoint (listed from the
/// apiserver, not a cache) and claimed by no node's block.
async fn removable(
    st: &State,
    family: IpFamily,
    pool: &DynamicObject,
    current: &IpRangeSet,
) -> std::result::Result<IpRangeSet, SubnetError> {
    let name = display_name(pool);
    let mut used = IpRangeSet::new(family);
    for block in pool
        .data
        .pointer("/status/blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for r in block
            .get("ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str().and_then(|s| IpRange::parse_in(family, s).ok()) {
                used.insert_range(r).ok();
            }
        }
    }
    // Upstream's per-address records, if a pool still has them.
    if let Some(text) = pool
        .data
        .pointer("/status/allocatedIPs")
        .and_then(Value::as_str)
        && let Ok(m) = serde_json::from_str::<BTreeMap<String, Value>>(text)
    {
        for ip in m.keys() {
            if let Ok(r) = IpRange::parse_in(family, ip) {
                used.insert_range(r).ok();
            }
        }
    }
    let endpoints: Api<DynamicObject> = Api::all_with(st.client.clone(), &api_resource(&ENDPOINT));
    let list = endpoints
        .list(&ListParams::default())
        .await
        .map_err(|e| SubnetError::api("list SpiderEndpoints", e))?;
    let key = match family {
        IpFamily::V4 => ("ipv4", "ipv4Pool"),
        IpFamily::V6 => ("ipv6", "ipv6Pool"),
    };
    for ep in &list.items {
        for ip in ep
            .data
            .pointer("/status/current/ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ip.get(key.1).and_then(Value::as_str) != Some(name.as_str()) {
                continue;
            }
            let addr = ip.get(key.0).and_then(Value::as_str).unwrap_or_default();
            let addr = addr.split('/').next().unwrap_or_default();
            if let Ok(r) = IpRange::parse_in(family, addr) {
                used.insert_range(r).ok();
            }
        }
    }
    Ok(current.difference(&used))
}

/// Deletes the reclaimable pools of a deleted application (`owner-application-uid=<uid>`,
/// `ippool-reclaim=true`).
async fn delete_pools_of(
    st: &State,
    kind: &AppKind,
    obj: &DynamicObject,
    uid: &str,
) -> std::result::Result<(), SubnetError> {
    let sel = plan::selector(&BTreeMap::from([
        (LABEL_OWNER_APPLICATION_UID.to_owned(), uid.to_owned()),
        (LABEL_IPPOOL_RECLAIM.to_owned(), "true".to_owned()),
        (
            LABEL_OWNER_APPLICATION_KIND.to_owned(),
            kind.kind.to_owned(),
        ),
    ]));
    let list = st
        .pools
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| SubnetError::api("list SpiderIPPools", e))?;
    for p in list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        delete_pool(
            st,
            p,
            &format!(
                "{} {}/{} was deleted",
                kind.kind,
                obj.metadata.namespace.as_deref().unwrap_or_default(),
                app_name(obj)
            ),
        )
        .await?;
    }
    Ok(())
}

async fn delete_pool(
    st: &State,
    p: &DynamicObject,
    why: &str,
) -> std::result::Result<(), SubnetError> {
    let name = display_name(p);
    match st.pools.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            log::info!("SpiderIPPool {name}: deleted ({why})");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(SubnetError::api(format!("delete SpiderIPPool {name}"), e)),
    }
}

/// Deletes reclaimable auto-created pools whose application is gone or was re-created (a
/// deletion missed while no leader ran). Pools of kinds outside [`APP_KINDS`] are left alone.
async fn sweep(st: &State) -> std::result::Result<(), SubnetError> {
    let sel = format!("{LABEL_IPPOOL_RECLAIM}=true,{LABEL_OWNER_APPLICATION_UID}");
    let list = st
        .pools
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| SubnetError::api("list SpiderIPPools", e))?;
    for p in list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let l = p.metadata.labels.clone().unwrap_or_default();
        let get = |k: &str| l.get(k).cloned().unwrap_or_default();
        let gv = get(LABEL_OWNER_APPLICATION_GV);
        let Some(kind) = APP_KINDS.iter().find(|k| {
            format!("{}_{}", k.group, k.version) == gv
                && k.kind == get(LABEL_OWNER_APPLICATION_KIND)
        }) else {
            continue;
        };
        let (ns, app_name) = (
            get(LABEL_OWNER_APPLICATION_NAMESPACE),
            get(LABEL_OWNER_APPLICATION_NAME),
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(st.client.clone(), &ns, &app_resource(kind));
        let app = api
            .get_opt(&app_name)
            .await
            .map_err(|e| SubnetError::api(format!("get {} {ns}/{app_name}", kind.kind), e))?;
        let uid = get(LABEL_OWNER_APPLICATION_UID);
        match app {
            Some(a) if a.metadata.uid.as_deref() == Some(uid.as_str()) => {}
            Some(_) => {
                delete_pool(
                    st,
                    p,
                    &format!("{} {ns}/{app_name} was re-created", kind.kind),
                )
                .await?
            }
            None => delete_pool(st, p, &format!("{} {ns}/{app_name} is gone", kind.kind)).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_subnet_annotations_replicas_and_uid_make_a_new_signature() {
        let deploy = &APP_KINDS[0];
        let base = json!({
            "metadata": {"uid": "u1"},
            "spec": {"replicas": 2, "template": {"metadata": {"annotations": {
                ANNO_POD_SUBNET: r#"{"ipv4":["s"]}"#}}}},
            "status": {"readyReplicas": 1}
        });
        let sig = signature(deploy, &base).unwrap();
        let mut status = base.clone();
        status["status"]["readyReplicas"] = json!(2);
        assert_eq!(signature(deploy, &status).unwrap(), sig);
        let mut scaled = base.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert_ne!(signature(deploy, &scaled).unwrap(), sig);
        let mut sized = base.clone();
        sized["spec"]["template"]["metadata"]["annotations"][ANNO_IPPOOL_IP_NUMBER] = json!("+2");
        assert_ne!(signature(deploy, &sized).unwrap(), sig);
        let plain = json!({"metadata": {"uid": "u1"}, "spec": {"replicas": 2, "template": {}}});
        assert_eq!(signature(deploy, &plain), None);
        let mut host = base.clone();
        host["spec"]["template"]["spec"] = json!({"hostNetwork": true});
        assert_eq!(signature(deploy, &host), None);
    }
}
