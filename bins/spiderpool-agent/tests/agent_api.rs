//! The real `spiderpool-agent` binary in local mode, driven over its UNIX socket by the
//! plugins' client (`AgentClient`): health, ADD / DEL / idempotent re-ADD, exhaustion,
//! coordinator config, workload endpoints, a bad file skipped by name, SIGHUP reload, `dump`,
//! a second agent refused, SIGTERM removing the socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use spiderpool_core::agentapi::{GetCoordinatorArgs, IpamAddArgs, IpamDelArgs, LocalPodInfo};
use spiderpool_plugin_support::agent_client::{AgentClient, ClientError};

const AGENT: &str = env!("CARGO_BIN_EXE_spiderpool-agent");

const POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  disable: false
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  subnet: 10.6.0.0/16
";

const COORDINATOR: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata:
  name: default
spec:
  hijackCIDR:
  - 169.254.0.0/16
  hostRuleTable: 500
  mode: auto
  podCIDRType: calico
  podRPFilter: 0
  tunePodRoutes: true
status:
  overlayPodCIDR:
  - 10.233.64.0/18
  phase: Synced
  serviceCIDR:
  - 10.233.0.0/18
";

/// A pool that admission refuses (the gateway is not an address).
const BAD_POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: broken
spec:
  gateway: not-an-ip
  ips:
  - 10.9.0.10-10.9.0.20
  subnet: 10.9.0.0/16
";

struct RunningAgent {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl RunningAgent {
    fn start(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        for (name, text) in files {
            std::fs::write(config.join(name), text).unwrap();
        }
        let socket = dir.path().join("run/spiderpool.sock");
        let log = dir.path().join("agent.log");
        let child = spawn(&config, &dir.path().join("state"), &socket, &log);
        let agent = RunningAgent {
            child,
            socket,
            log,
            config,
            _dir: dir,
        };
        agent.wait_healthy();
        agent
    }

    fn wait_healthy(&self) {
        let client = self.client();
        for _ in 0..500 {
            if client.healthy().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the agent never became healthy; log:\n{}", self.log_text());
    }

    fn client(&self) -> AgentClient {
        AgentClient::new(&self.socket).with_timeout(Duration::from_secs(30))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(i32::try_from(self.child.id()).unwrap()), sig).unwrap();
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, state: &Path, socket: &Path, log: &Path) -> Child {
    Command::new(AGENT)
        .arg("--local-config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("--socket")
        .arg(socket)
        .arg("--node")
        .arg("test-node")
        .arg("--log-file")
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn add_args(pod: &str, pools: &[&str]) -> IpamAddArgs {
    IpamAddArgs {
        container_id: format!("cid-{pod}"),
        if_name: "net1".into(),
        net_namespace: format!("/var/run/netns/{pod}"),
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        pod_uid: format!("uid-{pod}"),
        default_ipv4_ippool: pools.iter().map(|p| (*p).to_owned()).collect(),
        ..Default::default()
    }
}

fn del_args(pod: &str) -> IpamDelArgs {
    IpamDelArgs {
        container_id: format!("cid-{pod}"),
        if_name: "net1".into(),
        net_namespace: String::new(),
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        pod_uid: format!("uid-{pod}"),
    }
}

fn coordinator_args(pod: &str) -> GetCoordinatorArgs {
    GetCoordinatorArgs {
        pod_name: pod.into(),
        pod_namespace: "default".into(),
    }
}

fn status_of(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Status { status, message } => (status, message),
        other => panic!("expected an HTTP error status, got {other:?}"),
    }
}

#[test]
fn serves_the_ipam_api_in_local_mode() {
    let agent = RunningAgent::start(&[
        ("10-6-v4.yaml", POOL),
        ("coordinator.yaml", COORDINATOR),
        ("zz-bad.yaml", BAD_POOL),
    ]);
    let client = agent.client();

    // Health: 200 with an empty body, as upstream.
    let raw = client
        .request("GET", "/v1/ipam/healthy", None, Duration::from_secs(10))
        .unwrap();
    assert_eq!((raw.status, raw.body.len()), (200, 0));

    // The bad file is reported by name with its field error; the others are loaded.
    let log = agent.log_text();
    assert!(
        log.contains("zz-bad.yaml") && log.contains("SpiderIPPool/broken: spec.gateway"),
        "{log}"
    );

    // ADD: the lowest address of the pool, with prefix, pool, gateway and default route.
    let r = client.post_ip(&add_args("pod-a", &["10-6-v4"])).unwrap();
    assert_eq!(r.ips.len(), 1);
    let ip = &r.ips[0];
    assert_eq!(
        (ip.version, ip.address.as_str(), ip.ip_pool.as_str()),
        (4, "10.6.212.100/16", "10-6-v4")
    );
    assert_eq!((ip.gateway.as_str(), ip.nic.as_str()), ("10.6.0.1", "net1"));
    assert_eq!(r.routes.len(), 1);
    assert_eq!(
        (
            r.routes[0].if_name.as_str(),
            r.routes[0].dst.as_str(),
            r.routes[0].gw.as_str()
        ),
        ("net1", "0.0.0.0/0", "10.6.0.1")
    );

    // A retried ADD of the same pod UID and NIC gets the same address.
    let again = client.post_ip(&add_args("pod-a", &["10-6-v4"])).unwrap();
    assert_eq!(again.ips[0].address, "10.6.212.100/16");
    let b = client.post_ip(&add_args("pod-b", &["10-6-v4"])).unwrap();
    assert_eq!(b.ips[0].address, "10.6.212.101/16");

    // cleanGateway: no default route.
    let mut clean = add_args("pod-clean", &["10-6-v4"]);
    clean.clean_gateway = true;
    let r = client.post_ip(&clean).unwrap();
    assert_eq!(r.ips[0].address, "10.6.212.102/16");
    assert!(r.routes.is_empty(), "{:?}", r.routes);

    // The workload endpoint records the pod.
    let se = client.workload_endpoint("default", "pod-a").unwrap();
    assert_eq!(se.current.uid, "uid-pod-a");
    assert_eq!(se.current.node, "test-node");
    assert_eq!(se.current.ips[0].interface, "net1");
    assert_eq!(se.current.ips[0].ipv4.as_deref(), Some("10.6.212.100/16"));
    let (status, msg) = status_of(client.workload_endpoint("default", "nobody").unwrap_err());
    assert_eq!(status, 404, "{msg}");
    let raw = client
        .request(
            "GET",
            "/v1/workloadendpoint?podName=x",
            None,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(raw.status, 400);

    // Coordinator config: the SpiderCoordinator's spec and its status as written.
    let cfg = client
        .coordinator_config(&coordinator_args("pod-a"))
        .unwrap();
    assert_eq!(cfg.mode.as_deref(), Some("auto"));
    assert_eq!(
        cfg.overlay_pod_cidr,
        Some(vec!["10.233.64.0/18".to_owned()])
    );
    assert_eq!(cfg.service_cidr, Some(vec!["10.233.0.0/18".to_owned()]));
    assert_eq!(cfg.host_rule_table, Some(500));
    assert_eq!(cfg.pod_default_route_nic.as_deref().unwrap_or(""), "");

    // Pod annotations from the local-mode extension reach pool selection and the
    // coordinator's default-route NIC.
    let mut c = add_args("pod-c", &[]);
    c.pod = Some(LocalPodInfo {
        labels: [("app".to_owned(), "web".to_owned())].into(),
        annotations: [
            (
                "ipam.spidernet.io/ippool".to_owned(),
                r#"{"ipv4":["10-6-v4"]}"#.to_owned(),
            ),
            (
                "ipam.spidernet.io/default-route-nic".to_owned(),
                "net1".to_owned(),
            ),
        ]
        .into(),
    });
    let r = client.post_ip(&c).unwrap();
    assert_eq!(r.ips[0].address, "10.6.212.103/16");
    let cfg = client
        .coordinator_config(&coordinator_args("pod-c"))
        .unwrap();
    assert_eq!(cfg.pod_default_route_nic.as_deref(), Some("net1"));

    // DEL releases (no apiserver to say the pod lives on); a second DEL is a no-op.
    client.delete_ip(&del_args("pod-a")).unwrap();
    client.delete_ip(&del_args("pod-a")).unwrap();
    let (status, _) = status_of(client.workload_endpoint("default", "pod-a").unwrap_err());
    assert_eq!(status, 404);
    let d = client.post_ip(&add_args("pod-d", &["10-6-v4"])).unwrap();
    assert_eq!(
        d.ips[0].address, "10.6.212.100/16",
        "the released address is reused"
    );

    // POST /v1/ipam/ips is accepted and does nothing, as upstream.
    let raw = client
        .request("POST", "/v1/ipam/ips", None, Duration::from_secs(10))
        .unwrap();
    assert_eq!(raw.status, 200);

    // An unknown pool, a bad body, an unknown path.
    let (status, msg) = status_of(client.post_ip(&add_args("pod-e", &["nope"])).unwrap_err());
    assert_eq!(status, 500);
    assert!(msg.contains("nope"), "{msg}");
    let raw = client
        .request(
            "POST",
            "/v1/ipam/ip",
            Some(b"{\"x\":1}"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(raw.status, 400, "{}", String::from_utf8_lossy(&raw.body));
    let raw = client
        .request("GET", "/v1/nothing", None, Duration::from_secs(10))
        .unwrap();
    assert_eq!(raw.status, 404);

    // `dump` prints the pools with their records and the endpoints.
    let out = Command::new(AGENT)
        .arg("dump")
        .arg("--socket")
        .arg(&agent.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dump["node"], "test-node");
    assert_eq!(dump["pools"][0]["metadata"]["name"], "10-6-v4");
    assert_eq!(dump["pools"][0]["status"]["allocatedIPCount"], 4);
    assert_eq!(dump["endpoints"].as_array().map(Vec::len), Some(4));
    assert!(
        dump["rejectedFiles"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("zz-bad.yaml"))
    );

    // SIGHUP: a new pool file is loaded, allocations are kept.
    std::fs::write(
        agent.config.join("10-7-v4.yaml"),
        POOL.replace("10-6-v4", "10-7-v4").replace("10.6.", "10.7."),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    let mut got = None;
    for _ in 0..500 {
        match client.post_ip(&add_args("pod-f", &["10-7-v4"])) {
            Ok(r) => {
                got = Some(r);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let got = got.unwrap_or_else(|| panic!("pool 10-7-v4 never appeared:\n{}", agent.log_text()));
    assert_eq!(got.ips[0].address, "10.7.212.100/16");
    let again = client.post_ip(&add_args("pod-b", &["10-6-v4"])).unwrap();
    assert_eq!(
        again.ips[0].address, "10.6.212.101/16",
        "kept across the reload"
    );

    // A second agent on the same socket is refused.
    let second = Command::new(AGENT)
        .arg("--local-config")
        .arg(&agent.config)
        .arg("--state-dir")
        .arg(agent.config.with_file_name("state2"))
        .arg("--socket")
        .arg(&agent.socket)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already listening"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    client.healthy().unwrap();

    // SIGTERM: a clean exit that removes the socket.
    let mut agent = agent;
    agent.signal(Signal::SIGTERM);
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    assert!(!agent.socket.exists());
}

#[test]
fn exhaustion_names_the_pool() {
    let small = POOL.replace("10.6.212.100-10.6.212.200", "10.6.212.100-10.6.212.101");
    let agent = RunningAgent::start(&[("pool.yaml", &small)]);
    let client = agent.client();
    client.post_ip(&add_args("a", &["10-6-v4"])).unwrap();
    client.post_ip(&add_args("b", &["10-6-v4"])).unwrap();
    let (status, msg) = status_of(client.post_ip(&add_args("c", &["10-6-v4"])).unwrap_err());
    assert_eq!(status, 500);
    assert!(
        msg.contains("10-6-v4") && msg.contains("all IP addresses used out"),
        "{msg}"
    );
}

#[test]
fn coordinator_config_needs_a_synced_spidercoordinator() {
    let agent = RunningAgent::start(&[("pool.yaml", POOL)]);
    let (status, msg) = status_of(
        agent
            .client()
            .coordinator_config(&coordinator_args("p"))
            .unwrap_err(),
    );
    assert_eq!(status, 500);
    assert!(msg.contains("no SpiderCoordinator"), "{msg}");

    let pending = COORDINATOR.replace("phase: Synced", "phase: NotReady");
    let agent = RunningAgent::start(&[("coordinator.yaml", &pending)]);
    let (status, msg) = status_of(
        agent
            .client()
            .coordinator_config(&coordinator_args("p"))
            .unwrap_err(),
    );
    assert_eq!(status, 500);
    assert!(msg.contains("not ready"), "{msg}");
}

/// Waits until the agent's log holds `needle`.
fn wait_for_log(agent: &RunningAgent, needle: &str) -> String {
    for _ in 0..500 {
        let log = agent.log_text();
        if log.contains(needle) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {needle:?} in the log:\n{}", agent.log_text());
}

#[test]
fn a_typo_on_sighup_keeps_the_last_good_pool() {
    let agent = RunningAgent::start(&[("10-6-v4.yaml", POOL)]);
    let client = agent.client();
    client.post_ip(&add_args("pod-a", &["10-6-v4"])).unwrap();
    // A typo: the gateway is no address. Before, the reload dropped the pool: it went
    // terminating and the next ADD failed.
    std::fs::write(
        agent.config.join("10-6-v4.yaml"),
        POOL.replace("gateway: 10.6.0.1", "gateway: 10.6.0.1x"),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    // The problem is still reported as before the fix.
    wait_for_log(&agent, "spec.gateway");
    let b = client.post_ip(&add_args("pod-b", &["10-6-v4"])).unwrap();
    assert_eq!(b.ips[0].address, "10.6.212.101/16");
    assert_eq!(b.ips[0].gateway, "10.6.0.1", "the last good definition");
    let log = wait_for_log(&agent, "keeping the definition last loaded");
    assert!(log.contains("SpiderIPPool/10-6-v4"), "{log}");

    // DEL of a pod the agent does not know: a sentence, not an enum name.
    client.delete_ip(&del_args("nobody")).unwrap();
    let log = wait_for_log(&agent, "DEL default/nobody");
    let line = log
        .lines()
        .find(|l| l.contains("DEL default/nobody"))
        .unwrap();
    assert!(line.contains("nothing to release"), "{line}");
    assert!(!line.contains("NoEndpoint"), "{line}");
}

#[test]
fn the_readme_example_directory_starts_without_errors() {
    // README "spiderpool-agent (local mode)": --local-config examples/quickstart, which also
    // holds the topology file for `spiderpoolctl plan`.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sp.sock");
    let log = dir.path().join("agent.log");
    let mut child = spawn(&example, &dir.path().join("state"), &socket, &log);
    let client = AgentClient::new(&socket);
    let healthy = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        client.healthy().is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(healthy, "{text}");
    assert!(!text.contains(" ERROR "), "{text}");
    assert!(
        text.contains("ignored") && text.contains("topology-overlay.yaml"),
        "{text}"
    );
    assert!(text.contains("SpiderIPPool/10-6-v4"), "{text}");
}

#[test]
fn missing_required_fields_are_a_400_naming_them() {
    let agent = RunningAgent::start(&[("pool.yaml", POOL)]);
    let client = agent.client();
    let mut add = add_args("a", &["10-6-v4"]);
    add.pod_uid.clear();
    add.if_name.clear();
    let (status, msg) = status_of(client.post_ip(&add).unwrap_err());
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("missing required fields: ifName, podUID"),
        "{msg}"
    );
    let mut del = del_args("a");
    del.container_id.clear();
    let (status, msg) = status_of(client.delete_ip(&del).unwrap_err());
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("containerID"), "{msg}");
    // Nothing was allocated by the refused ADD.
    client.post_ip(&add_args("b", &["10-6-v4"])).unwrap();
    let dump = client
        .request("GET", "/v1/local/state", None, Duration::from_secs(10))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&dump.body).unwrap();
    assert_eq!(v["endpoints"].as_array().map(Vec::len), Some(1), "{v}");
}
