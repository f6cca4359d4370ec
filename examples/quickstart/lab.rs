//! The seed topology in network namespaces, and its cleanup.
//!
//! Everything the quick start creates is recorded here and removed when the [`Lab`] is
//! dropped: on success, on error, and on Ctrl-C (the handler only sets a flag; the steps
//! check it and unwind, so `Drop` runs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use spiderpool_examples::shell::{INTERRUPTED, check_interrupt, run};

/// `ip -n NS ...`.
pub fn ip(ns: &str, args: &str) -> Result<String, String> {
    let mut v = vec!["ip", "-n", ns];
    v.extend(args.split_whitespace());
    run(&v, false)
}

/// The namespaces, processes and files of one quick-start run.
pub struct Lab {
    /// Namespaces created (deleted on drop).
    netns: Vec<String>,
    /// The agent process (stopped on drop).
    pub agent: Option<Child>,
    /// Scratch directory (removed on drop).
    pub dir: PathBuf,
}

/// Namespace names; fixed so a user can look at them with `ip -n` while the run pauses.
pub const NODE: &str = "spq-node";
/// The underlay router holding the pool gateway.
pub const ROUTER: &str = "spq-router";

impl Lab {
    /// A new lab with a scratch directory.
    pub fn new() -> Result<Lab, String> {
        let dir =
            std::env::temp_dir().join(format!("spiderpool-quickstart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Lab {
            netns: Vec::new(),
            agent: None,
            dir,
        })
    }

    /// Creates a namespace (removing a stale one of the same name from an earlier run).
    pub fn netns(&mut self, name: &str) -> Result<(), String> {
        let _ = run(&["ip", "netns", "del", name], false);
        run(&["ip", "netns", "add", name], false)?;
        if !self.netns.iter().any(|n| n == name) {
            self.netns.push(name.to_owned());
        }
        ip(name, "link set lo up")?;
        Ok(())
    }

    /// Path of a namespace for `CNI_NETNS`.
    pub fn netns_path(name: &str) -> String {
        format!("/var/run/netns/{name}")
    }

    /// Node + router: `ens192` (node, 10.6.212.132/16) cabled to the router's `eth0`
    /// (10.6.0.1/16, the pool gateway). The node forwards (Calico routes pods through it).
    pub fn build_underlay(&mut self) -> Result<(), String> {
        self.netns(NODE)?;
        self.netns(ROUTER)?;
        ip(
            NODE,
            &format!("link add ens192 type veth peer name eth0 netns {ROUTER}"),
        )?;
        ip(NODE, "addr add 10.6.212.132/16 dev ens192")?;
        ip(NODE, "link set ens192 up")?;
        // A node has a default gateway; Calico's proxy ARP for 169.254.1.1 only answers for
        // destinations the node can route elsewhere, so this matters for the pods' eth0 too.
        ip(NODE, "route add default via 10.6.0.1 dev ens192")?;
        ip(ROUTER, "addr add 10.6.0.1/16 dev eth0")?;
        ip(ROUTER, "link set eth0 up")?;
        for key in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"] {
            run(&["ip", "netns", "exec", NODE, "sysctl", "-qw", key], false)?;
        }
        Ok(())
    }

    /// A pod with a Calico-like `eth0`: a veth whose node end (`cali…`) answers ARP by
    /// proxy, a /32 address, and `default via 169.254.1.1`.
    pub fn build_pod(&mut self, pod_ns: &str, cali: &str, eth0_ip: &str) -> Result<(), String> {
        // A re-created pod: delete the old veth pair first. Deleting the old netns alone frees
        // its links asynchronously, and the new `cali…` could still find the old one.
        let _ = ip(NODE, &format!("link del {cali}"));
        self.netns(pod_ns)?;
        ip(
            NODE,
            &format!("link add {cali} type veth peer name eth0 netns {pod_ns}"),
        )?;
        ip(
            NODE,
            &format!("link set {cali} address ee:ee:ee:ee:ee:ee up"),
        )?;
        run(
            &[
                "ip",
                "netns",
                "exec",
                NODE,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{cali}.proxy_arp=1"),
            ],
            false,
        )?;
        ip(
            NODE,
            &format!("route add {eth0_ip}/32 dev {cali} scope link"),
        )?;
        ip(pod_ns, &format!("addr add {eth0_ip}/32 dev eth0"))?;
        ip(pod_ns, "link set eth0 up")?;
        ip(pod_ns, "route add 169.254.1.1 dev eth0 scope link")?;
        ip(pod_ns, "route add default via 169.254.1.1 dev eth0")?;
        Ok(())
    }

    /// Starts the agent in local mode and waits for its socket to answer.
    pub fn start_agent(
        &mut self,
        agent: &Path,
        config: &Path,
        socket: &Path,
    ) -> Result<(), String> {
        let state = self.dir.join("state");
        let log = std::fs::File::create(self.dir.join("agent.log")).map_err(|e| e.to_string())?;
        let child = Command::new(agent)
            .arg("--local-config")
            .arg(config)
            .arg("--state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(socket)
            .arg("--node")
            .arg("controller")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", agent.display()))?;
        self.agent = Some(child);
        let client = spiderpool_plugin_support::agent_client::AgentClient::new(socket);
        let start = Instant::now();
        while client.healthy().is_err() {
            check_interrupt()?;
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "the agent did not answer on {} (log: {})",
                    socket.display(),
                    self.dir.join("agent.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = Command::new("kill").arg(agent.id().to_string()).status();
            let _ = agent.wait();
        }
        // Not `run`: it refuses to start commands once Ctrl-C was pressed.
        for ns in self.netns.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        println!(
            "cleaned up: namespaces {:?}, agent stopped, scratch dir removed",
            self.netns
        );
    }
}
