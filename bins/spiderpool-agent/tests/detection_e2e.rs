//! IP-conflict and gateway detection (spec §3.13) end to end: the real agent started with
//! `--enable-ip-conflict-detection --enable-gateway-detection`, Debian's macvlan plugin
//! delegating to our `spiderpool` IPAM plugin, real network namespaces. Needs root: ignored by
//! a plain `cargo test`, run by `scripts/test.sh` (where a missing need fails it).
//!
//! Layout: a node netns holds the macvlan parent `ens192`, one end of a veth pair; the other
//! end, `ens192p`, sits in a "lan" netns that plays the router (the gateway address) and the
//! peer owning a pool address, so both share the pod's L2 segment. Each ADD gets a fresh pod
//! netns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{DEBIAN_MACVLAN, Netns, RunningAgent, ip, pool, spiderpool_plugin};
use serde_json::{Value, json};
use spiderpool_plugin_support::agent_client::{AgentClient, ClientError};

const DETECTION: [&str; 2] = [
    "--enable-ip-conflict-detection",
    "--enable-gateway-detection",
];

/// The node, the lan and the CNI binaries.
struct Lab {
    netns: Netns,
    node: String,
    lan: String,
    bin_dir: PathBuf,
    /// Makes netns names unique per test and process.
    tag: String,
}

impl Lab {
    fn new(agent: &RunningAgent, name: &str) -> Lab {
        let bin_dir = agent.dir.path().join("cni-bin");
        std::fs::create_dir(&bin_dir).unwrap();
        std::os::unix::fs::symlink(DEBIAN_MACVLAN, bin_dir.join("macvlan")).unwrap();
        std::os::unix::fs::symlink(spiderpool_plugin(), bin_dir.join("spiderpool")).unwrap();
        let tag = format!("{name}-{}", std::process::id());
        let mut netns = Netns(Vec::new());
        let node = netns.add(&format!("spdet-node-{tag}"));
        let lan = netns.add(&format!("spdet-lan-{tag}"));
        ip(&[
            "-n", &node, "link", "add", "ens192", "type", "veth", "peer", "name", "ens192p",
            "netns", &lan,
        ]);
        ip(&["-n", &node, "link", "set", "ens192", "up"]);
        ip(&["-n", &lan, "link", "set", "ens192p", "up"]);
        Lab {
            netns,
            node,
            lan,
            bin_dir,
            tag,
        }
    }

    /// Adds (`true`) or removes an address on the lan side; IPv6 without DAD so the lan
    /// answers for it at once.
    fn lan_addr(&self, cidr: &str, present: bool) {
        let verb = if present { "add" } else { "del" };
        let mut args = vec!["-n", &self.lan, "addr", verb, cidr, "dev", "ens192p"];
        if present && cidr.contains(':') {
            args.push("nodad");
        }
        ip(&args);
    }

    fn lan_mac(&self) -> String {
        let link = ip(&["-n", &self.lan, "-o", "link", "show", "ens192p"]);
        let mut words = link.split_whitespace();
        words.find(|w| *w == "link/ether").unwrap();
        words.next().unwrap().to_owned()
    }

    fn pod_netns(&mut self, pod: &str) -> String {
        let name = format!("spdet-{pod}-{}", self.tag);
        // A retried ADD of the same pod gets a fresh sandbox, as after a kubelet retry.
        let name = if self.netns.0.contains(&name) {
            format!("{name}-r")
        } else {
            name
        };
        self.netns.add(&name)
    }

    /// Runs Debian's macvlan in the node netns, as a runtime would.
    fn cni(&self, command: &str, conf: &Value, pod: &str, netns: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node])
            .arg(self.bin_dir.join("macvlan"))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("cid-{pod}"))
            .env("CNI_NETNS", format!("/var/run/netns/{netns}"))
            .env("CNI_IFNAME", "net1")
            .env("CNI_PATH", &self.bin_dir)
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn conf(agent: &RunningAgent, pool_key: &str, pool: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-ens192",
        "type": "macvlan",
        "master": "ens192",
        "mode": "bridge",
        "ipam": {
            "type": "spiderpool",
            pool_key: [pool],
            "ipam_unix_socket_path": agent.socket,
            "log_file_path": agent.dir.path().join("spiderpool.log"),
            "log_level": "debug",
        }
    })
}

fn logs(agent: &RunningAgent) -> String {
    format!(
        "plugin log:\n{}\nagent log:\n{}",
        std::fs::read_to_string(agent.dir.path().join("spiderpool.log")).unwrap_or_default(),
        agent.log_text()
    )
}

/// An ADD that must succeed: its first address.
fn add_ok(lab: &mut Lab, agent: &RunningAgent, conf: &Value, pod: &str) -> String {
    add_result(lab, agent, conf, pod)["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An ADD that must succeed: its result.
fn add_result(lab: &mut Lab, agent: &RunningAgent, conf: &Value, pod: &str) -> Value {
    let ns = lab.pod_netns(pod);
    let out = lab.cni("ADD", conf, pod, &ns);
    assert!(
        out.status.success(),
        "ADD {pod}: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs(agent)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An ADD that must fail: the CNI error it printed (passed through by macvlan).
fn add_err(lab: &mut Lab, agent: &RunningAgent, conf: &Value, pod: &str) -> (u64, String) {
    let ns = lab.pod_netns(pod);
    let out = lab.cni("ADD", conf, pod, &ns);
    assert!(
        !out.status.success(),
        "ADD {pod} succeeded: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        logs(agent)
    );
    let err: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ADD {pod}: no CNI error JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        err["code"].as_u64().unwrap(),
        err["msg"].as_str().unwrap().to_owned(),
    )
}

/// The addresses the agent records for `pod`: none when it has no endpoint or an emptied one.
fn pod_addresses(client: &AgentClient, pod: &str) -> Vec<String> {
    match client.workload_endpoint("default", pod) {
        Ok(se) => se
            .current
            .ips
            .iter()
            .flat_map(|d| [d.ipv4.clone(), d.ipv6.clone()])
            .flatten()
            .collect(),
        Err(ClientError::Status { status: 404, .. }) => Vec::new(),
        Err(e) => panic!("workload endpoint of {pod}: {e}"),
    }
}

/// The pool's record count, from the agent's state.
fn records(client: &AgentClient, pool: &str) -> u64 {
    let raw = client
        .request(
            "GET",
            "/v1/local/state",
            None,
            std::time::Duration::from_secs(30),
        )
        .unwrap();
    let state: Value = serde_json::from_slice(&raw.body).unwrap();
    let p = state["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == pool)
        .unwrap_or_else(|| panic!("no pool {pool} in {state:#}"));
    p["status"]["allocatedIPCount"].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs root"]
fn ipv4_conflict_and_gateway_detection_through_debian_macvlan() {
    if !common::ready() {
        return;
    }
    let agent = RunningAgent::start(
        &[(
            "10-6-v4.yaml",
            &pool("10-6-v4", "10.6.212.100-10.6.212.200"),
        )],
        &DETECTION,
    );
    let client = agent.client();
    let mut lab = Lab::new(&agent, "v4");
    let conf = conf(&agent, "default_ipv4_ippool", "10-6-v4");

    // The gateway answers, and a peer already owns the pool's first address.
    lab.lan_addr("10.6.0.1/16", true);
    lab.lan_addr("10.6.212.100/16", true);
    let (code, msg) = add_err(&mut lab, &agent, &conf, "pod-c");
    assert_eq!(code, 999, "{msg}");
    assert_eq!(
        msg,
        format!(
            "ip conflict: pod's interface net1 with an conflicting ip 10.6.212.100, \
             10.6.212.100 is located at {}",
            lab.lan_mac()
        )
    );
    // Released through DELETE /v1/ipam/ips: the pod holds nothing, the pool has no record.
    assert_eq!(pod_addresses(&client, "pod-c"), Vec::<String>::new());
    assert_eq!(records(&client, "10-6-v4"), 0, "{}", logs(&agent));

    // The peer gives the address up: the kubelet-style retry of the same pod gets it (so it
    // was released), and the next pod the next address.
    lab.lan_addr("10.6.212.100/16", false);
    assert_eq!(add_ok(&mut lab, &agent, &conf, "pod-c"), "10.6.212.100/16");
    // The lan holds a stale entry for the next address (a previous pod's MAC); the plugin's
    // gratuitous ARP, sent before macvlan configures the address, replaces it with the new
    // pod's MAC. (locktime 0: the lan accepts the update however recent the entry is.)
    ip(&[
        "netns",
        "exec",
        &lab.lan,
        "sysctl",
        "-qw",
        "net.ipv4.neigh.ens192p.locktime=0",
    ]);
    ip(&[
        "-n",
        &lab.lan,
        "neigh",
        "add",
        "10.6.212.101",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "ens192p",
        "nud",
        "stale",
    ]);
    let result = add_result(&mut lab, &agent, &conf, "pod-d");
    assert_eq!(result["ips"][0]["address"], "10.6.212.101/16", "{result:#}");
    assert_eq!(pod_addresses(&client, "pod-d"), ["10.6.212.101/16"]);
    let mac = result["interfaces"][0]["mac"].as_str().unwrap();
    let neigh = ip(&["-n", &lab.lan, "neigh", "show", "10.6.212.101"]);
    assert!(
        neigh.contains(mac),
        "lan: {neigh}; pod MAC {mac}\n{}",
        logs(&agent)
    );

    // No gateway any more: the ADD fails and its address is released.
    lab.lan_addr("10.6.0.1/16", false);
    let (code, msg) = add_err(&mut lab, &agent, &conf, "pod-e");
    assert_eq!(
        (code, msg.as_str()),
        (999, "gateway 10.6.0.1 is unreachable")
    );
    assert_eq!(pod_addresses(&client, "pod-e"), Vec::<String>::new());
    assert_eq!(records(&client, "10-6-v4"), 2, "{}", logs(&agent));
}

#[test]
#[ignore = "needs root"]
fn ipv6_conflict_and_gateway_detection_through_debian_macvlan() {
    if !common::ready() {
        return;
    }
    let pool = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: fd00-6-v6
spec:
  gateway: fd00:6::1
  ips:
  - fd00:6::100-fd00:6::200
  subnet: fd00:6::/64
";
    let agent = RunningAgent::start(&[("fd00-6-v6.yaml", pool)], &DETECTION);
    let client = agent.client();
    let mut lab = Lab::new(&agent, "v6");
    let conf = conf(&agent, "default_ipv6_ippool", "fd00-6-v6");

    lab.lan_addr("fd00:6::1/64", true);
    lab.lan_addr("fd00:6::100/64", true);
    let (code, msg) = add_err(&mut lab, &agent, &conf, "pod-c");
    assert_eq!(code, 999, "{msg}");
    assert_eq!(
        msg,
        format!(
            "ip conflict: pod's interface net1 with an conflicting ip fd00:6::100, \
             fd00:6::100 is located at {}",
            lab.lan_mac()
        )
    );
    assert_eq!(pod_addresses(&client, "pod-c"), Vec::<String>::new());
    assert_eq!(records(&client, "fd00-6-v6"), 0, "{}", logs(&agent));

    lab.lan_addr("fd00:6::100/64", false);
    assert_eq!(add_ok(&mut lab, &agent, &conf, "pod-c"), "fd00:6::100/64");

    lab.lan_addr("fd00:6::1/64", false);
    let (code, msg) = add_err(&mut lab, &agent, &conf, "pod-e");
    assert_eq!(
        (code, msg.as_str()),
        (999, "gateway fd00:6::1 is unreachable")
    );
    assert_eq!(pod_addresses(&client, "pod-e"), Vec::<String>::new());
    assert_eq!(records(&client, "fd00-6-v6"), 1, "{}", logs(&agent));
}
