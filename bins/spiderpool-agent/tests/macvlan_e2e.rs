//! Debian's macvlan plugin (`/usr/lib/cni/macvlan`, package containernetworking-plugins), a
//! caller we did not write, delegates to our `spiderpool` IPAM plugin, which asks the real
//! agent in local mode. Real network namespaces: a "node" netns holding the parent NIC
//! `ens192` (one end of a veth pair), and a pod netns per ADD. Needs root: ignored by a
//! plain `cargo test`, run by `scripts/test.sh` (where a missing need fails it).
//!
//! Checked for cniVersion 0.3.1, 0.4.0 and 1.0.0: the printed result (version, address with
//! the pool prefix, gateway, default route, the macvlan interface), the pod's `net1` address
//! and default route in the kernel, the agent's endpoint record; DEL returns the address (the
//! next pod gets it again) and removes the record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{DEBIAN_MACVLAN, Netns, RunningAgent, ip, pool, spiderpool_plugin};
use serde_json::{Value, json};
use spiderpool_plugin_support::agent_client::ClientError;

struct Cni {
    node_ns: String,
    bin_dir: PathBuf,
}

impl Cni {
    /// Runs Debian's macvlan in the node netns, as a runtime would.
    fn run(&self, command: &str, conf: &Value, pod: &str, netns: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node_ns])
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

fn conf(version: &str, socket: &Path, log: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": "macvlan-ens192",
        "type": "macvlan",
        "master": "ens192",
        "mode": "bridge",
        "ipam": {
            "type": "spiderpool",
            "default_ipv4_ippool": ["10-6-v4"],
            "ipam_unix_socket_path": socket,
            "log_file_path": log,
        }
    })
}

#[test]
#[ignore = "needs root"]
fn debian_macvlan_with_our_ipam_in_network_namespaces() {
    if !common::ready() {
        return;
    }
    let plugin = spiderpool_plugin();
    let agent = RunningAgent::start(
        &[(
            "10-6-v4.yaml",
            &pool("10-6-v4", "10.6.212.100-10.6.212.200"),
        )],
        &[],
    );
    let client = agent.client();

    let bin_dir = agent.dir.path().join("cni-bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(DEBIAN_MACVLAN, bin_dir.join("macvlan")).unwrap();
    std::os::unix::fs::symlink(&plugin, bin_dir.join("spiderpool")).unwrap();
    let plugin_log = agent.dir.path().join("spiderpool.log");

    let tag = std::process::id();
    let mut netns = Netns(Vec::new());
    let node_ns = netns.add(&format!("spe2e-node-{tag}"));
    ip(&[
        "-n", &node_ns, "link", "add", "ens192", "type", "veth", "peer", "name", "ens192p",
    ]);
    ip(&["-n", &node_ns, "link", "set", "ens192", "up"]);
    ip(&["-n", &node_ns, "link", "set", "ens192p", "up"]);
    let cni = Cni { node_ns, bin_dir };

    for (i, version) in ["0.3.1", "0.4.0", "1.0.0"].into_iter().enumerate() {
        let pod = format!("pod-{i}");
        let pod_ns = netns.add(&format!("spe2e-pod{i}-{tag}"));
        let conf = conf(version, &agent.socket, &plugin_log);
        let out = cni.run("ADD", &conf, &pod, &pod_ns);
        assert!(
            out.status.success(),
            "ADD {version}: {}\n{}\nplugin log:\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&plugin_log).unwrap_or_default(),
            agent.log_text()
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["cniVersion"], version, "{result:#}");
        // Every round starts from an empty pool (the previous DEL released): the first address.
        let ip0 = &result["ips"][0];
        assert_eq!(ip0["address"], "10.6.212.100/16", "{result:#}");
        assert_eq!(ip0["gateway"], "10.6.0.1", "{result:#}");
        if version != "1.0.0" {
            assert_eq!(ip0["version"], "4", "{result:#}");
        }
        let routes = result["routes"].as_array().unwrap();
        assert!(
            routes
                .iter()
                .any(|r| r["dst"] == "0.0.0.0/0" && r["gw"] == "10.6.0.1"),
            "{result:#}"
        );
        assert_eq!(result["interfaces"][0]["name"], "net1", "{result:#}");
        assert_eq!(
            result["interfaces"][0]["sandbox"],
            format!("/var/run/netns/{pod_ns}"),
            "{result:#}"
        );

        // The kernel agrees.
        let addrs = ip(&["-n", &pod_ns, "-o", "-4", "addr", "show", "dev", "net1"]);
        assert!(addrs.contains("inet 10.6.212.100/16"), "{addrs}");
        let default = ip(&["-n", &pod_ns, "route", "show", "default"]);
        assert!(default.contains("via 10.6.0.1 dev net1"), "{default}");

        // The agent recorded the pod.
        let se = client.workload_endpoint("default", &pod).unwrap();
        assert_eq!(se.current.uid, format!("uid-{pod}"));
        assert_eq!(se.current.ips[0].ipv4.as_deref(), Some("10.6.212.100/16"));

        // DEL gives the address back and removes the record; a second DEL succeeds too.
        for _ in 0..2 {
            let out = cni.run("DEL", &conf, &pod, &pod_ns);
            assert!(
                out.status.success(),
                "DEL {version}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match client.workload_endpoint("default", &pod) {
            Err(ClientError::Status { status: 404, .. }) => {}
            other => panic!("endpoint of {pod} after DEL: {other:?}"),
        }
        let links = ip(&["-n", &pod_ns, "-o", "link", "show"]);
        assert!(!links.contains("net1"), "{links}");
        netns.del(&pod_ns);
    }

    // Two pods at once get distinct addresses, lowest first.
    let mut seen = Vec::new();
    for i in 0..2 {
        let pod = format!("pair-{i}");
        let pod_ns = netns.add(&format!("spe2e-pair{i}-{tag}"));
        let out = cni.run(
            "ADD",
            &conf("1.0.0", &agent.socket, &plugin_log),
            &pod,
            &pod_ns,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        seen.push(result["ips"][0]["address"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["10.6.212.100/16", "10.6.212.101/16"]);
}
