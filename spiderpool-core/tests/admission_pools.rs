//! Admission of SpiderIPPool, SpiderSubnet and SpiderReservedIP (spec §1.1, §1.2, §1.4):
//! for each rule an accepted and a refused case, checking path, reason and message.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use serde_json::{Value, json};
use spiderpool_core::admission::{
    ClusterState, FieldError, Operation, Reason, Switches, admit, validate,
};
use spiderpool_core::ip::{IpFamily, IpRangeSet};
use spiderpool_core::manifest::{SpiderObject, parse_documents};
use spiderpool_core::objects::{SpiderIPPool, SpiderReservedIP, SpiderSubnet};

// ---------- helpers ----------

fn fixture(name: &str) -> Vec<SpiderObject> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    parse_documents(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn object(kind: &str, v: Value) -> SpiderObject {
    let mut v = v;
    v["apiVersion"] = json!("spiderpool.spidernet.io/v2beta1");
    v["kind"] = json!(kind);
    SpiderObject::from_value(v).unwrap()
}

/// A pool named `name` with the given spec.
fn pool(name: &str, spec: Value) -> SpiderObject {
    object(
        "SpiderIPPool",
        json!({"metadata": {"name": name}, "spec": spec}),
    )
}

fn subnet(name: &str, spec: Value) -> SpiderObject {
    object(
        "SpiderSubnet",
        json!({"metadata": {"name": name}, "spec": spec}),
    )
}

fn reserved(name: &str, spec: Value) -> SpiderObject {
    object(
        "SpiderReservedIP",
        json!({"metadata": {"name": name}, "spec": spec}),
    )
}

fn as_pool(o: SpiderObject) -> SpiderIPPool {
    match o {
        SpiderObject::IPPool(p) => p,
        other => panic!("not a pool: {other:?}"),
    }
}

fn as_subnet(o: SpiderObject) -> SpiderSubnet {
    match o {
        SpiderObject::Subnet(s) => s,
        other => panic!("not a subnet: {other:?}"),
    }
}

fn as_reserved(o: SpiderObject) -> SpiderReservedIP {
    match o {
        SpiderObject::ReservedIP(r) => r,
        other => panic!("not a reserved IP: {other:?}"),
    }
}

fn on() -> Switches {
    Switches::default()
}

fn create(o: SpiderObject, cluster: &ClusterState) -> Result<SpiderObject, Vec<FieldError>> {
    admit(Operation::Create, o, None, cluster, &on())
}

fn create_with(
    o: SpiderObject,
    cluster: &ClusterState,
    sw: &Switches,
) -> Result<SpiderObject, Vec<FieldError>> {
    admit(Operation::Create, o, None, cluster, sw)
}

fn update(
    new: SpiderObject,
    old: &SpiderObject,
    cluster: &ClusterState,
) -> Result<SpiderObject, Vec<FieldError>> {
    admit(Operation::Update, new, Some(old), cluster, &on())
}

fn cluster_of(objs: impl IntoIterator<Item = SpiderObject>) -> ClusterState {
    let mut c = ClusterState::default();
    for o in objs {
        c.upsert(o);
    }
    c
}

/// Admits `objs` in order into a cluster (panicking on a rejection) and returns it.
fn admitted(objs: impl IntoIterator<Item = SpiderObject>) -> ClusterState {
    let mut c = ClusterState::default();
    for o in objs {
        let name = o.name().to_owned();
        let ok = create(o, &c).unwrap_or_else(|e| panic!("{name} rejected: {e:?}"));
        c.upsert(ok);
    }
    c
}

#[track_caller]
fn accepted(r: Result<SpiderObject, Vec<FieldError>>) -> SpiderObject {
    match r {
        Ok(o) => o,
        Err(e) => panic!("expected acceptance, got {e:#?}"),
    }
}

/// The result is a rejection holding an error with exactly `path` and `reason` whose message
/// contains `needle`.
#[track_caller]
fn refused(r: Result<SpiderObject, Vec<FieldError>>, path: &str, reason: Reason, needle: &str) {
    let errs = match r {
        Ok(o) => panic!("expected rejection on {path}, accepted {o:?}"),
        Err(e) => e,
    };
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.reason == reason && e.message.contains(needle)),
        "no {path} {reason} containing {needle:?} in {errs:#?}"
    );
}

fn seed_subnet_with_uid() -> SpiderObject {
    let mut s = fixture("subnet.yaml").remove(0);
    s.metadata_mut().uid = Some("uid-subnet-6".into());
    s
}

// ---------- SpiderIPPool: mutation ----------

#[test]
fn admission_pool_seed_is_accepted_and_defaulted() {
    let seed = fixture("seed-ippool.yaml").remove(0);
    let p = as_pool(accepted(create(seed, &ClusterState::default())));
    assert_eq!(p.spec.ip_version, Some(4));
    assert_eq!(
        p.metadata.label("ipam.spidernet.io/ippool-cidr"),
        Some("10-6-0-0-16")
    );
    assert_eq!(
        p.metadata.finalizers.as_deref(),
        Some(&["spiderpool.spidernet.io".to_owned()][..])
    );
    assert_eq!(
        p.spec.ips.as_deref(),
        Some(&["10.6.212.100-10.6.212.200".to_owned()][..])
    );
    assert_eq!(p.spec.gateway.as_deref(), Some("10.6.0.1"));
    // No subnet in the cluster: nothing adopted.
    assert!(p.metadata.owner_references.is_none());
}

#[test]
fn admission_pool_mutation_v6_label_and_merge() {
    let p = as_pool(accepted(create(
        pool(
            "v6",
            json!({"subnet": "abcd:1234::/120",
                   "ips": ["abcd:1234::a", "abcd:1234::1-abcd:1234::2", "abcd:1234::2-abcd:1234::3"],
                   "excludeIPs": ["abcd:1234::3", "abcd:1234::1"]}),
        ),
        &ClusterState::default(),
    )));
    assert_eq!(p.spec.ip_version, Some(6));
    assert_eq!(
        p.metadata.label("ipam.spidernet.io/ippool-cidr"),
        Some("abcd-1234---120")
    );
    assert_eq!(
        p.spec.ips.unwrap(),
        ["abcd:1234::1-abcd:1234::3", "abcd:1234::a"]
    );
    assert_eq!(
        p.spec.exclude_ips.unwrap(),
        ["abcd:1234::1", "abcd:1234::3"]
    );
}

#[test]
fn admission_pool_mutation_leaves_malformed_lists_for_the_validator() {
    let r = create(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.9", "10.6.0.x", "10.6.0.1"]}),
        ),
        &ClusterState::default(),
    );
    refused(
        r,
        "spec.ips[1]",
        Reason::Invalid,
        "invalid IP range format in IPv4 '10.6.0.x'",
    );
}

#[test]
fn admission_pool_mutation_skips_terminating_objects() {
    let mut p = as_pool(pool("p", json!({"subnet": "10.6.0.0/16"})));
    p.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
    let mut o = SpiderObject::IPPool(p);
    spiderpool_core::admission::mutate(&mut o, &ClusterState::default(), &on());
    let p = as_pool(o);
    assert_eq!(p.spec.ip_version, None);
    assert!(p.metadata.finalizers.is_none());
}

// ---------- SpiderIPPool: CREATE ----------

#[test]
fn admission_pool_name_is_required_and_must_be_a_dns_subdomain() {
    let mut nameless = pool("x", json!({"subnet": "10.6.0.0/16"}));
    nameless.metadata_mut().name = None;
    refused(
        create(nameless, &ClusterState::default()),
        "metadata.name",
        Reason::Required,
        "name or generateName is required",
    );
    refused(
        create(
            pool("Bad_Name", json!({"subnet": "10.6.0.0/16"})),
            &ClusterState::default(),
        ),
        "metadata.name",
        Reason::Invalid,
        "Bad_Name",
    );
}

#[test]
fn admission_pool_subnet_is_required() {
    refused(
        create(pool("p", json!({"subnet": ""})), &ClusterState::default()),
        "spec.subnet",
        Reason::Required,
        "Required value",
    );
}

#[test]
fn admission_pool_ip_version_rules() {
    let c = ClusterState::default();
    refused(
        create(pool("p", json!({"subnet": "not-a-cidr"})), &c),
        "spec.ipVersion",
        Reason::Invalid,
        "is not generated correctly, 'spec.subnet' may be invalid",
    );
    refused(
        create(
            pool("p", json!({"ipVersion": 5, "subnet": "10.6.0.0/16"})),
            &c,
        ),
        "spec.ipVersion",
        Reason::NotSupported,
        "supported values: \"4\", \"6\"",
    );
    let no_v4 = Switches {
        enable_ipv4: false,
        ..on()
    };
    refused(
        create_with(pool("p", json!({"subnet": "10.6.0.0/16"})), &c, &no_v4),
        "spec.ipVersion",
        Reason::Forbidden,
        "IPv4 is disabled",
    );
    accepted(create_with(
        pool("p", json!({"subnet": "fd00::/64"})),
        &c,
        &no_v4,
    ));
    let no_v6 = Switches {
        enable_ipv6: false,
        ..on()
    };
    refused(
        create_with(pool("p", json!({"subnet": "fd00::/64"})), &c, &no_v6),
        "spec.ipVersion",
        Reason::Forbidden,
        "IPv6 is disabled",
    );
}

#[test]
fn admission_pool_subnet_must_be_canonical_and_of_the_version() {
    let c = ClusterState::default();
    refused(
        create(pool("p", json!({"subnet": "172.10.5.0/16"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "unformatted subnet 172.10.5.0/16, please change it to 172.10.0.0/16",
    );
    refused(
        create(
            pool("p", json!({"subnet": "fc00:f853:ccd:e793::ee/64"})),
            &c,
        ),
        "spec.subnet",
        Reason::Invalid,
        "please change it to fc00:f853:ccd:e793::/64",
    );
    accepted(create(pool("p", json!({"subnet": "172.10.0.0/16"})), &c));
    refused(
        create(
            pool("p", json!({"ipVersion": 4, "subnet": "fd00::/64"})),
            &c,
        ),
        "spec.subnet",
        Reason::Invalid,
        "invalid CIDR format in IPv4 'fd00::/64'",
    );
}

#[test]
fn admission_pool_same_name_already_exists() {
    let c = admitted([pool("p", json!({"subnet": "10.6.0.0/16"}))]);
    refused(
        create(pool("p", json!({"subnet": "10.8.0.0/16"})), &c),
        "metadata.name",
        Reason::AlreadyExists,
        "spiderippools.spiderpool.spidernet.io \"p\" already exists",
    );
}

#[test]
fn admission_pool_cidr_overlap_with_other_pools() {
    let c = admitted([pool("a", json!({"subnet": "10.6.0.0/16"}))]);
    refused(
        create(pool("b", json!({"subnet": "10.6.1.0/24"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "overlap with IPPool a which 'spec.subnet' is 10.6.0.0/16",
    );
    refused(
        create(pool("b", json!({"subnet": "10.0.0.0/8"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "overlap with IPPool a",
    );
    accepted(create(pool("b", json!({"subnet": "10.7.0.0/16"})), &c));
    // The same CIDR is allowed (pools share a subnet by splitting its ranges).
    accepted(create(pool("b", json!({"subnet": "10.6.0.0/16"})), &c));
}

#[test]
fn admission_pool_effective_ranges_must_not_overlap_pools_of_the_same_cidr() {
    let c = admitted([pool(
        "a",
        json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.100-10.6.212.200"]}),
    )]);
    refused(
        create(
            pool(
                "b",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.150-10.6.212.250"]}),
            ),
            &c,
        ),
        "spec.ips",
        Reason::Forbidden,
        "overlap with IPPool a in IP ranges [10.6.212.150-10.6.212.200], total IP addresses of an IPPool are jointly determined by 'spec.ips' and 'spec.excludeIPs'",
    );
    // Excluding the shared part makes it fine.
    accepted(create(
        pool(
            "b",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.150-10.6.212.250"],
                   "excludeIPs": ["10.6.212.150-10.6.212.200"]}),
        ),
        &c,
    ));
}

#[test]
fn admission_pool_reversed_range_is_refused() {
    // Upstream admits it ([QUIRK], spec §1.1 step 4); see docs/compatibility.md.
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.0.0.0/24", "ips": ["10.0.0.9-10.0.0.1"]}),
            ),
            &ClusterState::default(),
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "start address is greater than end address",
    );
}

#[test]
fn admission_pool_entries_of_the_wrong_family_are_refused() {
    let c = ClusterState::default();
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1-2001:db8::1"]}),
            ),
            &c,
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "start is IPv4 but end is IPv6",
    );
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1", "fd00::1"]}),
            ),
            &c,
        ),
        "spec.ips[1]",
        Reason::Invalid,
        "invalid IP range format in IPv4 'fd00::1'",
    );
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "excludeIPs": ["fd00::1"]}),
            ),
            &c,
        ),
        "spec.excludeIPs[0]",
        Reason::Invalid,
        "not of family IPv4",
    );
}

#[test]
fn admission_pool_cidr_inside_ips_is_refused() {
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.0/24"]}),
            ),
            &ClusterState::default(),
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "CIDR notation is not a range",
    );
}

#[test]
fn admission_pool_entries_must_be_inside_the_subnet() {
    let c = ClusterState::default();
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.255.250-10.7.0.5"]}),
            ),
            &c,
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "not pertains to the 'spec.subnet' 10.6.0.0/16 of IPPool",
    );
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1"], "excludeIPs": ["10.8.0.1"]}),
            ),
            &c,
        ),
        "spec.excludeIPs[0]",
        Reason::Invalid,
        "not pertains to the 'spec.subnet'",
    );
    accepted(create(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.0-10.6.255.255"]}),
        ),
        &c,
    ));
}

#[test]
fn admission_pool_overlapping_entries_are_refused_when_not_merged() {
    // Validation without defaulting (the merge would have joined them).
    let o = pool(
        "p",
        json!({"ipVersion": 4, "subnet": "10.6.0.0/16",
               "ips": ["10.6.0.1-10.6.0.10", "10.6.1.1", "10.6.0.5-10.6.0.20"]}),
    );
    let errs = validate(Operation::Create, &o, None, &ClusterState::default(), &on());
    assert!(
        errs.iter().any(|e| e.path == "spec.ips[2]"
            && e.reason == Reason::Invalid
            && e.message
                .contains("range 10.6.0.5-10.6.0.20 overlaps with 10.6.0.1-10.6.0.10")),
        "{errs:#?}"
    );
    // With defaulting, the same object is merged and accepted.
    let p = as_pool(accepted(create(o, &ClusterState::default())));
    assert_eq!(p.spec.ips.unwrap(), ["10.6.0.1-10.6.0.20", "10.6.1.1"]);
}

#[test]
fn admission_pool_gateway_rules() {
    let c = ClusterState::default();
    refused(
        create(
            pool("p", json!({"subnet": "10.6.0.0/16", "gateway": "10.7.0.1"})),
            &c,
        ),
        "spec.gateway",
        Reason::Invalid,
        "\"10.7.0.1\": not pertains to the 'spec.subnet' 10.6.0.0/16 of IPPool",
    );
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "gateway": "10.6.0.01"}),
            ),
            &c,
        ),
        "spec.gateway",
        Reason::Invalid,
        "invalid IP format in IPv4 '10.6.0.01'",
    );
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1-10.6.0.10"], "gateway": "10.6.0.1"}),
            ),
            &c,
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "conflicts with 'spec.gateway' 10.6.0.1, add the gateway IP address to 'spec.excludeIPs' or remove it from 'spec.ips'",
    );
    accepted(create(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1-10.6.0.10"],
                   "excludeIPs": ["10.6.0.1"], "gateway": "10.6.0.1"}),
        ),
        &c,
    ));
}

#[test]
fn admission_pool_route_rules() {
    let c = ClusterState::default();
    let with_routes = |routes: Value| {
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "gateway": "10.6.0.1", "routes": routes}),
        )
    };
    refused(
        create(
            with_routes(json!([{"dst": "0.0.0.0/0", "gw": "10.6.0.2"}])),
            &c,
        ),
        "spec.routes[0].dst",
        Reason::Invalid,
        "please specify 'spec.gateway' to configure the default route",
    );
    refused(
        create(
            with_routes(json!([{"dst": "10.7.0.0/16", "gw": "10.6.0.2"},
                               {"dst": "10.7.0.0/16", "gw": "10.6.0.3"}])),
            &c,
        ),
        "spec.routes[1].dst",
        Reason::Invalid,
        "duplicate route with the same dst",
    );
    refused(
        create(
            with_routes(json!([{"dst": "fd00::/64", "gw": "10.6.0.2"}])),
            &c,
        ),
        "spec.routes[0].dst",
        Reason::Invalid,
        "invalid CIDR format in IPv4 'fd00::/64'",
    );
    refused(
        create(
            with_routes(json!([{"dst": "10.7.0.0/16", "gw": "10.8.0.2"}])),
            &c,
        ),
        "spec.routes[0].gw",
        Reason::Invalid,
        "not pertains to the 'spec.subnet' 10.6.0.0/16",
    );
    // Host bits in dst are fine (not required to be canonical).
    accepted(create(
        with_routes(json!([{"dst": "10.7.0.0/16", "gw": "10.6.0.2"},
                           {"dst": "10.8.0.1/16", "gw": "10.6.0.2"}])),
        &c,
    ));
}

#[test]
fn admission_pool_pod_affinity_rules() {
    let c = ClusterState::default();
    let with = |aff: Value| pool("p", json!({"subnet": "10.6.0.0/16", "podAffinity": aff}));
    refused(
        create(with(json!({})), &c),
        "spec.podAffinity",
        Reason::Invalid,
        "empty podAffinity is invalid for SpiderIPPool",
    );
    refused(
        create(
            with(
                json!({"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]}),
            ),
            &c,
        ),
        "spec.podAffinity.matchExpressions[0].operator",
        Reason::NotSupported,
        "\"Near\"",
    );
    refused(
        create(with(json!({"matchLabels": {"app": "bad value!"}})), &c),
        "spec.podAffinity.matchLabels",
        Reason::Invalid,
        "a valid label value",
    );
    accepted(create(with(json!({"matchLabels": {"app": "nginx"}})), &c));
}

#[test]
fn admission_pool_pod_affinity_of_auto_pools() {
    let c = ClusterState::default();
    let auto = |aff: Value| {
        object(
            "SpiderIPPool",
            json!({"metadata": {"name": "auto4-nginx-eth0-1a2b3",
                                "labels": {"ipam.spidernet.io/owner-application-name": "nginx"}},
                   "spec": {"subnet": "10.6.0.0/16", "podAffinity": aff}}),
        )
    };
    let keys = json!({"ipam.spidernet.io/app-api-group": "apps",
                      "ipam.spidernet.io/app-api-version": "v1",
                      "ipam.spidernet.io/app-kind": "Deployment",
                      "ipam.spidernet.io/app-namespace": "default",
                      "ipam.spidernet.io/app-name": "nginx"});
    accepted(create(auto(json!({"matchLabels": keys})), &c));
    let mut extra = keys.clone();
    extra["team"] = json!("a");
    refused(
        create(auto(json!({"matchLabels": extra})), &c),
        "spec.podAffinity.matchLabels",
        Reason::Invalid,
        "\"team\": it's invalid to add additional podAffinity matchLabels for auto-created SpiderIPPool",
    );
    refused(
        create(
            auto(json!({"matchLabels": keys,
                        "matchExpressions": [{"key": "a", "operator": "Exists"}]})),
            &c,
        ),
        "spec.podAffinity.matchExpressions",
        Reason::Invalid,
        "it's invalid to add additional podAffinity matchExpressions for auto-created SpiderIPPool",
    );
}

#[test]
fn admission_pool_create_reports_spec_and_affinity_errors_together() {
    let errs = create(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "gateway": "10.9.0.1", "podAffinity": {}}),
        ),
        &ClusterState::default(),
    )
    .unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["spec.gateway", "spec.podAffinity"]);
}

#[test]
fn admission_pool_v6_slash_64_with_huge_ranges() {
    // Interval math: nothing here expands the 2^64 addresses (an expanding implementation
    // would never finish). Speed itself is measured in benches/, not asserted here.
    let big = pool(
        "v6-big",
        json!({"subnet": "fd00:1::/64",
               "ips": ["fd00:1::1-fd00:1::ffff:ffff:ffff:fffe", "fd00:1::ffff:ffff:ffff:ffff"],
               "excludeIPs": ["fd00:1::1-fd00:1::ff"],
               "gateway": "fd00:1::1"}),
    );
    let p = as_pool(accepted(create(big, &ClusterState::default())));
    assert_eq!(
        p.spec.ips.as_deref().unwrap(),
        ["fd00:1::1-fd00:1::ffff:ffff:ffff:ffff"]
    );
    let total = IpRangeSet::parse(IpFamily::V6, p.spec.ips.as_deref().unwrap())
        .unwrap()
        .difference(
            &IpRangeSet::parse(IpFamily::V6, p.spec.exclude_ips.as_deref().unwrap()).unwrap(),
        );
    // 2^64 - 256 addresses: beyond i64, so the count saturates.
    assert_eq!(total.len(), (1u128 << 64) - 256);
    assert_eq!(total.len_saturating_i64(), i64::MAX);

    // A second pool of the same /64 overlapping by a huge range, and an UPDATE with an
    // allocation.
    let c = cluster_of([SpiderObject::IPPool(p.clone())]);
    refused(
        create(
            pool(
                "v6-other",
                json!({"subnet": "fd00:1::/64", "ips": ["fd00:1::8000:0:0:0-fd00:1::ffff:0:0:0"]}),
            ),
            &c,
        ),
        "spec.ips",
        Reason::Forbidden,
        "overlap with IPPool v6-big in IP ranges [fd00:1:0:0:8000::-fd00:1:0:0:ffff::]",
    );
    let mut p = p;
    p.status = Some(Default::default());
    let mut rec = std::collections::BTreeMap::new();
    rec.insert(
        "fd00:1::ffff:ffff:ffff:1".to_owned(),
        spiderpool_core::objects::PoolIPAllocation {
            pod: "default/big".into(),
            pod_uid: "u".into(),
        },
    );
    p.status.as_mut().unwrap().set_allocated_ips(&rec);
    let mut shrunk = p.clone();
    shrunk.spec.ips = Some(vec!["fd00:1::1-fd00:1::ffff:ffff:ffff:0".into()]);
    refused(
        update(SpiderObject::IPPool(shrunk), &SpiderObject::IPPool(p), &c),
        "spec.ips",
        Reason::Forbidden,
        "remove an IP address fd00:1::ffff:ffff:ffff:1 that is being used by Pod default/big",
    );
}

// ---------- SpiderIPPool: UPDATE and DELETE ----------

fn seed_with_allocation() -> SpiderObject {
    let mut p = as_pool(fixture("seed-ippool.yaml").remove(0));
    p.status = Some(Default::default());
    let mut rec = std::collections::BTreeMap::new();
    rec.insert(
        "10.6.212.150".to_owned(),
        spiderpool_core::objects::PoolIPAllocation {
            pod: "default/nginx-abc".into(),
            pod_uid: "8f00".into(),
        },
    );
    let st = p.status.as_mut().unwrap();
    st.set_allocated_ips(&rec);
    st.allocated_ip_count = Some(1);
    let o = SpiderObject::IPPool(p);
    accepted(create(o, &ClusterState::default()))
}

#[test]
fn admission_pool_update_removing_an_in_use_ip_is_forbidden() {
    let old = seed_with_allocation();
    let c = cluster_of([old.clone()]);
    let mut new = as_pool(old.clone());
    new.spec.exclude_ips = Some(vec!["10.6.212.140-10.6.212.160".into()]);
    refused(
        update(SpiderObject::IPPool(new), &old, &c),
        "spec.ips",
        Reason::Forbidden,
        "remove an IP address 10.6.212.150 that is being used by Pod default/nginx-abc, total IP addresses of an IPPool are jointly determined by 'spec.ips' and 'spec.excludeIPs'",
    );
    let mut new = as_pool(old.clone());
    new.spec.ips = Some(vec!["10.6.212.100-10.6.212.180".into()]);
    accepted(update(SpiderObject::IPPool(new), &old, &c));
    // A manifest has no status; the stored one (status is a subresource) still counts.
    let mut new = as_pool(fixture("seed-ippool.yaml").remove(0));
    new.spec.ips = Some(vec!["10.6.212.160-10.6.212.200".into()]);
    refused(
        update(SpiderObject::IPPool(new), &old, &c),
        "spec.ips",
        Reason::Forbidden,
        "remove an IP address 10.6.212.150",
    );
}

#[test]
fn admission_pool_update_immutable_fields() {
    let old = seed_with_allocation();
    let c = cluster_of([old.clone()]);
    let mut new = as_pool(old.clone());
    new.spec.subnet = "10.6.0.0/17".into();
    refused(
        update(SpiderObject::IPPool(new), &old, &c),
        "spec.subnet",
        Reason::Forbidden,
        "is not changeable",
    );
    let mut new = as_pool(old.clone());
    new.spec.ip_version = Some(6);
    refused(
        update(SpiderObject::IPPool(new), &old, &c),
        "spec.ipVersion",
        Reason::Forbidden,
        "is not changeable",
    );
    // An UPDATE does not overlap with itself.
    accepted(update(old.clone(), &old, &c));
}

#[test]
fn admission_pool_update_of_a_terminating_pool() {
    let old = seed_with_allocation();
    let c = cluster_of([old.clone()]);
    let mut new = as_pool(old.clone());
    new.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
    refused(
        update(SpiderObject::IPPool(new.clone()), &old, &c),
        "metadata.deletionTimestamp",
        Reason::Forbidden,
        "cannot update a terminating IPPool",
    );
    // Removing the finalizer goes through, whatever else is wrong.
    new.metadata.remove_finalizer("spiderpool.spidernet.io");
    new.spec.ips = Some(vec![]);
    accepted(update(SpiderObject::IPPool(new), &old, &c));
}

#[test]
fn admission_pool_update_still_checks_the_spec_and_other_pools() {
    let old = seed_with_allocation();
    let other = pool(
        "other",
        json!({"subnet": "10.6.0.0/16", "ips": ["10.6.213.1-10.6.213.9"]}),
    );
    let c = admitted([old.clone(), other]);
    let mut new = as_pool(old.clone());
    new.spec.ips = Some(vec!["10.6.212.100-10.6.213.5".into()]);
    refused(
        update(SpiderObject::IPPool(new), &old, &c),
        "spec.ips",
        Reason::Forbidden,
        "overlap with IPPool other in IP ranges [10.6.213.1-10.6.213.5]",
    );
    let mut new = as_pool(old.clone());
    new.spec.pod_affinity = Some(Default::default());
    refused(
        update(SpiderObject::IPPool(new), &old, &c),
        "spec.podAffinity",
        Reason::Invalid,
        "empty podAffinity",
    );
}

#[test]
fn admission_pool_delete_with_allocated_ips() {
    let p = seed_with_allocation();
    let c = cluster_of([p.clone()]);
    let strict = Switches {
        validate_deletion: true,
        ..on()
    };
    refused(
        admit(Operation::Delete, p.clone(), Some(&p), &c, &strict),
        "status.allocatedIPCount",
        Reason::Forbidden,
        "cannot delete an IPPool with allocated IPs(1)",
    );
    // Default switches: deletion is not validated.
    accepted(admit(Operation::Delete, p.clone(), Some(&p), &c, &on()));
    let free = accepted(create(
        fixture("seed-ippool.yaml").remove(0),
        &ClusterState::default(),
    ));
    accepted(admit(
        Operation::Delete,
        free.clone(),
        Some(&free),
        &c,
        &strict,
    ));
}

// ---------- SpiderIPPool and SpiderSubnet together ----------

#[test]
fn admission_pool_is_adopted_by_the_subnet_of_its_cidr() {
    let c = cluster_of([seed_subnet_with_uid()]);
    let p = as_pool(accepted(create(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.100-10.6.212.110"]}),
        ),
        &c,
    )));
    let owner = p.metadata.controller_owner().unwrap();
    assert_eq!(owner.api_version, "spiderpool.spidernet.io/v2beta1");
    assert_eq!(owner.kind, "SpiderSubnet");
    assert_eq!(owner.name, "subnet-6");
    assert_eq!(owner.uid, "uid-subnet-6");
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(
        p.metadata.label("ipam.spidernet.io/owner-spider-subnet"),
        Some("subnet-6")
    );
    assert_eq!(p.spec.gateway.as_deref(), Some("10.6.0.1"));
    let routes = p.spec.routes.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].dst, "10.7.0.0/16");

    // Own gateway kept; an explicit empty routes list is not filled in.
    let p = as_pool(accepted(create(
        pool(
            "q",
            json!({"subnet": "10.6.0.0/16", "gateway": "10.6.0.254", "routes": []}),
        ),
        &c,
    )));
    assert_eq!(p.spec.gateway.as_deref(), Some("10.6.0.254"));
    assert_eq!(p.spec.routes, Some(vec![]));

    // Feature off: no adoption.
    let off = Switches {
        enable_spider_subnet: false,
        ..on()
    };
    let p = as_pool(accepted(create_with(
        pool("r", json!({"subnet": "10.6.0.0/16"})),
        &c,
        &off,
    )));
    assert!(p.metadata.owner_references.is_none());
    assert_eq!(p.spec.gateway, None);

    // Another CIDR: no adoption.
    let p = as_pool(accepted(create(
        pool("s", json!({"subnet": "10.8.0.0/16"})),
        &c,
    )));
    assert!(p.metadata.owner_references.is_none());
}

#[test]
fn admission_pool_ips_must_be_inside_the_controller_subnet() {
    let c = cluster_of([seed_subnet_with_uid()]);
    // Subnet ips 10.6.212.100-250, excludeIPs .254.
    refused(
        create(
            pool(
                "p",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.240-10.6.212.254"]}),
            ),
            &c,
        ),
        "spec.ips",
        Reason::Forbidden,
        "add some IP ranges [10.6.212.251-10.6.212.254] that are not contained in controller Subnet subnet-6",
    );
    accepted(create(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.240-10.6.212.254"],
                   "excludeIPs": ["10.6.212.251-10.6.212.254"]}),
        ),
        &c,
    ));
    // Without the subnet feature there is no owner, hence no check.
    let off = Switches {
        enable_spider_subnet: false,
        ..on()
    };
    accepted(create_with(
        pool(
            "p",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.212.240-10.6.212.254"]}),
        ),
        &c,
        &off,
    ));
}

#[test]
fn admission_pool_with_a_missing_controller_subnet_is_refused() {
    let o = object(
        "SpiderIPPool",
        json!({"metadata": {"name": "p", "ownerReferences": [{
                  "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
                  "name": "gone", "uid": "u1", "controller": true}]},
               "spec": {"subnet": "10.9.0.0/16", "ips": ["10.9.0.1"]}}),
    );
    refused(
        create(o, &ClusterState::default()),
        "metadata.ownerReferences",
        Reason::Invalid,
        "failed to get controller Subnet gone",
    );
}

#[test]
fn admission_auto_pool_ips_must_equal_the_subnet_record() {
    let c = cluster_of([seed_subnet_with_uid()]);
    let auto = |ips: Value| {
        object(
            "SpiderIPPool",
            json!({"metadata": {"name": "auto4-nginx-net1-f0c8a",
                                "labels": {"ipam.spidernet.io/owner-application-name": "nginx"}},
                   "spec": {"subnet": "10.6.0.0/16", "ips": ips}}),
        )
    };
    accepted(create(auto(json!(["10.6.212.201-10.6.212.203"])), &c));
    refused(
        create(auto(json!(["10.6.212.201-10.6.212.204"])), &c),
        "spec.ips",
        Reason::Forbidden,
        "it's illegal to update AutoPool.Spec.IPs that are different from corresponding SpiderSubnet.Status.ControlledIPPools",
    );
}

// ---------- SpiderSubnet ----------

#[test]
fn admission_subnet_is_accepted_and_defaulted() {
    let s = as_subnet(accepted(create(
        subnet(
            "s",
            json!({"subnet": "10.6.0.0/16",
                   "ips": ["10.6.0.10", "10.6.0.1-10.6.0.2", "10.6.0.2-10.6.0.3"],
                   "gateway": "10.6.0.254"}),
        ),
        &ClusterState::default(),
    )));
    assert_eq!(s.spec.ip_version, Some(4));
    assert_eq!(
        s.metadata.label("ipam.spidernet.io/subnet-cidr"),
        Some("10-6-0-0-16")
    );
    assert!(s.metadata.has_finalizer("spiderpool.spidernet.io"));
    assert_eq!(s.spec.ips.unwrap(), ["10.6.0.1-10.6.0.3", "10.6.0.10"]);
}

#[test]
fn admission_subnet_version_and_cidr_rules() {
    let c = ClusterState::default();
    refused(
        create(subnet("s", json!({"subnet": "10.6.0.0"})), &c),
        "spec.ipVersion",
        Reason::Invalid,
        "is not generated correctly, 'spec.subnet' may be invalid",
    );
    refused(
        create_with(
            subnet("s", json!({"subnet": "fd00::/64"})),
            &c,
            &Switches {
                enable_ipv6: false,
                ..on()
            },
        ),
        "spec.ipVersion",
        Reason::Forbidden,
        "IPv6 is disabled",
    );
    refused(
        create(subnet("s", json!({"subnet": "172.10.5.0/16"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "please change it to 172.10.0.0/16",
    );
    let mut nameless = subnet("s", json!({"subnet": "10.6.0.0/16"}));
    nameless.metadata_mut().name = Some(String::new());
    refused(
        create(nameless, &c),
        "metadata.name",
        Reason::Required,
        "required",
    );
}

#[test]
fn admission_subnets_never_overlap() {
    let c = admitted([subnet("a", json!({"subnet": "10.6.0.0/16"}))]);
    refused(
        create(subnet("b", json!({"subnet": "10.6.0.0/16"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "overlap with Subnet a which 'spec.subnet' is 10.6.0.0/16",
    );
    refused(
        create(subnet("b", json!({"subnet": "10.6.128.0/17"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "overlap with Subnet a",
    );
    refused(
        create(subnet("a", json!({"subnet": "10.9.0.0/16"})), &c),
        "metadata.name",
        Reason::AlreadyExists,
        "spidersubnets.spiderpool.spidernet.io \"a\" already exists",
    );
    accepted(create(subnet("b", json!({"subnet": "10.7.0.0/16"})), &c));
    // Different families never overlap.
    // (`::/0` would hold IPv4-mapped addresses, refused since issue 9.)
    accepted(create(subnet("b", json!({"subnet": "fd00::/8"})), &c));
}

#[test]
fn admission_subnet_orphan_pool_checks() {
    let c = admitted([pool(
        "p",
        json!({"subnet": "10.6.0.0/24", "ips": ["10.6.0.10-10.6.0.20"]}),
    )]);
    refused(
        create(subnet("s", json!({"subnet": "10.6.0.0/16"})), &c),
        "spec.subnet",
        Reason::Invalid,
        "overlap with SpiderIPPool 'p' resource 'spec.subnet' 10.6.0.0/24",
    );
    refused(
        create(
            subnet(
                "s",
                json!({"subnet": "10.6.0.0/24", "ips": ["10.6.0.15-10.6.0.100"]}),
            ),
            &c,
        ),
        "spec.ips",
        Reason::Invalid,
        "SpiderIPPool 'p' owns some IP addresses that SpiderSubnet 's' can't control",
    );
    accepted(create(
        subnet(
            "s",
            json!({"subnet": "10.6.0.0/24", "ips": ["10.6.0.1-10.6.0.100"]}),
        ),
        &c,
    ));
}

#[test]
fn admission_subnet_entry_gateway_and_route_rules() {
    let c = ClusterState::default();
    refused(
        create(
            subnet("s", json!({"subnet": "10.6.0.0/16", "ips": ["10.7.0.1"]})),
            &c,
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "not pertains to the 'spec.subnet' 10.6.0.0/16 of Subnet",
    );
    refused(
        create(
            subnet(
                "s",
                json!({"subnet": "10.6.0.0/16", "excludeIPs": ["10.6.0.9-10.6.0.1"]}),
            ),
            &c,
        ),
        "spec.excludeIPs[0]",
        Reason::Invalid,
        "start address is greater than end address",
    );
    refused(
        create(
            subnet(
                "s",
                json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1-10.6.0.9"], "gateway": "10.6.0.5"}),
            ),
            &c,
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "conflicts with 'spec.gateway' 10.6.0.5",
    );
    refused(
        create(
            subnet(
                "s",
                json!({"subnet": "10.6.0.0/16", "routes": [{"dst": "0.0.0.0/0", "gw": "10.6.0.1"}]}),
            ),
            &c,
        ),
        "spec.routes[0].dst",
        Reason::Invalid,
        "please specify 'spec.gateway' to configure the default route",
    );
    accepted(create(
        subnet(
            "s",
            json!({"subnet": "10.6.0.0/16", "ips": ["10.6.0.1-10.6.0.9"], "gateway": "10.6.0.254",
                   "routes": [{"dst": "10.7.0.0/16", "gw": "10.6.0.1"}]}),
        ),
        &c,
    ));
}

#[test]
fn admission_subnet_update_rules() {
    let old = accepted(create(
        fixture("subnet.yaml").remove(0),
        &ClusterState::default(),
    ));
    let c = cluster_of([old.clone()]);
    // controlledIPPools holds 10.6.212.100-203; shrinking below that is refused.
    let mut new = as_subnet(old.clone());
    new.spec.ips = Some(vec!["10.6.212.110-10.6.212.250".into()]);
    new.status = None;
    refused(
        update(SpiderObject::Subnet(new), &old, &c),
        "spec.ips",
        Reason::Forbidden,
        "remove some IP ranges [10.6.212.100-10.6.212.109] that is being used by IPPool 10-6-v4",
    );
    let mut new = as_subnet(old.clone());
    new.spec.ips = Some(vec!["10.6.212.100-10.6.212.210".into()]);
    accepted(update(SpiderObject::Subnet(new), &old, &c));

    let mut new = as_subnet(old.clone());
    new.spec.subnet = "10.6.0.0/15".into();
    refused(
        update(SpiderObject::Subnet(new), &old, &c),
        "spec.subnet",
        Reason::Forbidden,
        "is not changeable",
    );

    let mut new = as_subnet(old.clone());
    new.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
    refused(
        update(SpiderObject::Subnet(new.clone()), &old, &c),
        "metadata.deletionTimestamp",
        Reason::Forbidden,
        "cannot update a terminaing Subnet",
    );
    new.metadata.remove_finalizer("spiderpool.spidernet.io");
    accepted(update(SpiderObject::Subnet(new), &old, &c));
}

#[test]
fn admission_subnet_delete_with_allocated_ips() {
    let s = fixture("subnet.yaml").remove(0);
    let c = cluster_of([s.clone()]);
    let strict = Switches {
        validate_deletion: true,
        ..on()
    };
    refused(
        admit(Operation::Delete, s.clone(), Some(&s), &c, &strict),
        "status.allocatedIPCount",
        Reason::Forbidden,
        "cannot delete an Subnet with allocated IPs(104)",
    );
    accepted(admit(Operation::Delete, s.clone(), Some(&s), &c, &on()));
}

// ---------- SpiderReservedIP ----------

#[test]
fn admission_reserved_ip_version_detection_and_merge() {
    let c = ClusterState::default();
    let docs = fixture("reservedip.yaml");
    let v4 = as_reserved(accepted(create(docs[0].clone(), &c)));
    assert_eq!(v4.spec.ip_version, Some(4));
    let v6 = as_reserved(accepted(create(docs[1].clone(), &c)));
    assert_eq!(v6.spec.ip_version, Some(6));
    let merged = as_reserved(accepted(create(
        reserved(
            "r",
            json!({"ips": ["10.0.0.5", "10.0.0.1-10.0.0.4", "10.0.0.3"]}),
        ),
        &c,
    )));
    assert_eq!(merged.spec.ip_version, Some(4));
    assert_eq!(merged.spec.ips.unwrap(), ["10.0.0.1-10.0.0.5"]);
    // No finalizer on reserved IPs.
    assert!(merged.metadata.finalizers.is_none());
}

#[test]
fn admission_reserved_ip_validation_rules() {
    let c = ClusterState::default();
    refused(
        create(reserved("r", json!({"ips": []})), &c),
        "spec.ipVersion",
        Reason::Invalid,
        "is not generated correctly, 'spec.ips' is empty or 'spec.ips[0]' may be invalid",
    );
    refused(
        create(reserved("r", json!({"ips": ["10.0.0.9-10.0.0.1"]})), &c),
        "spec.ipVersion",
        Reason::Invalid,
        "'spec.ips[0]' may be invalid",
    );
    refused(
        create(reserved("r", json!({"ips": ["10.0.0.1", "10.0.0.x"]})), &c),
        "spec.ips[1]",
        Reason::Invalid,
        "invalid IP range format in IPv4 '10.0.0.x'",
    );
    refused(
        create(
            reserved("r", json!({"ipVersion": 6, "ips": ["10.0.0.1"]})),
            &c,
        ),
        "spec.ips[0]",
        Reason::Invalid,
        "invalid IP range format in IPv6 '10.0.0.1'",
    );
    refused(
        create_with(
            reserved("r", json!({"ips": ["10.0.0.1"]})),
            &c,
            &Switches {
                enable_ipv4: false,
                ..on()
            },
        ),
        "spec.ipVersion",
        Reason::Forbidden,
        "IPv4 is disabled",
    );
    refused(
        create(
            reserved("r", json!({"ipVersion": 7, "ips": ["10.0.0.1"]})),
            &c,
        ),
        "spec.ipVersion",
        Reason::NotSupported,
        "\"7\"",
    );
    let mut nameless = reserved("r", json!({"ips": ["10.0.0.1"]}));
    nameless.metadata_mut().name = None;
    refused(
        create(nameless, &c),
        "metadata.name",
        Reason::Required,
        "required",
    );
}

#[test]
fn admission_reserved_ip_update_and_delete_rules() {
    let c = ClusterState::default();
    let old = accepted(create(reserved("r", json!({"ips": ["10.0.0.1"]})), &c));
    let mut new = as_reserved(old.clone());
    new.spec.ip_version = Some(6);
    new.spec.ips = Some(vec!["fd00::1".into()]);
    refused(
        update(SpiderObject::ReservedIP(new), &old, &c),
        "spec.ipVersion",
        Reason::Forbidden,
        "is not changeable",
    );
    let mut new = as_reserved(old.clone());
    new.spec.ips = Some(vec!["10.0.0.1-10.0.0.9".into()]);
    accepted(update(SpiderObject::ReservedIP(new), &old, &c));

    // The update that sets deletionTimestamp passes; later ones are refused.
    let mut deleting = as_reserved(old.clone());
    deleting.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
    let deleting = SpiderObject::ReservedIP(deleting);
    accepted(update(deleting.clone(), &old, &c));
    refused(
        update(deleting.clone(), &deleting, &c),
        "metadata.deletionTimestamp",
        Reason::Forbidden,
        "cannot update a terminating ReservedIP",
    );
    let strict = Switches {
        validate_deletion: true,
        ..on()
    };
    accepted(admit(
        Operation::Delete,
        old.clone(),
        Some(&old),
        &c,
        &strict,
    ));
}

// ---------- field paths as written, every problem (issue 9, defect 11) ----------

/// The paths of a rejection, in order.
#[track_caller]
fn paths(r: Result<SpiderObject, Vec<FieldError>>) -> Vec<String> {
    match r {
        Ok(o) => panic!("expected rejection, accepted {o:?}"),
        Err(e) => e.into_iter().map(|e| e.path).collect(),
    }
}

#[test]
fn admission_pool_errors_name_the_entry_as_written() {
    // Defaulting sorts and merges `ips` to [10.0.0.1, 172.18.0.10-172.18.0.12]: the bad
    // entry is still the user's index 2 (it was reported as spec.ips[0]).
    let o = pool(
        "p",
        json!({"subnet": "172.18.0.0/16",
               "ips": ["172.18.0.10", "172.18.0.11", "10.0.0.1", "172.18.0.12"]}),
    );
    let r = create(o, &ClusterState::default());
    refused(
        r.clone(),
        "spec.ips[2]",
        Reason::Invalid,
        "\"10.0.0.1\": not pertains",
    );
    assert_eq!(paths(r), ["spec.ips[2]"]);
    // The gateway conflict names the entry that holds the gateway, as written.
    let o = pool(
        "p",
        json!({"subnet": "172.18.0.0/16", "gateway": "172.18.0.11",
               "ips": ["172.18.0.20", "172.18.0.10-172.18.0.12", "172.18.0.5"],
               "excludeIPs": ["172.18.0.30", "172.18.0.1"]}),
    );
    refused(
        create(o, &ClusterState::default()),
        "spec.ips[1]",
        Reason::Invalid,
        "\"172.18.0.10-172.18.0.12\": conflicts with 'spec.gateway'",
    );
    let o = pool(
        "p",
        json!({"subnet": "172.18.0.0/16",
               "ips": ["172.18.0.20", "172.18.0.10"],
               "excludeIPs": ["172.18.0.30", "172.18.0.2", "10.1.1.1"]}),
    );
    assert_eq!(
        paths(create(o, &ClusterState::default())),
        ["spec.excludeIPs[2]"]
    );
}

#[test]
fn admission_pool_reports_every_problem() {
    let o = pool(
        "Bad_Name",
        json!({"subnet": "172.18.0.0/16", "gateway": "172.18.0.15",
               "ips": ["172.18.0.10-172.18.0.20", "10.0.0.1", "172.18.0.30", "nonsense"],
               "excludeIPs": ["10.9.0.1", "172.18.0.40"],
               "routes": [{"dst": "10.7.0.0/16", "gw": "10.8.0.1"},
                          {"dst": "0.0.0.0/0", "gw": "172.18.0.1"}],
               "podAffinity": {}}),
    );
    let got = paths(create(o, &ClusterState::default()));
    assert_eq!(
        got,
        [
            "metadata.name",
            "spec.ips[1]",
            "spec.ips[3]",
            "spec.excludeIPs[0]",
            "spec.ips[0]",
            "spec.routes[0].gw",
            "spec.routes[1].dst",
            "spec.podAffinity",
        ]
    );
}

#[test]
fn admission_pool_merged_overlapping_entries_stay_accepted() {
    // Validated as written, the overlapping entries must not be refused: the webhook joins
    // them before storing.
    let o = pool(
        "p",
        json!({"subnet": "10.6.0.0/16",
               "ips": ["10.6.0.5-10.6.0.20", "10.6.0.1-10.6.0.10", "10.6.1.1"]}),
    );
    let p = as_pool(accepted(create(o, &ClusterState::default())));
    assert_eq!(p.spec.ips.unwrap(), ["10.6.0.1-10.6.0.20", "10.6.1.1"]);
}

#[test]
fn admission_subnet_and_reserved_ip_report_every_bad_entry_as_written() {
    let s = subnet(
        "s",
        json!({"subnet": "172.18.0.0/16",
               "ips": ["172.18.0.10", "10.0.0.1", "172.18.0.5", "10.0.0.2"],
               "routes": [{"dst": "10.7.0.0/16", "gw": "10.8.0.1"}]}),
    );
    assert_eq!(
        paths(create(s, &ClusterState::default())),
        ["spec.ips[1]", "spec.ips[3]", "spec.routes[0].gw"]
    );
    let r = reserved(
        "r",
        json!({"ips": ["172.18.0.10", "bad", "172.18.0.5", "172.18.0.9-172.18.0.1"]}),
    );
    assert_eq!(
        paths(create(r, &ClusterState::default())),
        ["spec.ips[1]", "spec.ips[3]"]
    );
}

// ---------- IPv4-mapped IPv6 (issue 9, defect 13) ----------

#[test]
fn admission_v4_mapped_ipv6_is_refused() {
    let c = ClusterState::default();
    // A v4-mapped pool would hand out ::ffff:10.6.0.5, which is 10.6.0.5 to the kernel: the
    // address of a v4 pool's pod (these were accepted).
    for net in [
        "::ffff:0:0/96",
        "::ffff:0.0.0.0/96",
        "::ffff:10.6.0.0/112",
        "::/64",
    ] {
        refused(
            create(pool("p", json!({"subnet": net})), &c),
            "spec.subnet",
            Reason::Invalid,
            "IPv4-mapped",
        );
        refused(
            create(subnet("s", json!({"subnet": net})), &c),
            "spec.subnet",
            Reason::Invalid,
            "IPv4-mapped",
        );
    }
    refused(
        create(
            reserved(
                "r",
                json!({"ips": ["fd00::5", "::ffff:10.6.0.5", "::fffe:ffff:ffff-::ffff:0:1"]}),
            ),
            &c,
        ),
        "spec.ips[1]",
        Reason::Invalid,
        "\"::ffff:10.6.0.5\": holds IPv4-mapped IPv6 addresses",
    );
    let r = reserved(
        "r",
        json!({"ips": ["fd00::5", "::ffff:10.6.0.5", "::fffe:ffff:ffff-::ffff:0:1"]}),
    );
    assert_eq!(paths(create(r, &c)), ["spec.ips[1]", "spec.ips[2]"]);
    // Prefixes that embed an IPv4 address but are distinct IPv6 addresses stay accepted.
    for net in ["64:ff9b::/96", "2002:a06::/32", "fd00:ffff::/96"] {
        accepted(create(pool("p", json!({"subnet": net})), &c));
    }
    accepted(create(
        reserved("r", json!({"ips": ["64:ff9b::a06:5"]})),
        &c,
    ));
}
