//! The one-node cluster of a run and its cleanup.
//!
//! Everything is provisioned by the project's scripts (`hack/images.sh`, `hack/helm.sh`,
//! `hack/testbin.sh`, `hack/cluster.sh`); the [`Cluster`] guard exists before the cluster is
//! started, so a failure half-way, an error in any later step or Ctrl-C all end in
//! `hack/cluster.sh down`, which also undoes what the node changed on the host.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::kube::Kube;
use crate::shell::{run, run_with};

/// Keep the cluster after the run (for poking at it); `hack/cluster.sh down DIR` removes it.
pub const KEEP_ENV: &str = "SPIDERPOOL_KEEP_CLUSTER";

/// Serialises clusters between processes: the node's namespace, its host link and the
/// underlay router's address are the same for every run.
const LOCK: &str = "/run/lock/spiderpool-cluster.lock";

/// The underlay router's address on the host side of the node's `ens192`, where the
/// apiserver listens.
pub const ROUTER: &str = "10.6.0.1";

/// The seed's SpiderIPPool as it must be on this node: the seed's range holds the node's own
/// `ens192` address, which a pod must never get (the 33rd pod would cut the node off).
pub const SEED_POOL_ON_NODE: &str = r#"apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  excludeIPs:
  - 10.6.212.132
  subnet: 10.6.0.0/16
"#;

/// The project's root (scripts, chart, manifests): the parent of the examples package.
pub fn repo_root() -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"));
    examples
        .parent()
        .map_or_else(|| examples.to_path_buf(), Path::to_path_buf)
}

/// A running one-node cluster, torn down on drop.
pub struct Cluster {
    /// The project's root (scripts, chart, manifests).
    pub repo: PathBuf,
    /// The cluster's scratch directory (`hack/cluster.sh`'s DIR).
    pub dir: PathBuf,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kubectl of the same release as the apiserver.
    pub kubectl: PathBuf,
    /// Helm.
    pub helm: PathBuf,
    keep: bool,
    /// Multus is left to the chart (`multus.multusCNI.install=true`), not set up by the node.
    pub chart_multus: bool,
    /// Held until the cluster is down (dropped after `Drop::drop`).
    _lock: Flock<File>,
}

/// The last non-empty line a provisioning script printed (its result, by convention).
fn last_line(out: &str) -> Result<String, String> {
    out.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "a provisioning script printed nothing".to_owned())
}

/// The image tarballs `hack/images.sh` printed (`NAME=PATH` lines).
fn image_tarballs(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(_, path)| PathBuf::from(path))
        .filter(|p| p.extension().is_some_and(|e| e == "tar") && p.is_file())
        .collect()
}

impl Cluster {
    /// Builds what is missing (images, Helm, kubectl; cached after the first run) and starts
    /// the cluster with our images imported into the node's containerd.
    /// Waits for any other run's cluster to be gone first. Multus is the node's own.
    pub fn start(repo: &Path, dir: &Path) -> Result<Cluster, String> {
        Cluster::start_with(repo, dir, false)
    }

    /// As [`Cluster::start`]; with `chart_multus`, the node starts with its default network
    /// only and [`Cluster::chart_values`] has our chart install Multus.
    pub fn start_with(repo: &Path, dir: &Path, chart_multus: bool) -> Result<Cluster, String> {
        let file = File::create(LOCK).map_err(|e| format!("{LOCK}: {e}"))?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| format!("{LOCK}: {e}"))?;
        let script = |name: &str| repo.join("hack").join(name).to_string_lossy().into_owned();
        println!("  building the images (hack/images.sh; cached when nothing changed)");
        let images_out = run(&[&script("images.sh")], false)?;
        let images = image_tarballs(&images_out);
        if images.len() < 4 {
            return Err(format!(
                "hack/images.sh printed {} image tarballs, expected agent, controller, pause and \
                 testpod:\n{images_out}",
                images.len()
            ));
        }
        let helm = PathBuf::from(last_line(&run(&[&script("helm.sh")], false)?)?);
        let testbin = PathBuf::from(last_line(&run(&[&script("testbin.sh")], false)?)?);
        let mut cluster = Cluster {
            repo: repo.to_path_buf(),
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("cp").join("kubeconfig"),
            kubectl: testbin.join("kubectl"),
            helm,
            keep: std::env::var_os(KEEP_ENV).is_some(),
            chart_multus,
            _lock: lock,
        };
        let list: Vec<String> = images
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        println!(
            "  $ CLUSTER_IMAGES=... hack/cluster.sh up {}",
            dir.to_string_lossy()
        );
        let out = run_with(
            Command::new(script("cluster.sh"))
                .arg("up")
                .arg(dir)
                .env("CLUSTER_IMAGES", list.join(" "))
                .env(
                    "CLUSTER_MULTUS",
                    if chart_multus { "chart" } else { "node" },
                ),
            false,
        )?;
        cluster.kubeconfig = PathBuf::from(last_line(&out)?);
        Ok(cluster)
    }
}

impl Cluster {
    /// `helm install spiderpool` of our chart into kube-system with [`Cluster::chart_values`],
    /// waiting for its pods and the init Job; returns Helm's output.
    pub fn install_chart(&self, k: &Kube) -> Result<String, String> {
        self.install_chart_with(k, &[])
    }

    /// [`Cluster::install_chart`] with more Helm flags (`--set ...`) after this node's.
    pub fn install_chart_with(&self, k: &Kube, extra: &[&str]) -> Result<String, String> {
        let chart = self.repo.join("charts").join("spiderpool");
        let chart = chart.to_string_lossy();
        let mut args = vec![
            "install",
            "spiderpool",
            &chart,
            "-n",
            "kube-system",
            "--wait",
            "--timeout",
            "5m",
        ];
        let values = self.chart_values()?;
        args.extend(values.iter().map(String::as_str));
        args.extend(extra);
        k.helm(&args)
    }

    /// `helm install` flags fitting this node: its CNI directories, IPv4 only, and the
    /// apiserver's own address for our pods.
    pub fn chart_values(&self) -> Result<Vec<String>, String> {
        let dir = self.dir.to_string_lossy();
        // The node runs no kube-proxy, so the `kubernetes` Service's address is not routed:
        // our pods are pointed at the apiserver itself, as on any kube-proxy-free cluster.
        let env = format!(
            r#"[{{"name":"KUBERNETES_SERVICE_HOST","value":"{ROUTER}"}},{{"name":"KUBERNETES_SERVICE_PORT","value":"{}"}}]"#,
            apiserver_port(&self.kubeconfig)?
        );
        let mut v = vec![
            "--set".to_owned(),
            format!("global.cniBinHostPath={dir}/cni/bin"),
            "--set".to_owned(),
            format!("global.cniConfHostPath={dir}/cni/net.d"),
            "--set".to_owned(),
            "ipam.enableIPv6=false".to_owned(),
            // `auto` reads the first non-Multus file of the CNI configuration directory, which
            // this node does not have (the default network is Multus' clusterNetwork); the
            // cluster's pod CIDR comes from kubeadm-config, as `cluster` reads it.
            "--set".to_owned(),
            "coordinator.podCIDRType=cluster".to_owned(),
        ];
        let mut components = vec!["spiderpoolAgent", "spiderpoolController", "spiderpoolInit"];
        if self.chart_multus {
            v.extend([
                "--set".to_owned(),
                "multus.multusCNI.install=true".to_owned(),
            ]);
            components.push("multus.multusCNI");
        }
        for component in components {
            v.push("--set-json".to_owned());
            v.push(format!("{component}.extraEnv={env}"));
        }
        Ok(v)
    }
}

/// The port in the kubeconfig's `server:` line.
fn apiserver_port(kubeconfig: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(kubeconfig)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    text.lines()
        .find_map(|l| l.split("server: \"https://").nth(1))
        .and_then(|rest| rest.split('"').next())
        .and_then(|hostport| hostport.rsplit_once(':'))
        .map(|(_, port)| port.to_owned())
        .ok_or_else(|| format!("no server in {}", kubeconfig.display()))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep {
            println!(
                "\n{KEEP_ENV} is set: the cluster stays up (KUBECONFIG={}); remove it with \
                 `hack/cluster.sh down {}`",
                self.kubeconfig.display(),
                self.dir.display()
            );
            return;
        }
        println!("\n== cleanup: hack/cluster.sh down {}", self.dir.display());
        let status = Command::new(self.repo.join("hack").join("cluster.sh"))
            .arg("down")
            .arg(&self.dir)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "quickstart-k8s: cleanup failed ({status:?}); run `hack/cluster.sh down {}`",
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_output_is_read_by_its_conventions() {
        assert_eq!(last_line("building\n/x/helm\n\n").unwrap(), "/x/helm");
        assert!(last_line("\n \n").is_err());
        let dir = tempfile_dir();
        let tar = dir.join("agent.tar");
        std::fs::write(&tar, b"x").unwrap();
        let out = format!(
            "log line\nagent={}\npause=/missing.tar\nNOTE=x\n",
            tar.display()
        );
        assert_eq!(image_tarballs(&out), vec![tar]);
    }

    #[test]
    fn the_apiserver_port_is_read_from_the_kubeconfig() {
        let dir = tempfile_dir();
        let kc = dir.join("kubeconfig");
        std::fs::write(
            &kc,
            "clusters:\n- cluster: {server: \"https://10.6.0.1:17443\", x: y}\n",
        )
        .unwrap();
        assert_eq!(apiserver_port(&kc).unwrap(), "17443");
        std::fs::write(&kc, "clusters: []\n").unwrap();
        assert!(apiserver_port(&kc).unwrap_err().contains("no server"));
        assert!(apiserver_port(&dir.join("missing")).is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("qsk8s-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
