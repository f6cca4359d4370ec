//! Helpers for the plugin's tests: a request-shape fake of the agent's HTTP API on a UNIX
//! socket and the seed's topology; the gate, the CNI harness and the netns helpers are
//! re-exported from `spiderpool-test-kit`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test uses every helper

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spiderpool_netlink::NetNs;
use spiderpool_netlink::link::{self, VethOptions};

/// The seed's SpiderCoordinator as the agent serves it (upstream-observed §1.2).
pub const SEED_AGENT: &str = r#"{"mode":"auto","overlayPodCIDR":["10.233.64.0/18"],"serviceCIDR":["10.233.0.0/18"],"hijackCIDR":["169.254.0.0/16"],"tunePodRoutes":true,"hostRuleTable":500,"podRPFilter":0,"podDefaultRouteNIC":""}"#;

// Re-exported for the test files; not every test crate uses every one.
#[allow(unused_imports)]
pub use spiderpool_test_kit::cni::{Call, Run};
pub use spiderpool_test_kit::gate::{self, Need};
#[allow(unused_imports)]
pub use spiderpool_test_kit::lab::{
    ip_in, ip_script, ns_path, ping, run_in, run_plugin, sysctl, table,
};

/// True when running as root; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1`.
#[track_caller]
pub fn root() -> bool {
    gate::ready(&[Need::Root])
}

/// True when `path` exists; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1`.
#[track_caller]
pub fn have_file(path: &str) -> bool {
    gate::ready(&[Need::File(path)])
}

/// True when `program` is on PATH; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1`.
#[track_caller]
pub fn have(program: &str) -> bool {
    gate::ready(&[Need::Program(program)])
}

/// One request the fake agent received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET /v1/coordinator/config`...
    pub line: String,
    /// The raw head (request line and headers).
    pub head: String,
    /// The body.
    pub body: String,
}

/// A fake spiderpool-agent: answers `GET /v1/coordinator/config` with `answer` (status and
/// body) and `GET /v1/ipam/healthy` with 200, recording every request.
pub struct FakeAgent {
    _dir: tempfile::TempDir,
    /// The socket path.
    pub socket: PathBuf,
    /// (status, body) for the coordinator config.
    pub answer: Arc<Mutex<(u16, String)>>,
    /// Requests seen.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAgent {
    /// Starts the fake with the seed's answer.
    pub fn start() -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("spiderpool.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let answer = Arc::new(Mutex::new((200, SEED_AGENT.to_owned())));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, s) = (answer.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = find(&buf, b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break buf.len(),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end.min(buf.len())..]).into_owned();
                let line = head.lines().next().unwrap_or_default().to_owned();
                s.lock().unwrap().push(Seen {
                    line: line.clone(),
                    head: head.clone(),
                    body,
                });
                let (status, text) = if line.contains("/v1/ipam/healthy") {
                    (200, String::new())
                } else {
                    a.lock().unwrap().clone()
                };
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let reply = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        FakeAgent {
            _dir: dir,
            socket,
            answer,
            seen,
        }
    }

    /// Changes the coordinator-config answer.
    pub fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The seed topology of upstream-observed §1.1: a router with 10.6.0.1, a node with `ens192`
/// 10.6.212.132/16, and a pod with a Calico-like `eth0` (10.233.73.210/32 on a veth whose node
/// end `calitest` answers ARP by proxy).
pub struct Seed {
    /// The underlay router.
    pub router: NetNs,
    /// The node (the plugins run here).
    pub node: NetNs,
    /// The pod.
    pub pod: NetNs,
}

impl Seed {
    /// Builds it.
    pub fn build() -> Seed {
        let router = NetNs::create_anonymous().unwrap();
        let node = NetNs::create_anonymous().unwrap();
        let pod = NetNs::create_anonymous().unwrap();
        let mut nnl = node.route_socket().unwrap();
        let in_router = VethOptions {
            peer_netns: Some(router.as_fd()),
            ..Default::default()
        };
        link::create_veth(&mut nnl, "ens192", "eth0", &in_router).unwrap();
        let in_pod = VethOptions {
            peer_netns: Some(pod.as_fd()),
            ..Default::default()
        };
        link::create_veth(&mut nnl, "calitest", "eth0", &in_pod).unwrap();
        ip_script(
            &router,
            "link set lo up
             addr add 10.6.0.1/16 dev eth0
             link set eth0 up",
        );
        ip_script(
            &node,
            "link set lo up
             addr add 10.6.212.132/16 dev ens192
             link set ens192 up
             route add default via 10.6.0.1 dev ens192
             link set calitest address ee:ee:ee:ee:ee:ee
             link set calitest up
             route add 10.233.73.210 dev calitest scope link",
        );
        sysctl(&node, "net.ipv4.ip_forward", "1");
        sysctl(&node, "net.ipv4.conf.calitest.proxy_arp", "1");
        sysctl(&node, "net.ipv4.neigh.calitest.proxy_delay", "0");
        // rp_filter stays off as in upstream's run; a strict host default would drop
        // replies coming back by another NIC.
        for ns in [&node, &pod, &router] {
            sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
            sysctl(ns, "net.ipv4.conf.default.rp_filter", "0");
        }
        ip_script(
            &pod,
            "link set lo up
             addr add 10.233.73.210/32 dev eth0
             link set eth0 up
             route add 169.254.1.1 dev eth0 scope link
             route add default via 169.254.1.1 dev eth0",
        );
        Seed { router, node, pod }
    }
}

/// The Debian macvlan plugin.
pub const MACVLAN: &str = "/usr/lib/cni/macvlan";

/// The seed's macvlan NAD entry with static IPAM (upstream-observed §1.3 step 1).
pub const MACVLAN_CONF: &str = r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"static","addresses":[{"address":"10.6.212.145/16","gateway":"10.6.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}}"#;

/// Adds net1 with the real macvlan plugin run in the node; returns its result (prevResult).
pub fn add_net1(seed: &Seed, cid: &str, ifname: &str) -> String {
    let path = ns_path(&seed.pod);
    let run = run_plugin(
        MACVLAN,
        Some(&seed.node),
        &Call::add(&path, cid, ifname),
        MACVLAN_CONF,
    );
    assert_eq!(run.code, 0, "macvlan ADD: {} {}", run.stdout, run.stderr);
    run.stdout
}

/// The coordinator entry of the seed's NAD (spec §6.4) with `cniVersion`, `name`, our socket,
/// a log file, `extra` keys and `prevResult`.
pub fn coordinator_conf(
    version: &str,
    socket: &Path,
    log: &Path,
    extra: &str,
    prev: Option<&str>,
) -> String {
    let prev = prev
        .map(|p| format!(r#","prevResult":{p}"#))
        .unwrap_or_default();
    format!(
        r#"{{"cniVersion":"{version}","name":"macvlan-ens192","tunePodRoutes":true,"mode":"auto","type":"coordinator","ipam_unix_socket_path":"{}","logOptions":{{"logFile":"{}"}}{extra}{prev}}}"#,
        socket.display(),
        log.display()
    )
}
