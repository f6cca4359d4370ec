//! The admission webhooks of the real `spiderpool-controller` binary on a private control
//! plane (the webhook configurations are cluster-wide): `--webhook-listen 127.0.0.1:PORT`
//! registers them by URL with a generated CA, and `kubectl apply` goes through them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::Api;
use serde_json::{Value, json};
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// The seed's SpiderIPPool, exactly as the seed applies it.
const SEED_POOL: &str = "apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  disable: false
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  subnet: 10.6.0.0/16
";

/// The seed's SpiderMultusConfig, exactly as the seed applies it.
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

/// The seed's SMC as its NAD's `kubectl.kubernetes.io/last-applied-configuration` shows it:
/// `macvlan.spiderpoolConfigPools.IPv4IPPool` and `coordinator.tuneMode`.
const SEED_SMC_OLD_SPELLING: &str = r#"{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderMultusConfig","metadata":{"annotations":{},"name":"macvlan-ens192","namespace":"default"},"spec":{"cniType":"macvlan","coordinator":{"podCIDRType":"cluster","tuneMode":"overlay"},"enableCoordinator":true,"macvlan":{"master":["ens192"],"spiderpoolConfigPools":{"IPv4IPPool":["10-6-v4"]},"vlanID":0}}}"#;

/// The controller process, killed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(plane: &PrivateControlPlane, ns: &str, extra: &[&str]) -> Controller {
    let log = plane.dir().join("controller.log");
    let out = std::fs::File::create(&log).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["--webhook-listen", &addr.to_string()])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env("SPIDERPOOL_LOG_LEVEL", "debug")
        .env("SPIDERPOOL_POD_NAMESPACE", ns)
        .env("SPIDERPOOL_POD_NAME", "webhook-test")
        .env("SPIDERPOOL_HEALTH_PORT", free_port().to_string())
        .env("SPIDERPOOL_METRIC_HTTP_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Controller { child, log, addr }
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn apply(kubeconfig: &Path, ns: &str, yaml: &str) -> Result<String, String> {
    let out = kubectl(kubeconfig, &["apply", "-n", ns, "-f", "-"], Some(yaml));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn get_json(kubeconfig: &Path, ns: &str, what: &str) -> Value {
    let out = kubectl(kubeconfig, &["get", "-n", ns, what, "-o", "json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pool(name: &str, subnet: &str, gateway: Option<&str>, ips: &[&str]) -> String {
    let mut spec = json!({"subnet": subnet, "ips": ips});
    if let Some(gw) = gateway {
        spec["gateway"] = json!(gw);
    }
    json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1",
        "kind": "SpiderIPPool",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

/// Starts the plane, the namespace and the controller, and waits until the apiserver calls
/// the webhook: a pool whose gateway lies in its `ips` is refused.
type Setup = (
    PrivateControlPlane,
    tokio::runtime::Runtime,
    TestCluster,
    Controller,
);

fn setup() -> Setup {
    setup_with(|_| Vec::new())
}

/// [`setup`] with more flags, made from the plane's directory.
fn setup_with(extra: impl FnOnce(&Path) -> Vec<String>) -> Setup {
    let plane = PrivateControlPlane::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(TestCluster::on(&plane, "webhook")).unwrap();
    let mut flags = vec!["--webhook-request-timeout".to_owned(), "2".to_owned()];
    flags.extend(extra(plane.dir()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut ctl = start(&plane, &cluster.namespace, &flags);
    let bad = pool(
        "gw-in-ips",
        "10.7.0.0/16",
        Some("10.7.0.1"),
        &["10.7.0.1-10.7.0.9"],
    );
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(ctl.alive(), "controller exited:\n{}", ctl.log());
        match apply(&plane.kubeconfig, &cluster.namespace, &bad) {
            Err(e) if e.contains("conflicts with 'spec.gateway'") => break,
            Err(e) => assert!(
                Instant::now() < until,
                "webhook never answered: {e}\n{}",
                ctl.log()
            ),
            Ok(_) => {
                // Admitted before the webhook was registered: remove it and try again.
                let _ = kubectl(
                    &plane.kubeconfig,
                    &["delete", "spiderippool", "gw-in-ips", "--wait=false"],
                    None,
                );
                let _ = kubectl(
                    &plane.kubeconfig,
                    &[
                        "patch",
                        "spiderippool",
                        "gw-in-ips",
                        "--type=merge",
                        "-p",
                        r#"{"metadata":{"finalizers":null}}"#,
                    ],
                    None,
                );
                assert!(
                    Instant::now() < until,
                    "webhook never registered:\n{}",
                    ctl.log()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    (plane, rt, cluster, ctl)
}

#[test]
#[ignore = "needs apiserver"]
fn webhook_refuses_bad_pools_defaults_good_ones_and_admits_the_seed() {
    let (plane, _rt, cluster, mut ctl) = setup();
    let (kc, ns) = (&plane.kubeconfig, cluster.namespace.as_str());

    // Upstream's reason for a gateway inside `ips`.
    let bad = pool(
        "gw-in-ips",
        "10.7.0.0/16",
        Some("10.7.0.1"),
        &["10.7.0.1-10.7.0.9"],
    );
    let err = apply(kc, ns, &bad).unwrap_err();
    // kubectl prints an Invalid status with causes as `The <plural> "<name>" is invalid:`.
    assert!(
        err.contains(r#"spiderippools "gw-in-ips" is invalid"#),
        "{err}"
    );
    assert!(
        err.contains(r#"spec.ips[0]: "10.7.0.1-10.7.0.9": conflicts with 'spec.gateway' 10.7.0.1"#),
        "{err}"
    );

    // A valid pool gets its defaults: ipVersion, finalizer, CIDR label, merged ranges.
    apply(
        kc,
        ns,
        &pool(
            "good",
            "10.20.0.0/16",
            Some("10.20.0.1"),
            &["10.20.1.10-10.20.1.20", "10.20.1.1-10.20.1.9", "10.20.1.21"],
        ),
    )
    .unwrap();
    let good = get_json(kc, ns, "spiderippool/good");
    assert_eq!(good["spec"]["ipVersion"], 4, "{good}");
    assert_eq!(
        good["spec"]["ips"],
        json!(["10.20.1.1-10.20.1.21"]),
        "{good}"
    );
    assert_eq!(
        good["metadata"]["finalizers"],
        json!(["spiderpool.spidernet.io"]),
        "{good}"
    );
    assert_eq!(
        good["metadata"]["labels"]["ipam.spidernet.io/ippool-cidr"], "10-20-0-0-16",
        "{good}"
    );

    // A pool whose CIDR overlaps `good`'s is refused (the watch cache has `good` by now).
    std::thread::sleep(Duration::from_secs(1));
    let err = apply(
        kc,
        ns,
        &pool("overlap", "10.20.5.0/24", None, &["10.20.5.10"]),
    )
    .unwrap_err();
    assert!(err.contains("overlap with IPPool good"), "{err}");
    // So is one of the same CIDR whose ranges overlap.
    let err = apply(
        kc,
        ns,
        &pool("same-cidr", "10.20.0.0/16", None, &["10.20.1.5-10.20.1.30"]),
    )
    .unwrap_err();
    assert!(
        err.contains("overlap with IPPool good in IP ranges"),
        "{err}"
    );

    // The seed's two objects, exactly as written, apply cleanly; the SMC keeps its pool in
    // the current field and gets the mutating webhook's coordinator defaults.
    apply(kc, ns, SEED_POOL).unwrap();
    apply(kc, ns, SEED_SMC).unwrap();
    let seed_pool = get_json(kc, ns, "spiderippool/10-6-v4");
    assert_eq!(seed_pool["spec"]["ipVersion"], 4);
    assert_eq!(
        seed_pool["metadata"]["labels"]["ipam.spidernet.io/ippool-cidr"],
        "10-6-0-0-16"
    );
    let smc = get_json(kc, ns, "spidermultusconfig/macvlan-ens192");
    assert_eq!(
        smc["spec"]["macvlan"]["ippools"]["ipv4"],
        json!(["10-6-v4"]),
        "{smc}"
    );
    assert_eq!(smc["spec"]["coordinator"]["mode"], "auto", "{smc}");

    // The seed's SMC in its older spelling (its `last-applied-configuration`, exactly as
    // the seed prints it, namespace `default` included): the CRD keeps the old fields and
    // the mutating webhook moves them, so the stored SMC has the pool in `ippools`.
    apply(kc, "default", SEED_SMC_OLD_SPELLING).unwrap();
    let old = get_json(kc, "default", "spidermultusconfig/macvlan-ens192");
    let mv = &old["spec"]["macvlan"];
    assert_eq!(mv["ippools"]["ipv4"], json!(["10-6-v4"]), "{old}");
    assert!(mv.get("spiderpoolConfigPools").is_none(), "{old}");
    assert_eq!(old["spec"]["coordinator"]["mode"], "overlay", "{old}");
    assert!(
        old["spec"]["coordinator"].get("tuneMode").is_none(),
        "{old}"
    );

    // An SMC refused by its validating webhook: macvlan without a master.
    let err = apply(
        kc,
        ns,
        r#"{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderMultusConfig","metadata":{"name":"nomaster"},"spec":{"cniType":"macvlan","macvlan":{"master":[]}}}"#,
    )
    .unwrap_err();
    assert!(
        err.contains(r#"spidermultusconfigs "nomaster" is invalid"#),
        "{err}"
    );
    assert!(ctl.alive(), "{}", ctl.log());
}

/// A TLS exchange with the webhook port trusting `ca`; returns what came back (possibly
/// nothing) and how long it took.
fn https(addr: SocketAddr, ca: &[u8], bytes: &[u8], hold: Duration) -> (String, Duration) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(addr.ip().to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let t0 = Instant::now();
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(hold);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), t0.elapsed())
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
#[ignore = "needs apiserver"]
fn webhook_port_refuses_garbage_and_slow_clients_and_keeps_serving() {
    let (plane, rt, cluster, mut ctl) = setup();
    // The CA the controller generated, as registered.
    let vwc = rt
        .block_on(
            Api::<ValidatingWebhookConfiguration>::all(cluster.client.clone())
                .get("spiderpool-controller"),
        )
        .unwrap();
    let hooks = vwc.webhooks.unwrap();
    let ca = hooks[0].client_config.ca_bundle.clone().unwrap().0;
    let url = hooks[0].client_config.url.clone().unwrap();
    assert_eq!(
        url,
        format!(
            "https://{}/validate-spiderpool-spidernet-io-v2beta1-spidersubnet",
            ctl.addr
        )
    );
    let addr = ctl.addr;
    let path = "/validate-spiderpool-spidernet-io-v2beta1-spiderippool";

    let (health, _) = https(
        addr,
        &ca,
        b"GET /webhook-health-check HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::ZERO,
    );
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");

    // Malformed: not JSON, not a review, not HTTP.
    let (r, _) = https(addr, &ca, &post(path, b"{not json"), Duration::ZERO);
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let (r, _) = https(
        addr,
        &ca,
        &post(path, br#"{"kind":"AdmissionReview"}"#),
        Duration::ZERO,
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let (r, _) = https(addr, &ca, b"\x01\x02 garbage\r\n\r\n", Duration::ZERO);
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    // Oversized: refused from the head, before any body is read.
    let (r, _) = https(
        addr,
        &ca,
        format!("POST {path} HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n").as_bytes(),
        Duration::ZERO,
    );
    assert!(r.starts_with("HTTP/1.1 413 "), "{r}");
    // Slow: half a head, then nothing; cut off at the 2 s deadline.
    let (r, took) = https(
        addr,
        &ca,
        format!("POST {path} HTTP/1.1\r\nContent-Le").as_bytes(),
        Duration::ZERO,
    );
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 408 "), "{r}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A plain TCP client that never starts TLS holds a worker only until the deadline.
    let idle: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(addr).unwrap()).collect();

    // A valid review still works.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "abc", "operation": "CREATE", "object": {
            "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
            "metadata": {"name": "direct"},
            "spec": {"ipVersion": 4, "subnet": "10.30.0.0/16", "ips": ["10.30.0.10"]}}},
    });
    let (r, _) = https(
        addr,
        &ca,
        &post(path, review.to_string().as_bytes()),
        Duration::ZERO,
    );
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let body: Value = serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["response"], json!({"uid": "abc", "allowed": true}));
    drop(idle);

    // And through the apiserver.
    apply(
        &plane.kubeconfig,
        &cluster.namespace,
        &pool("after", "10.40.0.0/16", None, &["10.40.0.10"]),
    )
    .unwrap();
    assert!(ctl.alive(), "{}", ctl.log());
}

#[test]
#[ignore = "needs apiserver"]
fn webhook_serves_supplied_certificate_files_with_their_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_pem = String::new();
    let (plane, rt, cluster, mut ctl) = setup_with(|dir| {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        ca_pem = ca_cert.pem();
        let (c, k, a) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&a, &ca_pem).unwrap();
        // Upstream's flag names for the files the chart mounts.
        vec![
            "--tls-server-cert".into(),
            c.display().to_string(),
            "--tls-server-key".into(),
            k.display().to_string(),
            "--tls-ca".into(),
            a.display().to_string(),
        ]
    });
    // setup() saw the refusal, so the apiserver trusted the supplied CA; it is the one
    // registered.
    let mwc = rt
        .block_on(
            Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(
                cluster.client.clone(),
            )
            .get("spiderpool-controller"),
        )
        .unwrap();
    for hook in mwc.webhooks.unwrap() {
        assert_eq!(hook.client_config.ca_bundle.unwrap().0, ca_pem.as_bytes());
    }
    apply(
        &plane.kubeconfig,
        &cluster.namespace,
        &pool("ok", "10.50.0.0/16", None, &["10.50.0.10"]),
    )
    .unwrap();
    assert!(ctl.alive(), "{}", ctl.log());
}
