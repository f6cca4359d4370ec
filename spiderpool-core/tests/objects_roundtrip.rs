//! Upstream-shaped manifests round-trip through the typed objects, and bad manifests give
//! precise errors (never a panic).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use spiderpool_core::manifest::ManifestError;
use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};
use spiderpool_core::manifest::{
    SpiderObject, parse_documents, to_json, to_yaml, to_yaml_documents,
};
use spiderpool_core::objects::{
    CniType, CoordinatorMode, LinkState, PodCidrType, SpiderResource, VlanMode,
};

fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a YAML fixture as plain JSON values, read independently of the typed
/// path (empty documents dropped).
fn raw_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// parse → serialize gives the input JSON; parse → YAML → parse and parse → JSON → parse give
/// the same objects.
fn assert_round_trip(name: &str) -> Vec<SpiderObject> {
    let text = fixture(name);
    let objs = parse_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let raw = raw_documents(&text);
    assert_eq!(objs.len(), raw.len(), "{name}: document count");
    for (obj, input) in objs.iter().zip(&raw) {
        assert_eq!(&obj.to_value().unwrap(), input, "{name}: {}", obj.name());
    }
    let again = parse_documents(&to_yaml_documents(&objs).unwrap()).unwrap();
    assert_eq!(again, objs, "{name}: via YAML");
    for obj in &objs {
        let one = parse_documents(&to_json(obj).unwrap()).unwrap();
        assert_eq!(one, vec![obj.clone()], "{name}: via JSON");
        let one = parse_documents(&to_yaml(obj).unwrap()).unwrap();
        assert_eq!(one, vec![obj.clone()], "{name}: via single YAML");
    }
    objs
}

#[test]
fn objects_roundtrip_seed_ippool() {
    let objs = assert_round_trip("seed-ippool.yaml");
    let SpiderObject::IPPool(pool) = &objs[0] else {
        panic!()
    };
    assert_eq!(pool.name(), "10-6-v4");
    assert_eq!(pool.spec.subnet, "10.6.0.0/16");
    assert_eq!(pool.spec.gateway.as_deref(), Some("10.6.0.1"));
    assert_eq!(
        pool.spec.ips.as_deref(),
        Some(&["10.6.212.100-10.6.212.200".to_owned()][..])
    );
    assert_eq!(pool.spec.disable, Some(false));
    assert_eq!(pool.spec.ip_version, None);
    assert_eq!(pool.spec.routes, None);
    assert!(pool.status.is_none());
    assert_eq!(objs[0].namespace(), None);
}

#[test]
fn objects_roundtrip_seed_smc() {
    let objs = assert_round_trip("seed-smc-macvlan.yaml");
    let SpiderObject::MultusConfig(smc) = &objs[0] else {
        panic!()
    };
    assert_eq!(smc.spec.cni_type().unwrap(), Some(CniType::Macvlan));
    let mac = smc.spec.macvlan.as_ref().unwrap();
    assert_eq!(mac.master, ["ens192"]);
    assert_eq!(mac.vlan_id, Some(0));
    assert_eq!(
        mac.ippools.as_ref().unwrap().ipv4.as_deref(),
        Some(&["10-6-v4".to_owned()][..])
    );
    assert_eq!(smc.spec.present_cni_blocks(), ["macvlan"]);
}

#[test]
fn objects_seed_old_smc_spelling_is_read_and_written_in_v2beta1_names() {
    // The seed's last-applied-configuration: `spiderpoolConfigPools: {IPv4IPPool}` and
    // coordinator `tuneMode`.
    let objs = parse_documents(&fixture("seed-smc-old-spelling.json")).unwrap();
    let SpiderObject::MultusConfig(smc) = &objs[0] else {
        panic!()
    };
    assert_eq!(smc.namespace(), Some("default"));
    let coordinator = smc.spec.coordinator.as_ref().unwrap();
    assert_eq!(coordinator.mode().unwrap(), Some(CoordinatorMode::Overlay));
    assert_eq!(
        coordinator.pod_cidr_type().unwrap(),
        Some(PodCidrType::Cluster)
    );
    assert_eq!(smc.spec.enable_coordinator, Some(true));
    let v = objs[0].to_value().unwrap();
    assert_eq!(
        v["spec"]["macvlan"]["ippools"],
        json!({"ipv4": ["10-6-v4"]})
    );
    assert_eq!(
        v["spec"]["coordinator"],
        json!({"mode": "overlay", "podCIDRType": "cluster"})
    );
    assert_eq!(v["metadata"]["annotations"], json!({}));
}

#[test]
fn objects_roundtrip_coordinator_from_kubectl_get() {
    let objs = assert_round_trip("coordinator-default.yaml");
    let SpiderObject::Coordinator(c) = &objs[0] else {
        panic!()
    };
    let m = &c.metadata;
    assert_eq!(
        m.creation_timestamp.as_deref(),
        Some("2023-10-18T08:31:09Z")
    );
    assert_eq!(m.generation, Some(7));
    assert_eq!(m.resource_version.as_deref(), Some("195405"));
    assert_eq!(
        m.uid.as_deref(),
        Some("8bdceced-15db-497b-be07-81cbcba7caac")
    );
    assert!(m.has_finalizer(spiderpool_core::objects::keys::SPIDER_FINALIZER));
    assert_eq!(c.spec.mode().unwrap(), Some(CoordinatorMode::Auto));
    assert_eq!(c.spec.pod_cidr_type().unwrap(), Some(PodCidrType::Calico));
    assert_eq!(c.spec.host_rule_table, Some(500));
    assert_eq!(c.spec.tune_pod_routes, Some(true));
    assert_eq!(c.spec.detect_gateway, Some(false));
    let st = c.status.as_ref().unwrap();
    assert_eq!(st.phase, "Synced");
    assert_eq!(
        st.overlay_pod_cidr.as_deref(),
        Some(&["10.222.64.0/18".to_owned(), "10.223.64.0/18".to_owned()][..])
    );
    assert_eq!(
        st.service_cidr.as_deref(),
        Some(&["10.233.0.0/18".to_owned()][..])
    );

    let objs = assert_round_trip("coordinator-current.yaml");
    let SpiderObject::Coordinator(c) = &objs[0] else {
        panic!()
    };
    assert_eq!(c.spec.pod_rp_filter, Some(-1));
    assert_eq!(c.spec.veth_mtu, Some(9000));
    assert_eq!(c.spec.policy_routes.as_ref().unwrap()[0].gw, "10.6.0.1");
    assert_eq!(c.status.as_ref().unwrap().phase, "NotReady");
}

#[test]
fn objects_roundtrip_endpoint() {
    let objs = assert_round_trip("endpoint.yaml");
    let SpiderObject::Endpoint(se) = &objs[0] else {
        panic!()
    };
    assert_eq!(se.namespace(), Some("default"));
    let st = se.status.as_ref().unwrap();
    assert_eq!(st.owner_controller_type, "ReplicaSet");
    assert_eq!(st.current.node, "worker01");
    let nic = &st.current.ips[0];
    // The columns `kubectl get se` prints.
    assert_eq!(nic.interface, "net1");
    assert_eq!(nic.ipv4_pool.as_deref(), Some("10-6-v4"));
    assert_eq!(nic.ipv4.as_deref(), Some("10.6.212.145/16"));
    assert_eq!(nic.ipv6, None);
    let owner = &se.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Pod", None));
}

#[test]
fn objects_roundtrip_subnet_and_status_json() {
    let objs = assert_round_trip("subnet.yaml");
    let SpiderObject::Subnet(ss) = &objs[0] else {
        panic!()
    };
    assert_eq!(ss.spec.ip_version, Some(4));
    let status = ss.status.as_ref().unwrap();
    let pools = status.controlled_ip_pools().unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(pools["10-6-v4"].application, None);
    assert_eq!(
        pools["auto4-nginx-net1-f0c8a"].application.as_deref(),
        Some("apps_v1_Deployment_default_nginx")
    );
    // Re-encoding gives back the stored text (sorted keys, compact, as Go writes it).
    let mut copy = status.clone();
    copy.set_controlled_ip_pools(&pools);
    assert_eq!(copy.controlled_ip_pools, status.controlled_ip_pools);
}

#[test]
fn objects_roundtrip_reserved_ips() {
    let objs = assert_round_trip("reservedip.yaml");
    assert_eq!(objs.len(), 2);
    let SpiderObject::ReservedIP(r) = &objs[1] else {
        panic!()
    };
    assert_eq!(r.spec.ip_version, None);
    assert_eq!(objs[1].name(), "reserved-v6");
}

#[test]
fn objects_roundtrip_dual_stack_pools() {
    let objs = assert_round_trip("dual-stack-pools.yaml");
    let (SpiderObject::IPPool(v4), SpiderObject::IPPool(v6)) = (&objs[0], &objs[1]) else {
        panic!()
    };
    assert_eq!(v4.spec.routes, Some(vec![]), "explicit empty routes kept");
    assert!(v4.spec.is_default());
    assert_eq!(v4.metadata.controller_owner().unwrap().kind, "SpiderSubnet");
    let allocated = v4.status.as_ref().unwrap().allocated_ips().unwrap();
    assert_eq!(
        allocated["10.6.212.145"].pod,
        "default/nginx-4653bc4f24-rswak"
    );
    let mut copy = v4.status.clone().unwrap();
    copy.set_allocated_ips(&allocated);
    assert_eq!(
        copy.allocated_ips,
        v4.status.as_ref().unwrap().allocated_ips
    );

    let pod_labels = [("app", "nginx"), ("tier", "frontend")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let affinity = v4.spec.pod_affinity.as_ref().unwrap();
    assert!(affinity.matches(&pod_labels));
    assert!(affinity.validate().is_empty());
    assert_eq!(v6.spec.ip_version, Some(6));
    assert!(
        v6.status
            .as_ref()
            .unwrap()
            .allocated_ips()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn objects_roundtrip_smc_every_cni_type() {
    let objs = assert_round_trip("smc-all-cni-types.yaml");
    let types: Vec<CniType> = objs
        .iter()
        .map(|o| {
            let SpiderObject::MultusConfig(smc) = o else {
                panic!()
            };
            smc.spec.cni_type().unwrap().unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            CniType::Macvlan,
            CniType::Ipvlan,
            CniType::Vlan,
            CniType::Vlan,
            CniType::Sriov,
            CniType::IbSriov,
            CniType::Ipoib,
            CniType::Ovs,
            CniType::Custom
        ]
    );
    let smc = |i: usize| match &objs[i] {
        SpiderObject::MultusConfig(s) => s.clone(),
        _ => panic!(),
    };
    let bonded = smc(0);
    let mac = bonded.spec.macvlan.as_ref().unwrap();
    assert_eq!(mac.bond.as_ref().unwrap().mode, 1);
    assert_eq!(mac.master.len(), 2);
    assert_eq!(
        bonded
            .metadata
            .annotation(spiderpool_core::objects::keys::ANNO_MULTUS_CR_NAME),
        Some("macvlan-bond-nad")
    );
    assert_eq!(bonded.spec.chain_cni_json_data.as_ref().unwrap().len(), 1);
    assert_eq!(
        smc(3).spec.vlan.as_ref().unwrap().vlan_mode().unwrap(),
        Some(VlanMode::Auto)
    );
    assert_eq!(smc(3).spec.vlan.as_ref().unwrap().vlan_id, None);
    let sriov = smc(4);
    let pools = sriov.spec.ippools_for(CniType::Sriov).unwrap();
    assert_eq!(pools.match_master_subnet, Some(true));
    assert_eq!(
        smc(5).spec.ibsriov.as_ref().unwrap().link_state().unwrap(),
        Some(LinkState::Enable)
    );
    assert_eq!(
        smc(6).spec.ipoib.as_ref().unwrap().master.as_deref(),
        Some("ibs5f0")
    );
    let ovs = smc(7);
    let o = ovs.spec.ovs.as_ref().unwrap();
    assert_eq!(o.trunk.as_ref().unwrap()[0].min_id, Some(10));
    assert_eq!(o.trunk.as_ref().unwrap()[1].id, Some(40));
    assert_eq!(o.device_id.as_deref(), Some("0000:af:00.2"));
    assert!(
        smc(8)
            .spec
            .custom_cni
            .as_ref()
            .unwrap()
            .contains("\"bridge\"")
    );
}

#[test]
fn objects_kubectl_list_json() {
    let text = fixture("pools-list.json");
    let objs = parse_documents(&text).unwrap();
    assert_eq!(objs.len(), 2);
    let input: Value = serde_json::from_str(&text).unwrap();
    for (obj, item) in objs.iter().zip(input["items"].as_array().unwrap()) {
        assert_eq!(&obj.to_value().unwrap(), item);
    }
    // Unknown metadata (managedFields) survives.
    assert!(objs[0].metadata().extra.contains_key("managedFields"));
    assert_eq!(objs[1].kind(), "SpiderReservedIP");
    // The same list as YAML.
    let yaml = serde_saphyr::to_string(&input).unwrap();
    assert_eq!(parse_documents(&yaml).unwrap(), objs);
}

#[test]
fn objects_typed_metadata_access() {
    let mut objs = parse_documents(&fixture("seed-ippool.yaml")).unwrap();
    objs[0].metadata_mut().set_label(
        spiderpool_core::objects::keys::LABEL_IPPOOL_CIDR,
        "10-6-0-0-16",
    );
    let SpiderObject::IPPool(pool) = &objs[0] else {
        panic!()
    };
    assert_eq!(
        pool.metadata.label("ipam.spidernet.io/ippool-cidr"),
        Some("10-6-0-0-16")
    );
    assert_eq!(
        <spiderpool_core::objects::SpiderIPPool as SpiderResource>::INFO.short_name,
        "sp"
    );
    assert_eq!(objs[0].info().plural, "spiderippools");
}

// ---------------------------------------------------------------- bad input

const POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: p\nspec:\n  subnet: 10.6.0.0/16\n";

fn err(text: &str) -> ManifestError {
    parse_documents(text).expect_err("must be rejected")
}

#[test]
fn manifest_rejects_garbage_yaml() {
    let e = err("kind: [unclosed\n  - : :\n");
    assert!(
        matches!(
            e,
            ManifestError::Document {
                document: 1,
                item: None,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&format!("{POOL}---\n\tkind: x\n"));
    assert!(
        matches!(e, ManifestError::Document { document: 2, .. }),
        "{e}"
    );
}

#[test]
fn manifest_rejects_bad_json() {
    let e = err("{\"apiVersion\": \"spiderpool.spidernet.io/v2beta1\", \"kind\": ");
    let ManifestError::Document {
        document, reason, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*document, 1);
    assert!(reason.contains("line 1"), "{reason}");
}

#[test]
fn manifest_rejects_wrong_api_version() {
    let bad = POOL.replace("v2beta1", "v2beta2");
    let e = err(&format!("{POOL}---\n{bad}"));
    assert_eq!(
        e,
        ManifestError::BadApiVersion {
            document: 2,
            item: None,
            kind: "SpiderIPPool".into(),
            api_version: "spiderpool.spidernet.io/v2beta2".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "document 2: unsupported apiVersion spiderpool.spidernet.io/v2beta2 for kind \
         SpiderIPPool; supported: spiderpool.spidernet.io/v2beta1"
    );
    let v1 = POOL.replace("spiderpool.spidernet.io/v2beta1", "v1");
    assert!(matches!(
        err(&v1),
        ManifestError::BadApiVersion { document: 1, .. }
    ));
    let missing = POOL.replace("apiVersion: spiderpool.spidernet.io/v2beta1\n", "");
    assert!(err(&missing).to_string().contains("missing `apiVersion`"));
}

#[test]
fn manifest_rejects_unknown_kind() {
    let e = err(&format!(
        "{POOL}---\napiVersion: example.com/v1\nkind: Foo\n"
    ));
    assert_eq!(
        e.to_string(),
        "document 2: unknown kind Foo; supported: SpiderIPPool, SpiderSubnet, SpiderEndpoint, \
         SpiderReservedIP, SpiderMultusConfig, SpiderCoordinator"
    );
    // Inside a list, the item is named too.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        serde_saphyr::from_str::<Value>(POOL).unwrap(),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"}}
    ]});
    let e = err(&list.to_string());
    assert!(
        matches!(
            e,
            ManifestError::UnknownKind {
                document: 1,
                item: Some(2),
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("document 1, item 2: unknown kind Deployment"),
        "{e}"
    );
    assert!(
        err("apiVersion: v1\nmetadata: {}\n")
            .to_string()
            .contains("missing `kind`")
    );
}

#[test]
fn manifest_rejects_non_mapping_documents() {
    let e = err(&format!("{POOL}---\n- a\n- b\n"));
    assert_eq!(
        e.to_string(),
        "document 2: expected a mapping with apiVersion and kind, found a list"
    );
    let e = err("just a string\n");
    assert!(e.to_string().contains("found a string"), "{e}");
    let e = err("42");
    assert!(
        matches!(e, ManifestError::Document { document: 1, .. }),
        "{e}"
    );
    let e = err("[1, 2]");
    assert!(e.to_string().contains("found a list"), "{e}");
}

#[test]
fn manifest_rejects_wrong_field_types_with_location() {
    let bad = POOL.replace(
        "  subnet: 10.6.0.0/16\n",
        "  subnet: 10.6.0.0/16\n  ipVersion: four\n",
    );
    let e = err(&format!("{POOL}---\n{bad}"));
    let ManifestError::Document {
        document,
        item,
        reason,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*document, *item), (2, None));
    assert!(
        reason.contains("invalid type: string \"four\", expected i64"),
        "{reason}"
    );
    assert!(reason.contains("line 14"), "{reason}");

    // A YAML number where a string is required is a type error, as in Kubernetes.
    let e = err(&POOL.replace("subnet: 10.6.0.0/16", "subnet: 4"));
    assert!(
        e.to_string()
            .contains("invalid type: integer `4`, expected a string"),
        "{e}"
    );

    // Typos are reported by name.
    let e = err(&POOL.replace("  subnet:", "  gatway: 10.6.0.1\n  subnet:"));
    assert!(e.to_string().contains("unknown field `gatway`"), "{e}");

    // Missing required field.
    let e = err(&POOL.replace("  subnet: 10.6.0.0/16\n", "  ips: []\n"));
    assert!(e.to_string().contains("missing field `subnet`"), "{e}");

    // Same in JSON, with the line in the input.
    let json_text = "{\n \"apiVersion\": \"spiderpool.spidernet.io/v2beta1\",\n \"kind\": \"SpiderMultusConfig\",\n \"metadata\": {\"name\": \"m\"},\n \"spec\": {\"macvlan\": {\"master\": \"ens192\"}}\n}";
    let e = err(json_text);
    let msg = e.to_string();
    assert!(
        msg.starts_with("document 1: invalid type: string \"ens192\""),
        "{msg}"
    );
    assert!(msg.contains("line 5"), "{msg}");
}

#[test]
fn manifest_bad_enum_values_are_left_to_admission() {
    // cniType outside the enum still reads, so admission can say NotSupported.
    let text = fixture("seed-smc-macvlan.yaml").replace("cniType: macvlan", "cniType: bridge");
    let objs = parse_documents(&text).unwrap();
    let SpiderObject::MultusConfig(smc) = &objs[0] else {
        panic!()
    };
    let e = smc.spec.cni_type().unwrap_err();
    assert!(
        e.to_string().contains("supported values: macvlan, ipvlan"),
        "{e}"
    );
}

#[test]
fn manifest_empty_inputs() {
    assert!(parse_documents("").unwrap().is_empty());
    assert!(parse_documents("---\n---\n# nothing\n").unwrap().is_empty());
    assert!(parse_documents("\n\n").unwrap().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary text never panics the reader.
    #[test]
    fn manifest_never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = parse_documents(&s);
    }

    /// Truncated or byte-mutated fixtures never panic, and errors carry a document number.
    #[test]
    fn manifest_never_panics_on_mutated_fixtures(
        which in 0usize..4,
        cut in 0usize..4000,
        pos in 0usize..4000,
        byte in prop::sample::select(vec![b':', b'-', b'\t', b'[', b'{', b'"', b'\'', b' ', b'\n', b'#', b'&', b'*'])
    ) {
        let name = ["dual-stack-pools.yaml", "smc-all-cni-types.yaml", "pools-list.json", "coordinator-default.yaml"][which];
        let mut bytes = fixture(name).into_bytes();
        bytes.truncate(cut.min(bytes.len()));
        if !bytes.is_empty() {
            let p = pos % bytes.len();
            bytes[p] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse_documents(&text) {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("document "), "{}", msg);
        }
    }
}
