//! The pure half of the garbage collector: from a SpiderEndpoint and what the caches say about
//! its pod, its StatefulSet and its node, whether the endpoint's addresses are released and
//! why. Upstream's decision table (§3.15) is core's [`gc_verdict`]; in our store an address
//! record *is* the endpoint (docs/k8s-store.md), so a record's UID is the endpoint's
//! `status.current.uid` and "release the IP" and "release the endpoint" are one act: deleting
//! the endpoint.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod, PodSpec, PodStatus};
use serde::Deserialize;
use spiderpool_core::ipam::{
    GcConfig, GcEndpoint, GcPod, KIND_STATEFULSET, KIND_VMI, Lookup, gc_verdict,
    statefulset_pod_valid,
};
use spiderpool_core::objects::{
    PoolIPAllocation, SpiderEndpoint, SpiderEndpointStatus, SpiderIPPool,
};

/// What the decision reads besides the endpoint and its pod: StatefulSets and Nodes (from
/// caches), the GC switches and the clock.
pub struct World<'a> {
    /// `SPIDERPOOL_GC_*` switches.
    pub cfg: GcConfig,
    /// `SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY` in milliseconds.
    pub additional_delay_ms: i64,
    /// Now, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// `(namespace, name)` → the StatefulSet, if it exists.
    pub statefulset: &'a dyn Fn(&str, &str) -> Option<Arc<StatefulSet>>,
    /// Node name → whether it is Ready (unknown nodes are not).
    pub node_ready: &'a dyn Fn(&str) -> bool,
    /// `(namespace, VMI name)` → whether the KubeVirt VM still keeps its addresses (the VMI
    /// is alive, or a VM of that name is). Read from the apiserver only to confirm a release;
    /// on the caches it answers `false` so that the endpoint becomes a candidate.
    pub kubevirt_valid: &'a dyn Fn(&str, &str) -> bool,
}

/// The verdict for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Delete the endpoint (which frees its addresses).
    pub release: bool,
    /// Which rule decided (logged with every release).
    pub rule: &'static str,
}

/// Whether `sts` still wants a pod named `pod` (upstream's rule: ordinal in
/// `[ordinals.start, start + replicas)`; `replicas` defaults to 1 as in the API).
pub fn statefulset_wants(sts: &StatefulSet, pod: &str) -> bool {
    let Some(name) = sts.metadata.name.as_deref() else {
        return false;
    };
    let spec = sts.spec.as_ref();
    let start = spec
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0);
    let replicas = spec
        .and_then(|s| s.replicas)
        .map_or(Some(1), |r| u64::try_from(r).ok());
    statefulset_pod_valid(pod, name, start, replicas) && sts.metadata.deletion_timestamp.is_none()
}

/// The parts of a SpiderEndpoint the verdict reads (namespace, name, status), decoded from a
/// watch cache's object without converting the whole object: a full scan decodes every
/// endpoint of the cluster.
pub fn endpoint_from(
    namespace: &str,
    name: &str,
    status: Option<&serde_json::Value>,
) -> Result<SpiderEndpoint, serde_json::Error> {
    let status = match status {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(SpiderEndpointStatus::deserialize(v)?),
    };
    Ok(SpiderEndpoint::new(namespace, name, status))
}

/// Drops what the verdicts never read from a Pod before it is cached (containers, volumes,
/// labels, annotations, conditions...): the GC caches every pod of the cluster.
pub fn slim_pod(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(PodSpec {
            node_name: spec.node_name,
            host_network: spec.host_network,
            termination_grace_period_seconds: spec.termination_grace_period_seconds,
            restart_policy: spec.restart_policy,
            ..PodSpec::default()
        });
    }
    if let Some(st) = pod.status.take() {
        let statuses = st.container_statuses.map(|cs| {
            cs.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    state: c.state,
                    ..ContainerStatus::default()
                })
                .collect()
        });
        pod.status = Some(PodStatus {
            phase: st.phase,
            reason: st.reason,
            pod_ip: st.pod_ip,
            pod_ips: st.pod_ips,
            container_statuses: statuses,
            ..PodStatus::default()
        });
    }
}

/// The controller (`controller: true` owner reference) of `pod`: `(kind, name)`.
fn controller_of(pod: &Pod) -> Option<(&str, &str)> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.as_str(), o.name.as_str()))
}

/// Whether an owner of `kind`/`name` keeps the addresses of pod `ns/pod` (static IPs): a
/// StatefulSet that exists and wants the pod's ordinal; a KubeVirt VMI that is alive or whose
/// VM is (`None`: not a static owner).
fn static_owner(kind: &str, name: &str, ns: &str, pod: &str, world: &World<'_>) -> Option<bool> {
    match kind {
        KIND_STATEFULSET => {
            Some((world.statefulset)(ns, name).is_some_and(|s| statefulset_wants(&s, pod)))
        }
        KIND_VMI => Some((world.kubevirt_valid)(ns, name)),
        _ => None,
    }
}

fn millis(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_millisecond()
}

/// When a terminating or finished pod's addresses may go (milliseconds since the epoch),
/// as upstream's pod tracing computes it: terminating → `deletionTimestamp +
/// deletionGracePeriodSeconds + delay`; Succeeded/Failed → the last container's `finishedAt
/// + terminationGracePeriodSeconds + delay`. `None` for other pods.
pub fn deadline_ms(pod: &Pod, additional_delay_ms: i64) -> Option<i64> {
    if let Some(ts) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return Some(
            millis(ts)
                .saturating_add(grace.saturating_mul(1000))
                .saturating_add(additional_delay_ms),
        );
    }
    let status = pod.status.as_ref()?;
    if !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let finished = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(millis)
        .max()?;
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Some(
        finished
            .saturating_add(grace.saturating_mul(1000))
            .saturating_add(additional_delay_ms),
    )
}

/// What core's table needs to know about `pod`.
pub fn pod_facts(pod: &Pod, world: &World<'_>) -> GcPod {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref();
    let static_valid = controller_of(pod).and_then(|(k, n)| static_owner(k, n, ns, name, world));
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let terminating = pod.metadata.deletion_timestamp.is_some();
    GcPod {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        terminating,
        deletion_deadline_passed: terminating
            && deadline_ms(pod, world.additional_delay_ms).is_some_and(|d| world.now_ms >= d),
        has_pod_ips: status.is_some_and(|s| {
            s.pod_ips.as_ref().is_some_and(|v| !v.is_empty())
                || s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        }),
        is_static: static_valid.is_some(),
        static_valid: static_valid.unwrap_or(false),
        node_ready: (world.node_ready)(node),
    }
}

/// What core's table needs to know about `ep` (`None`: it has no status to judge by).
pub fn endpoint_facts(ep: &SpiderEndpoint, world: &World<'_>) -> Option<GcEndpoint> {
    let st = ep.status.as_ref()?;
    let ns = ep.metadata.namespace.as_deref().unwrap_or_default();
    let name = ep.metadata.name.as_deref().unwrap_or_default();
    let static_valid = static_owner(
        &st.owner_controller_type,
        &st.owner_controller_name,
        ns,
        name,
        world,
    );
    Some(GcEndpoint {
        uid: st.current.uid.clone(),
        is_static: static_valid.is_some(),
        static_valid: static_valid.unwrap_or(false),
    })
}

/// The verdict for endpoint `ep` whose pod (same namespace and name) is `pod`.
pub fn decide(ep: &SpiderEndpoint, pod: Option<&Pod>, world: &World<'_>) -> Decision {
    let Some(epf) = endpoint_facts(ep, world) else {
        return Decision {
            release: false,
            rule: "endpoint without status: left alone",
        };
    };
    let record = PoolIPAllocation {
        pod: format!(
            "{}/{}",
            ep.metadata.namespace.as_deref().unwrap_or_default(),
            ep.metadata.name.as_deref().unwrap_or_default()
        ),
        pod_uid: epf.uid.clone(),
    };
    let facts = pod.map(|p| pod_facts(p, world));
    // A finished stateless pod that nobody deletes: upstream's tracing releases it once its
    // grace period after the last container finished is over (core's table only traces it).
    if let (Some(p), Some(f)) = (pod, &facts)
        && f.uid == epf.uid
        && !f.terminating
        && !f.is_static
        && matches!(f.phase.as_str(), "Succeeded" | "Failed")
    {
        let allowed = if f.node_ready {
            world.cfg.terminating_on_ready_node
        } else {
            world.cfg.terminating_on_not_ready_node
        };
        let passed = deadline_ms(p, world.additional_delay_ms).is_some_and(|d| world.now_ms >= d);
        return Decision {
            release: allowed && passed,
            rule: if allowed && passed {
                "finished past its grace period"
            } else {
                "finished, within its grace period"
            },
        };
    }
    let lookup = match facts {
        Some(f) => Lookup::Found(f),
        None => Lookup::NotFound,
    };
    let v = gc_verdict(&record, &lookup, &Lookup::Found(epf), &world.cfg);
    Decision {
        release: v.release_ip || v.release_endpoint,
        rule: v.rule,
    }
}

/// The verdict on an upstream record of a pool's `status.allocatedIPs` (a pool upstream
/// wrote): core's table as upstream's scan applies it, with the record's pod and endpoint
/// (same namespace and name) as the caches have them. Only `release_ip` matters here: the
/// endpoint itself is judged on its own.
pub fn decide_record(
    record: &PoolIPAllocation,
    pod: Option<&Pod>,
    endpoint: Option<&SpiderEndpoint>,
    world: &World<'_>,
) -> Decision {
    let pod = match pod {
        Some(p) => Lookup::Found(pod_facts(p, world)),
        None => Lookup::NotFound,
    };
    let endpoint = match endpoint.map(|e| endpoint_facts(e, world)) {
        None => Lookup::NotFound,
        Some(Some(f)) => Lookup::Found(f),
        // An endpoint without status says nothing: judge the record on its pod alone.
        Some(None) => Lookup::NotFound,
    };
    let v = gc_verdict(record, &pod, &endpoint, &world.cfg);
    Decision {
        release: v.release_ip,
        rule: v.rule,
    }
}

/// Nodes that hold a block (or wait for one) in `pool` but are not in `nodes`.
pub fn blocks_of_missing_nodes(pool: &SpiderIPPool, nodes: &HashSet<String>) -> Vec<String> {
    pool.status
        .iter()
        .flat_map(|s| s.blocks.iter().flatten())
        .filter(|b| !nodes.contains(&b.node))
        .map(|b| b.node.clone())
        .collect()
}

/// Whether `node` is Ready (condition `Ready` is `True`).
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn ep(uid: &str, owner: (&str, &str)) -> SpiderEndpoint {
        serde_json::from_value(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderEndpoint",
            "metadata": {"name": "web-1", "namespace": "ns"},
            "status": {"current": {"uid": uid, "node": "n1",
                "ips": [{"interface": "eth0", "ipv4": "10.6.0.2/16", "ipv4Pool": "p"}]},
                "ownerControllerType": owner.0, "ownerControllerName": owner.1},
        }))
        .unwrap()
    }

    fn running(uid: &str) -> Pod {
        pod(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "uid": uid},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.6.0.2"}]},
        }))
    }

    fn sts(replicas: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {}, "serviceName": "web",
                "template": {}},
        }))
        .unwrap()
    }

    fn with_world<R>(
        sts_replicas: Option<i32>,
        cfg: GcConfig,
        f: impl FnOnce(&World<'_>) -> R,
    ) -> R {
        let lookup = move |_: &str, name: &str| {
            sts_replicas
                .filter(|_| name == "web")
                .map(|r| Arc::new(sts(r)))
        };
        let ready = |_: &str| true;
        let vm = |_: &str, name: &str| name == "vm-alive";
        f(&World {
            cfg,
            additional_delay_ms: 0,
            now_ms: NOW,
            statefulset: &lookup,
            node_ready: &ready,
            kubevirt_valid: &vm,
        })
    }

    fn verdict(e: &SpiderEndpoint, p: Option<&Pod>, replicas: Option<i32>) -> Decision {
        with_world(replicas, GcConfig::default(), |w| decide(e, p, w))
    }

    /// RFC 3339 of `ms` (milliseconds since the epoch, within the day of NOW), without a
    /// date library: NOW is 2023-11-14T22:13:20Z.
    fn ts(ms: i64) -> String {
        let t = 22 * 3600 + 13 * 60 + 20 + (ms - NOW) / 1000;
        format!(
            "2023-11-14T{:02}:{:02}:{:02}Z",
            t / 3600,
            (t / 60) % 60,
            t % 60
        )
    }

    #[test]
    fn pod_gone_releases_a_stateless_endpoint() {
        let d = verdict(&ep("u1", ("Pod", "web-1")), None, None);
        assert!(d.release, "{d:?}");
    }

    #[test]
    fn running_pod_with_same_uid_is_kept() {
        let d = verdict(&ep("u1", ("Pod", "web-1")), Some(&running("u1")), None);
        assert!(!d.release, "{d:?}");
    }

    #[test]
    fn pod_recreated_with_another_uid_releases_the_old_endpoint() {
        let d = verdict(&ep("u1", ("Pod", "web-1")), Some(&running("u2")), None);
        assert!(d.release, "{d:?}");
    }

    #[test]
    fn statefulset_endpoint_follows_replicas_and_existence() {
        let e = ep("u1", ("StatefulSet", "web"));
        assert!(
            !verdict(&e, None, Some(2)).release,
            "ordinal 1 < 2 replicas"
        );
        assert!(verdict(&e, None, Some(1)).release, "scaled down to 1");
        assert!(verdict(&e, None, None).release, "StatefulSet gone");
    }

    #[test]
    fn statefulset_wants_respects_ordinals_start() {
        let mut s = sts(2);
        assert!(statefulset_wants(&s, "web-1"));
        assert!(!statefulset_wants(&s, "web-2"));
        assert!(!statefulset_wants(&s, "other-1"));
        s.spec.as_mut().unwrap().ordinals =
            Some(k8s_openapi::api::apps::v1::StatefulSetOrdinals { start: Some(5) });
        assert!(statefulset_wants(&s, "web-6"));
        assert!(!statefulset_wants(&s, "web-1"));
    }

    #[test]
    fn terminating_pod_is_released_only_past_its_grace_period() {
        let e = ep("u1", ("Pod", "web-1"));
        let mut p = running("u1");
        p.metadata.deletion_grace_period_seconds = Some(30);
        // deletionTimestamp 10 s ago + 30 s grace: not yet (the pod still has IPs).
        p.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!(ts(NOW - 10_000))).unwrap());
        assert!(!verdict(&e, Some(&p), None).release);
        // 40 s ago: past.
        p.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!(ts(NOW - 40_000))).unwrap());
        assert!(verdict(&e, Some(&p), None).release);
        // ...unless the node flag forbids it.
        let cfg = GcConfig {
            terminating_on_ready_node: false,
            ..GcConfig::default()
        };
        assert!(!with_world(None, cfg, |w| decide(&e, Some(&p), w)).release);
    }

    #[test]
    fn additional_delay_extends_the_deadline() {
        let mut p = running("u1");
        p.metadata.deletion_grace_period_seconds = Some(30);
        p.metadata.deletion_timestamp = Some(serde_json::from_value(json!(ts(NOW))).unwrap());
        assert_eq!(deadline_ms(&p, 0), Some(NOW + 30_000));
        assert_eq!(deadline_ms(&p, 5_000), Some(NOW + 35_000));
        assert_eq!(deadline_ms(&running("u1"), 0), None, "not terminating");
    }

    #[test]
    fn finished_pod_goes_after_its_termination_grace_period() {
        let e = ep("u1", ("Pod", "web-1"));
        let finished = |ago_ms: i64| {
            pod(json!({
                "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1"},
                "spec": {"nodeName": "n1", "containers": [], "terminationGracePeriodSeconds": 30},
                "status": {"phase": "Succeeded", "containerStatuses": [{
                    "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "finishedAt": ts(NOW - ago_ms)}}}]},
            }))
        };
        assert!(!verdict(&e, Some(&finished(10_000)), None).release);
        assert!(verdict(&e, Some(&finished(31_000)), None).release);
    }

    #[test]
    fn running_pod_without_ips_follows_the_switch() {
        let e = ep("u1", ("Pod", "web-1"));
        let mut p = running("u1");
        p.status.as_mut().unwrap().pod_ips = None;
        assert!(!verdict(&e, Some(&p), None).release);
        let cfg = GcConfig {
            running_pod_on_empty_pod_ips: true,
            ..GcConfig::default()
        };
        assert!(with_world(None, cfg, |w| decide(&e, Some(&p), w)).release);
    }

    #[test]
    fn pending_pod_and_endpoint_without_status_are_kept() {
        let e = ep("u1", ("Pod", "web-1"));
        let mut p = running("u1");
        p.status = Some(serde_json::from_value(json!({"phase": "Pending"})).unwrap());
        assert!(!verdict(&e, Some(&p), None).release);
        let mut bare = e.clone();
        bare.status = None;
        assert!(!verdict(&bare, None, None).release);
    }

    #[test]
    fn kubevirt_endpoints_follow_their_vm() {
        let e = ep("u1", ("VirtualMachineInstance", "vm-alive"));
        assert!(!verdict(&e, None, None).release);
        let e = ep("u1", ("VirtualMachineInstance", "vm-gone"));
        assert!(verdict(&e, None, None).release);
    }

    #[test]
    fn endpoint_from_reads_the_status_and_refuses_a_broken_one() {
        let e = ep("u1", ("Pod", "web-1"));
        let status = serde_json::to_value(e.status.as_ref().unwrap()).unwrap();
        let got = endpoint_from("ns", "web-1", Some(&status)).unwrap();
        assert_eq!(got.status, e.status);
        assert!(endpoint_from("ns", "x", None).unwrap().status.is_none());
        let broken = json!({"current": {"uid": 7, "ips": "no"}});
        assert!(endpoint_from("ns", "x", Some(&broken)).is_err());
    }

    #[test]
    fn upstream_records_follow_their_pods() {
        let rec = |uid: &str| PoolIPAllocation {
            pod: "ns/web-1".into(),
            pod_uid: uid.into(),
        };
        let d = |r: &PoolIPAllocation, p: Option<&Pod>, e: Option<&SpiderEndpoint>| {
            with_world(Some(2), GcConfig::default(), |w| decide_record(r, p, e, w))
        };
        assert!(d(&rec("u1"), None, None).release, "pod and endpoint gone");
        assert!(
            !d(&rec("u1"), Some(&running("u1")), None).release,
            "pod running"
        );
        assert!(
            d(&rec("u0"), Some(&running("u1")), None).release,
            "previous pod"
        );
        let sts_ep = ep("u1", ("StatefulSet", "web"));
        assert!(
            !d(&rec("u1"), None, Some(&sts_ep)).release,
            "StatefulSet still wants it"
        );
    }

    #[test]
    fn a_slim_pod_gets_the_same_verdicts() {
        let mut p = pod(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1",
                "labels": {"a": "b"}, "annotations": {"k": "v"},
                "deletionTimestamp": ts(NOW - 40_000), "deletionGracePeriodSeconds": 30,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "web", "uid": "s", "controller": true}]},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.6.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}]},
        }));
        let e = ep("u1", ("StatefulSet", "web"));
        let before = (
            with_world(Some(1), GcConfig::default(), |w| pod_facts(&p, w)),
            deadline_ms(&p, 0),
            verdict(&e, Some(&p), Some(1)),
        );
        slim_pod(&mut p);
        let after = (
            with_world(Some(1), GcConfig::default(), |w| pod_facts(&p, w)),
            deadline_ms(&p, 0),
            verdict(&e, Some(&p), Some(1)),
        );
        assert_eq!(before, after);
        assert!(p.metadata.labels.is_none());
        assert!(p.spec.as_ref().unwrap().containers.is_empty());
    }

    #[test]
    fn blocks_of_missing_nodes_are_listed() {
        let pool: SpiderIPPool = serde_json::from_value(json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "p"},
            "spec": {"subnet": "10.6.0.0/16", "ips": ["10.6.0.2-10.6.0.9"]},
            "status": {"blocks": [{"node": "a", "ips": ["10.6.0.2"]},
                {"node": "b", "ips": ["10.6.0.3"]}]},
        }))
        .unwrap();
        let nodes: HashSet<String> = ["a".to_owned()].into();
        assert_eq!(blocks_of_missing_nodes(&pool, &nodes), ["b"]);
    }
}
