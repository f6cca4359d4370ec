//! A minimal third-party IPAM CNI plugin on Spiderpool's CNI types and allocator.
//!
//! ```sh
//! cargo build -p spiderpool-examples --example third-party-ipam
//! echo '{"cniVersion":"1.0.0","name":"demo","type":"macvlan",
//!   "ipam":{"type":"third-party-ipam","dataDir":"/tmp/tpi",
//!           "pools":[{"name":"v4","subnet":"10.6.0.0/16","ips":["10.6.168.101-10.6.168.110"],
//!                     "gateway":"10.6.0.1"}]}}' |
//! CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/var/run/netns/p1 CNI_IFNAME=net1 \
//! CNI_PATH=/opt/cni/bin CNI_ARGS='K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1;K8S_POD_UID=u1' \
//!   target/debug/examples/third-party-ipam
//! ```
//!
//! It behaves as a real IPAM plugin binary: a main plugin (macvlan, ipvlan...) or a runtime
//! calls it with `CNI_COMMAND` and the network configuration on stdin.
//!
//! * `spiderpool_core::cni` does the protocol: [`CniEnv`] reads and checks the `CNI_*`
//!   variables, [`NetConf`] parses stdin and negotiates the version to answer in,
//!   [`Result100`] prints the result in that version (0.3.0 to 1.1.0), [`CniError`] prints
//!   the error reply with its code.
//! * `spiderpool_core::ipam` does the allocation from the pools listed under `ipam.pools`
//!   (lowest free address first, one record per pod and address), through the JSON file
//!   store of the `own-store` example in `ipam.dataDir` (default
//!   `/var/lib/cni/third-party-ipam`), locked for the whole call so that concurrent calls
//!   take turns.
//!
//! ADD allocates (a repeated ADD returns the same addresses), DEL releases (and succeeds when
//! there is nothing to release), CHECK fails when the pod's addresses are not recorded, GC
//! and STATUS succeed, VERSION lists the supported versions. The pod is named by `CNI_ARGS`
//! `K8S_POD_NAMESPACE`, `K8S_POD_NAME` and `K8S_POD_UID`, else `default`, the container ID
//! and the container ID.

#[path = "../own-store/store.rs"]
mod store;

use spiderpool_core::ipam::IpamError;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use ipnet::IpNet;
use serde::Deserialize;
use spiderpool_core::cni::{
    CniEnv, CniError, Command, ERR_IO, IpConfig, NetConf, Result100, Route, SpecVersion,
    VersionReply,
};
use spiderpool_core::ipam::{
    AllocateRequest, DEFAULT_MAX_ATTEMPTS, EndpointKey, IpamStore, ReleaseRequest,
    allocate_with_retry, plan_allocation, release_with_retry,
};
use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};
use store::JsonFileStore;

/// The `ipam` object of the network configuration.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IpamConf {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    pools: Vec<PoolConf>,
}

/// One pool: `ips` are addresses and ranges (`10.6.168.101-10.6.168.110`) of `subnet`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolConf {
    name: String,
    subnet: String,
    ips: Vec<String>,
    #[serde(default)]
    gateway: Option<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/cni/third-party-ipam")
}

/// The store in `data_dir`, with the configured pools put (records kept), and the lock held
/// until the returned file is dropped.
fn open_store(conf: &IpamConf) -> Result<(JsonFileStore, File), CniError> {
    let io = |what: &str, e: std::io::Error| {
        CniError::try_again_later(format!("{what} {}: {e}", conf.data_dir.display()))
    };
    std::fs::create_dir_all(&conf.data_dir).map_err(|e| io("create", e))?;
    let lock = File::create(conf.data_dir.join("lock")).map_err(|e| io("lock in", e))?;
    lock.lock().map_err(|e| io("lock in", e))?;
    let store = JsonFileStore::open(conf.data_dir.join("ipam.json"))?;
    for p in &conf.pools {
        let spec = SpiderIPPoolSpec {
            subnet: p.subnet.clone(),
            ips: Some(p.ips.clone()),
            gateway: p.gateway.clone(),
            ..Default::default()
        };
        (store.put_pool(SpiderIPPool::new(&p.name, spec)))
            .map_err(|e| CniError::invalid_config(format!("ipam.pools: {}: {e}", p.name)))?;
    }
    Ok((store, lock))
}

/// The pod of this call: from `CNI_ARGS`, else named after the container.
fn pod_of(env: &CniEnv) -> Result<(String, String, String), CniError> {
    env.args().validate_pod_identity()?;
    let cid = env.container_id().unwrap_or_default();
    let args = env.args();
    Ok((
        args.k8s_pod_namespace().unwrap_or("default").to_owned(),
        args.k8s_pod_name().unwrap_or(cid).to_owned(),
        args.k8s_pod_uid().unwrap_or(cid).to_owned(),
    ))
}

/// The allocation request: the configured pools are the NIC's candidates (by family).
fn request(env: &CniEnv, conf: &IpamConf) -> Result<AllocateRequest, CniError> {
    let mut req = AllocateRequest {
        container_id: env.container_id().unwrap_or_default().to_owned(),
        ifname: env.ifname().unwrap_or_default().to_owned(),
        ..AllocateRequest::default()
    };
    (req.pod.namespace, req.pod.name, req.pod.uid) = pod_of(env)?;
    for p in &conf.pools {
        let list = if p.subnet.contains(':') {
            &mut req.default_ipv6_ippool
        } else {
            &mut req.default_ipv4_ippool
        };
        list.push(p.name.clone());
    }
    Ok(req)
}

/// Core errors as CNI errors: conflicts that outlived the retries are transient (11).
fn cni_error(e: IpamError) -> CniError {
    match e {
        IpamError::RetriesExhausted { .. } => CniError::try_again_later(e.to_string()),
        other => other.into(),
    }
}

fn add(env: &CniEnv, conf: &IpamConf, version: SpecVersion) -> Result<String, CniError> {
    let req = request(env, conf)?;
    let (store, _lock) = open_store(conf)?;
    let decision = allocate_with_retry(&store, &req, DEFAULT_MAX_ATTEMPTS).map_err(cni_error)?;
    let nic = (decision.result.current())
        .ok_or_else(|| CniError::internal(format!("no address recorded for {}", req.ifname)))?;
    let mut result = Result100::default();
    for c in nic.ips() {
        let net =
            IpNet::new(c.address, c.prefix_len).map_err(|e| CniError::internal(e.to_string()))?;
        let ip = IpConfig::new(net);
        result.ips.push(match c.gateway {
            Some(gw) => ip.with_gateway(gw),
            None => ip,
        });
    }
    for r in &nic.routes {
        let bad = |e: String| CniError::internal(format!("route {} via {}: {e}", r.dst, r.gw));
        let dst: IpNet = r
            .dst
            .parse()
            .map_err(|e: ipnet::AddrParseError| bad(e.to_string()))?;
        let gw =
            r.gw.parse()
                .map_err(|e: std::net::AddrParseError| bad(e.to_string()))?;
        result.routes.push(Route::new(dst).with_gw(gw));
    }
    result.to_json_pretty(version)
}

fn del(env: &CniEnv, conf: &IpamConf) -> Result<String, CniError> {
    let (namespace, name, uid) = pod_of(env)?;
    let req = ReleaseRequest {
        container_id: env.container_id().unwrap_or_default().to_owned(),
        ifname: env.ifname().unwrap_or_default().to_owned(),
        endpoint: EndpointKey::new(namespace, name),
        pod_uid: Some(uid),
        pod_alive: false, // the runtime tears the pod down: nothing keeps its addresses
        ..ReleaseRequest::default()
    };
    let (store, _lock) = open_store(conf)?;
    release_with_retry(&store, &req, DEFAULT_MAX_ATTEMPTS).map_err(cni_error)?;
    Ok(String::new())
}

/// CHECK: an ADD now would write nothing, i.e. the pod's addresses are recorded.
fn check(env: &CniEnv, conf: &IpamConf) -> Result<String, CniError> {
    let req = request(env, conf)?;
    let (store, _lock) = open_store(conf)?;
    let key = EndpointKey::new(&req.pod.namespace, &req.pod.name);
    let snapshot = store.snapshot(&[key]).map_err(|e| cni_error(e.into()))?;
    let decision = plan_allocation(&req, &snapshot).map_err(cni_error)?;
    if decision.changes.is_empty() {
        return Ok(String::new());
    }
    Err(CniError::internal(format!(
        "{}/{} has no address recorded for {} in {}",
        req.pod.namespace,
        req.pod.name,
        req.ifname,
        store.path().display()
    )))
}

fn run(vars: std::env::VarsOs, stdin: &[u8]) -> Result<String, CniError> {
    let env = CniEnv::from_vars(vars)?;
    if env.command() == Command::Version {
        return Ok(VersionReply::ours().to_json());
    }
    let conf = NetConf::parse(stdin)?;
    let version = conf.negotiate(env.command(), &SpecVersion::SUPPORTED)?;
    let answer = || -> Result<String, CniError> {
        let ipam: IpamConf = conf.ipam_config()?;
        match env.command() {
            Command::Add => add(&env, &ipam, version),
            Command::Del => del(&env, &ipam),
            Command::Check => check(&env, &ipam),
            Command::Gc | Command::Status | Command::Version => Ok(String::new()),
        }
    };
    answer().map_err(|e| e.with_version(version))
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => run(std::env::vars_os(), &stdin),
        Err(e) => Err(CniError::new(ERR_IO, format!("read stdin: {e}"))),
    };
    match outcome {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The error reply goes to stdout, as the CNI specification says.
            print!("{}", e.to_json_pretty());
            ExitCode::FAILURE
        }
    }
}
