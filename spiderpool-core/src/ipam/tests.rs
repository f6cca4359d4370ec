//! Rule-by-rule tests of the IPAM engine through [`MemoryStore`].

use crate::ipam::IpamError;
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::meta::LabelSelector;
use crate::objects::keys::*;
use crate::objects::{PoolIPAllocation, Route, SpiderIPPool, SpiderIPPoolSpec};

fn v4pool(name: &str, ips: &str) -> SpiderIPPool {
    SpiderIPPool::new(
        name,
        SpiderIPPoolSpec {
            subnet: "10.6.0.0/16".into(),
            ips: Some(vec![ips.into()]),
            gateway: Some("10.6.0.1".into()),
            ..Default::default()
        },
    )
}

fn v6pool(name: &str, ips: &str) -> SpiderIPPool {
    SpiderIPPool::new(
        name,
        SpiderIPPoolSpec {
            subnet: "fd00:6::/64".into(),
            ips: Some(vec![ips.into()]),
            gateway: Some("fd00:6::1".into()),
            ..Default::default()
        },
    )
}

fn with(mut p: SpiderIPPool, f: impl FnOnce(&mut SpiderIPPoolSpec)) -> SpiderIPPool {
    f(&mut p.spec);
    p
}

fn store(pools: Vec<SpiderIPPool>) -> MemoryStore {
    let s = MemoryStore::new();
    for p in pools {
        s.put_pool(p).unwrap();
    }
    s
}

fn req(name: &str, uid: &str, ifname: &str) -> AllocateRequest {
    let mut r = AllocateRequest {
        container_id: format!("c-{uid}"),
        ifname: ifname.into(),
        ..Default::default()
    };
    r.pod.namespace = "ns".into();
    r.pod.name = name.into();
    r.pod.uid = uid.into();
    r.pod.node = "node1".into();
    r.pod.controller = TopController::orphan("ns", name, uid);
    r
}

fn anno(mut r: AllocateRequest, k: &str, v: &str) -> AllocateRequest {
    r.pod.annotations.insert(k.into(), v.into());
    r
}

fn alloc(s: &MemoryStore, r: &AllocateRequest) -> Result<AllocationDecision, IpamError> {
    allocate_with_retry(s, r, DEFAULT_MAX_ATTEMPTS)
}

fn v4_of(d: &AllocationDecision) -> String {
    d.result.current().unwrap().ipv4.as_ref().unwrap().cidr()
}

fn pool_of(d: &AllocationDecision) -> String {
    d.result
        .current()
        .unwrap()
        .ipv4
        .as_ref()
        .unwrap()
        .pool
        .clone()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn selector(k: &str, v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(k.into(), v.into())])),
        match_expressions: None,
    }
}

#[test]
fn ipam_cluster_default_pool_lowest_first_with_gateway_route() {
    let s = store(vec![with(v4pool("d", "10.6.1.10-10.6.1.12"), |s| {
        s.default = Some(true);
        s.exclude_ips = Some(vec!["10.6.1.10".into()]);
    })]);
    let d = alloc(&s, &req("a", "u1", "eth0")).unwrap();
    assert_eq!(d.kind, DecisionKind::Allocated);
    assert_eq!(v4_of(&d), "10.6.1.11/16");
    let nic = d.result.current().unwrap();
    assert_eq!(nic.routes, [Route::new("0.0.0.0/0", "10.6.0.1")]);
    let rec = s.pool_state("d").unwrap().record(ip("10.6.1.11")).cloned();
    assert_eq!(
        rec,
        Some(PoolIPAllocation {
            pod: "ns/a".into(),
            pod_uid: "u1".into()
        })
    );
    let ep = s.endpoint(&EndpointKey::new("ns", "a")).unwrap();
    assert!(ep.metadata.has_finalizer(SPIDER_FINALIZER));
    assert_eq!(ep.metadata.owner_references.unwrap()[0].kind, "Pod");
}

#[test]
fn ipam_no_pool_rules() {
    let s = store(vec![v4pool("p", "10.6.1.10")]);
    let e = alloc(&s, &req("a", "u1", "eth0")).unwrap_err();
    assert!(matches!(e, IpamError::NoPoolRules { .. }), "{e}");
}

#[test]
fn ipam_source_priority() {
    let pools = vec![
        with(v4pool("cluster", "10.6.1.1"), |s| s.default = Some(true)),
        v4pool("nad", "10.6.2.1"),
        v4pool("ns", "10.6.3.1"),
        v4pool("single", "10.6.4.1"),
        v4pool("multi", "10.6.5.1"),
    ];
    let s = store(pools);
    let mut r = req("a", "u1", "eth0");
    let plan = |r: &AllocateRequest| {
        let snap = s.snapshot(&[]).unwrap();
        let c = pool_candidates(r, &snap).unwrap();
        (c.source, c.nics[0].ipv4.clone())
    };
    assert_eq!(
        plan(&r),
        (PoolSource::ClusterDefault, vec!["cluster".into()])
    );
    r.default_ipv4_ippool = vec!["nad".into()];
    assert_eq!(plan(&r), (PoolSource::NadDefault, vec!["nad".into()]));
    r.namespace_annotations
        .insert(ANNO_NS_DEFAULT_IPV4_IPPOOL.into(), r#"["ns"]"#.into());
    assert_eq!(plan(&r), (PoolSource::NamespaceDefault, vec!["ns".into()]));
    let r = anno(r, ANNO_POD_IPPOOL, r#"{"ipv4":["single"]}"#);
    assert_eq!(plan(&r), (PoolSource::PodIPPool, vec!["single".into()]));
    let r = anno(
        r,
        ANNO_POD_IPPOOLS,
        r#"[{"interface":"eth0","ipv4":["multi"]}]"#,
    );
    assert_eq!(plan(&r), (PoolSource::PodIPPools, vec!["multi".into()]));
}

#[test]
fn ipam_wildcards_and_family_filtering() {
    let s = store(vec![
        v4pool("rail-b", "10.6.1.1"),
        v4pool("rail-a", "10.6.2.1"),
        v6pool("rail-6", "fd00:6::10"),
        v4pool("other", "10.6.3.1"),
    ]);
    let r = anno(
        req("a", "u1", "eth0"),
        ANNO_POD_IPPOOL,
        r#"{"ipv4":["rail-*"],"ipv6":["rail-?"]}"#,
    );
    let snap = s.snapshot(&[]).unwrap();
    let c = pool_candidates(&r, &snap).unwrap();
    assert_eq!(
        c.nics[0].ipv4,
        ["rail-a", "rail-b"],
        "v4 pools only, by name"
    );
    assert_eq!(c.nics[0].ipv6, ["rail-6"]);
    let mut r4 = r.clone();
    r4.config.enable_ipv6 = false;
    let c = pool_candidates(&r4, &snap).unwrap();
    assert!(
        c.nics[0].ipv6.is_empty(),
        "disabled family dropped silently"
    );
    let d = alloc(&s, &r4).unwrap();
    assert!(d.result.current().unwrap().ipv6.is_none());
}

#[test]
fn ipam_precheck_duplicate_and_missing() {
    let s = store(vec![v4pool("p", "10.6.1.1")]);
    let r = anno(
        req("a", "u1", "eth0"),
        ANNO_POD_IPPOOL,
        r#"{"ipv4":["p","p"]}"#,
    );
    let e = alloc(&s, &r).unwrap_err().to_string();
    assert_eq!(e, "wrong input, duplicate IPPool p specified for NIC eth0");
    let r = anno(
        req("a", "u1", "eth0"),
        ANNO_POD_IPPOOL,
        r#"{"ipv4":["nope"]}"#,
    );
    let e = alloc(&s, &r).unwrap_err();
    assert!(
        matches!(e, IpamError::PoolNotFound { ref pool, .. } if pool == "nope"),
        "{e}"
    );
}

fn filtered(s: &MemoryStore, r: &AllocateRequest) -> String {
    let e = alloc(s, r).unwrap_err();
    assert!(matches!(e, IpamError::AllPoolsFiltered { .. }), "{e}");
    e.to_string()
}

#[test]
fn ipam_affinity_filters_accept_and_reject() {
    let base = req("a", "u1", "net1");
    let r = anno(base.clone(), ANNO_POD_IPPOOL, r#"{"ipv4":["p"]}"#);
    let case = |f: &dyn Fn(&mut SpiderIPPoolSpec)| store(vec![with(v4pool("p", "10.6.1.1"), f)]);

    // nodeName
    let s = case(&|s| s.node_name = Some(vec!["node2".into()]));
    assert!(filtered(&s, &r).contains("nodeName [\"node2\"] does not list node node1"));
    let s = case(&|s| s.node_name = Some(vec!["node1".into()]));
    assert!(alloc(&s, &r).is_ok());
    // nodeAffinity
    let s = case(&|s| s.node_affinity = Some(selector("zone", "a")));
    assert!(filtered(&s, &r).contains(r#"nodeAffinity {"matchLabels":{"zone":"a"}}"#));
    let mut ok = r.clone();
    ok.node_labels.insert("zone".into(), "a".into());
    assert!(alloc(&s, &ok).is_ok());
    // namespaceName
    let s = case(&|s| s.namespace_name = Some(vec!["other".into()]));
    assert!(filtered(&s, &r).contains("namespaceName"));
    // namespaceAffinity
    let s = case(&|s| s.namespace_affinity = Some(selector("team", "x")));
    assert!(filtered(&s, &r).contains("namespaceAffinity"));
    let mut ok = r.clone();
    ok.namespace_labels.insert("team".into(), "x".into());
    assert!(alloc(&s, &ok).is_ok());
    // podAffinity
    let s = case(&|s| s.pod_affinity = Some(selector("app", "web")));
    assert!(filtered(&s, &r).contains("podAffinity"));
    let mut ok = r.clone();
    ok.pod.labels.insert("app".into(), "web".into());
    assert!(alloc(&s, &ok).is_ok());
    // disabled
    let s = case(&|s| s.disable = Some(true));
    assert!(filtered(&s, &r).contains("IPPool p: disabled"));
    // multusName: NAD from the networks annotation
    let s = case(&|s| s.multus_name = Some(vec!["macvlan".into()]));
    let bad = anno(r.clone(), ANNO_MULTUS_NETWORKS, "ns/other");
    assert!(filtered(&s, &bad).contains("does not list NAD ns/other"));
    let good = anno(r.clone(), ANNO_MULTUS_NETWORKS, "kube-system/macvlan@net1");
    assert!(alloc(&s, &good).is_ok());
    // match_master_subnet
    let s = case(&|_| {});
    let mut m = r.clone();
    m.match_master_subnet = true;
    m.master_addresses = vec![ip("192.168.0.5")];
    assert!(filtered(&s, &m).contains("master interface"));
    m.master_addresses = vec![ip("10.6.0.5")];
    assert!(alloc(&s, &m).is_ok());
}

#[test]
fn ipam_first_nic_without_multus_annotation_keeps_unrestricted_pools() {
    // [QUIRK §3.6] upstream drops every pool here; only multusName pools are affected.
    let s = store(vec![
        with(v4pool("m", "10.6.1.1"), |s| {
            s.multus_name = Some(vec!["x".into()])
        }),
        v4pool("free", "10.6.2.1"),
    ]);
    let r = anno(
        req("a", "u1", "eth0"),
        ANNO_POD_IPPOOL,
        r#"{"ipv4":["m","free"]}"#,
    );
    assert_eq!(pool_of(&alloc(&s, &r).unwrap()), "free");
}

#[test]
fn ipam_candidate_order_by_specificity_ties_keep_written_order() {
    let s = store(vec![
        v4pool("plain1", "10.6.1.1"),
        v4pool("plain2", "10.6.2.1"),
        with(v4pool("node", "10.6.3.1"), |s| {
            s.node_name = Some(vec!["node1".into()])
        }),
    ]);
    let r = anno(
        req("a", "u1", "eth0"),
        ANNO_POD_IPPOOL,
        r#"{"ipv4":["plain2","plain1","node"]}"#,
    );
    let snap = s.snapshot(&[]).unwrap();
    let ctx = FilterContext::new(&r, "eth0");
    let order: Vec<&str> = filter_and_order(
        &ctx,
        crate::ip::IpFamily::V4,
        &["plain2".into(), "plain1".into(), "node".into()],
        &snap,
    )
    .unwrap()
    .iter()
    .map(|p| p.name())
    .collect();
    assert_eq!(order, ["node", "plain2", "plain1"]);
    // node is used first, then plain2 once node is exhausted.
    assert_eq!(pool_of(&alloc(&s, &r).unwrap()), "node");
    let mut rb = r.clone();
    (rb.pod.name, rb.pod.uid) = ("b".into(), "u2".into());
    assert_eq!(pool_of(&alloc(&s, &rb).unwrap()), "plain2");
}

#[test]
fn ipam_exhaustion_names_each_pool() {
    let s = store(vec![v4pool("p1", "10.6.1.1"), v4pool("p2", "10.6.2.1")]);
    let r = |n: &str| {
        anno(
            req(n, n, "eth0"),
            ANNO_POD_IPPOOL,
            r#"{"ipv4":["p1","p2"]}"#,
        )
    };
    assert_eq!(pool_of(&alloc(&s, &r("a")).unwrap()), "p1");
    assert_eq!(pool_of(&alloc(&s, &r("b")).unwrap()), "p2");
    let e = alloc(&s, &r("c")).unwrap_err().to_string();
    assert_eq!(
        e,
        "failed to allocate any IPv4 IP address to NIC eth0 from IPPools [p1 p2]: IPPool p1: pool exhausted (all IP addresses used out); IPPool p2: pool exhausted (all IP addresses used out)"
    );
}

#[test]
fn ipam_dual_stack_and_idempotent_retry() {
    let s = store(vec![
        v4pool("p4", "10.6.1.1-10.6.1.9"),
        v6pool("p6", "fd00:6::10-fd00:6::20"),
    ]);
    let r = anno(
        req("a", "u1", "net1"),
        ANNO_POD_IPPOOL,
        r#"{"ipv4":["p4"],"ipv6":["p6"]}"#,
    );
    let d = alloc(&s, &r).unwrap();
    let nic = d.result.current().unwrap();
    assert_eq!(nic.ipv6.as_ref().unwrap().cidr(), "fd00:6::10/64");
    assert_eq!(nic.routes.len(), 2, "a default route per family");
    let again = alloc(&s, &r).unwrap();
    assert_eq!(again.kind, DecisionKind::Existing);
    assert!(again.changes.is_empty());
    assert_eq!(again.result, d.result);
    assert_eq!(s.pool_state("p4").unwrap().allocations().len(), 1);
}

#[test]
fn ipam_multi_nic_named_allocates_all_at_once() {
    let s = store(vec![
        v4pool("a", "10.6.1.1-10.6.1.9"),
        v4pool("b", "10.6.2.1-10.6.2.9"),
    ]);
    let text = r#"[{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv4":["b"],"cleangateway":true}]"#;
    let d = alloc(&s, &anno(req("p", "u1", "eth0"), ANNO_POD_IPPOOLS, text)).unwrap();
    assert_eq!(d.result.nics.len(), 2);
    let net1 = &d.result.nics[1];
    assert_eq!(net1.interface, "net1");
    assert!(net1.clean_gateway);
    assert!(net1.routes.is_empty(), "cleangateway: no default route");
    let d2 = alloc(&s, &anno(req("p", "u1", "net1"), ANNO_POD_IPPOOLS, text)).unwrap();
    assert_eq!(d2.kind, DecisionKind::Existing);
    assert_eq!(d2.result.current().unwrap().ipv4, net1.ipv4);
    // The current NIC must be listed.
    let e = alloc(&s, &anno(req("q", "u2", "net2"), ANNO_POD_IPPOOLS, text)).unwrap_err();
    assert!(
        e.to_string().contains("interface net2 must be specified"),
        "{e}"
    );
}

#[test]
fn ipam_multi_nic_positional_claimed_by_later_add() {
    let s = store(vec![
        v4pool("a", "10.6.1.1-10.6.1.9"),
        v4pool("b", "10.6.2.1-10.6.2.9"),
    ]);
    let text = r#"[{"ipv4":["a"]},{"ipv4":["b"]}]"#;
    let d = alloc(&s, &anno(req("p", "u1", "eth0"), ANNO_POD_IPPOOLS, text)).unwrap();
    assert_eq!(d.result.nics[0].interface, "eth0");
    assert_eq!(d.result.nics[1].interface, "");
    let d2 = alloc(&s, &anno(req("p", "u1", "net1"), ANNO_POD_IPPOOLS, text)).unwrap();
    assert_eq!(d2.kind, DecisionKind::Existing);
    assert_eq!(pool_of(&d2), "b");
    let ep = s.endpoint(&EndpointKey::new("ns", "p")).unwrap();
    assert_eq!(ep.status.unwrap().current.ips[1].interface, "net1");
}

#[test]
fn ipam_nad_default_nic_appends_to_endpoint() {
    let s = store(vec![
        with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| s.default = Some(true)),
        v4pool("nad", "10.6.2.1-10.6.2.9"),
    ]);
    alloc(&s, &req("p", "u1", "eth0")).unwrap();
    let mut r = req("p", "u1", "net1");
    r.default_ipv4_ippool = vec!["nad".into()];
    let d = alloc(&s, &r).unwrap();
    assert_eq!(d.result.nics.len(), 2);
    assert_eq!(pool_of(&d), "nad");
}

#[test]
fn ipam_custom_routes_and_clean_gateway() {
    let s = store(vec![with(v4pool("p", "10.6.1.1-10.6.1.9"), |s| {
        s.routes = Some(vec![Route::new("10.7.0.0/16", "10.6.0.254")]);
    })]);
    let mut r = anno(
        req("a", "u1", "net1"),
        ANNO_POD_ROUTES,
        r#"[{"dst":"10.8.0.0/16","gw":"10.6.0.253"},{"dst":"10.9.0.0/16","gw":"192.168.9.1"}]"#,
    );
    r = anno(r, ANNO_POD_IPPOOL, r#"{"ipv4":["p"]}"#);
    r.clean_gateway = true;
    let d = alloc(&s, &r).unwrap();
    let nic = d.result.current().unwrap();
    assert_eq!(
        nic.routes,
        [
            Route::new("10.7.0.0/16", "10.6.0.254"),
            Route::new("10.8.0.0/16", "10.6.0.253")
        ]
    );
    assert_eq!(
        d.warnings.len(),
        1,
        "the unmatched route is dropped with a warning"
    );
    let ep = s.endpoint(&EndpointKey::new("ns", "a")).unwrap();
    assert_eq!(ep.status.unwrap().current.ips[0].clean_gateway, Some(true));
    let mut bad = anno(r.clone(), ANNO_POD_ROUTES, "[{");
    bad.pod.uid = "u2".into();
    bad.pod.name = "b".into();
    let e = alloc(&s, &bad).unwrap_err().to_string();
    assert!(e.starts_with("annotation ipam.spidernet.io/routes"), "{e}");
}

#[test]
fn ipam_stateless_recreated_pod_gets_new_endpoint() {
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| {
        s.default = Some(true)
    })]);
    alloc(&s, &req("a", "u1", "eth0")).unwrap();
    let d = alloc(&s, &req("a", "u2", "eth0")).unwrap();
    assert_eq!(d.kind, DecisionKind::Allocated);
    assert_eq!(
        v4_of(&d),
        "10.6.1.2/16",
        "not the old address in the same ADD"
    );
}

#[test]
fn ipam_same_name_new_uid_releases_every_address_of_the_old_pod() {
    let s = store(vec![
        with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| s.default = Some(true)),
        v4pool("nad", "10.6.2.1-10.6.2.9"),
    ]);
    let holder = |pool: &str, a: &str| s.pool_state(pool).unwrap().record(ip(a)).cloned();
    // The old pod: eth0 from the default pool, net1 from the NAD's.
    alloc(&s, &req("a", "u1", "eth0")).unwrap();
    let mut net1 = req("a", "u1", "net1");
    net1.default_ipv4_ippool = vec!["nad".into()];
    alloc(&s, &net1).unwrap();
    // The pod is re-created with the same name and a new UID.
    let d = alloc(&s, &req("a", "u2", "eth0")).unwrap();
    assert_eq!(d.kind, DecisionKind::Allocated);
    assert_eq!(
        v4_of(&d),
        "10.6.1.2/16",
        "not the old address in the same ADD"
    );
    assert_eq!(
        holder("d", "10.6.1.1"),
        None,
        "the old eth0 address is free"
    );
    assert_eq!(
        holder("nad", "10.6.2.1"),
        None,
        "the old net1 address is free"
    );
    assert_eq!(holder("d", "10.6.1.2").unwrap().pod_uid, "u2");
    assert_eq!(
        d.warnings,
        [
            "released 10.6.1.1 (pool d) of the previous pod ns/a with UID u1, replaced by UID u2",
            "released 10.6.2.1 (pool nad) of the previous pod ns/a with UID u1, replaced by UID u2"
        ]
    );
    let key = EndpointKey::new("ns", "a");
    let ep = s.endpoint(&key).unwrap();
    assert_eq!(ep.metadata.owner_references.unwrap()[0].uid, "u2");
    let current = ep.status.unwrap().current;
    assert_eq!((current.uid.as_str(), current.ips.len()), ("u2", 1));
    // The old sandbox's DEL finds another UID: nothing to release, and nothing leaked.
    let mut del = ReleaseRequest {
        container_id: "c-u1".into(),
        ifname: "eth0".into(),
        endpoint: key.clone(),
        pod_uid: Some("u1".into()),
        ..Default::default()
    };
    let r = release_with_retry(&s, &del, 4).unwrap();
    assert_eq!(r.outcome, ReleaseOutcome::NotOwner);
    assert_eq!(holder("d", "10.6.1.2").unwrap().pod_uid, "u2");
    // The old addresses go to the next pods.
    assert_eq!(
        v4_of(&alloc(&s, &req("b", "u3", "eth0")).unwrap()),
        "10.6.1.1/16"
    );
    let mut c = req("c", "u4", "eth0");
    c.default_ipv4_ippool = vec!["nad".into()];
    assert_eq!(v4_of(&alloc(&s, &c).unwrap()), "10.6.2.1/16");
    // The new pod's own DEL releases its address.
    del.pod_uid = Some("u2".into());
    let r = release_with_retry(&s, &del, 4).unwrap();
    assert_eq!(r.released, [("d".to_owned(), ip("10.6.1.2"))]);
}

fn sts_req(uid: &str, node: &str) -> AllocateRequest {
    let mut r = req("web-0", uid, "eth0");
    r.pod.node = node.into();
    r.pod.controller = TopController {
        api_version: APPS_V1.into(),
        kind: KIND_STATEFULSET.into(),
        namespace: "ns".into(),
        name: "web".into(),
        uid: "sts-uid".into(),
    };
    anno(r, ANNO_POD_IPPOOL, r#"{"ipv4":["p"]}"#)
}

#[test]
fn ipam_statefulset_retention_and_pool_change() {
    let s = store(vec![
        v4pool("p", "10.6.1.1-10.6.1.9"),
        v4pool("q", "10.6.2.1-10.6.2.9"),
    ]);
    let first = alloc(&s, &sts_req("u1", "node1")).unwrap();
    assert_eq!(v4_of(&first), "10.6.1.1/16");
    let ep = s.endpoint(&EndpointKey::new("ns", "web-0")).unwrap();
    assert!(ep.metadata.owner_references.is_none(), "outlives the pod");
    // Another pod takes the next address, then web-0 is re-created on another node.
    alloc(
        &s,
        &anno(req("x", "ux", "eth0"), ANNO_POD_IPPOOL, r#"{"ipv4":["p"]}"#),
    )
    .unwrap();
    let again = alloc(&s, &sts_req("u2", "node2")).unwrap();
    assert_eq!(again.kind, DecisionKind::Readopted);
    assert_eq!(v4_of(&again), "10.6.1.1/16");
    let rec = s
        .pool_state("p")
        .unwrap()
        .record(ip("10.6.1.1"))
        .cloned()
        .unwrap();
    assert_eq!(rec.pod_uid, "u2");
    let ep = s
        .endpoint(&EndpointKey::new("ns", "web-0"))
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        (ep.current.uid.as_str(), ep.current.node.as_str()),
        ("u2", "node2")
    );
    // The pod now asks for pool q: the old address is released and a new one allocated.
    let moved = anno(sts_req("u3", "node2"), ANNO_POD_IPPOOL, r#"{"ipv4":["q"]}"#);
    let d = alloc(&s, &moved).unwrap();
    assert_eq!(v4_of(&d), "10.6.2.1/16");
    assert!(s.pool_state("p").unwrap().record(ip("10.6.1.1")).is_none());
}

#[test]
fn ipam_kubevirt_endpoint_keyed_by_vmi() {
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| {
        s.default = Some(true)
    })]);
    let vm = |pod: &str, uid: &str| {
        let mut r = req(pod, uid, "eth0");
        r.pod.controller = TopController {
            api_version: KUBEVIRT_V1.into(),
            kind: KIND_VMI.into(),
            namespace: "ns".into(),
            name: "vm1".into(),
            uid: "vmi".into(),
        };
        r
    };
    let a = alloc(&s, &vm("virt-launcher-vm1-abc", "u1")).unwrap();
    let b = alloc(&s, &vm("virt-launcher-vm1-def", "u2")).unwrap();
    assert_eq!(b.kind, DecisionKind::Readopted);
    assert_eq!(v4_of(&a), v4_of(&b));
    let rec = s
        .pool_state("d")
        .unwrap()
        .record(ip("10.6.1.1"))
        .cloned()
        .unwrap();
    assert_eq!(rec.pod, "ns/vm1");
}

#[test]
fn ipam_release_rules() {
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| {
        s.default = Some(true)
    })]);
    alloc(&s, &req("a", "u1", "eth0")).unwrap();
    let mut del = ReleaseRequest {
        container_id: "c".into(),
        ifname: "eth0".into(),
        endpoint: EndpointKey::new("ns", "a"),
        pod_uid: Some("u1".into()),
        pod_alive: true,
        ..Default::default()
    };
    let run = |r: &ReleaseRequest| release_with_retry(&s, r, 4).unwrap().outcome;
    assert_eq!(run(&del), ReleaseOutcome::PodAlive);
    del.pod_alive = false;
    del.pod_uid = Some("other".into());
    assert_eq!(run(&del), ReleaseOutcome::NotOwner);
    del.pod_uid = None;
    assert_eq!(run(&del), ReleaseOutcome::NoUid);
    del.pod_uid = Some("u1".into());
    let d = release_with_retry(&s, &del, 4).unwrap();
    assert_eq!(d.outcome, ReleaseOutcome::Released);
    assert_eq!(d.released, [("d".to_owned(), ip("10.6.1.1"))]);
    assert!(s.endpoint(&del.endpoint).is_none());
    assert_eq!(run(&del), ReleaseOutcome::NoEndpoint, "DEL twice is fine");
    // The address is free again.
    assert_eq!(
        v4_of(&alloc(&s, &req("b", "u2", "eth0")).unwrap()),
        "10.6.1.1/16"
    );
}

#[test]
fn ipam_release_statefulset_kept_while_valid() {
    let s = store(vec![v4pool("p", "10.6.1.1-10.6.1.9")]);
    alloc(&s, &sts_req("u1", "node1")).unwrap();
    let mut del = ReleaseRequest {
        ifname: "eth0".into(),
        endpoint: EndpointKey::new("ns", "web-0"),
        pod_uid: Some("u1".into()),
        static_pod_valid: statefulset_pod_valid("web-0", "web", 0, Some(1)),
        ..Default::default()
    };
    assert_eq!(
        release_with_retry(&s, &del, 4).unwrap().outcome,
        ReleaseOutcome::StaticKept
    );
    del.static_pod_valid = statefulset_pod_valid("web-0", "web", 1, Some(1));
    assert!(!del.static_pod_valid);
    assert_eq!(
        release_with_retry(&s, &del, 4).unwrap().outcome,
        ReleaseOutcome::Released
    );
    assert!(s.pool_state("p").unwrap().allocations().is_empty());
}

#[test]
fn ipam_release_pod_batch() {
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| {
        s.default = Some(true)
    })]);
    alloc(&s, &req("a", "u1", "eth0")).unwrap();
    let key = EndpointKey::new("ns", "a");
    let snap = s.snapshot(std::slice::from_ref(&key)).unwrap();
    let d = plan_release_pod(&key, "u1", &snap).unwrap();
    drop(snap);
    s.commit(&d.changes).unwrap();
    assert!(
        s.endpoint(&key)
            .unwrap()
            .status
            .unwrap()
            .current
            .ips
            .is_empty()
    );
    assert!(s.pool_state("d").unwrap().allocations().is_empty());
}

#[test]
fn ipam_pod_liveness_and_validity_helpers() {
    let p = |phase: &str, policy: &str, reason: &str, t: bool| PodLifecycle {
        phase: phase.into(),
        reason: reason.into(),
        restart_policy: policy.into(),
        terminating: t,
    };
    assert!(pod_is_alive(&p("Running", "Always", "", false)));
    assert!(!pod_is_alive(&p("Running", "Always", "", true)));
    assert!(!pod_is_alive(&p("Succeeded", "OnFailure", "", false)));
    assert!(pod_is_alive(&p("Succeeded", "Always", "", false)));
    assert!(!pod_is_alive(&p("Failed", "Never", "", false)));
    assert!(!pod_is_alive(&p("Failed", "Always", "Evicted", false)));
    assert!(statefulset_pod_valid("web-2", "web", 0, Some(3)));
    assert!(!statefulset_pod_valid("web-3", "web", 0, Some(3)));
    assert!(!statefulset_pod_valid("web-x", "web", 0, Some(3)));
    assert!(!statefulset_pod_valid("web-0", "web", 0, None));
    assert!(kubevirt_pod_valid(false, true));
    assert!(!kubevirt_pod_valid(false, false));
}

#[test]
fn ipam_gc_verdicts() {
    let rec = PoolIPAllocation {
        pod: "ns/a".into(),
        pod_uid: "u1".into(),
    };
    let cfg = GcConfig::default();
    let pod = |f: &dyn Fn(&mut GcPod)| {
        let mut p = GcPod {
            uid: "u1".into(),
            phase: "Running".into(),
            has_pod_ips: true,
            node_ready: true,
            ..Default::default()
        };
        f(&mut p);
        Lookup::Found(p)
    };
    let ep_same = Lookup::Found(GcEndpoint {
        uid: "u1".into(),
        ..Default::default()
    });
    let v = |p: &Lookup<GcPod>, e: &Lookup<GcEndpoint>| {
        let v = gc_verdict(&rec, p, e, &cfg);
        (v.release_ip, v.release_endpoint)
    };
    assert_eq!(v(&Lookup::NotFound, &Lookup::NotFound), (true, false));
    assert_eq!(v(&Lookup::NotFound, &ep_same), (true, true));
    let sts_ep = Lookup::Found(GcEndpoint {
        uid: "u1".into(),
        is_static: true,
        static_valid: true,
    });
    assert_eq!(v(&Lookup::NotFound, &sts_ep), (false, false));
    assert_eq!(v(&Lookup::Failed, &ep_same), (false, false));
    assert_eq!(
        v(&pod(&|_| {}), &ep_same),
        (false, false),
        "running with IPs"
    );
    assert_eq!(
        v(&pod(&|p| p.phase = "Pending".into()), &ep_same),
        (false, false)
    );
    assert_eq!(
        v(&pod(&|p| p.uid = "u2".into()), &Lookup::NotFound),
        (true, false)
    );
    let stateless_no_ips = pod(&|p| p.has_pod_ips = false);
    assert_eq!(v(&stateless_no_ips, &ep_same), (false, false), "flag off");
    let cfg_on = GcConfig {
        running_pod_on_empty_pod_ips: true,
        ..cfg
    };
    assert!(gc_verdict(&rec, &stateless_no_ips, &ep_same, &cfg_on).release_ip);
    let term = |passed: bool, ips: bool| {
        pod(&|p| {
            p.terminating = true;
            p.deletion_deadline_passed = passed;
            p.has_pod_ips = ips;
        })
    };
    assert_eq!(v(&term(true, true), &ep_same), (true, true));
    let tv = gc_verdict(&rec, &term(false, true), &ep_same, &cfg);
    assert!(tv.trace && !tv.release_ip);
    assert_eq!(v(&term(false, false), &ep_same), (true, true));
    let finished = pod(&|p| p.phase = "Succeeded".into());
    assert!(gc_verdict(&rec, &finished, &ep_same, &cfg).trace);
    let ep_other = Lookup::Found(GcEndpoint {
        uid: "u9".into(),
        ..Default::default()
    });
    assert_eq!(
        v(&pod(&|_| {}), &ep_other),
        (true, true),
        "stateless endpoint of another pod"
    );
    // gc_changes removes the record only while its UID matches.
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| {
        s.default = Some(true)
    })]);
    alloc(&s, &req("a", "u1", "eth0")).unwrap();
    let key = EndpointKey::new("ns", "a");
    let snap = s.snapshot(std::slice::from_ref(&key)).unwrap();
    let verdict = gc_verdict(&rec, &Lookup::NotFound, &ep_same, &cfg);
    let ch = gc_changes("d", ip("10.6.1.1"), &rec, Some(&key), &verdict, &snap);
    drop(snap);
    s.commit(&ch).unwrap();
    assert!(s.pool_state("d").unwrap().allocations().is_empty());
    assert!(s.endpoint(&key).is_none());
}

#[test]
fn ipam_stale_commit_conflicts() {
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.9"), |s| {
        s.default = Some(true)
    })]);
    let ra = req("a", "u1", "eth0");
    let rb = req("b", "u2", "eth0");
    let snap = s.snapshot(&[endpoint_key(&ra), endpoint_key(&rb)]).unwrap();
    let da = plan_allocation(&ra, &snap).unwrap();
    let db = plan_allocation(&rb, &snap).unwrap();
    assert_eq!(v4_of(&da), v4_of(&db), "both plans chose the same address");
    drop(snap);
    s.commit(&da.changes).unwrap();
    let e = s.commit(&db.changes).unwrap_err();
    assert!(
        matches!(e, CommitError::Conflict { ref object, .. } if object == "SpiderIPPool/d"),
        "{e}"
    );
    // The retry helper re-plans and gets the next address.
    assert_eq!(v4_of(&alloc(&s, &rb).unwrap()), "10.6.1.2/16");
}

#[test]
fn ipam_reserved_ips_skipped_and_pool_status() {
    let s = store(vec![with(v4pool("d", "10.6.1.1-10.6.1.4"), |s| {
        s.default = Some(true)
    })]);
    s.put_reserved_ip(crate::objects::SpiderReservedIP::new(
        "r",
        crate::objects::SpiderReservedIPSpec {
            ip_version: Some(4),
            ips: Some(vec!["10.6.1.1-10.6.1.2".into()]),
        },
    ))
    .unwrap();
    assert_eq!(
        v4_of(&alloc(&s, &req("a", "u1", "eth0")).unwrap()),
        "10.6.1.3/16"
    );
    let st = s.pool("d").unwrap().status.unwrap();
    assert_eq!(st.allocated_ip_count, Some(1));
    assert_eq!(st.total_ip_count, Some(4));
    assert!(
        st.allocated_ips
            .unwrap()
            .contains(r#""10.6.1.3":{"pod":"ns/a","podUid":"u1"}"#)
    );
}

#[test]
fn ipam_auto_pool_source() {
    let mut auto = v4pool("auto4-web-eth0-abcde", "10.6.1.1-10.6.1.9");
    for (k, v) in [
        (LABEL_OWNER_APPLICATION_UID, "dep-uid"),
        (LABEL_INTERFACE, "eth0"),
        (LABEL_IP_VERSION, "IPv4"),
        (LABEL_OWNER_SPIDER_SUBNET, "s1"),
        (LABEL_OWNER_APPLICATION_NAME, "web"),
    ] {
        auto.metadata.set_label(k, v);
    }
    auto.spec.pod_affinity = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([
            (AFFINITY_APP_API_GROUP.into(), "apps".into()),
            (AFFINITY_APP_API_VERSION.into(), "v1".into()),
            (AFFINITY_APP_KIND.into(), "Deployment".into()),
            (AFFINITY_APP_NAMESPACE.into(), "ns".into()),
            (AFFINITY_APP_NAME.into(), "web".into()),
        ])),
        match_expressions: None,
    });
    let s = store(vec![auto]);
    let mut r = anno(
        req("web-1", "u1", "eth0"),
        ANNO_POD_SUBNET,
        r#"{"ipv4":["s1"]}"#,
    );
    let e = alloc(&s, &r).unwrap_err().to_string();
    assert!(e.contains("doesn't support no-controller pod"), "{e}");
    r.pod.controller = TopController {
        api_version: APPS_V1.into(),
        kind: "Deployment".into(),
        namespace: "ns".into(),
        name: "web".into(),
        uid: "dep-uid".into(),
    };
    assert_eq!(pool_of(&alloc(&s, &r).unwrap()), "auto4-web-eth0-abcde");
    let mut off = r.clone();
    off.config.enable_auto_pool = false;
    off.pod.uid = "u2".into();
    off.pod.name = "web-2".into();
    assert!(
        alloc(&s, &off)
            .unwrap_err()
            .to_string()
            .contains("Auto-Pool feature is disabled")
    );
}

#[test]
fn ipam_multus_network_resolution() {
    let mut r = req("a", "u1", "net2");
    r = anno(
        r,
        ANNO_MULTUS_NETWORKS,
        r#"[{"name":"m1"},{"name":"m2","namespace":"x"}]"#,
    );
    assert_eq!(nic_network(&r), Ok("x/m2".into()));
    r.ifname = "net3".into();
    assert!(
        nic_network(&r)
            .unwrap_err()
            .contains("no matched multus object")
    );
    r.ifname = "eth0".into();
    assert!(nic_network(&r).is_err());
    r.config.cluster_network = Some("kube-system/calico".into());
    assert_eq!(nic_network(&r), Ok("kube-system/calico".into()));
    let r = anno(r, ANNO_MULTUS_DEFAULT_NETWORK, "macvlan");
    assert_eq!(nic_network(&r), Ok("kube-system/macvlan".into()));
    assert_eq!(
        parse_multus_networks("a/b@net5, c").unwrap(),
        [
            ("a".into(), "b".into(), "net5".into()),
            (String::new(), "c".into(), String::new())
        ]
    );
}
