//! Runs the real `spiderpoolctl` binary on files and checks exit codes, stdout and stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(args)
        .output()
        .expect("spiderpoolctl runs")
}

/// Runs `spiderpoolctl` with `stdin` as its standard input.
fn ctl_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spiderpoolctl runs");
    let mut pipe = child.stdin.take().expect("stdin");
    // The command may refuse its arguments without reading stdin.
    if let Err(e) = pipe.write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(pipe);
    child.wait_with_output().expect("spiderpoolctl exits")
}

/// Runs `spiderpoolctl` with stdout and stderr on one pipe whose reader is already gone
/// (`... 2>&1 | head`); the exit status is all that can be observed.
fn ctl_closed_stdout_and_stderr(args: &[&str]) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(args)
        .stdout(writer.try_clone().expect("dup"))
        .stderr(writer)
        .status()
        .expect("spiderpoolctl runs")
}

/// Runs `spiderpoolctl` with a stdout pipe whose reader is already gone (`... | head` once
/// `head` has exited): every write fails with EPIPE, whatever the output size.
fn ctl_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("spiderpoolctl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write fixture");
    p
}

fn seed(name: &str) -> String {
    format!(
        "{}/../../examples/quickstart/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

const POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: POOLNAME
spec:
  subnet: SUBNET
  ips:
  - IPS
";

fn pool(name: &str, subnet: &str, ips: &str) -> String {
    POOL.replace("POOLNAME", name)
        .replace("SUBNET", subnet)
        .replace("IPS", ips)
}

#[test]
fn crds_prints_all_six_kinds_with_short_names() {
    let out = ctl(&["crds"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("kind: CustomResourceDefinition").count(), 6);
    for plural in [
        "spiderippools",
        "spidersubnets",
        "spiderendpoints",
        "spiderreservedips",
        "spidermultusconfigs",
        "spidercoordinators",
    ] {
        assert!(
            stdout.contains(&format!("name: {plural}.spiderpool.spidernet.io")),
            "{plural} missing"
        );
    }
    for short in ["sp", "ss", "se", "sr", "smc", "scc"] {
        assert!(
            stdout.contains(&format!("- {short}\n")),
            "short name {short} missing"
        );
    }
}

#[test]
fn validate_accepts_the_seed_and_prints_defaults() {
    let out = ctl(&[
        "validate",
        "-f",
        &seed("ippool.yaml"),
        "-f",
        &seed("multusconfig.yaml"),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json list");
    assert_eq!(v["kind"], "List");
    let pool = &v["items"][0];
    assert_eq!(pool["spec"]["ipVersion"], 4);
    assert_eq!(
        pool["metadata"]["labels"]["ipam.spidernet.io/ippool-cidr"],
        "10-6-0-0-16"
    );
    assert_eq!(pool["metadata"]["finalizers"][0], "spiderpool.spidernet.io");
    let smc = &v["items"][1];
    assert_eq!(smc["spec"]["enableCoordinator"], true);
    assert_eq!(smc["spec"]["coordinator"]["mode"], "auto");
}

#[test]
fn validate_rejects_with_one_line_per_violation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        &pool("bad", "172.10.5.0/16", "172.10.0.9-172.10.0.1"),
    );
    let out = ctl(&["validate", "-f", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.lines().any(
            |l| l.starts_with("SpiderIPPool/bad: spec.subnet: Invalid: ")
                && l.contains("please change it to 172.10.0.0/16")
        ),
        "stderr: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_switches_forbid_a_disabled_family() {
    let out = ctl(&["validate", "-f", &seed("ippool.yaml"), "--ipv4=false"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("SpiderIPPool/10-6-v4: spec.ipVersion: Forbidden: "),
        "stderr: {stderr}"
    );
}

#[test]
fn validate_earlier_documents_join_the_cluster_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let two = format!(
        "{}---\n{}",
        pool("a", "10.7.0.0/16", "10.7.0.10-10.7.0.20"),
        pool("b", "10.7.0.0/16", "10.7.0.15-10.7.0.30")
    );
    let f = write(dir.path(), "two.yaml", &two);
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("SpiderIPPool/b: ") && stderr.contains("Forbidden"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("SpiderIPPool/a:"), "stderr: {stderr}");
}

#[test]
fn validate_uses_the_cluster_file_for_updates() {
    let dir = tempfile::tempdir().expect("tempdir");
    // In the cluster: pool "a" with an IP in use.
    let cluster = format!(
        "{}status:\n  allocatedIPs: '{{\"10.7.0.12\":{{\"pod\":\"default/web-0\",\"podUid\":\"u1\"}}}}'\n",
        pool("a", "10.7.0.0/16", "10.7.0.10-10.7.0.20")
    );
    let cluster = write(dir.path(), "cluster.yaml", &cluster);
    // The new version drops the in-use address: an UPDATE that must be refused.
    let shrink = write(
        dir.path(),
        "shrink.yaml",
        &pool("a", "10.7.0.0/16", "10.7.0.13-10.7.0.20"),
    );
    let out = ctl(&[
        "validate",
        "-f",
        shrink.to_str().expect("utf8"),
        "--cluster",
        cluster.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("10.7.0.12"), "stderr: {stderr}");
    assert!(stderr.contains("default/web-0"), "stderr: {stderr}");
    // Subnet change on update is refused as immutable.
    let moved = write(
        dir.path(),
        "moved.yaml",
        &pool("a", "10.8.0.0/16", "10.8.0.10-10.8.0.20"),
    );
    let out = ctl(&[
        "validate",
        "-f",
        moved.to_str().expect("utf8"),
        "--cluster",
        cluster.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("spec.subnet: Forbidden"));
}

#[test]
fn validate_bad_input_exits_2_with_file_and_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An unknown kind of Spiderpool's own API group is a typo, not another kind to skip.
    let f = write(
        dir.path(),
        "mixed.yaml",
        &format!(
            "{}---\napiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPol\nmetadata: {{name: x}}\n",
            pool("a", "10.7.0.0/16", "10.7.0.1")
        ),
    );
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mixed.yaml"), "stderr: {stderr}");
    assert!(stderr.contains("document 2"), "stderr: {stderr}");
    assert!(
        stderr.contains("unknown kind SpiderIPPol"),
        "stderr: {stderr}"
    );

    let g = write(dir.path(), "garbage.yaml", "key: [unclosed\n");
    let out = ctl(&["validate", "-f", g.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("garbage.yaml: document 1"));

    let out = ctl(&["validate", "-f", "/nonexistent/x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/x.yaml: cannot read"));
}

#[test]
fn validate_v6_pool_with_a_huge_range_is_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "v6.yaml",
        &pool(
            "v6",
            "fd00:10:6::/64",
            "fd00:10:6::100-fd00:10:6::ffff:ffff:ffff:fffe",
        ),
    );
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8"), "-o", "yaml"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ipVersion: 6"));
}

#[test]
fn render_prints_the_seed_nad_exactly() {
    let out = ctl(&["render", "-f", &seed("multusconfig.yaml"), "-o", "json"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let nad: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(nad["kind"], "NetworkAttachmentDefinition");
    assert_eq!(nad["metadata"]["name"], "macvlan-ens192");
    // Not applied yet, so no uid to own the NAD by.
    assert!(nad["metadata"].get("ownerReferences").is_none());
    assert_eq!(
        nad["spec"]["config"],
        r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#
    );
}

#[test]
fn render_rejects_an_invalid_multus_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "smc.yaml",
        "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata: {name: two-masters, namespace: default}
spec:
  cniType: macvlan
  macvlan: {master: [ens192, ens224], vlanID: 5000}
",
    );
    let out = ctl(&["render", "-f", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("SpiderMultusConfig/two-masters: spec.macvlan.vlanID: "),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("spec.macvlan.bond"), "stderr: {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn plan_prints_the_seed_overlay_tables() {
    let out = ctl(&[
        "plan",
        "-f",
        &seed("topology-overlay.yaml"),
        "--coordinator",
        &seed("coordinator.yaml"),
        "-o",
        "tables",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "32764:\tfrom 10.233.73.210 lookup 100",
        "32765:\tfrom 10.6.212.145 lookup 101",
        "10.233.64.0/18 via 10.6.212.132 dev eth0 src 10.233.73.210",
        "# pod: ip route show table 101\ndefault via 10.6.0.1 dev net1",
        "1000:\tfrom all lookup 500",
        "# node: ip route show table 500\n10.6.212.145 dev calia1b2c3d4e5f scope link",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
fn plan_with_default_route_nic_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = std::fs::read_to_string(seed("topology-overlay.yaml")).expect("seed");
    let f = write(
        dir.path(),
        "t.yaml",
        &topo.replace("ifname: net1\n", "ifname: net1\ndefaultRouteNic: net1\n"),
    );
    let out = ctl(&[
        "plan",
        "-f",
        f.to_str().expect("utf8"),
        "--coordinator",
        &seed("coordinator.yaml"),
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ip rule add from 10.233.73.210 lookup 101"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ip route del default via 169.254.1.1 dev eth0"),
        "{stdout}"
    );

    // A default-route NIC the pod does not have: a precise error, exit 1.
    let g = write(
        dir.path(),
        "g.yaml",
        &topo.replace("ifname: net1\n", "ifname: net1\ndefaultRouteNic: net9\n"),
    );
    let out = ctl(&["plan", "-f", g.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("\"net9\" does not exist"),
        "{}",
        text(&out.stderr)
    );

    // A coordinator that is not Synced refuses to plan, as the agent would.
    let c = write(
        dir.path(),
        "c.yaml",
        &std::fs::read_to_string(seed("coordinator.yaml"))
            .expect("seed")
            .replace("phase: Synced", "phase: NotReady"),
    );
    let out = ctl(&[
        "plan",
        "-f",
        &seed("topology-overlay.yaml"),
        "--coordinator",
        c.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not ready"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_refuses_the_same_object_twice_in_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "dup.yaml",
        &format!(
            "{}---\n{}",
            pool("a", "10.7.0.0/16", "10.7.0.10-10.7.0.20"),
            pool("a", "10.7.0.0/16", "10.7.0.30-10.7.0.40")
        ),
    );
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "SpiderIPPool/a: metadata.name: AlreadyExists: defined twice in the input: first in"
        ),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("dup.yaml document 1"), "stderr: {stderr}");
    assert!(stderr.contains("dup.yaml document 2"), "stderr: {stderr}");
}

#[test]
fn closed_stdout_ends_quietly() {
    // Before the fix each of these panicked ("failed printing to stdout: Broken pipe", exit
    // 101).
    for args in [
        &["crds"][..],
        &["validate", "-f", &seed("ippool.yaml"), "-o", "json"],
        &["render", "-f", &seed("multusconfig.yaml")],
        &[
            "plan",
            "-f",
            &seed("topology-overlay.yaml"),
            "--coordinator",
            &seed("coordinator.yaml"),
            "-o",
            "tables",
        ],
    ] {
        let out = ctl_closed_stdout(args);
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        // `2>&1 | head`: the stderr summary and errors must not panic either (101).
        let status = ctl_closed_stdout_and_stderr(args);
        assert_eq!(status.code(), Some(0), "{args:?} with stderr closed too");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        &pool("bad", "10.6.0.0/16", "10.7.0.1"),
    );
    let status = ctl_closed_stdout_and_stderr(&["validate", "-f", bad.to_str().expect("utf8")]);
    assert_eq!(status.code(), Some(1), "a rejection with stderr closed");
}

#[test]
fn validate_reports_the_index_the_user_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Defaulting sorts and merges `ips` into [10.0.0.1, 172.18.0.10-172.18.0.12]; the
    // error must still name entry 2 as written (it named spec.ips[0]).
    let f = write(
        dir.path(),
        "p.yaml",
        "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: p}
spec:
  subnet: 172.18.0.0/16
  ips: [172.18.0.10, 172.18.0.11, 10.0.0.1, 172.18.0.12]
",
    );
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("SpiderIPPool/p: spec.ips[2]: Invalid: \"10.0.0.1\": not pertains"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("spec.ips[0]"), "stderr: {stderr}");
}

#[test]
fn validate_reports_every_problem_of_a_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "p.yaml",
        "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: p}
spec:
  subnet: 172.18.0.0/16
  ips: [172.18.0.10-172.18.0.20, 10.0.0.1, 172.18.0.30, nonsense]
  excludeIPs: [10.9.0.1]
  gateway: 172.18.0.15
  routes:
  - {dst: 10.7.0.0/16, gw: 10.8.0.1}
",
    );
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for path in [
        "spec.ips[1]: Invalid",
        "spec.ips[3]: Invalid",
        "spec.excludeIPs[0]: Invalid",
        "spec.ips[0]: Invalid: \"172.18.0.10-172.18.0.20\": conflicts with 'spec.gateway'",
        "spec.routes[0].gw: Invalid",
    ] {
        assert!(
            stderr.contains(&format!("SpiderIPPool/p: {path}")),
            "{path} missing: {stderr}"
        );
    }
    assert!(
        stderr.ends_with("1 object rejected, 0 accepted\n"),
        "stderr: {stderr}"
    );
}

#[test]
fn validate_reads_stdin() {
    let yaml = std::fs::read_to_string(seed("ippool.yaml")).expect("seed");
    let out = ctl_stdin(&["validate", "-f", "-", "-o", "yaml"], &yaml);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ipVersion: 4"));
    assert_eq!(text(&out.stderr), "1 object accepted (SpiderIPPool 1)\n");
    // Standard input can be read only once.
    let out = ctl_stdin(&["validate", "-f", "-", "--cluster", "-"], &yaml);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be both --cluster and -f"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl_stdin(&["validate", "-f", "-", "-f", "-"], &yaml);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("given more than once"),
        "{}",
        text(&out.stderr)
    );
    // Errors name the input as <stdin>.
    let out = ctl_stdin(&["validate", "-f", "-"], "kind: [unclosed\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin>: document 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_reads_a_directory_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // b.yaml overlaps a.yaml: in name order, b is the one refused.
    write(
        dir.path(),
        "b.yaml",
        &pool("b", "10.7.0.0/16", "10.7.0.15-10.7.0.30"),
    );
    write(
        dir.path(),
        "a.yml",
        &pool("a", "10.7.0.0/16", "10.7.0.10-10.7.0.20"),
    );
    write(dir.path(), "notes.txt", "not a manifest: {{{\n");
    let out = ctl(&["validate", "-f", dir.path().to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("SpiderIPPool/b: "), "stderr: {stderr}");
    assert!(!stderr.contains("SpiderIPPool/a:"), "stderr: {stderr}");
    std::fs::remove_file(dir.path().join("b.yaml")).expect("rm");
    write(
        dir.path(),
        "c.json",
        r#"{"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderReservedIP",
            "metadata": {"name": "r"}, "spec": {"ips": ["10.7.0.5"]}}"#,
    );
    let out = ctl(&["validate", "-f", dir.path().to_str().expect("utf8")]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "2 objects accepted (SpiderIPPool 1, SpiderReservedIP 1)\n"
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let out = ctl(&["validate", "-f", empty.path().to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no *.yaml, *.yml or *.json file"));
}

#[test]
fn validate_skips_other_kinds_as_in_helm_template_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let helm = format!(
        "---
# Source: chart/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata: {{name: spiderpool-conf}}
data: {{conf.yml: 'enableIPv4: true'}}
---
# Source: chart/templates/pool.yaml
{}---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec: {{replicas: 1}}
",
        pool("a", "10.7.0.0/16", "10.7.0.10-10.7.0.20")
    );
    let f = write(dir.path(), "helm.yaml", &helm);
    let out = ctl(&["validate", "-f", f.to_str().expect("utf8")]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "1 object accepted (SpiderIPPool 1), 2 other objects skipped\n"
    );
    // A kubectl `List` mixing kinds is read the same way.
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
        {"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderReservedIP",
         "metadata": {"name": "r"}, "spec": {"ips": ["10.7.0.5"]}}]}"#;
    let out = ctl_stdin(&["validate", "-f", "-"], list);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "1 object accepted (SpiderReservedIP 1), 1 other object skipped\n"
    );
}

#[test]
fn bool_switches_take_a_separate_value() {
    for args in [
        &["--ipv4", "false"][..],
        &["--ipv4=false"],
        &[
            "--ipv4",
            "false",
            "--ipv6",
            "true",
            "--spider-subnet",
            "false",
        ],
    ] {
        let file = seed("ippool.yaml");
        let mut all = vec!["validate", "-f", &file];
        all.extend_from_slice(args);
        let out = ctl(&all);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("spec.ipVersion: Forbidden: IPv4 is disabled"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A bare flag still means true, also right before another option.
    let out = ctl(&["validate", "--ipv4", "-f", &seed("ippool.yaml")]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
}
