//! What the Kubernetes-mode tests share: an agent process on a node, and the network
//! configuration Multus would hand the IPAM plugin.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spiderpool_plugin_support::agent_client::AgentClient;

use super::AGENT;

/// A `spiderpool-agent` in Kubernetes mode (from `$KUBECONFIG`) for one node, its socket and
/// log file in `dir`; killed on drop.
pub struct KubeAgentProcess {
    /// The process.
    pub child: Child,
    /// Its socket.
    pub socket: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl KubeAgentProcess {
    /// Starts the agent for `node` (health probes off) without waiting for it.
    pub fn spawn(dir: &Path, node: &str, level: &str) -> Self {
        let socket = dir.join(format!("{node}.sock"));
        let log = dir.join(format!("{node}.log"));
        let child = Command::new(AGENT)
            .args([
                "--node-name",
                node,
                "--health-port",
                "0",
                "--log-level",
                level,
            ])
            .arg("--socket")
            .arg(&socket)
            .arg("--log-file")
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .expect("agent starts");
        KubeAgentProcess { child, socket, log }
    }

    /// Starts the agent and waits until its socket answers the health check.
    pub fn start(dir: &Path, node: &str, level: &str) -> Self {
        let agent = Self::spawn(dir, node, level);
        agent.wait_healthy();
        agent
    }

    /// Waits (up to 60 s) until the socket answers the health check.
    pub fn wait_healthy(&self) {
        let client = AgentClient::new(&self.socket);
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.healthy().is_err() {
            assert!(
                Instant::now() < deadline,
                "agent {} not healthy: {}",
                self.socket.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KubeAgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The network configuration Multus hands macvlan for a NAD rendered from a
/// SpiderMultusConfig with `pool` (macvlan passes it on to its IPAM plugin unchanged).
pub fn ipam_conf(cni_version: &str, socket: &Path, pool: &str) -> String {
    format!(
        r#"{{"cniVersion":"{cni_version}","name":"macvlan-ens192","type":"macvlan",
            "master":"ens192","mode":"bridge","ipam":{{"type":"spiderpool",
            "default_ipv4_ippool":["{pool}"],"ipam_unix_socket_path":"{}"}}}}"#,
        socket.display()
    )
}
