//! Many plugin processes at once: 200 ADDs, each a separate run of our `spiderpool` IPAM
//! plugin binary (as a main plugin would exec it), 20 at a time, against the real agent and a
//! 200-address pool. Every ADD succeeds, the 200 addresses are distinct and are exactly the
//! pool's; the 201st ADD fails with CNI code 999 and a message naming the exhausted pool.
//! The IPAM plugin does not touch the netns on ADD, so this needs no root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{RunningAgent, pool, spiderpool_plugin};
use serde_json::{Value, json};

const POOL_NAME: &str = "pool-200";
const PODS: usize = 200;
const PARALLEL: usize = 20;

fn add(plugin: &Path, socket: &Path, log: &Path, pod: &str) -> Output {
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-ens192",
        "type": "macvlan",
        "master": "ens192",
        "ipam": {
            "type": "spiderpool",
            "default_ipv4_ippool": [POOL_NAME],
            "ipam_unix_socket_path": socket,
            "log_file_path": log,
        }
    });
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", format!("cid-{pod}"))
        .env("CNI_NETNS", format!("/var/run/netns/{pod}"))
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", plugin.parent().unwrap())
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}"),
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

fn address(out: &Output) -> String {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["ips"][0]["address"].as_str().unwrap().to_owned()
}

/// The pool's 200 addresses: 10.6.100.1 ..= 10.6.100.200.
fn expected() -> BTreeSet<String> {
    (1..=PODS).map(|i| format!("10.6.100.{i}/16")).collect()
}

#[test]
fn two_hundred_plugin_processes_twenty_at_a_time() {
    let plugin = spiderpool_plugin();
    let agent = RunningAgent::start(
        &[("pool.yaml", &pool(POOL_NAME, "10.6.100.1-10.6.100.200"))],
        &[],
    );
    let log = agent.dir.path().join("plugin.log");
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= PODS {
                        return;
                    }
                    let out = add(&plugin, &agent.socket, &log, &format!("pod-{i:03}"));
                    results.lock().unwrap().push((i, out));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut addresses = BTreeSet::new();
    for (i, out) in &results {
        assert!(
            out.status.success(),
            "pod-{i:03}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            addresses.insert(address(out)),
            "duplicate address for pod-{i:03}"
        );
    }
    assert_eq!(addresses, expected());

    // The 201st: the pool is exhausted, and the message says which pool.
    let out = add(&plugin, &agent.socket, &log, "pod-extra");
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 999, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("spiderpool IP allocation error: ")
            && msg.contains(POOL_NAME)
            && msg.contains("all IP addresses used out"),
        "{msg}"
    );

    // The agent's records agree: one per pod.
    let se = agent
        .client()
        .workload_endpoint("default", "pod-123")
        .unwrap();
    assert_eq!(se.current.uid, "uid-pod-123");
    let out = Command::new(common::AGENT)
        .arg("dump")
        .arg("--socket")
        .arg(&agent.socket)
        .output()
        .unwrap();
    let dump: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dump["pools"][0]["status"]["allocatedIPCount"], PODS);
    assert_eq!(dump["endpoints"].as_array().map(Vec::len), Some(PODS));
}

/// The same load with the durable local store, while the agent is `kill -9`ed and restarted
/// five times (after 30, 60, 90, 120 and 160 successful ADDs). A plugin that finds the agent
/// gone fails with code 11 and its ADD is retried for the same pod, as a runtime does. In the
/// end every pod has one address, all distinct; every address the plugin printed is the one
/// the agent recorded (an ADD committed just before a crash is answered again, not
/// re-allocated); the pool holds exactly 200 records and the 201st ADD fails.
#[test]
fn kill_nine_during_the_load_never_duplicates() {
    let plugin = spiderpool_plugin();
    let agent = Mutex::new(RunningAgent::start(
        &[("pool.yaml", &pool(POOL_NAME, "10.6.100.1-10.6.100.200"))],
        &["--store", "local"],
    ));
    let (socket, log) = {
        let a = agent.lock().unwrap();
        (a.socket.clone(), a.dir.path().join("plugin.log"))
    };
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let transient = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for threshold in [30, 60, 90, 120, 160] {
                // Bounded, so a worker that panicked cannot hang the test here.
                for _ in 0..60_000 {
                    if done.load(Ordering::SeqCst) >= threshold {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                let mut a = agent.lock().unwrap();
                a.kill();
                a.restart();
            }
        });
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= PODS {
                        return;
                    }
                    let pod = format!("pod-{i:03}");
                    let mut attempts = 0;
                    let out = loop {
                        let out = add(&plugin, &socket, &log, &pod);
                        let code = serde_json::from_slice::<Value>(&out.stdout)
                            .ok()
                            .and_then(|v| v["code"].as_u64());
                        attempts += 1;
                        if code == Some(11) && attempts < 2000 {
                            transient.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            continue;
                        }
                        break out;
                    };
                    results.lock().unwrap().push((pod, out));
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let agent = agent.into_inner().unwrap();
    let client = agent.client();
    let mut addresses = BTreeSet::new();
    for (pod, out) in results.into_inner().unwrap() {
        assert!(
            out.status.success(),
            "{pod}: {}\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            agent.log_text()
        );
        let addr = address(&out);
        let se = client.workload_endpoint("default", &pod).unwrap();
        assert_eq!(
            se.current.ips[0].ipv4.as_deref(),
            Some(addr.as_str()),
            "{pod}"
        );
        assert!(addresses.insert(addr), "duplicate address for {pod}");
    }
    assert_eq!(addresses, expected());
    println!(
        "{} ADDs retried while the agent was down",
        transient.load(Ordering::SeqCst)
    );

    let out = add(&plugin, &socket, &log, "pod-extra");
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 999, "{err}");
    let out = Command::new(common::AGENT)
        .arg("dump")
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    let dump: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dump["pools"][0]["status"]["allocatedIPCount"], PODS);
    assert_eq!(dump["endpoints"].as_array().map(Vec::len), Some(PODS));
}
