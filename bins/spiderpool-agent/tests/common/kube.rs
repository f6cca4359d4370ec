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

/// `$KUBECTL`, else `kubectl` from `PATH`.
pub fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned())
}

/// Runs kubectl (on `kubeconfig` when given, else `$KUBECONFIG`); `None` when it could not
/// be started.
pub fn kubectl_try(kubeconfig: Option<&Path>, args: &[&str]) -> Option<std::process::Output> {
    let mut cmd = Command::new(kubectl());
    if let Some(kc) = kubeconfig {
        cmd.env("KUBECONFIG", kc);
    }
    cmd.args(args).output().ok()
}

/// Runs kubectl (on `kubeconfig` when given, else `$KUBECONFIG`) and returns its stdout;
/// panics with its stderr when it fails.
pub fn kubectl_ok(kubeconfig: Option<&Path>, args: &[&str]) -> String {
    let out = kubectl_try(kubeconfig, args).expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl get ...` as rows of cells, header first. Cells are cut at the header's column
/// starts (kubectl aligns them), so an empty cell (no IPv6) stays in its column.
pub fn table(kubeconfig: Option<&Path>, args: &[&str]) -> Vec<Vec<String>> {
    let text = kubectl_ok(kubeconfig, args);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|(i, c)| !c.is_whitespace() && (*i == 0 || header[..*i].ends_with(' ')))
        .map(|(i, _)| i)
        .collect();
    let cut = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(k, &a)| {
                let b = starts
                    .get(k + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(a.min(line.len())..b)
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    std::iter::once(header).chain(lines).map(cut).collect()
}

/// The cell of `column` in `row` (0 is the header).
pub fn cell<'a>(rows: &'a [Vec<String>], row: usize, column: &str) -> &'a str {
    let i = rows[0]
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {:?}", rows[0]));
    &rows[row][i]
}

/// A file of the seed's quick start (examples/quickstart).
pub fn seed(file: &str) -> String {
    format!(
        "{}/../../examples/quickstart/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}
