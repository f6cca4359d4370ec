//! The real `spiderpool-controller` binary (webhooks registered by URL, leader election, every
//! controller) on a private control plane: the seed's SMC applied with kubectl, in both of its
//! spellings, goes through the webhooks and yields the seed's NAD; deleting it removes the NAD.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

const SEED_SMC: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-ens192
spec:
  cniType: macvlan
  macvlan:
    master:
    - ens192
    ippools:
      ipv4:
      - 10-6-v4
    vlanID: 0
";

/// The seed's NAD as it comes out through the webhooks: the mutating webhook adds the
/// coordinator block, and the apiserver then applies the CRD's defaults to it (defaulting runs
/// again after a mutating webhook's patch), among them `txQueueLen: 0`, which the renderer
/// emits as upstream's does for a set field. (Without the webhook, `tests/multusconfig.rs`,
/// the block has no `txQueueLen`.)
const SEED_CONFIG: &str = r#"{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,"ipam":{"type":"spiderpool","default_ipv4_ippool":["10-6-v4"]}},{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator"}]}"#;

/// The seed's SMC as its `last-applied-configuration` records it (older spellings).
const SEED_SMC_OLD: &str = r#"{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderMultusConfig","metadata":{"annotations":{},"name":"macvlan-old"},"spec":{"cniType":"macvlan","coordinator":{"podCIDRType":"cluster","tuneMode":"overlay"},"enableCoordinator":true,"macvlan":{"master":["ens192"],"spiderpoolConfigPools":{"IPv4IPPool":["10-6-v4"]},"vlanID":0}}}"#;

struct Controller {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn nad_config(kubeconfig: &Path, ns: &str, name: &str) -> Option<String> {
    let out = kubectl(
        kubeconfig,
        &[
            "get",
            "-n",
            ns,
            "network-attachment-definitions",
            name,
            "-o",
            "json",
        ],
        "",
    );
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.pointer("/spec/config")?.as_str().map(str::to_owned)
}

fn wait(what: &str, ctl: &Controller, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; controller log:\n{}",
            std::fs::read_to_string(&ctl.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs apiserver"]
fn multusconfig_binary_seed_smc_in_both_spellings_through_the_webhooks() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tc = rt.block_on(TestCluster::on(&plane, "smc-bin")).unwrap();
    let log = plane.dir().join("controller.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["--webhook-listen", &format!("127.0.0.1:{}", free_port())])
        .env_remove("KUBECONFIG")
        .env("SPIDERPOOL_POD_NAMESPACE", &tc.namespace)
        .env("SPIDERPOOL_POD_NAME", "smc-binary-test")
        .env("SPIDERPOOL_HEALTH_PORT", free_port().to_string())
        .env("SPIDERPOOL_METRIC_HTTP_PORT", free_port().to_string())
        .env("SPIDERPOOL_GC_IP_ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let ctl = Controller { child, log };
    let kc = plane.kubeconfig.clone();
    let ns = tc.namespace.clone();

    // The webhooks may take a moment to be registered and served: retry the apply.
    let mut last = String::new();
    wait("kubectl apply of the seed's SMC", &ctl, || {
        let out = kubectl(&kc, &["apply", "-n", &ns, "-f", "-"], SEED_SMC);
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    let _ = last;
    wait("the seed's NAD", &ctl, || {
        nad_config(&kc, &ns, "macvlan-ens192").as_deref() == Some(SEED_CONFIG)
    });

    let out = kubectl(&kc, &["apply", "-n", &ns, "-f", "-"], SEED_SMC_OLD);
    assert!(
        out.status.success(),
        "older spelling refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait("the old-spelling NAD with its pool and mode", &ctl, || {
        nad_config(&kc, &ns, "macvlan-old").is_some_and(|c| {
            c.contains(r#""default_ipv4_ippool":["10-6-v4"]"#) && c.contains(r#""mode":"overlay""#)
        })
    });

    let out = kubectl(&kc, &["delete", "-n", &ns, "smc", "macvlan-ens192"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait("the NAD deleted with its SMC", &ctl, || {
        nad_config(&kc, &ns, "macvlan-ens192").is_none()
    });
}
