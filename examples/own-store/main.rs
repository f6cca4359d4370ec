//! Allocate from pools with your own store.
//!
//! ```sh
//! cargo run -p spiderpool-examples --example own-store [-- FILE.json]
//! ```
//!
//! The IPAM of `spiderpool-core` is pure: [`allocate_with_retry`] and [`release_with_retry`]
//! plan on a snapshot of an [`IpamStore`] and commit the change set with compare-and-swap.
//! Any persistence works behind that trait; `store.rs` implements it over one JSON file in
//! about fifty lines, on core's `StoreState`. This program puts a v4 and a v6 pool in it,
//! allocates `net1` for two pods, releases the first, then reopens the file and prints the
//! records it holds. Without FILE it uses a new file in the temporary directory and removes
//! it at the end.

mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use spiderpool_core::ipam::{
    AllocateRequest, DEFAULT_MAX_ATTEMPTS, EndpointKey, IpamStore, NicResult, ReleaseRequest,
    allocate_with_retry, release_with_retry,
};
use spiderpool_core::objects::{SpiderIPPool, SpiderIPPoolSpec};
use store::JsonFileStore;

type BoxError = Box<dyn std::error::Error>;

const NAMESPACE: &str = "default";

/// A pool every pod may use (`default: true`), so a request needs no annotation.
fn pool(name: &str, subnet: &str, ips: &str, gateway: &str) -> SpiderIPPool {
    SpiderIPPool::new(
        name,
        SpiderIPPoolSpec {
            subnet: subnet.into(),
            ips: Some(vec![ips.into()]),
            gateway: Some(gateway.into()),
            default: Some(true),
            ..Default::default()
        },
    )
}

/// A CNI ADD of `net1` for pod `name`: who asks and for which NIC.
fn add_request(name: &str, uid: &str) -> AllocateRequest {
    let mut req = AllocateRequest {
        container_id: format!("container-of-{name}"),
        ifname: "net1".into(),
        ..AllocateRequest::default()
    };
    (req.pod.namespace, req.pod.name, req.pod.uid) = (NAMESPACE.into(), name.into(), uid.into());
    req
}

fn describe(nic: &NicResult) -> String {
    let ips = nic.ips().map(|c| match c.gateway {
        Some(gw) => format!("{} (pool {}, gateway {gw})", c.cidr(), c.pool),
        None => format!("{} (pool {})", c.cidr(), c.pool),
    });
    ips.collect::<Vec<_>>().join(", ")
}

fn run(path: &PathBuf) -> Result<(), BoxError> {
    let store = JsonFileStore::open(path)?;
    println!("store: {}", store.path().display());
    store.put_pool(pool(
        "v4-pool",
        "10.6.0.0/16",
        "10.6.168.101-10.6.168.110",
        "10.6.0.1",
    ))?;
    store.put_pool(pool(
        "v6-pool",
        "fd00:6::/64",
        "fd00:6::101-fd00:6::110",
        "fd00:6::1",
    ))?;

    for (name, uid) in [("pod-a", "uid-a"), ("pod-b", "uid-b")] {
        let decision = allocate_with_retry(&store, &add_request(name, uid), DEFAULT_MAX_ATTEMPTS)?;
        let nic = decision.result.current().ok_or("no result for net1")?;
        println!("allocated {NAMESPACE}/{name} net1: {}", describe(nic));
    }

    // A CNI DEL of pod-a: the pod is gone (not alive), so its addresses are released.
    let del = ReleaseRequest {
        container_id: "container-of-pod-a".into(),
        ifname: "net1".into(),
        endpoint: EndpointKey::new(NAMESPACE, "pod-a"),
        pod_uid: Some("uid-a".into()),
        pod_alive: false,
        ..ReleaseRequest::default()
    };
    let decision = release_with_retry(&store, &del, DEFAULT_MAX_ATTEMPTS)?;
    let freed: Vec<String> = (decision.released.iter())
        .map(|(pool, ip)| format!("{ip} to {pool}"))
        .collect();
    println!(
        "released {NAMESPACE}/pod-a: {:?}, {}",
        decision.outcome,
        freed.join(", ")
    );
    drop(store);

    // Everything is in the file: a new process (here, a new store) sees the same records.
    let reopened = JsonFileStore::open(path)?;
    let snapshot = reopened.snapshot(&[])?;
    println!("reopened {}:", path.display());
    for pool in snapshot.pools() {
        let held = pool.allocations().iter();
        let held: Vec<String> = held.map(|(ip, r)| format!("{ip} -> {}", r.pod)).collect();
        println!("  {}: {}", pool.name(), held.join(", "));
    }
    Ok(())
}

fn main() -> ExitCode {
    let given = std::env::args_os().nth(1).map(PathBuf::from);
    let path = given.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("spiderpool-own-store-{}.json", std::process::id()))
    });
    let outcome = run(&path);
    if given.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
