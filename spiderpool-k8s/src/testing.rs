//! Helpers for tests against a real kube-apiserver (feature `test-util`).
//!
//! The project's test command starts one (`hack/control-plane.sh up`) and exports
//! `KUBECONFIG`; tests that need it carry `#[ignore = "needs apiserver"]` and run with
//! `--include-ignored`. There is no kubelet, scheduler or controller-manager: tests create
//! Nodes and Pods directly (`spec.nodeName` set) and write pod status themselves.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::crds;
use crate::error::{Error, Result};

static CRDS: OnceCell<()> = OnceCell::const_new();
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A test's view of the cluster: a client and a namespace of its own.
#[derive(Clone)]
pub struct TestCluster {
    /// Client from `$KUBECONFIG`.
    pub client: Client,
    /// A fresh namespace, unique to this test (namespaces never finish deleting without a
    /// controller-manager, so it is left behind; names never repeat).
    pub namespace: String,
}

/// A name unique across tests and test processes: `prefix-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

impl TestCluster {
    /// Connects through `$KUBECONFIG`, installs the CRDs once per process, and creates a
    /// namespace named after `test` (made unique).
    pub async fn new(test: &str) -> Result<Self> {
        if std::env::var_os("KUBECONFIG").is_none() {
            return Err(Error::Config(
                "this test needs a kube-apiserver: run `hack/control-plane.sh up` and export \
                 KUBECONFIG=<the path it prints> (scripts/test.sh does both)"
                    .to_owned(),
            ));
        }
        let client = crate::client::connect(None).await?;
        CRDS.get_or_try_init(|| async { crds::install(&client, Duration::from_secs(60)).await })
            .await?;
        Self::in_namespace(client, test).await
    }

    /// Like [`TestCluster::new`] on a [`PrivateControlPlane`]: its client, the CRDs installed
    /// there, a fresh namespace.
    pub async fn on(plane: &PrivateControlPlane, test: &str) -> Result<Self> {
        let client = crate::client::connect(Some(&plane.kubeconfig)).await?;
        crds::install(&client, Duration::from_secs(60)).await?;
        Self::in_namespace(client, test).await
    }

    async fn in_namespace(client: Client, test: &str) -> Result<Self> {
        let namespace = unique_name(&test.replace('_', "-"));
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": namespace}
        }))
        .map_err(|e| Error::Config(e.to_string()))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| Error::api(format!("create namespace {namespace}"), e))?;
        Ok(TestCluster { client, namespace })
    }

    /// Creates a Node named `name` (if absent), labelled `labels`.
    pub async fn node(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<Node> {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels}
        }))
        .map_err(|e| Error::Config(e.to_string()))?;
        let api = Api::<Node>::all(self.client.clone());
        match api.create(&PostParams::default(), &node).await {
            Ok(n) => Ok(n),
            Err(kube::Error::Api(s)) if s.code == 409 => api
                .get(name)
                .await
                .map_err(|e| Error::api(format!("get node {name}"), e)),
            Err(e) => Err(Error::api(format!("create node {name}"), e)),
        }
    }

    /// Creates a Pod in the test namespace on `node`, with `annotations` and `labels`, and
    /// marks it Running (as a kubelet would).
    pub async fn pod(
        &self,
        name: &str,
        node: &str,
        annotations: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Pod> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": self.namespace,
                         "annotations": annotations, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .map_err(|e| Error::Config(e.to_string()))?;
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        api.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| Error::api(format!("create pod {name}"), e))?;
        let status = json!({"status": {"phase": "Running"}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| Error::api(format!("patch pod status {name}"), e))
    }

    /// Creates the SpiderIPPool `name` over `ips` in `subnet` (cluster-scoped: give it a
    /// unique name, e.g. from [`unique_name`]).
    pub async fn ippool(
        &self,
        name: &str,
        subnet: &str,
        ips: &[&str],
        gateway: Option<&str>,
    ) -> Result<()> {
        use spiderpool_core::objects::{IPPOOL, SpiderIPPool, SpiderIPPoolSpec};
        let pool = SpiderIPPool::new(
            name,
            SpiderIPPoolSpec {
                subnet: subnet.to_owned(),
                ips: Some(ips.iter().map(|s| (*s).to_owned()).collect()),
                gateway: gateway.map(str::to_owned),
                ..Default::default()
            },
        );
        let api: Api<kube::api::DynamicObject> =
            Api::all_with(self.client.clone(), &crate::kinds::api_resource(&IPPOOL));
        api.create(&PostParams::default(), &crate::kinds::to_dynamic(&pool)?)
            .await
            .map_err(|e| Error::api(format!("create SpiderIPPool {name}"), e))?;
        Ok(())
    }

    /// Creates the Nodes `nodes` and `count` Running pods `pod-0`, `pod-1`... spread over
    /// them round-robin (20 creates at a time). Returns each pod's UID by name.
    pub async fn pods_on(
        &self,
        count: usize,
        nodes: &[String],
    ) -> Result<BTreeMap<String, String>> {
        use futures::StreamExt;
        for n in nodes {
            self.node(n, &BTreeMap::new()).await?;
        }
        let none = BTreeMap::new();
        let created: Vec<Result<(String, String)>> = futures::stream::iter(0..count)
            .map(|i| {
                let name = format!("pod-{i}");
                let node = nodes[i % nodes.len().max(1)].clone();
                let none = &none;
                async move {
                    let p = self.pod(&name, &node, none, none).await?;
                    Ok((name, p.metadata.uid.unwrap_or_default()))
                }
            })
            .buffer_unordered(20)
            .collect()
            .await;
        created.into_iter().collect()
    }

    /// Deletes a Pod at once (grace period 0).
    pub async fn delete_pod(&self, name: &str) -> Result<()> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.namespace);
        match api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::api(format!("delete pod {name}"), e)),
        }
    }
}

/// A control plane of the test's own (etcd + kube-apiserver from `hack/control-plane.sh`, in a
/// temporary directory, on free loopback ports), stopped when dropped.
///
/// For tests that change cluster-wide state other tests would see: admission webhooks, the
/// default SpiderCoordinator, leader Leases, garbage collection over every namespace. Starting
/// one takes a few seconds once `hack/testbin.sh` has cached the binaries.
pub struct PrivateControlPlane {
    dir: std::path::PathBuf,
    /// The admin kubeconfig of this control plane.
    pub kubeconfig: std::path::PathBuf,
    /// The apiserver's port on 127.0.0.1.
    pub port: u16,
}

impl PrivateControlPlane {
    /// Starts one and waits until it is ready (blocking: call it outside async code, or in
    /// `spawn_blocking`).
    pub fn start() -> Result<Self> {
        // The ports are free when chosen but another process (another test starting its own
        // plane at the same moment) may take one before etcd or the apiserver binds it: try
        // again on fresh ports.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once() {
                Ok(plane) => return Ok(plane),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("control plane did not start".to_owned())))
    }

    fn start_once() -> Result<Self> {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("hack")
            .join("control-plane.sh");
        let dir = std::env::temp_dir().join(unique_name("spiderpool-cp"));
        let port = free_port(1)?;
        // etcd listens on EPORT (clients) and EPORT+1 (peers).
        let etcd = free_port(2)?;
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("up")
            .arg(&dir)
            .env("CP_PORT", port.to_string())
            .env("CP_ETCD_PORT", etcd.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Config(format!("{}: {e}", script.display())))?;
        let plane = PrivateControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            port,
        };
        if !out.status.success() {
            return Err(Error::Config(format!(
                "{} up failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(plane)
    }

    /// The directory holding its certificates, logs and data.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("hack")
            .join("control-plane.sh");
        let _ = std::process::Command::new("bash")
            .arg(script)
            .arg("down")
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A loopback port free now, with the `span - 1` ports after it free too.
fn free_port(span: u16) -> Result<u16> {
    use std::net::{Ipv4Addr, TcpListener};
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::Config(format!("bind a free port: {e}")))?;
        let port = l
            .local_addr()
            .map_err(|e| Error::Config(e.to_string()))?
            .port();
        let rest_free = (1..span).all(|k| {
            port.checked_add(k)
                .is_some_and(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok())
        });
        if rest_free {
            return Ok(port);
        }
    }
    Err(Error::Config(
        "no run of free loopback ports found".to_owned(),
    ))
}
