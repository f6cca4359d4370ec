//! The Helm chart `charts/spiderpool/`: a real Helm lints it, and `helm template` renders
//! exactly the golden files under `tests/chart-golden/` for the default values and for a
//! non-default values file; the rendered objects are also checked for what must hold whatever
//! the text (host network, downward API, every ServiceAccount bound, no `*` in a ClusterRole).
//!
//! Helm comes from `$HELM` (`hack/helm.sh` builds it and prints its path last):
//! `HELM=$(hack/helm.sh | tail -1) cargo test -p spiderpool-k8s --test chart -- --include-ignored`.
//! After changing the chart: the same with `UPDATE_GOLDEN=1`, then review the golden diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const RELEASE: &str = "spiderpool";
const NAMESPACE: &str = "kube-system";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    root().join("charts/spiderpool")
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/chart-golden")
}

fn helm() -> PathBuf {
    match std::env::var_os("HELM") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => panic!(
            "HELM is not set: these tests need a real Helm; run \
             `HELM=$(hack/helm.sh | tail -1) cargo test -p spiderpool-k8s --test chart -- --include-ignored`"
        ),
    }
}

/// Runs helm with `args`; panics with its output when it fails.
fn run_helm(args: &[&str]) -> String {
    let helm = helm();
    let out = Command::new(&helm)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm.display()));
    let stdout = String::from_utf8(out.stdout).expect("helm prints UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helm {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// `helm template` of the chart, with an optional values file (relative to the repo root).
fn render(values: Option<&str>) -> String {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let mut args = vec!["template", RELEASE, chart, "--namespace", NAMESPACE];
    if let Some(v) = values {
        args.extend(["--values", v]);
    }
    run_helm(&args)
}

/// Compares `rendered` with the golden file `name` (rewritten with UPDATE_GOLDEN=1).
fn check_golden(name: &str, rendered: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, rendered).expect("write golden file");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if golden != rendered {
        let first = golden
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| golden.lines().count().min(rendered.lines().count()));
        panic!(
            "helm template differs from {} from line {}:\n  golden:   {:?}\n  rendered: {:?}\n\
             review the chart change and rerun with UPDATE_GOLDEN=1",
            path.display(),
            first + 1,
            golden.lines().nth(first),
            rendered.lines().nth(first)
        );
    }
}

/// The rendered documents as JSON values (empty and comment-only documents dropped).
fn objects(rendered: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in rendered.lines().chain(std::iter::once("---")) {
        if line == "---" {
            let has_content = current
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if has_content {
                let v: Value = serde_saphyr::from_str(&current)
                    .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{current}"));
                docs.push(v);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// The env of the first container of a workload, as name → value (downward API as `fieldRef:<path>`).
fn env_of(workload: &Value) -> Vec<(String, String)> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env list")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_owned();
            let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(v), _) => v.clone(),
                (_, Value::String(p)) => format!("fieldRef:{p}"),
                other => panic!("env {name}: unexpected {other:?}"),
            };
            (name, value)
        })
        .collect()
}

fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// What must hold for every values file.
fn check_invariants(objs: &[Value]) {
    let agent = find(objs, "DaemonSet", "spiderpool-agent");
    let pod = &agent["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"], true,
        "the agent serves the node's CNI plugins"
    );
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let env = env_of(agent);
    assert_eq!(
        env_value(&env, "SPIDERPOOL_NODE_NAME").as_deref(),
        Some("fieldRef:spec.nodeName")
    );
    let init = &pod["initContainers"][0];
    let script = init["command"][2].as_str().expect("install script");
    assert!(
        script.contains("spiderpool coordinator"),
        "both plugins installed: {script}"
    );
    let ports: Vec<i64> = agent["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| p["containerPort"].as_i64().expect("port"))
        .collect();
    assert!(ports.contains(&5710), "{ports:?}");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            pod["containers"][0][probe]["httpGet"]["port"], 5710,
            "{probe}"
        );
    }

    let controller = find(objs, "Deployment", "spiderpool-controller");
    let cenv = env_of(controller);
    assert_eq!(
        env_value(&cenv, "SPIDERPOOL_POD_NAMESPACE").as_deref(),
        Some("fieldRef:metadata.namespace")
    );
    assert_eq!(
        env_value(&cenv, "SPIDERPOOL_POD_NAME").as_deref(),
        Some("fieldRef:metadata.name")
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            controller["spec"]["template"]["spec"]["containers"][0][probe]["httpGet"]["port"], 5720,
            "{probe}"
        );
    }
    // The controller registers the Service with its own webhook port: they must agree.
    let svc = find(objs, "Service", "spiderpool-controller");
    let webhook = svc["spec"]["ports"]
        .as_array()
        .expect("service ports")
        .iter()
        .find(|p| p["name"] == "webhook")
        .expect("webhook port");
    assert_eq!(webhook["port"], 5722);
    assert_eq!(
        env_value(&cenv, "SPIDERPOOL_WEBHOOK_PORT").as_deref(),
        Some("5722")
    );
    assert_eq!(
        svc["spec"]["selector"], controller["spec"]["selector"]["matchLabels"],
        "the Service selects the controller pods"
    );

    let job = find(objs, "Job", "spiderpool-init");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install"
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["template"]["spec"]["hostNetwork"], true);
    let cm = find(objs, "ConfigMap", "spiderpool-conf");
    let conf: Value = serde_saphyr::from_str(cm["data"]["conf.yml"].as_str().expect("conf.yml"))
        .expect("conf.yml parses");
    assert!(
        conf["enableIPv4"].is_boolean() && conf["enableSpiderSubnet"].is_boolean(),
        "{conf}"
    );
    check_pre_delete_hook(objs);

    // Every ServiceAccount a workload runs as exists and is bound.
    for (kind, name) in [
        ("DaemonSet", "spiderpool-agent"),
        ("Deployment", "spiderpool-controller"),
        ("Job", "spiderpool-init"),
        ("Job", PRE_DELETE),
    ] {
        let sa = find(objs, kind, name)["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} {name} names its ServiceAccount"))
            .to_owned();
        find(objs, "ServiceAccount", &sa);
        let bound = objs.iter().any(|o| {
            (o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
                && o["subjects"].as_array().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["kind"] == "ServiceAccount"
                            && s["name"] == sa.as_str()
                            && s["namespace"] == NAMESPACE
                    })
                })
                && {
                    let r = &o["roleRef"];
                    objs.iter().any(|role| {
                        role["kind"] == r["kind"] && role["metadata"]["name"] == r["name"]
                    })
                }
        });
        assert!(
            bound,
            "ServiceAccount {sa} of {kind} {name} has no binding to a rendered role"
        );
    }

    // Least privilege: no wildcard anywhere in a role.
    for role in objs
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        let name = &role["metadata"]["name"];
        for rule in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                let items = rule[field].as_array().expect("rule lists");
                assert!(
                    !items.iter().any(|v| v == "*"),
                    "{} {name} grants `*` in {field}: {rule}",
                    role["kind"]
                );
            }
        }
    }
}

/// Name of the pre-delete hook's Job, ServiceAccount and roles (upstream's Job name).
const PRE_DELETE: &str = "spiderpool-controller-hook-pre-delete";

fn hook_of(o: &Value) -> Option<(&str, i64)> {
    let a = &o["metadata"]["annotations"];
    let hook = a["helm.sh/hook"].as_str()?;
    let weight = a["helm.sh/hook-weight"]
        .as_str()
        .map_or(0, |w| w.parse().expect("numeric hook weight"));
    Some((hook, weight))
}

/// The pre-delete hook (`spiderpool-controller clean`): the controller's image, network and
/// webhook configuration name; its RBAC objects are pre-delete hooks too, created before the
/// Job (lower weight) and deleted once the hooks succeeded.
fn check_pre_delete_hook(objs: &[Value]) {
    let job = find(objs, "Job", PRE_DELETE);
    let controller = find(objs, "Deployment", "spiderpool-controller");
    let (hook, job_weight) = hook_of(job).expect("the Job is a hook");
    assert_eq!(hook, "pre-delete");
    let pod = &job["spec"]["template"]["spec"];
    let cpod = &controller["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["hostNetwork"], cpod["hostNetwork"]);
    assert_eq!(pod["dnsPolicy"], cpod["dnsPolicy"]);
    assert_eq!(
        pod["containers"][0]["image"],
        cpod["containers"][0]["image"]
    );
    assert_eq!(pod["serviceAccountName"], PRE_DELETE);
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    // The names the controller registers its webhook configurations under.
    let config_name = cpod["containers"][0]["args"]
        .as_array()
        .expect("controller args")
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--webhook-config-name="))
        .expect("--webhook-config-name");
    assert_eq!(args[0], "clean");
    assert!(
        args.contains(&format!("--validate={config_name}").as_str()),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--mutating={config_name}").as_str()),
        "{args:?}"
    );
    let env = env_of(job);
    assert_eq!(
        env_value(&env, "SPIDERPOOL_POD_NAMESPACE").as_deref(),
        Some("fieldRef:metadata.namespace")
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_NAME").as_deref(),
        Some("spiderpool-init")
    );
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ] {
        let o = find(objs, kind, PRE_DELETE);
        let (hook, weight) = hook_of(o).unwrap_or_else(|| panic!("{kind} is a hook"));
        assert_eq!(hook, "pre-delete", "{kind}");
        assert!(weight < job_weight, "{kind} created before the Job");
        let policy = o["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
            .as_str()
            .unwrap_or_default();
        assert!(policy.contains("hook-succeeded"), "{kind}: {policy}");
    }
    // Only hooks carry the hook's name: nothing of it stays installed with the release.
    let named: Vec<_> = objs
        .iter()
        .filter(|o| o["metadata"]["name"] == PRE_DELETE)
        .collect();
    assert!(named.iter().all(|o| hook_of(o).is_some()));
    // Deleting by name only, for the webhook configurations and CRDs.
    let role = find(objs, "ClusterRole", PRE_DELETE);
    for rule in role["rules"].as_array().expect("rules") {
        let resources = rule["resources"].as_array().expect("resources");
        if resources
            .iter()
            .any(|r| r == "mutatingwebhookconfigurations" || r == "customresourcedefinitions")
        {
            assert!(
                rule["resourceNames"]
                    .as_array()
                    .is_some_and(|n| !n.is_empty()),
                "{rule}"
            );
        }
    }
}

#[test]
#[ignore = "needs helm"]
fn chart_pre_delete_hook_follows_the_controller_and_can_be_turned_off() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let with_env = run_helm(&[
        "template",
        RELEASE,
        chart,
        "--namespace",
        NAMESPACE,
        "--set-json",
        r#"spiderpoolController.extraEnv=[{"name":"KUBERNETES_SERVICE_HOST","value":"10.0.0.1"}]"#,
    ]);
    let objs = objects(&with_env);
    let env = env_of(find(&objs, "Job", PRE_DELETE));
    assert_eq!(
        env_value(&env, "KUBERNETES_SERVICE_HOST").as_deref(),
        Some("10.0.0.1"),
        "the controller's extraEnv (how pods reach the apiserver without kube-proxy)"
    );
    // Upstream's template key and its docs' key both turn it off.
    for set in [
        "spiderpoolController.cleanup.enable=false",
        "spiderpoolController.cleanup.enabled=false",
    ] {
        let out = run_helm(&[
            "template",
            RELEASE,
            chart,
            "--namespace",
            NAMESPACE,
            "--set",
            set,
        ]);
        assert!(
            !objects(&out)
                .iter()
                .any(|o| o["metadata"]["name"] == PRE_DELETE),
            "--set {set} still renders the hook"
        );
    }
}

#[test]
#[ignore = "needs helm"]
fn chart_lints() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let out = run_helm(&["lint", "--strict", chart]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let custom = golden_dir().join("custom-values.yaml");
    run_helm(&[
        "lint",
        "--strict",
        chart,
        "--values",
        custom.to_str().expect("UTF-8"),
    ]);
}

#[test]
#[ignore = "needs helm"]
fn chart_default_values_render_the_golden_manifests() {
    let rendered = render(None);
    check_golden("default.yaml", &rendered);
    let objs = objects(&rendered);
    check_invariants(&objs);

    let agent = find(&objs, "DaemonSet", "spiderpool-agent");
    assert_eq!(
        agent["spec"]["template"]["spec"]["containers"][0]["image"],
        "localhost/spiderpool-rs/spiderpool-agent:0.1.0"
    );
    // Metrics off by default: no port.
    let ports = agent["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}");
    let env = env_of(find(&objs, "Job", "spiderpool-init"));
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME").as_deref(),
        Some("default")
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR").as_deref(),
        Some(r#"["169.254.0.0/16"]"#)
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME"),
        None
    );
    // `auto` TLS: the controller makes its own certificate, no Secret; no PDB unless asked.
    assert!(
        !objs
            .iter()
            .any(|o| o["kind"] == "Secret" || o["kind"] == "PodDisruptionBudget")
    );
}

#[test]
#[ignore = "needs helm"]
fn chart_custom_values_render_the_golden_manifests() {
    let rendered = render(Some("spiderpool-k8s/tests/chart-golden/custom-values.yaml"));
    check_golden("custom.yaml", &rendered);
    let objs = objects(&rendered);
    check_invariants(&objs);

    let agent = find(&objs, "DaemonSet", "spiderpool-agent");
    let c = &agent["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        "registry.example.com/spiderpool-rs/spiderpool-agent:v9.9.9"
    );
    // Multus installed: the plugin and its files go where the agent's plugins go, in front of
    // the default CNI named by defaultCniCRName, under its own ServiceAccount.
    let multus = find(&objs, "DaemonSet", "spiderpool-multus");
    let m = &multus["spec"]["template"]["spec"];
    assert_eq!(m["serviceAccountName"], "spiderpool-multus");
    assert_eq!(m["hostNetwork"], true);
    let script = m["containers"][0]["command"][2].as_str().expect("script");
    assert!(script.contains("cluster=\"calico\""), "{script}");
    assert!(
        script.contains("\"multusNamespace\": \"kube-system\""),
        "{script}"
    );
    find(&objs, "ClusterRole", "spiderpool-multus");
    assert!(
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["containerPort"] == 5711)
    );
    assert!(
        c["args"]
            .as_array()
            .expect("args")
            .iter()
            .any(|a| a == "--enable-ip-conflict-detection")
    );
    let env = env_of(agent);
    assert_eq!(
        env_value(&env, "SPIDERPOOL_ENABLED_METRIC").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_ENABLE_SPIDER_SUBNET").as_deref(),
        Some("false")
    );
    assert_eq!(
        env_value(&env, "MULTUS_CLUSTER_NETWORK").as_deref(),
        Some("kube-system/calico")
    );
    let cni_bin = agent["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "cni-bin-path")
        .expect("cni bin volume");
    assert_eq!(cni_bin["hostPath"]["path"], "/usr/libexec/cni");

    let controller = find(&objs, "Deployment", "spiderpool-controller");
    assert_eq!(controller["spec"]["replicas"], 2);
    assert_eq!(controller["spec"]["template"]["spec"]["hostNetwork"], false);
    let cenv = env_of(controller);
    assert_eq!(
        env_value(&cenv, "SPIDERPOOL_ENABLE_SPIDER_SUBNET").as_deref(),
        Some("false")
    );
    assert_eq!(
        env_value(&cenv, "SPIDERPOOL_ENABLE_AUTO_POOL_FOR_APPLICATION").as_deref(),
        Some("false"),
        "no auto pools without the subnet feature"
    );
    assert_eq!(
        env_value(&cenv, "SPIDERPOOL_ENABLED_DEBUG_METRIC").as_deref(),
        Some("true")
    );
    let args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    assert!(
        args.iter().any(|a| a == "--tls-cert=/etc/tls/tls.crt"),
        "{args:?}"
    );
    let pdb = find(&objs, "PodDisruptionBudget", "spiderpool-controller");
    assert_eq!(pdb["spec"]["selector"], controller["spec"]["selector"]);
    let secret = find(&objs, "Secret", "spiderpool-controller-server-certs");
    assert_eq!(secret["data"]["tls.crt"], "Y2VydA==");

    let env = env_of(find(&objs, "Job", "spiderpool-init"));
    // Subnet feature off: pools, no subnets (as upstream's chart).
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME").as_deref(),
        Some("default-v4-ippool")
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_SUBNET").as_deref(),
        Some("fd00:10:6::/64")
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME"),
        None
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POLICY_ROUTES").as_deref(),
        Some(r#"[{"dst":"10.0.0.0/8","gw":"172.18.0.1"}]"#)
    );
    assert_eq!(
        env_value(&env, "SPIDERPOOL_INIT_DEFAULT_CNI_NAME").as_deref(),
        Some("calico")
    );

    let cm = find(&objs, "ConfigMap", "spiderpool-conf");
    let conf: Value =
        serde_saphyr::from_str(cm["data"]["conf.yml"].as_str().expect("conf.yml")).expect("parses");
    assert_eq!(conf["enableSpiderSubnet"], false);
    assert_eq!(conf["enableIPConflictDetection"], true);
    assert_eq!(conf["clusterNetwork"], "calico");
}

#[test]
#[ignore = "needs helm"]
fn chart_refuses_values_it_cannot_honour() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    for (set, expect) in [
        (
            "ipam.enableIPv4=false,ipam.enableIPv6=false",
            "enable at least one family",
        ),
        (
            "spiderpoolController.tls.method=certmanager",
            "must be auto or provided",
        ),
        (
            "spiderpoolController.tls.method=provided",
            "needs tls.provided",
        ),
        (
            "clusterDefaultPool.installIPv4IPPool=true",
            "needs clusterDefaultPool.ipv4Subnet",
        ),
    ] {
        let out = Command::new(helm())
            .args([
                "template",
                RELEASE,
                chart,
                "--namespace",
                NAMESPACE,
                "--set",
                set,
            ])
            .output()
            .expect("run helm");
        assert!(!out.status.success(), "--set {set} rendered");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "--set {set}: {stderr}");
    }
}

#[test]
#[ignore = "needs helm and apiserver"]
fn chart_manifests_pass_a_server_side_dry_run() {
    // The apiserver validates every rendered object against its schema (and the built-in
    // priority classes) without storing anything, so the shared control plane is fine.
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG names the test control plane");
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    for values in [
        None,
        Some("spiderpool-k8s/tests/chart-golden/custom-values.yaml"),
    ] {
        let rendered = render(values);
        let file =
            std::env::temp_dir().join(format!("spiderpool-chart-{}.yaml", std::process::id()));
        std::fs::write(&file, &rendered).expect("write manifests");
        let out = Command::new(&kubectl)
            .args([
                "--kubeconfig",
                &kubeconfig,
                "apply",
                "--dry-run=server",
                "-f",
            ])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
        let _ = std::fs::remove_file(&file);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{values:?}: dry run refused:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects = objects(&rendered).len();
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.ends_with("(server dry run)"))
                .count(),
            objects,
            "{values:?}: every object accepted:\n{stdout}"
        );
    }
}

/// Creates the pre-delete hook's RBAC objects (not its Job: nothing would run it) and checks
/// with the apiserver's authorizer that it may do exactly what `clean` does.
fn check_pre_delete_rbac(kubeconfig: &str, kubectl: &str, hooks: &[&Value]) {
    let rbac: Vec<&&Value> = hooks
        .iter()
        .filter(|o| o["metadata"]["name"] == PRE_DELETE && o["kind"] != "Job")
        .collect();
    assert_eq!(rbac.len(), 5, "ServiceAccount, two roles, two bindings");
    let file =
        std::env::temp_dir().join(format!("spiderpool-chart-hook-{}.json", std::process::id()));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": rbac});
    std::fs::write(&file, list.to_string()).expect("write hook RBAC");
    let out = Command::new(kubectl)
        .args(["--kubeconfig", kubeconfig, "create", "-f"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let can = |verb: &str, what: &str, ns: &str| {
        let out = Command::new(kubectl)
            .args([
                "--kubeconfig",
                kubeconfig,
                "auth",
                "can-i",
                verb,
                what,
                "-n",
                ns,
            ])
            .arg(format!(
                "--as=system:serviceaccount:{NAMESPACE}:{PRE_DELETE}"
            ))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
        match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => true,
            "no" => false,
            other => panic!(
                "can-i {verb} {what}: {other:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    };
    for (verb, what, ns) in [
        (
            "delete",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io/spiderpool-controller",
            "default",
        ),
        (
            "delete",
            "validatingwebhookconfigurations.admissionregistration.k8s.io/spiderpool-controller",
            "default",
        ),
        ("list", "spiderippools.spiderpool.spidernet.io", "default"),
        (
            "patch",
            "spiderendpoints.spiderpool.spidernet.io",
            "default",
        ),
        (
            "delete",
            "spidermultusconfigs.spiderpool.spidernet.io",
            "default",
        ),
        (
            "delete",
            "spidercoordinators.spiderpool.spidernet.io",
            "default",
        ),
        (
            "delete",
            "customresourcedefinitions.apiextensions.k8s.io/spiderippools.spiderpool.spidernet.io",
            "default",
        ),
        (
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/spidercoordinators.spiderpool.spidernet.io",
            "default",
        ),
        ("delete", "jobs.batch/spiderpool-init", NAMESPACE),
    ] {
        assert!(
            can(verb, what, ns),
            "the pre-delete hook may not {verb} {what} in {ns}"
        );
    }
    for (verb, what, ns) in [
        (
            "delete",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-else",
            "default",
        ),
        (
            "create",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
            "default",
        ),
        (
            "delete",
            "customresourcedefinitions.apiextensions.k8s.io/network-attachment-definitions.k8s.cni.cncf.io",
            "default",
        ),
        (
            "list",
            "customresourcedefinitions.apiextensions.k8s.io",
            "default",
        ),
        ("create", "spiderippools.spiderpool.spidernet.io", "default"),
        (
            "delete",
            "network-attachment-definitions.k8s.cni.cncf.io",
            "default",
        ),
        ("delete", "jobs.batch/other", NAMESPACE),
        ("delete", "pods", NAMESPACE),
        ("get", "secrets", NAMESPACE),
    ] {
        assert!(
            !can(verb, what, ns),
            "the pre-delete hook may {verb} {what} in {ns}"
        );
    }
}

/// `kubectl auth can-i` as a ServiceAccount of the release: whether the apiserver's RBAC
/// authorizer allows it.
fn can_i(kubeconfig: &str, sa: &str, namespace: &str, verb: &str, resource: &str) -> bool {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    };
    let mut cmd = Command::new(&kubectl);
    cmd.args([
        "--kubeconfig",
        kubeconfig,
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
    ])
    .arg(format!("--as=system:serviceaccount:{NAMESPACE}:{sa}"));
    if let Some(s) = sub {
        cmd.arg(format!("--subresource={s}"));
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "can-i {verb} {resource} as {sa}: {other:?} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
#[ignore = "needs helm and apiserver"]
fn chart_installs_with_least_privilege_and_uninstalls_cleanly() {
    // A control plane of its own: the release creates cluster-scoped objects with fixed names.
    let plane =
        spiderpool_k8s::testing::PrivateControlPlane::start().expect("private control plane");
    let kubeconfig = plane.kubeconfig.to_str().expect("UTF-8 path").to_owned();
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    // No kubelet here: the pods never run, so the post-install Job (which waits for the
    // controller) is left out.
    run_helm(&[
        "install",
        RELEASE,
        chart,
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--no-hooks",
    ]);
    let manifest = run_helm(&[
        "get",
        "manifest",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
    ]);
    let rendered = objects(&render(None));
    let hooks: Vec<&Value> = rendered.iter().filter(|o| hook_of(o).is_some()).collect();
    assert_eq!(
        objects(&manifest).len(),
        rendered.len() - hooks.len(),
        "every object but the hooks (init Job, pre-delete clean-up) installed"
    );

    // What each component needs is allowed …
    for (sa, ns, verb, resource) in [
        (
            "spiderpool-agent",
            "default",
            "create",
            "spiderendpoints.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-agent",
            "default",
            "delete",
            "spiderendpoints.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-agent",
            "default",
            "update",
            "spiderippools.spiderpool.spidernet.io/status",
        ),
        (
            "spiderpool-agent",
            "default",
            "patch",
            "spiderippools.spiderpool.spidernet.io/status",
        ),
        ("spiderpool-agent", "default", "watch", "pods"),
        ("spiderpool-agent", "default", "get", "replicasets.apps"),
        (
            "spiderpool-controller",
            "default",
            "patch",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "create",
            "network-attachment-definitions.k8s.cni.cncf.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "create",
            "spiderippools.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "update",
            "spidercoordinators.spiderpool.spidernet.io/status",
        ),
        (
            "spiderpool-controller",
            NAMESPACE,
            "update",
            "leases.coordination.k8s.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "create",
            "events.events.k8s.io",
        ),
        (
            "spiderpool-init",
            "default",
            "create",
            "spidercoordinators.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-init",
            "default",
            "create",
            "spidermultusconfigs.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-init",
            NAMESPACE,
            "list",
            "endpointslices.discovery.k8s.io",
        ),
        // Needed by code paths a short run may not take (GC, repeated events,
        // blockOwnerDeletion under OwnerReferencesPermissionEnforcement). KubeVirt's and
        // Cilium's kinds are not served here, so kubectl cannot ask about them.
        (
            "spiderpool-controller",
            "default",
            "patch",
            "spiderendpoints.spiderpool.spidernet.io",
        ),
        ("spiderpool-controller", "default", "get", "nodes"),
        (
            "spiderpool-controller",
            "default",
            "patch",
            "events.events.k8s.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "update",
            "spidersubnets.spiderpool.spidernet.io/finalizers",
        ),
        ("spiderpool-init", NAMESPACE, "get", "endpoints"),
    ] {
        assert!(
            can_i(&kubeconfig, sa, ns, verb, resource),
            "{sa} may not {verb} {resource} in {ns}"
        );
    }
    // … and what none of them needs is not.
    for (sa, ns, verb, resource) in [
        (
            "spiderpool-agent",
            "default",
            "delete",
            "spiderippools.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-agent",
            "default",
            "update",
            "spiderippools.spiderpool.spidernet.io",
        ),
        ("spiderpool-agent", "default", "create", "pods"),
        ("spiderpool-agent", "default", "get", "secrets"),
        (
            "spiderpool-agent",
            "default",
            "patch",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ),
        ("spiderpool-controller", "default", "get", "secrets"),
        (
            "spiderpool-controller",
            "default",
            "update",
            "leases.coordination.k8s.io",
        ),
        ("spiderpool-controller", "default", "delete", "nodes"),
        (
            "spiderpool-controller",
            "default",
            "delete",
            "customresourcedefinitions.apiextensions.k8s.io",
        ),
        (
            "spiderpool-init",
            "default",
            "delete",
            "spiderippools.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-init",
            "default",
            "update",
            "spidercoordinators.spiderpool.spidernet.io",
        ),
        // Removed from the controller and init: no code path asks for them (server-side
        // apply needs no get or update; writes are merge patches or status replaces; events
        // go to events.k8s.io; init's create answers AlreadyExists without a read).
        (
            "spiderpool-controller",
            "default",
            "get",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "update",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "update",
            "spiderippools.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "update",
            "spidersubnets.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "get",
            "spiderendpoints.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "update",
            "spiderendpoints.spiderpool.spidernet.io",
        ),
        (
            "spiderpool-controller",
            "default",
            "patch",
            "spiderippools.spiderpool.spidernet.io/status",
        ),
        (
            "spiderpool-controller",
            "default",
            "get",
            "servicecidrs.networking.k8s.io",
        ),
        ("spiderpool-controller", "default", "create", "events"),
        (
            "spiderpool-init",
            "default",
            "get",
            "spidercoordinators.spiderpool.spidernet.io",
        ),
        ("spiderpool-init", "default", "get", "endpoints"),
    ] {
        assert!(
            !can_i(&kubeconfig, sa, ns, verb, resource),
            "{sa} may {verb} {resource} in {ns}"
        );
    }

    check_pre_delete_rbac(&kubeconfig, &kubectl, &hooks);

    // No kubelet here: the pre-delete Job would never run (bins/spiderpool-controller/tests/
    // clean.rs runs `clean` itself), so uninstall without hooks and check below that what is
    // left is exactly what clean deletes.
    run_helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--no-hooks",
    ]);
    let file = std::env::temp_dir().join(format!(
        "spiderpool-chart-installed-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&file, &manifest).expect("write manifest");
    let out = Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &kubeconfig,
            "get",
            "--ignore-not-found",
            "-o",
            "name",
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = String::from_utf8_lossy(&out.stdout);
    assert!(
        left.trim().is_empty(),
        "left behind by helm uninstall:\n{left}"
    );
    // Helm keeps the CRDs (crds/): the six Spiderpool ones are what clean deletes; the NAD
    // CRD stays, as upstream's clean leaves it (a separately installed Multus may share it).
    let out = Command::new(&kubectl)
        .args(["--kubeconfig", &kubeconfig, "get", "crd", "-o", "name"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
    let mut crds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.trim_start_matches("customresourcedefinition.apiextensions.k8s.io/")
                .to_owned()
        })
        .collect();
    crds.sort();
    let mut expected: Vec<String> = spiderpool_core::objects::KIND_INFOS
        .iter()
        .map(|k| format!("{}.{}", k.plural, spiderpool_core::objects::GROUP))
        .chain(["network-attachment-definitions.k8s.cni.cncf.io".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(crds, expected);
    drop(plane);
}
