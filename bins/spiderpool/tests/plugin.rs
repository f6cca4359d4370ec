//! The real `spiderpool` binary, run as a container runtime runs it (CNI env vars + stdin),
//! against a fake agent on a temporary UNIX socket that records every request and answers with
//! canned JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

const ADD_OK: &str = r#"{"ips":[{"version":4,"address":"10.6.100.1/16","ipPool":"pool-1000","gateway":"10.6.0.1","nic":"eth0"}],"routes":[{"ifName":"eth0","dst":"0.0.0.0/0","gw":"10.6.0.1"}]}"#;

/// One request as the fake agent saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    head: String,
    body: String,
}

type Answer = Box<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;

struct FakeAgent {
    dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAgent {
    /// Serves `answer(method, path)` forever on a fresh socket.
    fn start(answer: Answer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("spiderpool.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let req = read_request(&mut conn);
                let (status, body) = answer(&req.method, &req.path);
                rec.lock().unwrap().push(req);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        FakeAgent { dir, socket, seen }
    }

    /// The standard agent: healthy, allocates `ADD_OK`, releases.
    fn healthy() -> Self {
        Self::start(Box::new(|method, path| match (method, path) {
            ("GET", "/v1/ipam/healthy") => (200, String::new()),
            ("POST", "/v1/ipam/ip") => (200, ADD_OK.to_owned()),
            ("DELETE", "/v1/ipam/ip") => (200, String::new()),
            _ => (404, "\"not found\"".to_owned()),
        }))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("spiderpool.log")
    }
}

fn read_request(conn: &mut UnixStream) -> Seen {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = conn.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.parse::<usize>().unwrap());
            if buf.len() >= end + 4 + len || n == 0 {
                break (head, text[end + 4..].to_owned());
            }
        } else if n == 0 {
            break (text, String::new());
        }
    };
    let mut first = head.split(' ');
    Seen {
        method: first.next().unwrap_or_default().to_owned(),
        path: first.next().unwrap_or_default().to_owned(),
        head: head.clone(),
        body,
    }
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn base_env(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", "cid-perf-0000".to_owned()),
        ("CNI_NETNS", "/var/run/netns/spipam".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/opt/cni/bin".to_owned()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=perf-pod-0000;K8S_POD_INFRA_CONTAINER_ID=cid-perf-0000;K8S_POD_UID=9666672f-uid".to_owned(),
        ),
    ]
}

fn run(env: &[(&str, String)], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spiderpool"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The plugin may exit without reading stdin (VERSION, bad environment): a broken pipe
    // here is expected, not a failure.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// The observed upstream stdin (spec upstream-observed §2.1), with our socket and log file.
fn stdin(version: &str, socket: &Path, log: &Path, extra_ipam: &str) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"macvlan-ens192","type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{{"type":"spiderpool","default_ipv4_ippool":["pool-1000"],"ipam_unix_socket_path":"{}","log_file_path":"{}","log_level":"debug"{extra_ipam}}}}}"#,
        socket.display(),
        log.display()
    )
}

fn error_json(out: &Run) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", out.stdout))
}

const UPSTREAM_031: &str = "{\n    \"cniVersion\": \"0.3.1\",\n    \"ips\": [\n        {\n            \"address\": \"10.6.100.1/16\",\n            \"gateway\": \"10.6.0.1\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"0.0.0.0/0\",\n            \"gw\": \"10.6.0.1\"\n        }\n    ],\n    \"dns\": {}\n}";

#[test]
fn add_prints_the_result_in_each_cni_version() {
    let agent = FakeAgent::healthy();
    let v04 = "{\n    \"cniVersion\": \"VER\",\n    \"ips\": [\n        {\n            \"version\": \"4\",\n            \"address\": \"10.6.100.1/16\",\n            \"gateway\": \"10.6.0.1\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"0.0.0.0/0\",\n            \"gw\": \"10.6.0.1\"\n        }\n    ],\n    \"dns\": {}\n}";
    let v1 = "{\n    \"cniVersion\": \"VER\",\n    \"ips\": [\n        {\n            \"address\": \"10.6.100.1/16\",\n            \"gateway\": \"10.6.0.1\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"0.0.0.0/0\",\n            \"gw\": \"10.6.0.1\"\n        }\n    ]\n}";
    for (version, shape) in [
        ("0.3.0", v04),
        ("0.3.1", v04),
        ("0.4.0", v04),
        ("1.0.0", v1),
        ("1.1.0", v1),
    ] {
        let out = run(
            &base_env("ADD"),
            &stdin(version, &agent.socket, &agent.log_file(), ""),
        );
        assert_eq!(out.code, 0, "{version}: {} {}", out.stdout, out.stderr);
        assert_eq!(out.stdout, shape.replace("VER", version), "{version}");
        assert!(out.stderr.is_empty(), "{version}: {}", out.stderr);
    }
    // Upstream's 0.3.1 output is the same but for `ips[].version`, which the 0.3.x layout
    // requires and upstream omits (docs/cni.md, "Upstream quirk not reproduced").
    let out = run(
        &base_env("ADD"),
        &stdin("0.3.1", &agent.socket, &agent.log_file(), ""),
    );
    assert_eq!(
        out.stdout.replace("            \"version\": \"4\",\n", ""),
        UPSTREAM_031
    );
    // Logs went to the file, never to stdout.
    let log = std::fs::read_to_string(agent.log_file()).unwrap();
    assert!(log.contains(" INFO spiderpool["), "{log}");
    assert!(
        log.contains("ADD cid-perf-0000 eth0: allocated 10.6.100.1/16"),
        "{log}"
    );
}

#[test]
fn add_sends_pod_identity_pools_and_local_pod_info() {
    let agent = FakeAgent::healthy();
    let out = run(
        &base_env("ADD"),
        &stdin(
            "1.0.0",
            &agent.socket,
            &agent.log_file(),
            r#","default_ipv6_ippool":["v6-a","v6-b"],"cleangateway":true,"match_master_subnet":true"#,
        ),
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    let seen = agent.seen();
    assert_eq!(
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect::<Vec<_>>(),
        ["GET /v1/ipam/healthy", "POST /v1/ipam/ip"]
    );
    let post = &seen[1];
    assert!(post.head.contains("\r\nContent-Type: application/json"));
    assert!(post.head.contains("\r\nConnection: close"));
    let body: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        body,
        json!({"containerID": "cid-perf-0000", "ifName": "eth0",
               "netNamespace": "/var/run/netns/spipam", "podNamespace": "default",
               "podName": "perf-pod-0000", "podUID": "9666672f-uid",
               "defaultIPv4IPPool": ["pool-1000"], "defaultIPv6IPPool": ["v6-a", "v6-b"],
               "cleanGateway": true, "matchMasterSubnet": true})
    );

    // Local mode: no K8S_* args; labels and annotations from args.cni and runtimeConfig.
    let mut env = base_env("ADD");
    env.retain(|(k, _)| *k != "CNI_ARGS");
    let conf = stdin("1.0.0", &agent.socket, &agent.log_file(), "").replacen(
        r#""type":"macvlan","#,
        r#""type":"macvlan","args":{"cni":{"labels":{"app":"web"},"annotations":{"ipam.spidernet.io/ippool":"{\"ipv4\":[\"pool-1000\"]}"}}},"runtimeConfig":{"podLabels":{"app":"ignored","tier":"front"}},"#,
        1,
    );
    let out = run(&env, &conf);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let body: Value = serde_json::from_str(&agent.seen()[3].body).unwrap();
    assert_eq!(body["podNamespace"], "default");
    assert_eq!(body["podName"], "cid-perf-0000");
    assert_eq!(body["podUID"], "cid-perf-0000");
    assert_eq!(
        body["pod"],
        json!({"labels": {"app": "web", "tier": "front"},
               "annotations": {"ipam.spidernet.io/ippool": "{\"ipv4\":[\"pool-1000\"]}"}})
    );
}

#[test]
fn add_errors_map_to_cni_codes() {
    let full = FakeAgent::start(Box::new(|method, _| match method {
        "GET" => (200, String::new()),
        _ => (500, "\"all IP addresses used out\"".to_owned()),
    }));
    let out = run(
        &base_env("ADD"),
        &stdin("0.3.1", &full.socket, &full.log_file(), ""),
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "{\n    \"code\": 999,\n    \"msg\": \"spiderpool IP allocation error: all IP addresses used out\"\n}"
    );

    // The agent is not there at all.
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.sock");
    let out = run(
        &base_env("ADD"),
        &stdin("0.3.1", &gone, &dir.path().join("l.log"), ""),
    );
    assert_eq!(out.code, 1);
    let e = error_json(&out);
    assert_eq!(e["code"], 11);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains(&gone.display().to_string()), "{msg}");
    assert!(msg.contains("try again later"), "{msg}");

    // Up but unhealthy.
    let sick = FakeAgent::start(Box::new(|_, _| (500, "\"starting\"".to_owned())));
    let out = run(
        &base_env("ADD"),
        &stdin("0.3.1", &sick.socket, &sick.log_file(), ""),
    );
    let e = error_json(&out);
    assert_eq!(e["code"], 11);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .starts_with("unhealthy spiderpool-agent backend")
    );
    assert_eq!(sick.seen().len(), 1, "no POST after a failed health check");

    // Addresses only for another NIC.
    let other = FakeAgent::start(Box::new(|method, _| match method {
        "GET" => (200, String::new()),
        _ => (200, ADD_OK.replace("\"nic\":\"eth0\"", "\"nic\":\"net1\"")),
    }));
    let out = run(
        &base_env("ADD"),
        &stdin("0.3.1", &other.socket, &other.log_file(), ""),
    );
    assert_eq!(
        out.stdout,
        "{\n    \"code\": 999,\n    \"msg\": \"no Interface eth0 IP allocation found\"\n}"
    );
}

#[test]
fn bad_env_stdin_and_version() {
    let agent = FakeAgent::healthy();
    let good = stdin("0.3.1", &agent.socket, &agent.log_file(), "");
    let mut env = base_env("ADD");
    env.retain(|(k, _)| *k != "CNI_IFNAME");
    let out = run(&env, &good);
    assert_eq!(out.code, 1);
    assert_eq!(error_json(&out)["code"], 4);
    assert_eq!(
        error_json(&out)["msg"],
        "required env variables [CNI_IFNAME] missing"
    );

    let out = run(&base_env("ADD"), "{\"cniVersion\": ");
    assert_eq!(error_json(&out)["code"], 6);

    let out = run(&base_env("ADD"), &good.replace("0.3.1", "0.7.0"));
    let e = error_json(&out);
    assert_eq!(e["code"], 1);
    assert_eq!(e["msg"], "incompatible CNI versions");

    let out = run(
        &base_env("ADD"),
        &good.replace(r#""log_level":"debug""#, r#""clean_gateway":"yes""#),
    );
    let e = error_json(&out);
    assert_eq!(e["code"], 7);
    assert!(
        e["msg"].as_str().unwrap().contains("\"clean_gateway\""),
        "{e}"
    );
    assert!(agent.seen().is_empty(), "no request on bad input");
}

#[test]
fn del_releases_and_is_best_effort() {
    let agent = FakeAgent::healthy();
    // DEL without CNI_NETNS (the netns is gone).
    let mut env = base_env("DEL");
    env.retain(|(k, _)| *k != "CNI_NETNS");
    let out = run(&env, &stdin("0.3.1", &agent.socket, &agent.log_file(), ""));
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    let seen = agent.seen();
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(seen[1].path, "/v1/ipam/ip");
    let body: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(
        body,
        json!({"containerID": "cid-perf-0000", "ifName": "eth0", "podNamespace": "default",
               "podName": "perf-pod-0000", "podUID": "9666672f-uid"})
    );

    // The agent refuses (address already gone...): DEL still succeeds.
    let refusing = FakeAgent::start(Box::new(|method, _| match method {
        "GET" => (200, String::new()),
        _ => (500, "\"no endpoint\"".to_owned()),
    }));
    let out = run(
        &base_env("DEL"),
        &stdin("0.3.1", &refusing.socket, &refusing.log_file(), ""),
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    let log = std::fs::read_to_string(refusing.log_file()).unwrap();
    assert!(
        log.contains("agent refused to release, ignored: no endpoint"),
        "{log}"
    );

    // No agent: code 11, so the runtime retries instead of leaking the address.
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &base_env("DEL"),
        &stdin(
            "0.3.1",
            &dir.path().join("gone.sock"),
            &dir.path().join("l.log"),
            "",
        ),
    );
    assert_eq!(out.code, 1);
    assert_eq!(error_json(&out)["code"], 11);
}

#[test]
fn check_gc_status_and_version() {
    let agent = FakeAgent::healthy();
    let out = run(
        &base_env("CHECK"),
        &stdin("0.4.0", &agent.socket, &agent.log_file(), ""),
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    let out = run(
        &base_env("CHECK"),
        &stdin("0.3.1", &agent.socket, &agent.log_file(), ""),
    );
    assert_eq!(error_json(&out)["code"], 1);

    let cmd_only = |c: &str| {
        vec![
            ("CNI_COMMAND", c.to_owned()),
            ("CNI_PATH", "/opt/cni/bin".to_owned()),
        ]
    };
    let out = run(
        &cmd_only("STATUS"),
        &stdin("1.1.0", &agent.socket, &agent.log_file(), ""),
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    let dir = tempfile::tempdir().unwrap();
    let down = stdin(
        "1.1.0",
        &dir.path().join("gone.sock"),
        &dir.path().join("l.log"),
        "",
    );
    let out = run(&cmd_only("STATUS"), &down);
    let e = error_json(&out);
    assert_eq!(
        (e["code"].clone(), e["msg"].clone()),
        (json!(50), json!("plugin not available"))
    );
    let out = run(&cmd_only("STATUS"), &down.replace("1.1.0", "1.0.0"));
    assert_eq!(error_json(&out)["code"], 1);
    let out = run(&cmd_only("GC"), &down);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));

    let out = run(&[("CNI_COMMAND", "VERSION".to_owned())], "");
    assert_eq!(
        out.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
}

#[test]
fn logs_to_stderr_never_to_stdout() {
    let agent = FakeAgent::healthy();
    let conf = stdin("1.0.0", &agent.socket, Path::new("stderr"), "");
    let out = run(&base_env("ADD"), &conf);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("{\n    \"cniVersion\": \"1.0.0\""));
    assert!(out.stderr.contains(" DEBUG spiderpool["), "{}", out.stderr);
    assert!(
        out.stderr.contains("ADD pod default/perf-pod-0000"),
        "{}",
        out.stderr
    );
}

/// An ADD answer asking for both probes on `eth0`.
const ADD_DETECT: &str = r#"{"ips":[{"version":4,"address":"10.6.100.1/16","ipPool":"pool-1000","gateway":"10.6.0.1","nic":"eth0","enableGatewayDetection":true,"enableIPConflictDetection":true}],"routes":[{"ifName":"eth0","dst":"0.0.0.0/0","gw":"10.6.0.1"}]}"#;

#[test]
fn a_failed_detection_releases_every_address_of_the_pod() {
    // The netns cannot be opened, so no probe can run (no root needed): the ADD fails with
    // code 8, after giving the pod's addresses back with DELETE /v1/ipam/ips.
    for (release_status, details) in [(200, false), (521, true)] {
        let agent = FakeAgent::start(Box::new(move |method, path| match (method, path) {
            ("GET", "/v1/ipam/healthy") => (200, String::new()),
            ("POST", "/v1/ipam/ip") => (200, ADD_DETECT.to_owned()),
            ("DELETE", "/v1/ipam/ips") => (release_status, "\"release forbidden\"".to_owned()),
            _ => (404, "\"not found\"".to_owned()),
        }));
        let mut env = base_env("ADD");
        env.retain(|(k, _)| *k != "CNI_NETNS");
        env.push(("CNI_NETNS", "/nonexistent/netns/pod".to_owned()));
        let out = run(&env, &stdin("1.0.0", &agent.socket, &agent.log_file(), ""));
        assert_eq!(out.code, 1, "{} {}", out.stdout, out.stderr);
        let err = error_json(&out);
        assert_eq!(err["code"], 8, "{err}");
        assert!(
            err["msg"]
                .as_str()
                .unwrap()
                .contains("/nonexistent/netns/pod"),
            "{err}"
        );
        assert_eq!(err.get("details").is_some(), details, "{err}");
        let seen = agent.seen();
        let release = seen
            .iter()
            .find(|s| s.method == "DELETE" && s.path == "/v1/ipam/ips")
            .unwrap_or_else(|| panic!("no DELETE /v1/ipam/ips in {seen:?}"));
        let body: Value = serde_json::from_str(release.body.trim()).unwrap();
        assert_eq!(
            body,
            json!({"isReleaseConflictIPs": true, "containerID": "cid-perf-0000",
                   "netNamespace": "/nonexistent/netns/pod", "podNamespace": "default",
                   "podName": "perf-pod-0000", "podUID": "9666672f-uid"})
        );
    }
}

/// `base_env(command)` with `key` replaced by `value`.
fn env_with(command: &str, key: &'static str, value: &str) -> Vec<(&'static str, String)> {
    let mut env = base_env(command);
    env.retain(|(k, _)| *k != key);
    env.push((key, value.to_owned()));
    env
}

#[test]
fn the_plugins_own_netns_is_refused_before_the_agent_is_asked() {
    let agent = FakeAgent::healthy();
    let conf = stdin("1.0.0", &agent.socket, &agent.log_file(), "");
    for command in ["ADD", "CHECK"] {
        let out = run(&env_with(command, "CNI_NETNS", "/proc/self/ns/net"), &conf);
        let e = error_json(&out);
        assert_eq!(e["code"], 8, "{command}: {}", out.stdout);
        assert_eq!(
            e["msg"],
            "plugin's netns and netns from CNI_NETNS should not be the same"
        );
    }
    assert!(agent.seen().is_empty(), "{:?}", agent.seen());
    // A netns mount point left behind (an empty regular file): code 8 before allocating.
    let dir = tempfile::tempdir().unwrap();
    let leftover = dir.path().join("cni-1234");
    std::fs::write(&leftover, b"").unwrap();
    let leftover = leftover.to_str().unwrap().to_owned();
    let out = run(&env_with("ADD", "CNI_NETNS", &leftover), &conf);
    let e = error_json(&out);
    assert_eq!(e["code"], 8, "{}", out.stdout);
    assert_eq!(
        e["msg"],
        format!("CNI_NETNS {leftover} is not a network namespace but a regular file")
    );
    assert!(agent.seen().is_empty(), "{:?}", agent.seen());
    // DEL does not touch the netns: it still releases.
    let out = run(&env_with("DEL", "CNI_NETNS", "/proc/self/ns/net"), &conf);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
}

#[test]
fn a_log_path_next_to_a_library_is_refused_and_nothing_is_deleted() {
    let agent = FakeAgent::healthy();
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libfoo.so");
    let so6 = dir.path().join("libfoo.so.6");
    std::fs::write(&lib, b"").unwrap();
    std::fs::write(&so6, b"ELF").unwrap();
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&so6)
        .unwrap()
        .set_modified(month_ago)
        .unwrap();
    let conf = stdin(
        "1.0.0",
        &agent.socket,
        &lib,
        r#","log_file_max_age":1,"log_file_max_count":1"#,
    );
    let out = run(&base_env("ADD"), &conf);
    let e = error_json(&out);
    assert_eq!(e["code"], 7, "{}", out.stdout);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .starts_with("invalid ipam configuration key \"log_file_path\": log file"),
        "{}",
        out.stdout
    );
    assert!(e["msg"].as_str().unwrap().contains("shared library"));
    assert!(agent.seen().is_empty());
    // DEL still releases (logging to stderr, saying why) and leaves the library alone.
    let out = run(&base_env("DEL"), &conf);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert!(out.stderr.contains("logging to stderr"), "{}", out.stderr);
    assert_eq!(std::fs::read(&so6).unwrap(), b"ELF");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_forged_pod_identity_is_refused_with_code_4() {
    let agent = FakeAgent::healthy();
    let conf = stdin("1.0.0", &agent.socket, &agent.log_file(), "");
    for (args, key) in [
        (
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=a\nb",
            "K8S_POD_NAME",
        ),
        ("K8S_POD_NAMESPACE=a/b;K8S_POD_NAME=c", "K8S_POD_NAMESPACE"),
        ("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b/c", "K8S_POD_NAME"),
        ("K8S_POD_NAME=web;K8S_POD_UID=x\ny", "K8S_POD_UID"),
    ] {
        for command in ["ADD", "DEL"] {
            let out = run(&env_with(command, "CNI_ARGS", args), &conf);
            let e = error_json(&out);
            assert_eq!(e["code"], 4, "{command} {args:?}: {}", out.stdout);
            let msg = e["msg"].as_str().unwrap();
            assert!(
                msg.starts_with(&format!("invalid {key} in CNI_ARGS: ")),
                "{msg}"
            );
        }
    }
    assert!(agent.seen().is_empty());
    let log = std::fs::read_to_string(agent.log_file()).unwrap_or_default();
    assert!(!log.lines().any(|l| l == "b"), "a forged log line: {log}");
}

#[test]
fn status_lines_name_the_command_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l.log");
    let down = stdin("1.1.0", &dir.path().join("gone.sock"), &log, "");
    let env = vec![
        ("CNI_COMMAND", "STATUS".to_owned()),
        ("CNI_PATH", "/opt/cni/bin".to_owned()),
    ];
    let out = run(&env, &down);
    assert_eq!(error_json(&out)["code"], 50);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("] STATUS: agent not available: "), "{text}");
    assert!(!text.contains("STATUS: STATUS:"), "{text}");
}
