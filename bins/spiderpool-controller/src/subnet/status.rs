//! The SpiderSubnet controller proper (spec §1.2): triggered by subnet events and by events of
//! pools that carry a subnet's CIDR or name it as owner.
//!
//! Per subnet: ensure the `ipam.spidernet.io/subnet-cidr` label; adopt every pool whose
//! `spec.subnet` is the subnet's (controller ownerReference, `owner-spider-subnet` label,
//! gateway and routes inherited when the pool has none); rebuild `status.controlledIPPools`
//! and the two counts, written only when they change, with the resourceVersion read. A subnet
//! being deleted deletes the pools it owns and loses its finalizer once none is left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::{Value, json};
use spiderpool_core::ip::{Cidr, IpFamily, IpRangeSet, cidr_label_value_str};
use spiderpool_core::objects::keys::{
    LABEL_OWNER_APPLICATION_GV, LABEL_OWNER_APPLICATION_KIND, LABEL_OWNER_APPLICATION_NAME,
    LABEL_OWNER_APPLICATION_NAMESPACE, LABEL_OWNER_SPIDER_SUBNET, LABEL_SUBNET_CIDR,
    SPIDER_FINALIZER,
};
use spiderpool_core::objects::{API_VERSION, IPPOOL, SUBNET, SpiderSubnet, SpiderSubnetStatus};
use spiderpool_k8s::kinds::{api_resource, display_name, from_dynamic};

use super::plan::{self, PoolView};
use super::{Args, SubnetError, SubnetLocks};
use crate::ippool::{recorder, report_broken};
use crate::{Ctx, Result};

struct State {
    client: kube::Client,
    subnets: Api<DynamicObject>,
    pools: Api<DynamicObject>,
    ar: ApiResource,
    args: Args,
    locks: Arc<SubnetLocks>,
    events: Recorder,
}

/// Runs the subnet controller until it fails or is dropped.
pub(crate) async fn run(ctx: Ctx, args: Args, locks: Arc<SubnetLocks>) -> Result<()> {
    let ar = api_resource(&SUBNET);
    let pool_ar = api_resource(&IPPOOL);
    let subnets: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let pools: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &pool_ar);
    let state = Arc::new(State {
        client: ctx.client.clone(),
        subnets: subnets.clone(),
        pools: pools.clone(),
        ar: ar.clone(),
        args: args.clone(),
        locks,
        events: recorder(&ctx),
    });
    let controller = Controller::new_with(subnets, watcher::Config::default(), ar.clone());
    let store = controller.store();
    let map_ar = ar.clone();
    // A pool event concerns the subnet it names as owner and every subnet with its CIDR (a
    // pool to adopt).
    let mapper = move |pool: DynamicObject| {
        let mut out: Vec<ObjectRef<DynamicObject>> = Vec::new();
        if let Some(owner) = pool
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_OWNER_SPIDER_SUBNET))
        {
            out.push(ObjectRef::new_with(owner, map_ar.clone()));
        }
        let cidr = pool.data.pointer("/spec/subnet").and_then(Value::as_str);
        for s in store.state() {
            let same =
                cidr.is_some() && s.data.pointer("/spec/subnet").and_then(Value::as_str) == cidr;
            if let Some(n) = s.metadata.name.as_deref()
                && same
                && !out.iter().any(|o| o.name == n)
            {
                out.push(ObjectRef::new_with(n, map_ar.clone()));
            }
        }
        out
    };
    log::info!("SpiderSubnet controller: started");
    controller
        .watches_with(pools, pool_ar, watcher::Config::default(), mapper)
        .with_config(controller::Config::default().concurrency(args.workers))
        .run(reconcile, error_policy, state)
        .for_each(|res| async move {
            if let Err(e) = res {
                log::warn!("SpiderSubnet controller: {e}");
            }
        })
        .await;
    Ok(())
}

fn error_policy(obj: Arc<DynamicObject>, err: &SubnetError, st: Arc<State>) -> Action {
    log::warn!("SpiderSubnet {}: {err}", display_name(&obj));
    Action::requeue(st.args.retry_delay)
}

/// The family and the effective addresses (`ips − excludeIPs`) of a subnet.
pub(crate) fn subnet_addresses(
    s: &SpiderSubnet,
) -> std::result::Result<(IpFamily, IpRangeSet), String> {
    let family = match s.spec.ip_version.and_then(IpFamily::from_version) {
        Some(f) => f,
        None => Cidr::parse(&s.spec.subnet)
            .map_err(|e| format!("spec.subnet: {e}"))?
            .family(),
    };
    let ips = IpRangeSet::parse(family, s.spec.ips.as_deref().unwrap_or_default())
        .map_err(|e| format!("spec.ips: {e}"))?;
    let exclude = IpRangeSet::parse(family, s.spec.exclude_ips.as_deref().unwrap_or_default())
        .map_err(|e| format!("spec.excludeIPs: {e}"))?;
    Ok((family, ips.difference(&exclude)))
}

/// A pool's effective addresses (`ips − excludeIPs`) read from the raw object.
pub(crate) fn pool_addresses(family: IpFamily, pool: &DynamicObject) -> Option<IpRangeSet> {
    let list = |key: &str| -> Option<Vec<String>> {
        match pool.data.pointer(&format!("/spec/{key}")) {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).ok(),
        }
    };
    let ips = IpRangeSet::parse(family, &list("ips")?).ok()?;
    let exclude = IpRangeSet::parse(family, &list("excludeIPs")?).ok()?;
    Some(ips.difference(&exclude))
}

/// The application key of an auto-created pool, from its labels.
pub(crate) fn pool_app_key(pool: &DynamicObject) -> Option<String> {
    let l = pool.metadata.labels.as_ref()?;
    l.get(LABEL_OWNER_APPLICATION_NAME)?;
    let get = |k: &str| l.get(k).cloned().unwrap_or_default();
    Some(format!(
        "{}_{}_{}_{}",
        get(LABEL_OWNER_APPLICATION_GV),
        get(LABEL_OWNER_APPLICATION_KIND),
        get(LABEL_OWNER_APPLICATION_NAMESPACE),
        get(LABEL_OWNER_APPLICATION_NAME)
    ))
}

fn label<'a>(obj: &'a DynamicObject, key: &str) -> Option<&'a str> {
    obj.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

async fn reconcile(
    obj: Arc<DynamicObject>,
    st: Arc<State>,
) -> std::result::Result<Action, SubnetError> {
    let name = display_name(&obj);
    let lock = st.locks.of(&name);
    let _held = lock.lock().await;
    // Read again under the lock: the application controller may have just written.
    let Some(obj) = st
        .subnets
        .get_opt(&name)
        .await
        .map_err(|e| SubnetError::api(format!("get SpiderSubnet {name}"), e))?
    else {
        return Ok(Action::await_change());
    };
    let subnet: SpiderSubnet = match from_dynamic(&obj) {
        Ok(s) => s,
        Err(e) => return broken(&st, &obj, &e.to_string()).await,
    };
    let (family, subnet_ips) = match subnet_addresses(&subnet) {
        Ok(v) => v,
        Err(why) => return broken(&st, &obj, &why).await,
    };
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let cidr = subnet.spec.subnet.clone();
    let all = st
        .pools
        .list(&ListParams::default())
        .await
        .map_err(|e| SubnetError::api("list SpiderIPPools", e))?;
    let ours: Vec<&DynamicObject> = all
        .items
        .iter()
        .filter(|p| label(p, LABEL_OWNER_SPIDER_SUBNET) == Some(name.as_str()))
        .collect();
    if obj.metadata.deletion_timestamp.is_some() {
        return finalize(&st, &obj, &name, &ours).await;
    }
    // The CIDR label (normally set by the mutating webhook).
    let want_label = cidr_label_value_str(&cidr);
    if label(&obj, LABEL_SUBNET_CIDR) != Some(want_label.as_str()) {
        let patch = json!({"metadata": {"labels": {LABEL_SUBNET_CIDR: want_label}}});
        st.subnets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| SubnetError::api(format!("label SpiderSubnet {name}"), e))?;
        // The label write is an event of its own: continue from there.
        return Ok(Action::await_change());
    }
    // Adoption of the pools with the same CIDR.
    let mut adopted = Vec::new();
    for p in all.items.iter().filter(|p| {
        p.data.pointer("/spec/subnet").and_then(Value::as_str) == Some(cidr.as_str())
            && p.metadata.deletion_timestamp.is_none()
    }) {
        if adopt(&st, &subnet, &name, &uid, p).await? {
            adopted.push(display_name(p));
        }
    }
    if !adopted.is_empty() {
        // Their events bring us back with the new labels.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let views: Vec<PoolView> = ours
        .iter()
        .filter(|p| p.data.pointer("/spec/subnet").and_then(Value::as_str) == Some(cidr.as_str()))
        .map(|p| PoolView {
            name: display_name(p),
            application: pool_app_key(p),
            effective: pool_addresses(family, p),
        })
        .collect();
    let mut status = subnet.status.clone().unwrap_or_default();
    let old = match status.controlled_ip_pools() {
        Ok(o) => o,
        Err(e) => {
            report_broken(
                &st.events,
                &st.ar,
                &obj,
                "InvalidSpiderSubnet",
                &format!("{e}: rebuilt from the pools"),
            )
            .await;
            BTreeMap::new()
        }
    };
    let mut live = BTreeSet::new();
    for (pool, e) in &old {
        if views.iter().any(|v| &v.name == pool) {
            continue;
        }
        if let Some(app) = &e.application
            && super::app::exists(&st.client, app).await?
        {
            live.insert(app.clone());
        }
    }
    let controlled = plan::rebuild_controlled(&subnet_ips, &old, &views, &live);
    let before = status.clone();
    status.set_controlled_ip_pools(&controlled);
    status.total_ip_count = Some(subnet_ips.len_saturating_i64());
    status.allocated_ip_count =
        Some(i64::try_from(plan::controlled_count(family, &controlled)).unwrap_or(i64::MAX));
    if status == before {
        return Ok(Action::requeue(st.args.resync_period));
    }
    match write_status(&st.subnets, &obj, &status).await {
        Ok(()) => {
            log::info!(
                "SpiderSubnet {name}: {} pools, allocatedIPCount {}, totalIPCount {}",
                controlled.len(),
                status.allocated_ip_count.unwrap_or(0),
                status.total_ip_count.unwrap_or(0)
            );
            Ok(Action::requeue(st.args.resync_period))
        }
        Err(SubnetError::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 409 => Ok(Action::requeue(Duration::from_millis(200))),
        Err(e) => Err(e),
    }
}

/// Replaces the subnet's status (the rest of `obj` as read, so its resourceVersion is the
/// precondition).
pub(crate) async fn write_status(
    subnets: &Api<DynamicObject>,
    obj: &DynamicObject,
    status: &SpiderSubnetStatus,
) -> std::result::Result<(), SubnetError> {
    let name = display_name(obj);
    let mut next = obj.clone();
    let mut st = next
        .data
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    match &status.controlled_ip_pools {
        Some(t) => st["controlledIPPools"] = Value::String(t.clone()),
        None => {
            if let Some(m) = st.as_object_mut() {
                m.remove("controlledIPPools");
            }
        }
    }
    st["totalIPCount"] = status.total_ip_count.unwrap_or(0).into();
    st["allocatedIPCount"] = status.allocated_ip_count.unwrap_or(0).into();
    next.data["status"] = st;
    subnets
        .replace_status(&name, &PostParams::default(), &next)
        .await
        .map(|_| ())
        .map_err(|e| SubnetError::api(format!("update SpiderSubnet {name} status"), e))
}

async fn broken(
    st: &State,
    obj: &DynamicObject,
    why: &str,
) -> std::result::Result<Action, SubnetError> {
    report_broken(&st.events, &st.ar, obj, "InvalidSpiderSubnet", why).await;
    Ok(Action::await_change())
}

/// The ownerReference that makes `subnet` a pool's controller.
pub(crate) fn owner_reference(name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "SpiderSubnet", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// Makes `pool` controlled by the subnet if it is not yet; `Ok(true)` if it was written.
async fn adopt(
    st: &State,
    subnet: &SpiderSubnet,
    name: &str,
    uid: &str,
    pool: &DynamicObject,
) -> std::result::Result<bool, SubnetError> {
    let pool_name = display_name(pool);
    let refs = pool.metadata.owner_references.clone().unwrap_or_default();
    let controller = refs.iter().find(|o| o.controller == Some(true));
    let ours = |o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference| {
        o.kind == "SpiderSubnet"
            && o.api_version.starts_with("spiderpool.spidernet.io/")
            && o.name == name
    };
    match controller {
        Some(o)
            if ours(o) && o.uid == uid && label(pool, LABEL_OWNER_SPIDER_SUBNET) == Some(name) =>
        {
            return Ok(false);
        }
        Some(o) if !ours(o) => {
            // Controlled by something else: left alone, as upstream.
            log::debug!(
                "SpiderIPPool {pool_name}: controlled by {} {}: not adopted",
                o.kind,
                o.name
            );
            return Ok(false);
        }
        _ => {}
    }
    let mut new_refs: Vec<Value> = refs
        .iter()
        .filter(|o| !ours(o))
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    new_refs.push(owner_reference(name, uid));
    let mut spec = serde_json::Map::new();
    if pool
        .data
        .pointer("/spec/gateway")
        .is_none_or(Value::is_null)
        && let Some(gw) = &subnet.spec.gateway
    {
        spec.insert("gateway".into(), gw.clone().into());
    }
    if pool.data.pointer("/spec/routes").is_none_or(Value::is_null)
        && let Some(routes) = subnet.spec.routes.as_ref().filter(|r| !r.is_empty())
    {
        spec.insert(
            "routes".into(),
            serde_json::to_value(routes).unwrap_or(Value::Null),
        );
    }
    let mut patch = json!({"metadata": {
        "resourceVersion": pool.metadata.resource_version,
        "labels": {LABEL_OWNER_SPIDER_SUBNET: name},
        "ownerReferences": new_refs,
    }});
    if !spec.is_empty() {
        patch["spec"] = Value::Object(spec);
    }
    match st
        .pools
        .patch(&pool_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            log::info!("SpiderSubnet {name}: adopted SpiderIPPool {pool_name}");
            Ok(true)
        }
        // Changed meanwhile (an agent's count) or gone: its event brings us back.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(true),
        Err(e) => Err(SubnetError::api(
            format!("adopt SpiderIPPool {pool_name}"),
            e,
        )),
    }
}

/// A subnet being deleted: its pools go first (upstream re-issues the delete with foreground
/// propagation; we delete them ourselves, which needs no garbage collector), then the
/// finalizer.
async fn finalize(
    st: &State,
    obj: &DynamicObject,
    name: &str,
    ours: &[&DynamicObject],
) -> std::result::Result<Action, SubnetError> {
    let has_finalizer = obj
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == SPIDER_FINALIZER));
    if !has_finalizer {
        return Ok(Action::await_change());
    }
    if !ours.is_empty() {
        for p in ours
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let pool = display_name(p);
            match st.pools.delete(&pool, &DeleteParams::default()).await {
                Ok(_) => {
                    log::info!("SpiderSubnet {name} is being deleted: deleting SpiderIPPool {pool}")
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(SubnetError::api(format!("delete SpiderIPPool {pool}"), e)),
            }
        }
        return Ok(Action::requeue(st.args.retry_delay));
    }
    let rest: Vec<&String> = obj
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != SPIDER_FINALIZER)
        .collect();
    let patch = json!({"metadata": {
        "resourceVersion": obj.metadata.resource_version,
        "finalizers": rest,
    }});
    match st
        .subnets
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            log::info!("SpiderSubnet {name}: no pool left, finalizer removed");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(SubnetError::api(
            format!("remove the finalizer of SpiderSubnet {name}"),
            e,
        )),
    }
}
