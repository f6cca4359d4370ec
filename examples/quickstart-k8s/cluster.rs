//! The one-node cluster of a run and its cleanup.
//!
//! Everything is provisioned by the project's scripts (`hack/images.sh`, `hack/helm.sh`,
//! `hack/testbin.sh`, `hack/cluster.sh`); the [`Cluster`] guard exists before the cluster is
//! started, so a failure half-way, an error in any later step or Ctrl-C all end in
//! `hack/cluster.sh down`, which also undoes what the node changed on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use spiderpool_examples::shell::{run, run_with};

/// Keep the cluster after the run (for poking at it); `hack/cluster.sh down DIR` removes it.
pub const KEEP_ENV: &str = "SPIDERPOOL_KEEP_CLUSTER";

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
    pub fn start(repo: &Path, dir: &Path) -> Result<Cluster, String> {
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
                .env("CLUSTER_IMAGES", list.join(" ")),
            false,
        )?;
        cluster.kubeconfig = PathBuf::from(last_line(&out)?);
        Ok(cluster)
    }
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

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("qsk8s-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
