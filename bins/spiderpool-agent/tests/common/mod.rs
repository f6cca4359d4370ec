//! Helpers shared by the tests that run the real agent with real plugins.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spiderpool_plugin_support::agent_client::AgentClient;
use spiderpool_test_kit::gate::{self, Need};
// Re-exported for the test files: `ip ARGS` and named network namespaces (not every test
// crate uses them).
#[allow(unused_imports)]
pub use spiderpool_test_kit::lab::{NamedNetns as Netns, ip};

/// Kubernetes-mode agents and NAD configurations.
pub mod kube;

/// The agent binary under test.
pub const AGENT: &str = env!("CARGO_BIN_EXE_spiderpool-agent");

/// A SpiderIPPool named `name` over `ips` in 10.6.0.0/16 (gateway 10.6.0.1).
pub fn pool(name: &str, ips: &str) -> String {
    format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: {name}
spec:
  gateway: 10.6.0.1
  ips:
  - {ips}
  subnet: 10.6.0.0/16
"
    )
}

/// Our `spiderpool` IPAM plugin, built beside the agent by `cargo build --workspace` (or
/// `cargo build -p spiderpool`). Binaries of other packages are not built for a test, so a
/// missing one is a setup error, said plainly.
pub fn spiderpool_plugin() -> PathBuf {
    let dir = Path::new(AGENT).parent().unwrap();
    let plugin = dir.join("spiderpool");
    assert!(
        plugin.is_file(),
        "{} is missing: build the IPAM plugin first (`cargo build -p spiderpool`, \
         scripts/test.sh runs `cargo build --workspace`)",
        plugin.display()
    );
    plugin
}

/// An agent process in local mode over a temp config dir and socket; killed on drop.
pub struct RunningAgent {
    /// The process.
    pub child: Option<Child>,
    /// Its socket.
    pub socket: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// The config dir.
    pub config: PathBuf,
    /// The state dir.
    pub state: PathBuf,
    /// Extra arguments (e.g. `--store local`).
    pub extra: Vec<String>,
    /// The temp dir holding everything (also usable by the test).
    pub dir: tempfile::TempDir,
}

impl RunningAgent {
    /// Writes `files` into a new config dir and starts the agent.
    pub fn start(files: &[(&str, &str)], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        for (name, text) in files {
            std::fs::write(config.join(name), text).unwrap();
        }
        let mut agent = RunningAgent {
            child: None,
            socket: dir.path().join("run/spiderpool.sock"),
            log: dir.path().join("agent.log"),
            config,
            state: dir.path().join("state"),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            dir,
        };
        agent.restart();
        agent
    }

    /// (Re)starts the process and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(AGENT)
            .arg("--local-config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--node")
            .arg("test-node")
            .arg("--log-file")
            .arg(&self.log)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = self.client();
        for _ in 0..1000 {
            if client.healthy().is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("the agent exited with {status}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the agent never became healthy; log:\n{}", self.log_text());
    }

    /// SIGKILLs the process (no clean-up on its side).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client of its socket.
    pub fn client(&self) -> AgentClient {
        AgentClient::new(&self.socket).with_timeout(Duration::from_secs(60))
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Debian's macvlan plugin (package containernetworking-plugins).
pub const DEBIAN_MACVLAN: &str = "/usr/lib/cni/macvlan";

/// Whether a root end-to-end test can run here (root, Debian's macvlan, `ip`); else it
/// skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1` (CI).
#[track_caller]
pub fn ready() -> bool {
    gate::ready(&[Need::Root, Need::File(DEBIAN_MACVLAN), Need::Program("ip")])
}
