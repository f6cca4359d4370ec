//! SpiderMultusConfig → NetworkAttachmentDefinition: every exact example of spec §6.4,
//! byte for byte, after the same mutate → validate → render path the controller takes; and
//! the other cniTypes, chained plugins and the annotations that change the NAD.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use spiderpool_core::manifest::ManifestError;
use spiderpool_core::multus::RenderError;
use std::path::PathBuf;

use spiderpool_core::admission::{ClusterState, Operation, Switches, admit};
use spiderpool_core::manifest::{SpiderObject, parse_documents};
use spiderpool_core::multus::{NetworkAttachmentDefinition, render_nad};
use spiderpool_core::objects::SpiderMultusConfig;

fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every SMC of `yaml`, admitted as a CREATE into an empty cluster.
fn admit_all(yaml: &str) -> Vec<SpiderMultusConfig> {
    parse_documents(yaml)
        .unwrap()
        .into_iter()
        .map(|obj| {
            let name = obj.name().to_owned();
            match admit(
                Operation::Create,
                obj,
                None,
                &ClusterState::default(),
                &Switches::default(),
            ) {
                Ok(SpiderObject::MultusConfig(smc)) => smc,
                Ok(other) => panic!("{name}: not an SMC: {other:?}"),
                Err(errs) => panic!("{name}: rejected: {errs:?}"),
            }
        })
        .collect()
}

fn render_one(yaml: &str) -> NetworkAttachmentDefinition {
    let smc = admit_all(yaml).remove(0);
    render_nad(&smc).unwrap()
}

fn config(nad: &NetworkAttachmentDefinition) -> &str {
    nad.spec.config.as_deref().unwrap()
}

fn smc(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderMultusConfig\n\
         metadata:\n  name: {name}\n  namespace: kube-system\nspec:\n{spec}"
    )
}

// --- spec §6.4, exact ---

#[test]
fn nad_seed_calico_quickstart() {
    let nad = render_one(&fixture("seed-smc-macvlan.yaml"));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
    assert_eq!(nad.api_version, "k8s.cni.cncf.io/v1");
    assert_eq!(nad.kind, "NetworkAttachmentDefinition");
    assert_eq!(nad.metadata.name.as_deref(), Some("macvlan-ens192"));
    // No namespace in the seed: kubectl would put it in `default`.
    assert_eq!(nad.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(nad.metadata.annotations, None);
    // Never applied, so no uid: no owner reference (an empty uid would be refused).
    assert_eq!(nad.metadata.owner_references, None);
    // Once the apiserver gave the SMC a uid, the NAD is owned by it.
    let text = fixture("seed-smc-macvlan.yaml").replace(
        "  name: macvlan-ens192\n",
        "  name: macvlan-ens192\n  uid: 3f902f46-d9d4\n",
    );
    let nad = render_one(&text);
    let owners = nad.metadata.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].uid, "3f902f46-d9d4");
    let o = &owners[0];
    assert_eq!(o.api_version, "spiderpool.spidernet.io/v2beta1");
    assert_eq!(o.kind, "SpiderMultusConfig");
    assert_eq!(o.name, "macvlan-ens192");
    assert_eq!(o.controller, Some(true));
    assert_eq!(o.block_owner_deletion, Some(true));
    assert_eq!(nad.owning_multus_config(), Some("macvlan-ens192"));
}

#[test]
fn nad_macvlan_vlan100() {
    let nad = render_one(&smc(
        "macvlan-vlan100",
        "  cniType: macvlan\n  macvlan:\n    master: [ens192]\n    vlanID: 100\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"macvlan-vlan100","plugins":[{"vlanID":100,"type":"ifacer","interfaces":["ens192"]},{"type":"macvlan","master":"ens192.100","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
}

#[test]
fn nad_ipvlan_bond() {
    let nad = render_one(&smc(
        "ipvlan-conf",
        "  cniType: ipvlan\n  ipvlan:\n    master: [ens192, ens224]\n    vlanID: 100\n    \
         bond: {name: bond0, mode: 1}\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"ipvlan-conf","plugins":[{"vlanID":100,"type":"ifacer","interfaces":["ens192","ens224"],"bond":{"name":"bond0","mode":1,"options":""}},{"type":"ipvlan","master":"bond0.100","mtu":0,"ipam":{"type":"spiderpool"}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
}

#[test]
fn nad_sriov_rdma_tuning() {
    let nad = render_one(&smc(
        "sriov-demo",
        "  cniType: sriov\n  sriov:\n    resourceName: spidernet.io/sriov_netdevice\n    \
         vlanID: 100\n    rdmaIsolation: true\n    mtu: 8000\n    ippools:\n      \
         ipv4: [\"rdmarail1-*\"]\n      matchMasterSubnet: true\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"sriov-demo","plugins":[{"vlan":100,"min_tx_rate":0,"max_tx_rate":0,"type":"sriov","ipam":{"type":"spiderpool","default_ipv4_ippool":["rdmarail1-*"],"match_master_subnet":true}},{"type":"rdma"},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"},{"type":"tuning","mtu":8000}]}"#
    );
    assert_eq!(
        nad.metadata.annotation("k8s.v1.cni.cncf.io/resourceName"),
        Some("spidernet.io/sriov_netdevice")
    );
}

#[test]
fn nad_vlan_bond_without_coordinator() {
    let nad = render_one(&smc(
        "vlan-bond100",
        "  cniType: vlan\n  enableCoordinator: false\n  vlan:\n    master: [ens192, ens224]\n    \
         bond: {name: bond0, mode: 1}\n    vlanID: 100\n    mtu: 1480\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"vlan-bond100","plugins":[{"type":"ifacer","interfaces":["ens192","ens224"],"bond":{"name":"bond0","mode":1,"options":""}},{"type":"vlan","master":"bond0","vlanMode":"manual","vlanId":100,"mtu":1480,"ipam":{"type":"spiderpool"}}]}"#
    );
}

#[test]
fn nad_explicit_coordinator_block() {
    let nad = render_one(&smc(
        "macvlan-coord",
        "  cniType: macvlan\n  macvlan:\n    master: [ens192]\n  coordinator:\n    \
         podCIDRType: cluster\n    podMACPrefix: \"0a:1b\"\n    txQueueLen: 2000\n    \
         policyRoutes:\n    - {dst: 10.10.0.0/16, gw: 172.18.0.1}\n",
    ));
    let v: serde_json::Value = serde_json::from_str(config(&nad)).unwrap();
    let plugins = v["plugins"].as_array().unwrap();
    assert_eq!(
        serde_json::to_string(plugins.last().unwrap()).unwrap(),
        r#"{"txQueueLen":2000,"tunePodRoutes":true,"podMACPrefix":"0a:1b","mode":"auto","type":"coordinator","podRPFilter":0,"policyRoutes":[{"dst":"10.10.0.0/16","gw":"172.18.0.1"}]}"#
    );
    // The whole document, to pin the text rather than a re-serialisation.
    assert!(config(&nad).ends_with(
        r#"{"txQueueLen":2000,"tunePodRoutes":true,"podMACPrefix":"0a:1b","mode":"auto","type":"coordinator","podRPFilter":0,"policyRoutes":[{"dst":"10.10.0.0/16","gw":"172.18.0.1"}]}]}"#
    ));
}

// --- the other cniTypes ---

#[test]
fn nad_ib_sriov_defaults() {
    let nad = render_one(&smc(
        "ib-sriov",
        "  cniType: ib-sriov\n  ibsriov:\n    resourceName: spidernet.io/mellanoxibsriov\n    \
         ippools: {ipv4: [ib-v4], ipv6: [ib-v6]}\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"ib-sriov","plugins":[{"type":"ib-sriov","pkey":"","link_state":"enable","rdmaIsolation":true,"ibKubernetesEnabled":false,"ipam":{"type":"spiderpool","default_ipv4_ippool":["ib-v4"],"default_ipv6_ippool":["ib-v6"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
    assert_eq!(
        nad.metadata.annotation("k8s.v1.cni.cncf.io/resourceName"),
        Some("spidernet.io/mellanoxibsriov")
    );
    assert_eq!(nad.metadata.namespace.as_deref(), Some("kube-system"));
}

#[test]
fn nad_ipoib() {
    let nad = render_one(&smc(
        "ipoib",
        "  cniType: ipoib\n  ipoib:\n    master: ibs5f0\n    ippools: {ipv4: [ipoib-v4]}\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"ipoib","plugins":[{"type":"ipoib","master":"ibs5f0","ipam":{"type":"spiderpool","default_ipv4_ippool":["ipoib-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
    assert_eq!(nad.metadata.annotations, None);
}

#[test]
fn nad_ovs_trunk_device_id() {
    let nad = render_one(&smc(
        "ovs-trunk",
        "  cniType: ovs\n  ovs:\n    bridge: br1\n    vlan: 30\n    trunk:\n    \
         - {minID: 10, maxID: 20}\n    - {id: 40}\n    deviceID: \"0000:af:00.2\"\n    \
         ippools: {ipv4: [ovs-v4]}\n  coordinator:\n    podCIDRType: cluster\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"ovs-trunk","plugins":[{"vlan":30,"type":"ovs","bridge":"br1","deviceID":"0000:af:00.2","ipam":{"type":"spiderpool","default_ipv4_ippool":["ovs-v4"]},"trunk":[{"minID":10,"maxID":20},{"id":40}]},{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator","podRPFilter":0}]}"#
    );
    assert_eq!(
        nad.metadata.annotation("k8s.v1.cni.cncf.io/resourceName"),
        Some("ovs-cni.network.kubevirt.io/br1")
    );
}

#[test]
fn nad_ovs_without_device_id_has_no_resource_name() {
    let nad = render_one(&smc(
        "ovs",
        "  cniType: ovs\n  disableIPAM: true\n  ovs:\n    bridge: br1\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"ovs","plugins":[{"vlan":0,"type":"ovs","bridge":"br1"},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
    assert_eq!(nad.metadata.annotations, None);
}

#[test]
fn nad_custom_verbatim_and_empty() {
    let text =
        r#"{"cniVersion": "0.3.1", "type":"bridge","bridge":"cni0","ipam":{"type":"spiderpool"}}"#;
    let nad = render_one(&smc(
        "custom-bridge",
        &format!("  cniType: custom\n  customCNI: '{text}'\n"),
    ));
    assert_eq!(config(&nad), text);

    // No cniType at all: defaulted to custom, no customCNI → no spec.config.
    let nad = render_one(&smc("k8s-pod-network", "  {}\n"));
    assert_eq!(nad.spec.config, None);
    assert_eq!(
        serde_json::to_value(&nad).unwrap()["spec"],
        serde_json::json!({})
    );
}

// --- chained plugins, annotations, knobs ---

#[test]
fn nad_chain_plugins_sorted_and_before_coordinator() {
    let nad = render_one(&smc(
        "macvlan-chain",
        "  cniType: macvlan\n  macvlan:\n    master: [ens192]\n  chainCNIJsonData:\n  \
         - '{\"type\":\"tuning\",\"sysctl\":{\"net.core.somaxconn\":\"500\"},\"mtu\":1500.0}'\n  \
         - '{\"type\":\"bandwidth\",\"ingressRate\":1000,\"annotation\":\"a<b&c>d\"}'\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"macvlan-chain","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool"}},{"mtu":1500,"sysctl":{"net.core.somaxconn":"500"},"type":"tuning"},{"annotation":"a\u003cb\u0026c\u003ed","ingressRate":1000,"type":"bandwidth"},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
}

#[test]
fn nad_sriov_chain_between_rdma_and_coordinator_tuning_last() {
    let nad = render_one(&smc(
        "sriov-chain",
        "  cniType: sriov\n  sriov:\n    resourceName: r\n    rdmaIsolation: true\n    \
         mtu: 9000\n  chainCNIJsonData: ['{\"type\":\"sbr\"}']\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"sriov-chain","plugins":[{"vlan":0,"min_tx_rate":0,"max_tx_rate":0,"type":"sriov","ipam":{"type":"spiderpool"}},{"type":"rdma"},{"type":"sbr"},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"},{"type":"tuning","mtu":9000}]}"#
    );
}

#[test]
fn nad_annotations_name_version_config_name() {
    let yaml = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderMultusConfig\n\
         metadata:\n  name: calico\n  namespace: kube-system\n  uid: 3f902f46-d9d4\n  \
         annotations:\n    multus.spidernet.io/cr-name: macvlan-nad\n    \
         multus.spidernet.io/cni-version: 1.0.0\n    cni.spidernet.io/cniconfig-name: inner\n    \
         kubectl.kubernetes.io/last-applied-configuration: '{}'\n\
         spec:\n  cniType: macvlan\n  disableIPAM: true\n  macvlan: {master: [eth1], mtu: 1400}\n";
    let nad = render_one(yaml);
    assert_eq!(nad.metadata.name.as_deref(), Some("macvlan-nad"));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"1.0.0","name":"inner","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge","mtu":1400},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
    // Every SMC annotation is carried over.
    let annos = nad.metadata.annotations.as_ref().unwrap();
    assert_eq!(annos.len(), 4);
    assert_eq!(
        annos
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .map(String::as_str),
        Some("{}")
    );
    let owner = &nad.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.name, "calico");
    assert_eq!(owner.uid, "3f902f46-d9d4");
}

#[test]
fn nad_cr_name_without_cniconfig_name_uses_nad_name() {
    let yaml = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderMultusConfig\n\
         metadata:\n  name: calico\n  annotations: {multus.spidernet.io/cr-name: k8s-pod-network}\n\
         spec:\n  cniType: ipvlan\n  ipvlan: {master: [eth0]}\n";
    let nad = render_one(yaml);
    assert!(config(&nad).starts_with(r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","#));
}

#[test]
fn nad_coordinator_knobs() {
    // Every optional coordinator key, `disabled` rendered as the plugin's `disable`, and
    // hostRuleTable / podCIDRType never rendered.
    let nad = render_one(&smc(
        "coord-all",
        "  cniType: macvlan\n  macvlan: {master: [ens192]}\n  coordinator:\n    \
         mode: disabled\n    podCIDRType: calico\n    hijackCIDR: [169.254.0.0/16]\n    \
         podMACPrefix: \"0a:1b\"\n    podDefaultRouteNIC: net1\n    hostRuleTable: 600\n    \
         podRPFilter: 2\n    txQueueLen: 0\n    vethLinkAddress: 169.254.100.1\n    \
         vethMTU: 1400\n    tunePodRoutes: false\n",
    ));
    assert!(config(&nad).ends_with(
        r#"{"txQueueLen":0,"vethLinkAddress":"169.254.100.1","vethMTU":1400,"tunePodRoutes":false,"podMACPrefix":"0a:1b","mode":"disable","type":"coordinator","podDefaultRouteNic":"net1","podRPFilter":2,"hijackCIDR":["169.254.0.0/16"]}]}"#
    ), "{}", config(&nad));
}

#[test]
fn nad_pod_rp_filter_without_pod_cidr_type() {
    // Upstream drops podRPFilter unless podCIDRType is set; a non-default value is kept here.
    let nad = render_one(&smc(
        "rp2",
        "  cniType: macvlan\n  macvlan: {master: [ens192]}\n  coordinator: {podRPFilter: 2}\n",
    ));
    assert!(config(&nad).ends_with(
        r#"{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator","podRPFilter":2}]}"#
    ));
    let nad = render_one(&smc(
        "rp0",
        "  cniType: macvlan\n  macvlan: {master: [ens192]}\n  coordinator: {podRPFilter: 0}\n",
    ));
    assert!(config(&nad).ends_with(
        r#"{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    ));
}

#[test]
fn nad_vlan_auto_has_no_vlan_id() {
    let nad = render_one(&smc(
        "vlan-auto",
        "  cniType: vlan\n  vlan: {master: [eth1], vlanMode: auto, ippools: {ipv6: [v6]}}\n",
    ));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"0.3.1","name":"vlan-auto","plugins":[{"type":"vlan","master":"eth1","vlanMode":"auto","mtu":0,"ipam":{"type":"spiderpool","default_ipv6_ippool":["v6"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
}

#[test]
fn nad_every_fixture_smc_renders() {
    let smcs = admit_all(&fixture("smc-all-cni-types.yaml"));
    assert_eq!(smcs.len(), 9);
    for smc in &smcs {
        let nad = render_nad(smc)
            .unwrap_or_else(|e| panic!("{}: {e}", smc.metadata.name.as_deref().unwrap()));
        if let Some(cfg) = nad.spec.config.as_deref() {
            serde_json::from_str::<serde_json::Value>(cfg).unwrap();
        }
    }
    // The macvlan bond fixture: cr-name, cni-version, ifacer with options, chain, coordinator.
    let nad = render_nad(&smcs[0]).unwrap();
    assert_eq!(nad.metadata.name.as_deref(), Some("macvlan-bond-nad"));
    assert_eq!(
        config(&nad),
        r#"{"cniVersion":"1.0.0","name":"macvlan-bond-nad","plugins":[{"vlanID":100,"type":"ifacer","interfaces":["ens192","ens224"],"bond":{"name":"bond0","mode":1,"options":"primary=ens192;miimon=100"}},{"type":"macvlan","master":"bond0.100","mode":"bridge","mtu":1500,"ipam":{"type":"spiderpool","default_ipv4_ippool":["vlan100-v4"],"default_ipv6_ippool":["vlan100-v6"]}},{"sysctl":{"net.core.somaxconn":"500"},"type":"tuning"},{"txQueueLen":0,"tunePodRoutes":true,"mode":"underlay","type":"coordinator","podDefaultRouteNic":"net1","podRPFilter":0,"hijackCIDR":["169.254.0.0/16"]}]}"#
    );
}

#[test]
fn nad_render_errors_instead_of_panics() {
    // Rendering an SMC that skipped admission: missing block, bond, chain entry.
    let raw = |yaml: &str| match parse_documents(yaml).unwrap().remove(0) {
        SpiderObject::MultusConfig(s) => s,
        _ => unreachable!(),
    };
    let e = render_nad(&raw(&smc("m", "  cniType: macvlan\n"))).unwrap_err();
    assert!(
        matches!(&e, RenderError::Config { field, .. } if field == "spec.macvlan"),
        "{e}"
    );
    let e = render_nad(&raw(&smc(
        "m",
        "  cniType: ipvlan\n  ipvlan: {master: [a, b]}\n",
    )))
    .unwrap_err();
    assert!(
        matches!(&e, RenderError::Config { field, .. } if field == "spec.ipvlan.bond"),
        "{e}"
    );
    let e = render_nad(&raw(&smc(
        "m",
        "  cniType: ipvlan\n  ipvlan: {master: [a]}\n  chainCNIJsonData: ['[1]']\n",
    )))
    .unwrap_err();
    assert!(
        matches!(e, RenderError::ChainPlugin { index: 0, .. }),
        "{e}"
    );
    let e = render_nad(&raw(&smc("m", "  cniType: bridge\n"))).unwrap_err();
    assert!(
        matches!(
            e,
            RenderError::Object(ManifestError::UnsupportedValue { .. })
        ),
        "{e}"
    );
}
