//! `spiderpool-init` (the binary) on a private apiserver: it waits for the controller's
//! Endpoints, creates the default objects from upstream's variables, is a no-op when re-run,
//! never modifies what exists, and refuses invalid variables before creating anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Endpoints;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use spiderpool_core::objects::{COORDINATOR, IPPOOL, KindInfo, MULTUSCONFIG, SUBNET};
use spiderpool_k8s::kinds::api_resource;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// Upstream's variables as the chart sets them (calico primary CNI on the node).
fn env(ns: &str, cni_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("SPIDERPOOL_NAMESPACE", ns.to_owned()),
        (
            "SPIDERPOOL_CONTROLLER_NAME",
            "spiderpool-controller".to_owned(),
        ),
        ("SPIDERPOOL_AGENT_NAME", "spiderpool-agent".to_owned()),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME",
            "default".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE",
            "auto".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE",
            "cluster".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_TUNE_POD_ROUTES",
            "true".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_GATEWAY",
            "false".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_IP_CONFLICT",
            "false".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR",
            r#"["169.254.0.0/16"]"#.to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME",
            "default-v4-subnet".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME",
            "default-v4-ippool".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET",
            "10.6.0.0/16".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES",
            r#"["10.6.212.200-10.6.212.250"]"#.to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY",
            "10.6.0.1".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME",
            "default-v6-ippool".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_SUBNET",
            "fd00:6::/64".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_IPRANGES",
            "fd00:6::10-fd00:6::20".to_owned(),
        ),
        ("SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG", "true".to_owned()),
        ("SPIDERPOOL_INIT_INSTALL_MULTUS", "true".to_owned()),
        (
            "SPIDERPOOL_INIT_DEFAULT_CNI_DIR",
            cni_dir.display().to_string(),
        ),
        ("SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE", ns.to_owned()),
    ]
}

fn init(kubeconfig: &Path, vars: &[(&str, String)], extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spiderpool-init"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--retry-interval", "0.2"]);
    cmd.args(extra);
    // Only the variables given: none leaks in from the test's own environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("SPIDERPOOL_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run spiderpool-init")
}

fn api(tc: &TestCluster, kind: &KindInfo, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(tc.client.clone(), ns, &api_resource(kind)),
        None => Api::all_with(tc.client.clone(), &api_resource(kind)),
    }
}

/// `(kind, name) -> resourceVersion` of every object init creates.
async fn versions(tc: &TestCluster) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (kind, name, ns) in [
        (&COORDINATOR, "default", None),
        (&SUBNET, "default-v4-subnet", None),
        (&IPPOOL, "default-v4-ippool", None),
        (&IPPOOL, "default-v6-ippool", None),
        (&MULTUSCONFIG, "calico", Some(tc.namespace.as_str())),
    ] {
        let o = api(tc, kind, ns).get(name).await.unwrap();
        out.push((format!("{}/{name}", kind.kind), o.metadata.resource_version));
    }
    out
}

#[test]
#[ignore = "needs apiserver"]
fn init_creates_the_defaults_once_waits_for_the_controller_and_never_modifies() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tc = rt.block_on(TestCluster::on(&plane, "init")).unwrap();
    let cni = tempfile::tempdir().unwrap();
    std::fs::write(
        cni.path().join("00-multus.conf"),
        r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus"}"#,
    )
    .unwrap();
    std::fs::write(
        cni.path().join("10-calico.conflist"),
        r#"{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"}]}"#,
    )
    .unwrap();
    let vars = env(&tc.namespace, cni.path());

    // No controller Endpoints yet: init waits. Give it its Endpoints after a while.
    let kubeconfig = plane.kubeconfig.clone();
    let started = Instant::now();
    let runner = {
        let vars = vars.clone();
        std::thread::spawn(move || init(&kubeconfig, &vars, &[]))
    };
    std::thread::sleep(Duration::from_secs(2));
    let coordinators = api(&tc, &COORDINATOR, None);
    assert!(
        rt.block_on(coordinators.get_opt("default"))
            .unwrap()
            .is_none(),
        "nothing is created before the controller has endpoints"
    );
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "spiderpool-controller", "namespace": tc.namespace},
        "subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 5722}]}]
    }))
    .unwrap();
    rt.block_on(
        Api::<Endpoints>::namespaced(tc.client.clone(), &tc.namespace)
            .create(&PostParams::default(), &ep),
    )
    .unwrap();
    let out = runner.join().unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() >= Duration::from_secs(2));

    rt.block_on(async {
        let c = coordinators.get("default").await.unwrap();
        assert_eq!(c.data["spec"]["mode"], "auto");
        assert_eq!(c.data["spec"]["podCIDRType"], "cluster");
        assert_eq!(c.data["spec"]["tunePodRoutes"], true);
        assert_eq!(c.data["spec"]["hijackCIDR"], json!(["169.254.0.0/16"]));
        assert_eq!(c.data["spec"]["vethMTU"], 1500);
        let s = api(&tc, &SUBNET, None)
            .get("default-v4-subnet")
            .await
            .unwrap();
        assert_eq!(s.data["spec"]["subnet"], "10.6.0.0/16");
        assert_eq!(s.data["spec"]["ips"], json!(["10.6.212.200-10.6.212.250"]));
        assert_eq!(s.data["spec"]["gateway"], "10.6.0.1");
        let pools = api(&tc, &IPPOOL, None);
        let v4 = pools.get("default-v4-ippool").await.unwrap();
        assert_eq!(v4.data["spec"]["default"], true);
        assert_eq!(v4.data["spec"]["ipVersion"], 4);
        assert_eq!(v4.data["spec"]["gateway"], "10.6.0.1");
        let v6 = pools.get("default-v6-ippool").await.unwrap();
        assert_eq!(v6.data["spec"]["ipVersion"], 6);
        assert_eq!(v6.data["spec"]["ips"], json!(["fd00:6::10-fd00:6::20"]));
        let smc = api(&tc, &MULTUSCONFIG, Some(&tc.namespace))
            .get("calico")
            .await
            .unwrap();
        assert_eq!(smc.data["spec"]["cniType"], "custom");
        assert_eq!(smc.data["spec"]["enableCoordinator"], false);
        assert_eq!(
            smc.metadata.annotations.unwrap()["multus.spidernet.io/cr-name"],
            "k8s-pod-network"
        );
    });

    // Re-run: a no-op.
    let before = rt.block_on(versions(&tc));
    let out = init(&plane.kubeconfig, &vars, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rt.block_on(versions(&tc)), before);

    // An object changed by the user stays as the user left it.
    let patch = json!({"spec": {"mode": "overlay"}});
    rt.block_on(coordinators.patch("default", &PatchParams::default(), &Patch::Merge(&patch)))
        .unwrap();
    let out = init(&plane.kubeconfig, &vars, &["--skip-controller-wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = rt.block_on(coordinators.get("default")).unwrap();
    assert_eq!(c.data["spec"]["mode"], "overlay");

    // A bad variable: refused before anything is created, naming the variable.
    let mut bad = vars.clone();
    bad.retain(|(k, _)| *k != "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME");
    bad.push((
        "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME",
        "another-v4".to_owned(),
    ));
    bad.push((
        "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_MTU",
        "huge".to_owned(),
    ));
    let out = init(&plane.kubeconfig, &bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SPIDERPOOL_INIT_DEFAULT_COORDINATOR_VETH_MTU=\"huge\""),
        "{err}"
    );
    assert!(
        rt.block_on(api(&tc, &IPPOOL, None).get_opt("another-v4"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn init_refuses_bad_variables_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("no-such-kubeconfig");
    for (vars, want) in [
        (
            vec![
                ("SPIDERPOOL_NAMESPACE", "kube-system".to_owned()),
                (
                    "SPIDERPOOL_CONTROLLER_NAME",
                    "spiderpool-controller".to_owned(),
                ),
                ("SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME", "p".to_owned()),
                (
                    "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET",
                    "10.6.0.1/16x".to_owned(),
                ),
            ],
            "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET=\"10.6.0.1/16x\"",
        ),
        (
            vec![
                ("SPIDERPOOL_NAMESPACE", "kube-system".to_owned()),
                (
                    "SPIDERPOOL_CONTROLLER_NAME",
                    "spiderpool-controller".to_owned(),
                ),
                (
                    "SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG",
                    "yes please".to_owned(),
                ),
            ],
            "SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG=\"yes please\": not a boolean",
        ),
        (
            vec![(
                "SPIDERPOOL_CONTROLLER_NAME",
                "spiderpool-controller".to_owned(),
            )],
            "SPIDERPOOL_NAMESPACE (--namespace) is required",
        ),
    ] {
        let out = init(&kubeconfig, &vars, &[]);
        assert_eq!(out.status.code(), Some(2), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err} lacks {want}");
    }
}

#[test]
#[ignore = "needs apiserver"]
fn init_waits_for_an_endpointslice_too_and_gives_up_with_a_reason() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tc = rt.block_on(TestCluster::on(&plane, "init-slice")).unwrap();
    let vars = vec![
        ("SPIDERPOOL_NAMESPACE", tc.namespace.clone()),
        (
            "SPIDERPOOL_CONTROLLER_NAME",
            "spiderpool-controller".to_owned(),
        ),
        (
            "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME",
            "default".to_owned(),
        ),
    ];
    // No Endpoints, no EndpointSlice: it gives up, saying why, having created nothing.
    let out = init(&plane.kubeconfig, &vars, &["--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gave up waiting for a ready endpoint of the controller Service")
            && err.contains("no Endpoints object yet"),
        "{err}"
    );
    let coordinators = api(&tc, &COORDINATOR, None);
    assert!(
        rt.block_on(coordinators.get_opt("default"))
            .unwrap()
            .is_none()
    );
    // An EndpointSlice with a ready address (no Endpoints object) is enough.
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "spiderpool-controller-x1", "namespace": tc.namespace,
                     "labels": {"kubernetes.io/service-name": "spiderpool-controller"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}}]
    }))
    .unwrap();
    rt.block_on(
        Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(
            tc.client.clone(),
            &tc.namespace,
        )
        .create(&PostParams::default(), &slice),
    )
    .unwrap();
    let out = init(&plane.kubeconfig, &vars, &["--timeout", "20"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rt.block_on(coordinators.get_opt("default"))
            .unwrap()
            .is_some()
    );
}
