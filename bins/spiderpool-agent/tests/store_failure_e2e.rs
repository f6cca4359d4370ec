//! The local store's disk fills up under a running agent (a real `ENOSPC`: the state dir is
//! a 256 KiB tmpfs), driven through the real `spiderpool` plugin binary: ADD fails with CNI
//! code 11 (try again later), `/v1/ipam/healthy` answers 503, DEL fails with code 11 (so the
//! runtime retries and the address does not leak), and once space is freed the store
//! recovers by itself: health is 200 again, the retried DEL releases the address, and a
//! restarted agent opens the same files. Needs root (mount): ignored by a plain `cargo test`,
//! run by `scripts/test.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, RunningAgent, pool, spiderpool_plugin};
use serde_json::{Value, json};
use spiderpool_core::agentapi::{IpamAddArgs, IpamDelArgs};
use spiderpool_plugin_support::agent_client::{AgentClient, ClientError};
use spiderpool_test_kit::gate::{self, Need};

/// A small tmpfs, unmounted (and its mount point removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = [0xa5u8; 4096];
        loop {
            if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}");
                return path;
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

fn conf(socket: &Path, log: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-ens192",
        "type": "macvlan",
        "master": "ens192",
        "ipam": {
            "type": "spiderpool",
            "default_ipv4_ippool": ["p"],
            "ipam_unix_socket_path": socket,
            "log_file_path": log,
        }
    })
}

/// Runs the `spiderpool` plugin as a runtime would.
fn plugin(command: &str, conf: &Value, pod: &str, netns: &str) -> Output {
    let bin = spiderpool_plugin();
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("cid-{pod}"))
        .env("CNI_NETNS", format!("/var/run/netns/{netns}"))
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", bin.parent().unwrap())
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

/// The CNI error code a failed plugin run printed.
fn cni_code(out: &Output) -> u64 {
    assert!(!out.status.success(), "expected a failure");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no CNI error on stdout ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v["code"].as_u64().unwrap()
}

fn health(client: &AgentClient) -> (u16, String) {
    let raw = client
        .request("GET", "/v1/ipam/healthy", None, Duration::from_secs(10))
        .unwrap();
    (raw.status, String::from_utf8_lossy(&raw.body).into_owned())
}

fn add_args(pod: &str) -> IpamAddArgs {
    IpamAddArgs {
        container_id: format!("cid-{pod}"),
        if_name: "net1".into(),
        net_namespace: "/x".into(),
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        pod_uid: format!("uid-{pod}"),
        default_ipv4_ippool: vec!["p".into()],
        ..Default::default()
    }
}

#[test]
#[ignore = "needs root"]
fn a_full_disk_fails_add_and_del_with_code_11_and_recovers() {
    if !gate::ready(&[Need::Root, Need::Program("mount"), Need::Program("ip")]) {
        return;
    }
    let disk = Tmpfs::mount("256k");
    let mut netns = Netns::default();
    let ns = netns.add("sp-store-full");
    // The agent's state on the small disk; config, socket and logs elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("p.yaml"),
        pool("p", "10.6.212.100-10.6.212.200"),
    )
    .unwrap();
    let mut agent = RunningAgent {
        child: None,
        socket: dir.path().join("sp.sock"),
        log: dir.path().join("agent.log"),
        config,
        state: disk.path().to_owned(),
        extra: Vec::new(),
        dir,
    };
    agent.restart();
    let client = agent.client();
    let conf = conf(&agent.socket, &agent.dir.path().join("plugin.log"));
    let a = client.post_ip(&add_args("pod-a")).unwrap();
    assert_eq!(a.ips[0].address, "10.6.212.100/16");

    // Disk full: ADDs go on while the journal's last page has room, then one fails with
    // code 11 (the agent answered 503), never 999.
    let filler = disk.fill();
    let mut added = 0;
    let code = loop {
        let out = plugin("ADD", &conf, &format!("pod-b{added}"), &ns);
        if !out.status.success() {
            break cni_code(&out);
        }
        added += 1;
        assert!(added < 8, "a journal page should have filled up by now");
    };
    assert_eq!(code, 11, "log:\n{}", agent.log_text());
    let (status, why) = health(&client);
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("disk is full"), "{why}");

    // DEL fails (the plugin at its health check, and the agent itself), so the runtime
    // retries; the address stays recorded.
    let out = plugin("DEL", &conf, "pod-a", &ns);
    assert_eq!(cni_code(&out), 11);
    let del = IpamDelArgs {
        container_id: "cid-pod-a".into(),
        if_name: "net1".into(),
        net_namespace: String::new(),
        pod_namespace: "default".into(),
        pod_name: "pod-a".into(),
        pod_uid: "uid-pod-a".into(),
    };
    match client.delete_ip(&del) {
        Err(ClientError::Status { status: 503, .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(client.workload_endpoint("default", "pod-a").is_ok());

    // Space freed: the store recovers by itself, and the retried DEL releases.
    std::fs::remove_file(filler).unwrap();
    let start = Instant::now();
    while health(&client).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never recovered:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = plugin("DEL", &conf, "pod-a", &ns);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(client.workload_endpoint("default", "pod-a").is_err());

    // A restarted agent opens the same files: pod-a's address is free, the others held.
    agent.restart();
    let client = agent.client();
    let again = client.post_ip(&add_args("pod-new")).unwrap();
    assert_eq!(again.ips[0].address, "10.6.212.100/16");
    for i in 0..added {
        let ep = client
            .workload_endpoint("default", &format!("pod-b{i}"))
            .unwrap();
        assert_eq!(ep.current.ips.len(), 1);
    }
    agent.kill();
}
