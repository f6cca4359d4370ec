//! The SpiderSubnet controller proper (spec §1.2): triggered by subnet events and by events of
//! pools that carry a subnet's CIDR or name it as owner.
//!
//! Per subnet: ensure the `ipam.spidernet.io/subnet-cidr` label; adopt every pool whose
//! `spec.subnet` is the subnet's (controller ownerReference, `owner-spider-subnet` label,
//! gateway and routes inherited when the pool has none); rebuild `status.controlledIPPools`
//! and the two counts, written only when they change, with the resourceVersion read. A subnet
//! being deleted deletes the pools it owns and loses its finalizer once none is left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::Recorder;
use kube::runtime::watcher::{self, Event};
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
use crate::metrics::Metrics;
use crate::{Ctx, Result};

struct State {
    client: kube::Client,
    subnets: Api<DynamicObject>,
    pools: Api<DynamicObject>,
    ar: ApiResource,
    args: Args,
    locks: Arc<SubnetLocks>,
    events: Recorder,
    metrics: Arc<Metrics>,
}

impl State {
    /// Sets `name`'s gauges: pools it controls, its total and its free addresses.
    fn record(&self, name: &str, pools: usize, total: i64, allocated: i64) {
        let label = Metrics::subnet_label(name);
        let m = &self.metrics;
        m.debug_subnet_ippool_counts
            .get_or_create(&label)
            .set(i64::try_from(pools).unwrap_or(i64::MAX));
        m.debug_subnet_total_ip_counts
            .get_or_create(&label)
            .set(total);
        m.debug_subnet_available_ip_counts
            .get_or_create(&label)
            .set(total.saturating_sub(allocated).max(0));
    }

    /// Drops `name`'s gauges (the subnet is gone).
    fn forget(&self, name: &str) {
        let label = Metrics::subnet_label(name);
        self.metrics.debug_subnet_ippool_counts.remove(&label);
        self.metrics.debug_subnet_total_ip_counts.remove(&label);
        self.metrics.debug_subnet_available_ip_counts.remove(&label);
    }
}

/// When to look at a subnet again (besides its events and the resync): `None` for not before.
type Next = Option<Duration>;

/// Runs the subnet controller until it fails or is dropped.
///
/// Its own loop rather than a `kube` Controller: pools change all the time (every agent's
/// block claim and count is a status write), and only a change of what the subnet derives
/// from them (CIDR, addresses, ownership labels, deletion) should cost a reconcile, so pool
/// events are compared with the last seen fingerprint, and deletions always count.
pub(crate) async fn run(ctx: Ctx, args: Args, locks: Arc<SubnetLocks>) -> Result<()> {
    let ar = api_resource(&SUBNET);
    let pool_ar = api_resource(&IPPOOL);
    let subnets: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let pools: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &pool_ar);
    let st = State {
        client: ctx.client.clone(),
        subnets: subnets.clone(),
        pools: pools.clone(),
        ar,
        args: args.clone(),
        locks,
        events: recorder(&ctx),
        metrics: ctx.metrics.clone(),
    };
    let mut subnet_events = watcher::watcher(subnets, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut pool_events = watcher::watcher(pools, watcher::Config::default())
        .default_backoff()
        .boxed();
    // Subnet name -> (its CIDR, fingerprint); pool name -> fingerprint.
    let mut known_subnets: HashMap<String, (String, String)> = HashMap::new();
    let mut known_pools: HashMap<String, String> = HashMap::new();
    let mut queue: BTreeSet<String> = BTreeSet::new();
    let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut resync = tokio::time::interval(args.resync_period);
    log::info!("SpiderSubnet controller: started");
    loop {
        tokio::select! {
            biased;
            ev = subnet_events.next() => match ev {
                None => return Ok(()),
                Some(Ok(Event::Apply(o) | Event::InitApply(o))) => {
                    let name = display_name(&o);
                    let cidr = str_at(&o, "/spec/subnet");
                    let fp = json!([o.data.get("spec"), o.metadata.labels,
                        o.metadata.deletion_timestamp.is_some(), o.metadata.finalizers]).to_string();
                    if known_subnets.get(&name).map(|k| &k.1) != Some(&fp) {
                        queue.insert(name.clone());
                    }
                    known_subnets.insert(name, (cidr, fp));
                    st.metrics.total_subnet_counts.set(i64::try_from(known_subnets.len()).unwrap_or(i64::MAX));
                }
                Some(Ok(Event::Delete(o))) => {
                    let name = display_name(&o);
                    known_subnets.remove(&name);
                    st.forget(&name);
                    st.metrics.total_subnet_counts.set(i64::try_from(known_subnets.len()).unwrap_or(i64::MAX));
                }
                Some(Ok(Event::Init | Event::InitDone)) => {}
                Some(Err(e)) => log::warn!("SpiderSubnet controller: watch SpiderSubnets: {e}"),
            },
            ev = pool_events.next() => match ev {
                None => return Ok(()),
                Some(Ok(Event::Apply(o) | Event::InitApply(o))) => {
                    let fp = pool_fingerprint(&o);
                    let name = display_name(&o);
                    if known_pools.get(&name) != Some(&fp) {
                        let was = known_pools.insert(name, fp.clone());
                        queue.extend(concerned(&o, was.as_deref(), &known_subnets));
                    }
                }
                Some(Ok(Event::Delete(o))) => {
                    let was = known_pools.remove(&display_name(&o));
                    queue.extend(concerned(&o, was.as_deref(), &known_subnets));
                }
                Some(Ok(Event::Init | Event::InitDone)) => {}
                Some(Err(e)) => log::warn!("SpiderSubnet controller: watch SpiderIPPools: {e}"),
            },
            Some(name) = retry_rx.recv() => {
                queue.insert(name);
            }
            _ = resync.tick() => queue.extend(known_subnets.keys().cloned()),
            () = std::future::ready(()), if !queue.is_empty() => {
                let Some(name) = queue.pop_first() else { continue };
                let next = match reconcile(&name, &st).await {
                    Ok(next) => next,
                    Err(e) => {
                        log::warn!("SpiderSubnet {name}: {e}");
                        Some(st.args.retry_delay)
                    }
                };
                if let Some(delay) = next {
                    let tx = retry_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(name);
                    });
                }
            }
        }
    }
}

fn str_at(o: &DynamicObject, pointer: &str) -> String {
    o.data
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// What of a pool its subnet depends on: CIDR, addresses, labels, owners, deletion.
fn pool_fingerprint(o: &DynamicObject) -> String {
    json!([
        o.data.pointer("/spec/subnet"),
        o.data.pointer("/spec/ips"),
        o.data.pointer("/spec/excludeIPs"),
        o.data.pointer("/spec/gateway"),
        o.data.pointer("/spec/routes"),
        o.metadata.labels,
        o.metadata.owner_references,
        o.metadata.deletion_timestamp.is_some(),
    ])
    .to_string()
}

/// The subnets a pool event concerns: the one its label names (now or in the fingerprint seen
/// before) and every subnet with its CIDR (a pool to adopt).
fn concerned(
    pool: &DynamicObject,
    was: Option<&str>,
    subnets: &HashMap<String, (String, String)>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(owner) = label(pool, LABEL_OWNER_SPIDER_SUBNET) {
        out.push(owner.to_owned());
    }
    if let Some(old) = was.and_then(|w| serde_json::from_str::<Value>(w).ok())
        && let Some(owner) = old
            .pointer(&format!(
                "/5/{}",
                LABEL_OWNER_SPIDER_SUBNET.replace('/', "~1")
            ))
            .and_then(Value::as_str)
    {
        out.push(owner.to_owned());
    }
    let cidr = str_at(pool, "/spec/subnet");
    out.extend(
        subnets
            .iter()
            .filter(|(_, (c, _))| !cidr.is_empty() && *c == cidr)
            .map(|(n, _)| n.clone()),
    );
    out
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

async fn reconcile(name: &str, st: &State) -> std::result::Result<Next, SubnetError> {
    let name = name.to_owned();
    let lock = st.locks.of(&name);
    let _held = lock.lock().await;
    // Read again under the lock: the application controller may have just written.
    let Some(obj) = st
        .subnets
        .get_opt(&name)
        .await
        .map_err(|e| SubnetError::api(format!("get SpiderSubnet {name}"), e))?
    else {
        return Ok(None);
    };
    let subnet: SpiderSubnet = match from_dynamic(&obj) {
        Ok(s) => s,
        Err(e) => return broken(st, &obj, &e.to_string()).await,
    };
    let (family, subnet_ips) = match subnet_addresses(&subnet) {
        Ok(v) => v,
        Err(why) => return broken(st, &obj, &why).await,
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
        return finalize(st, &obj, &name, &ours).await;
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
        return Ok(None);
    }
    // Adoption of the pools with the same CIDR.
    let mut adopted = Vec::new();
    for p in all.items.iter().filter(|p| {
        p.data.pointer("/spec/subnet").and_then(Value::as_str) == Some(cidr.as_str())
            && p.metadata.deletion_timestamp.is_none()
    }) {
        if adopt(st, &subnet, &name, &uid, p).await? {
            adopted.push(display_name(p));
        }
    }
    if !adopted.is_empty() {
        // Their events bring us back with the new labels.
        return Ok(Some(Duration::from_millis(200)));
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
    st.record(
        &name,
        controlled.len(),
        status.total_ip_count.unwrap_or(0),
        status.allocated_ip_count.unwrap_or(0),
    );
    if status == before {
        return Ok(None);
    }
    match write_status(&st.subnets, &obj, &status).await {
        Ok(()) => {
            log::info!(
                "SpiderSubnet {name}: {} pools, allocatedIPCount {}, totalIPCount {}",
                controlled.len(),
                status.allocated_ip_count.unwrap_or(0),
                status.total_ip_count.unwrap_or(0)
            );
            Ok(None)
        }
        Err(SubnetError::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 409 => Ok(Some(Duration::from_millis(200))),
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
) -> std::result::Result<Next, SubnetError> {
    report_broken(&st.events, &st.ar, obj, "InvalidSpiderSubnet", why).await;
    Ok(None)
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
) -> std::result::Result<Next, SubnetError> {
    let has_finalizer = obj
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == SPIDER_FINALIZER));
    if !has_finalizer {
        return Ok(None);
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
        return Ok(Some(st.args.retry_delay));
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
            Ok(None)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(Duration::from_millis(200))),
        Err(e) => Err(SubnetError::api(
            format!("remove the finalizer of SpiderSubnet {name}"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pool(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pool_events_concern_the_owner_before_and_after_and_subnets_of_the_cidr() {
        let subnets = HashMap::from([
            ("a".to_owned(), ("10.0.0.0/24".to_owned(), String::new())),
            ("b".to_owned(), ("10.1.0.0/24".to_owned(), String::new())),
        ]);
        let before = pool(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p", "labels": {LABEL_OWNER_SPIDER_SUBNET: "old"}},
            "spec": {"subnet": "10.0.0.0/24", "ips": ["10.0.0.1"]}
        }));
        let after = pool(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p", "labels": {LABEL_OWNER_SPIDER_SUBNET: "new"}},
            "spec": {"subnet": "10.0.0.0/24", "ips": ["10.0.0.1"]}
        }));
        let was = pool_fingerprint(&before);
        assert_ne!(was, pool_fingerprint(&after));
        let mut got = concerned(&after, Some(&was), &subnets);
        got.sort();
        assert_eq!(got, vec!["a", "new", "old"]);
        // A status-only change leaves the fingerprint alone.
        let mut written = after.clone();
        written.data["status"] = json!({"blocks": [{"node": "n", "ips": ["10.0.0.1"]}]});
        assert_eq!(pool_fingerprint(&written), pool_fingerprint(&after));
    }

    #[test]
    fn pool_addresses_and_app_keys_are_read_from_raw_pools() {
        let p = pool(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p", "labels": {
                LABEL_OWNER_APPLICATION_GV: "apps_v1", LABEL_OWNER_APPLICATION_KIND: "Deployment",
                LABEL_OWNER_APPLICATION_NAMESPACE: "ns", LABEL_OWNER_APPLICATION_NAME: "web"}},
            "spec": {"subnet": "10.0.0.0/24", "ips": ["10.0.0.1-10.0.0.5"],
                     "excludeIPs": ["10.0.0.2"]}
        }));
        assert_eq!(
            pool_addresses(IpFamily::V4, &p).unwrap(),
            IpRangeSet::parse(IpFamily::V4, &["10.0.0.1", "10.0.0.3-10.0.0.5"]).unwrap()
        );
        assert_eq!(
            pool_app_key(&p).as_deref(),
            Some("apps_v1_Deployment_ns_web")
        );
        let bad = pool(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "q"}, "spec": {"subnet": "10.0.0.0/24", "ips": ["nope"]}
        }));
        assert_eq!(pool_addresses(IpFamily::V4, &bad), None);
        assert_eq!(pool_app_key(&bad), None);
    }
}
