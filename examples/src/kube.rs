//! kubectl and Helm, as the seed's reader types them.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::shell::{check_interrupt, run_with};
use serde_json::Value;

use crate::cluster::Cluster;

/// kubectl against the run's cluster.
pub struct Kube {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    helm: PathBuf,
    scratch: PathBuf,
}

impl Kube {
    /// kubectl and Helm of `cluster`.
    pub fn of(cluster: &Cluster) -> Kube {
        Kube {
            kubectl: cluster.kubectl.clone(),
            kubeconfig: cluster.kubeconfig.clone(),
            helm: cluster.helm.clone(),
            scratch: cluster.dir.clone(),
        }
    }

    /// `kubectl ARGS`; printed as typed when `show` is set.
    pub fn kubectl(&self, args: &[&str], show: bool) -> Result<String, String> {
        if show {
            println!("~# kubectl {}", args.join(" "));
        }
        run_with(
            Command::new(&self.kubectl)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args),
            false,
        )
    }

    /// `kubectl ARGS` printed with its output, as in the seed.
    pub fn show(&self, args: &[&str]) -> Result<String, String> {
        let out = self.kubectl(args, true)?;
        print!("{out}");
        Ok(out)
    }

    /// `kubectl ARGS -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut v = args.to_vec();
        v.extend(["-o", "json"]);
        let out = self.kubectl(&v, false)?;
        serde_json::from_str(&out).map_err(|e| format!("kubectl {}: {e}", args.join(" ")))
    }

    /// `kubectl apply -f -` of a manifest (kept in the scratch dir under `name`).
    pub fn apply(&self, name: &str, yaml: &str) -> Result<(), String> {
        let file = self.scratch.join(name);
        std::fs::write(&file, yaml).map_err(|e| format!("{}: {e}", file.display()))?;
        let out = self.kubectl(&["apply", "-f", &file.to_string_lossy()], false)?;
        println!("~# kubectl apply -f {name}\n{}", out.trim_end());
        Ok(())
    }

    /// `kubectl exec POD -- CMD...` in the default namespace.
    pub fn exec(&self, pod: &str, cmd: &[&str], show: bool) -> Result<String, String> {
        let mut v = vec!["exec", pod, "--"];
        v.extend(cmd);
        let out = self.kubectl(&v, show)?;
        if show {
            print!("{out}");
        }
        Ok(out)
    }

    /// `helm ARGS` (printed).
    pub fn helm(&self, args: &[&str]) -> Result<String, String> {
        println!("~# helm {}", args.join(" "));
        run_with(
            Command::new(&self.helm)
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args),
            false,
        )
    }
}

/// A Deployment of the test image (`localhost/spiderpool-rs/testpod`) in `default`, with
/// `annotations` on its pods; it stops at once when deleted.
pub fn test_deployment(name: &str, replicas: u32, annotations: &[(&str, &str)]) -> String {
    let annotations: String = if annotations.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("\n        {k}: {v}"))
            .collect();
        format!("\n      annotations:{}", lines.concat())
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}{annotations}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: {name}
        image: localhost/spiderpool-rs/testpod:0.1.0
        imagePullPolicy: Never
"#
    )
}

/// Polls `probe` every 200 ms until it yields a value; fails after `timeout` with the last
/// reason the probe gave (so a failed run says what it was waiting for).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        check_interrupt()?;
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what} (last: {last})"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
