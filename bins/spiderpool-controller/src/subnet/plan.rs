//! The pure part of the SpiderSubnet controllers (spec §1.2, §3.12): who an application is,
//! what its auto-created pools are called and labelled, how many addresses they need, which
//! addresses a pool gains or loses, and what a subnet's `controlledIPPools` should say.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use spiderpool_core::ip::{
    IpFamily, IpRange, IpRangeSet, cidr_label_value_str, ip_from_u128, ip_to_u128,
};
use spiderpool_core::ipam::IpNumber;
use spiderpool_core::objects::PoolIPPreAllocation;
use spiderpool_core::objects::keys::{
    AFFINITY_APP_API_GROUP, AFFINITY_APP_API_VERSION, AFFINITY_APP_KIND, AFFINITY_APP_NAME,
    AFFINITY_APP_NAMESPACE, LABEL_INTERFACE, LABEL_IP_VERSION, LABEL_IPPOOL_CIDR,
    LABEL_IPPOOL_RECLAIM, LABEL_OWNER_APPLICATION_GV, LABEL_OWNER_APPLICATION_KIND,
    LABEL_OWNER_APPLICATION_NAME, LABEL_OWNER_APPLICATION_NAMESPACE, LABEL_OWNER_APPLICATION_UID,
    LABEL_OWNER_SPIDER_SUBNET,
};

/// A Kubernetes-native kind whose pods may ask for auto-created pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppKind {
    /// API group (`apps`, `batch`).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource (plural).
    pub plural: &'static str,
}

/// The kinds the application controller watches (upstream's list).
pub const APP_KINDS: &[AppKind] = &[
    AppKind {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
    },
    AppKind {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
    },
    AppKind {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
    },
    AppKind {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
    },
    AppKind {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
    },
    AppKind {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
    },
];

/// One application instance: what auto-created pools are labelled with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppRef {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID of this instance.
    pub uid: String,
}

impl AppRef {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The `owner-application-gv` label: `group_version`, or `version` for the core group.
    pub fn gv_label(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}_{}", self.group, self.version)
        }
    }

    /// The application key of `controlledIPPools`: `<gv label>_<Kind>_<namespace>_<name>`.
    pub fn key(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.gv_label(),
            self.kind,
            self.namespace,
            self.name
        )
    }
}

/// Reads an application key back: `(group, version, kind, namespace, name)`. Kubernetes names
/// and groups hold no `_`, so the split is unambiguous.
pub fn parse_app_key(key: &str) -> Option<(String, String, String, String, String)> {
    let parts: Vec<&str> = key.split('_').collect();
    let own = |s: &&str| (*s).to_owned();
    match parts.as_slice() {
        [v, k, ns, n] => Some((String::new(), own(v), own(k), own(ns), own(n))),
        [g, v, k, ns, n] => Some((own(g), own(v), own(k), own(ns), own(n))),
        _ => None,
    }
    .filter(|(_, v, k, ns, n)| ![v, k, ns, n].iter().any(|s| s.is_empty()))
}

/// The auto-created pool's name: `auto<4|6>-<app name>-<interface>-<uid part>` in lower case,
/// the uid part being the first five characters of the UID's last `-` segment; the application
/// name is cut so that the whole fits in 253 characters.
pub fn pool_name(family: IpFamily, app: &AppRef, interface: &str) -> String {
    let uid = app.uid.rsplit('-').next().unwrap_or_default();
    let uid: String = uid.chars().take(5).collect::<String>().to_lowercase();
    let interface = interface.to_lowercase();
    let prefix = format!("auto{}-", family.version());
    let fixed = prefix.len() + 1 + interface.len() + 1 + uid.len();
    let room = 253usize.saturating_sub(fixed);
    let name: String = app.name.to_lowercase().chars().take(room).collect();
    format!("{prefix}{name}-{interface}-{uid}")
}

/// The labels the agent finds an application's pool by (spec §3.12), and the pool's CIDR label.
pub fn pool_labels(
    app: &AppRef,
    subnet: &str,
    cidr: &str,
    interface: &str,
    family: IpFamily,
    reclaim: bool,
) -> BTreeMap<String, String> {
    [
        (LABEL_OWNER_SPIDER_SUBNET, subnet.to_owned()),
        (LABEL_OWNER_APPLICATION_GV, app.gv_label()),
        (LABEL_OWNER_APPLICATION_KIND, app.kind.clone()),
        (LABEL_OWNER_APPLICATION_NAMESPACE, app.namespace.clone()),
        (LABEL_OWNER_APPLICATION_NAME, app.name.clone()),
        (LABEL_OWNER_APPLICATION_UID, app.uid.clone()),
        (LABEL_INTERFACE, interface.to_owned()),
        (LABEL_IPPOOL_RECLAIM, reclaim.to_string()),
        (LABEL_IP_VERSION, family.to_string()),
        (LABEL_IPPOOL_CIDR, cidr_label_value_str(cidr)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The labels that say "this application's pool for this interface and family", whatever the
/// instance (UID) and reclaim setting.
pub fn identity_labels(
    app: &AppRef,
    subnet: &str,
    interface: &str,
    family: IpFamily,
) -> BTreeMap<String, String> {
    let mut l = pool_labels(app, subnet, "", interface, family, true);
    for k in [
        LABEL_OWNER_APPLICATION_UID,
        LABEL_IPPOOL_RECLAIM,
        LABEL_IPPOOL_CIDR,
    ] {
        l.remove(k);
    }
    l
}

/// A label selector string (`k=v,k=v`) for `labels`.
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The podAffinity of an auto-created pool: the application's five keys, which the agent
/// compares with the pod's top controller.
pub fn pool_affinity(app: &AppRef) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        (AFFINITY_APP_API_GROUP, &app.group),
        (AFFINITY_APP_API_VERSION, &app.version),
        (AFFINITY_APP_KIND, &app.kind),
        (AFFINITY_APP_NAMESPACE, &app.namespace),
        (AFFINITY_APP_NAME, &app.name),
    ] {
        m.insert(k.to_owned(), Value::String(v.clone()));
    }
    serde_json::json!({ "matchLabels": m })
}

/// The pod template of an application of `kind` (a CronJob's is inside its job template).
pub fn pod_template<'a>(kind: &str, obj: &'a Value) -> Option<&'a Value> {
    match kind {
        "CronJob" => obj.pointer("/spec/jobTemplate/spec/template"),
        _ => obj.pointer("/spec/template"),
    }
}

/// Why an application is not handled itself, if so: a host-network template, or a ReplicaSet
/// or Job run by a Deployment or CronJob (the owner is handled instead).
pub fn skip_reason(kind: &str, obj: &Value) -> Option<&'static str> {
    let controller_kind = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str);
    match (kind, controller_kind) {
        ("ReplicaSet", Some("Deployment")) => return Some("run by a Deployment"),
        ("Job", Some("CronJob")) => return Some("run by a CronJob"),
        _ => {}
    }
    let host = pod_template(kind, obj)
        .and_then(|t| t.pointer("/spec/hostNetwork"))
        .and_then(Value::as_bool);
    (host == Some(true)).then_some("host network")
}

/// The replicas an application asks for (spec §3.12): `spec.replicas` (absent → 0) for
/// Deployments, ReplicaSets and StatefulSets; `status.desiredNumberScheduled` for DaemonSets;
/// for Jobs and CronJobs completions if set, else parallelism, else 1 (a 0 counts as 1).
pub fn replicas(kind: &str, obj: &Value) -> u64 {
    let num = |v: Option<&Value>| v.and_then(Value::as_u64);
    match kind {
        "DaemonSet" => num(obj.pointer("/status/desiredNumberScheduled")).unwrap_or(0),
        "Job" | "CronJob" => {
            let spec = if kind == "CronJob" {
                obj.pointer("/spec/jobTemplate/spec")
            } else {
                obj.get("spec")
            };
            let completions = num(spec.and_then(|s| s.get("completions")));
            let parallelism = num(spec.and_then(|s| s.get("parallelism")));
            completions.or(parallelism).unwrap_or(1).max(1)
        }
        _ => num(obj.pointer("/spec/replicas")).unwrap_or(0),
    }
}

/// The size an auto-created pool must have.
pub fn desired_size(number: IpNumber, replicas: u64) -> u64 {
    match number {
        IpNumber::Fixed(n) => n,
        IpNumber::Flexible(n) => replicas.saturating_add(n),
    }
}

/// The `ipam.spidernet.io/ippool-ip-number` annotation written on the pool (`N` or `+N`).
pub fn ip_number_text(number: IpNumber) -> String {
    match number {
        IpNumber::Fixed(n) => n.to_string(),
        IpNumber::Flexible(n) => format!("+{n}"),
    }
}

/// Why a pool cannot be brought to its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    /// Growing needs more free addresses than the subnet has (upstream's wording).
    #[error("insufficient subnet FreeIPs, required '{required}' but only left '{left}'")]
    InsufficientSubnet {
        /// Addresses still needed.
        required: u128,
        /// Free addresses of the subnet.
        left: u128,
    },
    /// Shrinking needs more unused addresses than the pool has.
    #[error(
        "IPPool available free IPs are not enough: {required} must go but only {left} are held by no SpiderEndpoint and in no node's block"
    )]
    NotEnoughUnused {
        /// Addresses that must go.
        required: u128,
        /// Addresses that may go.
        left: u128,
    },
}

/// The lowest `count` addresses of `set` (all of it when it is smaller).
pub fn lowest(set: &IpRangeSet, count: u128) -> IpRangeSet {
    let family = set.family();
    let mut out = Vec::new();
    let mut left = count;
    for r in set.ranges() {
        if left == 0 {
            break;
        }
        if r.len() <= left {
            left -= r.len();
            out.push(r);
        } else {
            let end = ip_from_u128(family, ip_to_u128(r.start()) + left - 1);
            if let Some(r) = end.and_then(|e| IpRange::new(r.start(), e).ok()) {
                out.push(r);
            }
            left = 0;
        }
    }
    IpRangeSet::from_ranges(family, out).unwrap_or_else(|_| IpRangeSet::new(family))
}

/// The addresses a pool should hold to have `desired` of them. Growing adds the lowest of
/// `free` (subnet addresses no other pool, record or reservation has); shrinking drops the
/// lowest of `removable` (the pool's addresses nobody holds and no block claims). All or
/// nothing: an error changes nothing.
pub fn resize(
    current: &IpRangeSet,
    desired: u128,
    free: &IpRangeSet,
    removable: &IpRangeSet,
) -> Result<IpRangeSet, ResizeError> {
    let have = current.len();
    if have < desired {
        let need = desired - have;
        let free = free.difference(current);
        if free.len() < need {
            return Err(ResizeError::InsufficientSubnet {
                required: need,
                left: free.len(),
            });
        }
        current
            .union(&lowest(&free, need))
            .map_err(|_| ResizeError::InsufficientSubnet {
                required: need,
                left: 0,
            })
    } else if have > desired {
        let extra = have - desired;
        let removable = removable.intersection(current);
        if removable.len() < extra {
            return Err(ResizeError::NotEnoughUnused {
                required: extra,
                left: removable.len(),
            });
        }
        Ok(current.difference(&lowest(&removable, extra)))
    } else {
        Ok(current.clone())
    }
}

/// What the subnet controller knows of one pool carrying the subnet's CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    /// Pool name.
    pub name: String,
    /// Application key, for auto-created pools.
    pub application: Option<String>,
    /// `ips − excludeIPs`, or `None` if unreadable.
    pub effective: Option<IpRangeSet>,
}

/// The new `controlledIPPools` (spec §1.2): an ordinary pool's entry is its addresses inside
/// the subnet; an auto-created pool keeps its record (the application controller owns it), or
/// gets one from its addresses when it has none; the record of an auto-created pool that does
/// not exist (yet) stays while its application exists (listed in `live_apps`).
pub fn rebuild_controlled(
    subnet_ips: &IpRangeSet,
    old: &BTreeMap<String, PoolIPPreAllocation>,
    pools: &[PoolView],
    live_apps: &BTreeSet<String>,
) -> BTreeMap<String, PoolIPPreAllocation> {
    let mut out = BTreeMap::new();
    for p in pools {
        let kept = p
            .application
            .as_ref()
            .and_then(|_| old.get(&p.name))
            .cloned();
        let entry = match kept {
            Some(e) => e,
            None => {
                let Some(eff) = &p.effective else {
                    // Unreadable: keep whatever was recorded rather than free its addresses.
                    if let Some(e) = old.get(&p.name) {
                        out.insert(p.name.clone(), e.clone());
                    }
                    continue;
                };
                PoolIPPreAllocation {
                    ips: eff.intersection(subnet_ips).to_strings(),
                    application: p.application.clone(),
                }
            }
        };
        out.insert(p.name.clone(), entry);
    }
    for (name, e) in old {
        if out.contains_key(name) {
            continue;
        }
        if e.application
            .as_ref()
            .is_some_and(|a| live_apps.contains(a))
        {
            out.insert(name.clone(), e.clone());
        }
    }
    out
}

/// The number of addresses `controlled` lists (entries that cannot be read count nothing).
pub fn controlled_count(
    family: IpFamily,
    controlled: &BTreeMap<String, PoolIPPreAllocation>,
) -> u128 {
    controlled_union(family, controlled, None).len()
}

/// The union of the addresses of every entry of `controlled` except `except`.
pub fn controlled_union(
    family: IpFamily,
    controlled: &BTreeMap<String, PoolIPPreAllocation>,
    except: Option<&str>,
) -> IpRangeSet {
    let mut all = IpRangeSet::new(family);
    for (name, e) in controlled {
        if Some(name.as_str()) == except {
            continue;
        }
        if let Ok(s) = IpRangeSet::parse(family, &e.ips) {
            all = all.union(&s).unwrap_or(all);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn set(entries: &[&str]) -> IpRangeSet {
        IpRangeSet::parse(IpFamily::V4, entries).unwrap()
    }

    fn deploy(uid: &str) -> AppRef {
        AppRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            namespace: "default".into(),
            name: "Nginx".into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn keys_names_and_labels_follow_upstream() {
        let app = deploy("8f0e1c2a-1b2c-4d5e-9f00-a1b2c3d4e5f6");
        assert_eq!(app.key(), "apps_v1_Deployment_default_Nginx");
        assert_eq!(app.api_version(), "apps/v1");
        assert_eq!(
            pool_name(IpFamily::V4, &app, "ETH0"),
            "auto4-nginx-eth0-a1b2c"
        );
        assert_eq!(
            pool_name(IpFamily::V6, &app, "net1"),
            "auto6-nginx-net1-a1b2c"
        );
        let long = AppRef {
            name: "x".repeat(300),
            ..app.clone()
        };
        let n = pool_name(IpFamily::V4, &long, "eth0");
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("-eth0-a1b2c"));
        let core = AppRef {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            ..app.clone()
        };
        assert_eq!(core.key(), "v1_Pod_default_Nginx");
        assert_eq!(core.gv_label(), "v1");
        assert_eq!(
            parse_app_key("apps_v1_Deployment_default_nginx").unwrap(),
            (
                "apps".into(),
                "v1".into(),
                "Deployment".into(),
                "default".into(),
                "nginx".into()
            )
        );
        assert_eq!(parse_app_key("v1_Pod_ns_p").unwrap().0, "");
        assert_eq!(parse_app_key("nonsense"), None);
        assert_eq!(parse_app_key("a__b_c_d"), None);

        let l = pool_labels(&app, "s1", "10.6.0.0/16", "eth0", IpFamily::V4, true);
        assert_eq!(l[LABEL_OWNER_SPIDER_SUBNET], "s1");
        assert_eq!(l[LABEL_OWNER_APPLICATION_GV], "apps_v1");
        assert_eq!(l[LABEL_OWNER_APPLICATION_KIND], "Deployment");
        assert_eq!(l[LABEL_OWNER_APPLICATION_UID], app.uid);
        assert_eq!(l[LABEL_IP_VERSION], "IPv4");
        assert_eq!(l[LABEL_IPPOOL_RECLAIM], "true");
        assert_eq!(l[LABEL_IPPOOL_CIDR], "10-6-0-0-16");
        assert_eq!(l.len(), 10);
        let id = identity_labels(&app, "s1", "eth0", IpFamily::V4);
        assert_eq!(id.len(), 7);
        assert!(!id.contains_key(LABEL_OWNER_APPLICATION_UID));
        assert_eq!(
            selector(&BTreeMap::from([
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ])),
            "a=1,b=2"
        );
        assert_eq!(
            pool_affinity(&app),
            json!({"matchLabels": {
                "ipam.spidernet.io/app-api-group": "apps", "ipam.spidernet.io/app-api-version": "v1",
                "ipam.spidernet.io/app-kind": "Deployment", "ipam.spidernet.io/app-namespace": "default",
                "ipam.spidernet.io/app-name": "Nginx"}})
        );
    }

    #[test]
    fn replicas_per_kind() {
        assert_eq!(replicas("Deployment", &json!({"spec": {"replicas": 3}})), 3);
        assert_eq!(replicas("StatefulSet", &json!({"spec": {}})), 0);
        assert_eq!(
            replicas(
                "DaemonSet",
                &json!({"status": {"desiredNumberScheduled": 4}})
            ),
            4
        );
        assert_eq!(replicas("DaemonSet", &json!({})), 0);
        assert_eq!(replicas("Job", &json!({"spec": {"parallelism": 2}})), 2);
        assert_eq!(replicas("Job", &json!({"spec": {"parallelism": 0}})), 1);
        assert_eq!(
            replicas(
                "Job",
                &json!({"spec": {"parallelism": 2, "completions": 5}})
            ),
            5
        );
        assert_eq!(replicas("Job", &json!({"spec": {"completions": 0}})), 1);
        assert_eq!(replicas("Job", &json!({"spec": {}})), 1);
        assert_eq!(
            replicas(
                "CronJob",
                &json!({"spec": {"jobTemplate": {"spec": {"parallelism": 3}}}})
            ),
            3
        );
        assert_eq!(desired_size(IpNumber::Flexible(1), 2), 3);
        assert_eq!(desired_size(IpNumber::Fixed(5), 2), 5);
        assert_eq!(ip_number_text(IpNumber::Flexible(1)), "+1");
        assert_eq!(ip_number_text(IpNumber::Fixed(5)), "5");
    }

    #[test]
    fn skipped_applications() {
        let owned = |kind: &str| {
            json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u", "controller": true}]}})
        };
        assert_eq!(
            skip_reason("ReplicaSet", &owned("Deployment")),
            Some("run by a Deployment")
        );
        assert_eq!(
            skip_reason("Job", &owned("CronJob")),
            Some("run by a CronJob")
        );
        assert_eq!(skip_reason("ReplicaSet", &owned("Other")), None);
        assert_eq!(
            skip_reason(
                "Deployment",
                &json!({"spec": {"template": {"spec": {"hostNetwork": true}}}})
            ),
            Some("host network")
        );
        assert_eq!(
            skip_reason(
                "CronJob",
                &json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostNetwork": true}}}}}})
            ),
            Some("host network")
        );
        assert_eq!(
            skip_reason("Deployment", &json!({"spec": {"template": {}}})),
            None
        );
    }

    #[test]
    fn grow_takes_the_lowest_free_addresses_all_or_nothing() {
        let free = set(&["10.0.0.1-10.0.0.3", "10.0.0.7-10.0.0.9"]);
        let none = IpRangeSet::new(IpFamily::V4);
        let got = resize(&none, 3, &free, &none).unwrap();
        assert_eq!(got, set(&["10.0.0.1-10.0.0.3"]));
        let got = resize(&got, 5, &free, &none).unwrap();
        assert_eq!(got, set(&["10.0.0.1-10.0.0.3", "10.0.0.7-10.0.0.8"]));
        let err = resize(&none, 7, &free, &none).unwrap_err();
        assert_eq!(
            err,
            ResizeError::InsufficientSubnet {
                required: 7,
                left: 6
            }
        );
        assert_eq!(
            err.to_string(),
            "insufficient subnet FreeIPs, required '7' but only left '6'"
        );
        // Addresses the pool already has are not counted as free.
        let cur = set(&["10.0.0.1"]);
        assert_eq!(
            resize(&cur, 2, &free, &none).unwrap(),
            set(&["10.0.0.1-10.0.0.2"])
        );
    }

    #[test]
    fn shrink_drops_the_lowest_unused_addresses_all_or_nothing() {
        let cur = set(&["10.0.0.1-10.0.0.5"]);
        let free = IpRangeSet::new(IpFamily::V4);
        // .1 and .3 are held: .2 and .4 go first.
        let removable = set(&["10.0.0.2", "10.0.0.4-10.0.0.5"]);
        assert_eq!(
            resize(&cur, 3, &free, &removable).unwrap(),
            set(&["10.0.0.1", "10.0.0.3", "10.0.0.5"])
        );
        assert_eq!(
            resize(&cur, 1, &free, &removable).unwrap_err(),
            ResizeError::NotEnoughUnused {
                required: 4,
                left: 3
            }
        );
        assert_eq!(resize(&cur, 5, &free, &removable).unwrap(), cur);
        assert_eq!(lowest(&cur, 0), IpRangeSet::new(IpFamily::V4));
        assert_eq!(lowest(&cur, 9), cur);
    }

    #[test]
    fn controlled_pools_are_rebuilt_from_pools_and_live_applications() {
        let subnet = set(&["10.0.0.1-10.0.0.100"]);
        let entry = |ips: &[&str], app: Option<&str>| PoolIPPreAllocation {
            ips: ips.iter().map(|s| (*s).to_owned()).collect(),
            application: app.map(str::to_owned),
        };
        let old = BTreeMap::from([
            (
                "auto-a".to_owned(),
                entry(&["10.0.0.10-10.0.0.12"], Some("apps_v1_Deployment_d_a")),
            ),
            (
                "auto-gone".to_owned(),
                entry(&["10.0.0.20"], Some("apps_v1_Deployment_d_gone")),
            ),
            (
                "auto-pending".to_owned(),
                entry(&["10.0.0.30"], Some("apps_v1_Deployment_d_p")),
            ),
            ("manual-gone".to_owned(), entry(&["10.0.0.40"], None)),
        ]);
        let pools = vec![
            PoolView {
                name: "auto-a".into(),
                application: Some("apps_v1_Deployment_d_a".into()),
                effective: Some(set(&["10.0.0.10-10.0.0.11"])),
            },
            PoolView {
                name: "manual".into(),
                application: None,
                effective: Some(set(&["10.0.0.90-10.0.0.110"])),
            },
        ];
        let live = BTreeSet::from(["apps_v1_Deployment_d_p".to_owned()]);
        let got = rebuild_controlled(&subnet, &old, &pools, &live);
        assert_eq!(
            got,
            BTreeMap::from([
                (
                    "auto-a".to_owned(),
                    entry(&["10.0.0.10-10.0.0.12"], Some("apps_v1_Deployment_d_a"))
                ),
                (
                    "auto-pending".to_owned(),
                    entry(&["10.0.0.30"], Some("apps_v1_Deployment_d_p"))
                ),
                ("manual".to_owned(), entry(&["10.0.0.90-10.0.0.100"], None)),
            ])
        );
        assert_eq!(controlled_count(IpFamily::V4, &got), 3 + 1 + 11);
        assert_eq!(
            controlled_union(IpFamily::V4, &got, Some("manual")),
            set(&["10.0.0.10-10.0.0.12", "10.0.0.30"])
        );
    }
}
