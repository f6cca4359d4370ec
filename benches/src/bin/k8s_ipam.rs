//! `k8s_ipam`: allocation on a real kube-apiserver, our Kubernetes store (per-node blocks,
//! endpoints as records) beside upstream's strategy (one optimistic pool-status update per
//! allocation), in the same run against the same apiserver.
//!
//! ```text
//! KUBECONFIG=... k8s_ipam [--agents 10] [--per-agent 100] [--sequential 200]
//!                         [--agent-bin target/release/spiderpool-agent] [--ours-only]
//! ```
//!
//! `--ours-only` runs our strategy alone and prints its row (for profiling it).
//!
//! Each "agent" is a store with its own client and watches, driven by one thread (the total
//! concurrency is the number of agents), allocating for distinct pods from one pool of
//! `agents × per-agent` addresses. Reported: wall time, allocations per second, p50/p99 per
//! allocation, failed allocations, apiserver writes per allocation, 409 conflicts; then
//! sequential allocations by one agent (p50); then, with `--agent-bin`, the resident memory of
//! a real agent process in Kubernetes mode once it has indexed the cluster's endpoints.
//! Results are in docs/benchmarks.md ("Kubernetes store").

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use spiderpool_benches::pool_status_cas::PoolStatusStore;
use spiderpool_core::ipam::{
    AllocateRequest, IpamStore, PodInfo, TopController, allocate_with_retry,
};
use spiderpool_core::objects::{IPPOOL, SpiderIPPool, SpiderIPPoolSpec};
use spiderpool_k8s::kinds::{api_resource, to_dynamic};
use spiderpool_k8s::store::{KubeStore, KubeStoreOptions, Purpose};

struct Args {
    agents: usize,
    per_agent: usize,
    sequential: usize,
    spare: usize,
    agent_bin: Option<String>,
    ours_only: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        agents: 10,
        per_agent: 100,
        sequential: 200,
        spare: 0,
        agent_bin: None,
        ours_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--agents" => a.agents = value()?.parse()?,
            "--per-agent" => a.per_agent = value()?.parse()?,
            "--sequential" => a.sequential = value()?.parse()?,
            "--agent-bin" => a.agent_bin = Some(value()?),
            "--spare" => a.spare = value()?.parse()?,
            "--ours-only" => a.ours_only = true,
            "--help" | "-h" => {
                println!(
                    "k8s_ipam [--agents N] [--per-agent N] [--sequential N] [--spare N] [--agent-bin PATH] [--ours-only]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn request(ns: &str, pod: &str, node: &str, pool: &str) -> AllocateRequest {
    let uid = format!("{pod}-uid");
    AllocateRequest {
        container_id: format!("c-{pod}"),
        ifname: "net1".into(),
        pod: PodInfo {
            namespace: ns.into(),
            name: pod.into(),
            uid: uid.clone(),
            node: node.into(),
            controller: TopController::orphan(ns, pod, &uid),
            ..Default::default()
        },
        default_ipv4_ippool: vec![pool.into()],
        ..Default::default()
    }
}

fn create_pool(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    name: &str,
    subnet: u8,
    size: usize,
) -> Result<()> {
    let end = 10 + size - 1;
    let spec = SpiderIPPoolSpec {
        subnet: format!("10.{subnet}.0.0/16"),
        ips: Some(vec![format!(
            "10.{subnet}.0.10-10.{subnet}.{}.{}",
            end / 256,
            end % 256
        )]),
        gateway: Some(format!("10.{subnet}.0.1")),
        ..Default::default()
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(&IPPOOL));
    rt.block_on(api.create(
        &PostParams::default(),
        &to_dynamic(&SpiderIPPool::new(name, spec))?,
    ))?;
    Ok(())
}

#[derive(Debug, Default)]
struct Outcome {
    wall: Duration,
    /// CPU seconds spent during the run by this process (the agents), kube-apiserver, etcd.
    cpu: [f64; 3],
    latencies: Vec<Duration>,
    failures: usize,
    first_done: Duration,
    writes: u64,
    conflicts: u64,
}

impl Outcome {
    fn of(run: Run, cpu: [f64; 3], writes: u64, conflicts: u64) -> Self {
        Outcome {
            wall: run.wall,
            cpu,
            latencies: run.latencies,
            failures: run.failures,
            first_done: run.first_done,
            writes,
            conflicts,
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `op(thread, k)` for `k` in `0..per` on each of `threads` threads at once, timing
/// every call: (wall, sorted latencies, failed calls).
/// One timed run of the threads.
struct Run {
    wall: Duration,
    /// Every operation's latency, sorted.
    latencies: Vec<Duration>,
    failures: usize,
    /// When the first thread finished all its operations (the wall is when the last did):
    /// far apart, a few stragglers made the run long.
    first_done: Duration,
}

fn timed(threads: usize, per: usize, op: impl Fn(usize, usize) -> bool + Sync) -> Run {
    let started = Instant::now();
    let per_thread: Vec<(Vec<Duration>, usize, Duration)> = std::thread::scope(|s| {
        let op = &op;
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(per);
                    let mut failed = 0;
                    for k in 0..per {
                        let t = Instant::now();
                        let ok = op(i, k);
                        lat.push(t.elapsed());
                        if !ok {
                            failed += 1;
                        }
                    }
                    (lat, failed, started.elapsed())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = started.elapsed();
    let mut latencies: Vec<Duration> = per_thread.iter().flat_map(|(l, _, _)| l.clone()).collect();
    latencies.sort();
    Run {
        wall,
        latencies,
        failures: per_thread.iter().map(|(_, f, _)| f).sum(),
        first_done: per_thread.iter().map(|(_, _, d)| *d).min().unwrap_or(wall),
    }
}

/// Each store allocates `per_agent` addresses for distinct pods of its own node, all stores
/// at once.
fn drive<S: IpamStore + Send + Sync>(
    alloc: fn(&S, &AllocateRequest) -> bool,
    stores: &[Arc<S>],
    ns: &str,
    pool: &str,
    per_agent: usize,
    tag: &str,
) -> Run {
    timed(stores.len(), per_agent, |i, k| {
        let req = request(
            ns,
            &format!("{tag}-{i}-{k}"),
            &format!("{tag}-node-{i}"),
            pool,
        );
        alloc(stores[i].as_ref(), &req)
    })
}

/// Ours: the store's own allocate (re-plans on conflict; waits for hand-backs when the
/// pool is exhausted for this node only).
fn ours_alloc(s: &KubeStore, req: &AllocateRequest) -> bool {
    match s.allocate(req) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("ours: {}/{} failed: {e}", req.pod.namespace, req.pod.name);
            false
        }
    }
}

/// Upstream: client-go's `retry.DefaultRetry`, 5 attempts on conflict.
fn base_alloc(s: &PoolStatusStore, req: &AllocateRequest) -> bool {
    allocate_with_retry(s, req, 5).is_ok()
}

fn purposes(by_purpose: &std::collections::BTreeMap<Purpose, [u64; 2]>) -> String {
    by_purpose
        .iter()
        .map(|(p, [s, r])| format!("{} {s} / {r}", p.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// When the first and the last agent finished.
fn spread(name: &str, o: &Outcome) -> String {
    format!(
        "{name}: agents finished between {:.2} s and {:.2} s",
        o.first_done.as_secs_f64(),
        o.wall.as_secs_f64()
    )
}

fn row(name: &str, o: &Outcome, n: usize) -> String {
    let rate = n as f64 / o.wall.as_secs_f64();
    format!(
        "| {name} | {:.2} s | {rate:.0}/s | {:.1} ms | {:.1} ms | {} | {:.2} | {} | {:.2} / {:.2} / {:.2} s |",
        o.wall.as_secs_f64(),
        pct(&o.latencies, 0.5).as_secs_f64() * 1e3,
        pct(&o.latencies, 0.99).as_secs_f64() * 1e3,
        o.failures,
        o.writes as f64 / n as f64,
        o.conflicts,
        o.cpu[0],
        o.cpu[1],
        o.cpu[2]
    )
}

/// CPU seconds used so far by this process, kube-apiserver and etcd (the control plane's
/// pids from `$SPIDERPOOL_CP_DIR`, default /tmp/spiderpool-control-plane; 0 when unknown).
fn cpu_now() -> [f64; 3] {
    let dir = std::env::var("SPIDERPOOL_CP_DIR")
        .unwrap_or_else(|_| "/tmp/spiderpool-control-plane".to_owned());
    let pid = |name: &str| {
        std::fs::read_to_string(format!("{dir}/{name}.pid"))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let secs = |pid: Option<String>| -> f64 {
        let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        else {
            return 0.0;
        };
        // Fields after the command name (which may hold spaces): utime is the 14th field,
        // stime the 15th, in clock ticks (USER_HZ, 100 on Linux).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (tick(11) + tick(12)) / 100.0
    };
    [
        secs(Some("self".to_owned())),
        secs(pid("apiserver")),
        secs(pid("etcd")),
    ]
}

fn cpu_since(start: [f64; 3]) -> [f64; 3] {
    let now = cpu_now();
    [now[0] - start[0], now[1] - start[1], now[2] - start[2]]
}

/// Creates `per_agent` copies of the endpoint `model` per client, one thread per client
/// (the same concurrency as [`drive`]), and times them: what the apiserver and etcd need
/// for the records alone.
fn floor(
    rt: &tokio::runtime::Runtime,
    clients: &[kube::Client],
    ns: &str,
    model: &str,
    per_agent: usize,
    run: &str,
) -> Result<Outcome> {
    let res = api_resource(&spiderpool_core::objects::ENDPOINT);
    let api: Api<DynamicObject> = Api::namespaced_with(clients[0].clone(), ns, &res);
    let mut model = rt.block_on(api.get(model))?;
    model.metadata.resource_version = None;
    model.metadata.uid = None;
    model.metadata.creation_timestamp = None;
    model.metadata.managed_fields = None;
    model.metadata.generation = None;
    // On a node no agent serves: the copies must not land in an agent's index (the memory
    // measured below is of node 0's agent).
    model.data["status"]["current"]["node"] = serde_json::json!(format!("{run}-floor-node"));
    let apis: Vec<Api<DynamicObject>> = clients
        .iter()
        .map(|c| Api::namespaced_with(c.clone(), ns, &res))
        .collect();
    let prof = phase_hook("floor");
    let cpu0 = cpu_now();
    let run = timed(clients.len(), per_agent, |i, k| {
        let mut obj = model.clone();
        obj.metadata.name = Some(format!("{run}-f-{i}-{k}"));
        rt.handle()
            .block_on(apis[i].create(&PostParams::default(), &obj))
            .is_ok()
    });
    let n = run.latencies.len() as u64;
    let out = Outcome::of(run, cpu_since(cpu0), n, 0);
    wait_hook(prof);
    Ok(out)
}

/// Starts `$K8S_IPAM_PHASE_CMD PHASE` (through `sh -c`) when that variable is set: a command
/// run alongside the `ours` and `floor` phases, e.g. `hack/apiserver-profile.sh 2`, which
/// takes a CPU profile of the apiserver while the phase runs.
fn phase_hook(phase: &str) -> Option<std::process::Child> {
    let cmd = std::env::var("K8S_IPAM_PHASE_CMD").ok()?;
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} {phase}"))
        .spawn()
    {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("K8S_IPAM_PHASE_CMD: {e}");
            None
        }
    }
}

/// Waits for the command [`phase_hook`] started (after the phase's numbers are taken, before
/// the next phase starts, so a profile covers one phase only).
fn wait_hook(child: Option<std::process::Child>) {
    if let Some(mut c) = child
        && let Err(e) = c.wait()
    {
        eprintln!("K8S_IPAM_PHASE_CMD: {e}");
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() -> Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = rt.block_on(spiderpool_k8s::client::connect(None))?;
    rt.block_on(spiderpool_k8s::crds::install(
        &client,
        Duration::from_secs(60),
    ))?;
    let run = format!("bench{}", std::process::id());
    let n = a.agents * a.per_agent;
    let ns = "default";
    let mut clients = Vec::new();
    for _ in 0..a.agents {
        clients.push(rt.block_on(spiderpool_k8s::client::connect(None))?);
    }

    // Ours: per-node blocks.
    let ours_pool = format!("{run}-ours");
    create_pool(&rt, &client, &ours_pool, 8, n + a.spare)?;
    let ours: Vec<Arc<KubeStore>> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            KubeStore::start(
                rt.handle().clone(),
                c.clone(),
                KubeStoreOptions::new(format!("{run}-o-node-{i}")),
                Duration::from_secs(60),
            )
            .map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    for s in &ours {
        while !s
            .pools()
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(&ours_pool))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let prof = phase_hook("ours");
    let cpu0 = cpu_now();
    let run_ours = drive(
        ours_alloc,
        &ours,
        ns,
        &ours_pool,
        a.per_agent,
        &format!("{run}-o"),
    );
    let (writes, conflicts) = ours.iter().fold((0, 0), |(w, c), s| {
        let (sw, sc, _) = s.traffic();
        (w + sw, c + sc)
    });
    let ours_out = Outcome::of(run_ours, cpu_since(cpu0), writes, conflicts);
    wait_hook(prof);
    let mut by_purpose: std::collections::BTreeMap<Purpose, [u64; 2]> = Default::default();
    for s in &ours {
        let m = s
            .stats()
            .pool_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (p, [sent, refused]) in m.iter() {
            let e = by_purpose.entry(*p).or_default();
            e[0] += sent;
            e[1] += refused;
        }
    }

    if a.ours_only {
        println!(
            "{}\nOurs, pool status writes by purpose (sent / refused with 409): {}\n{}",
            row("ours: per-node blocks, endpoint = record", &ours_out, n),
            purposes(&by_purpose),
            spread("ours", &ours_out)
        );
        return Ok(());
    }

    // Floor: the one write every design needs, alone: the same SpiderEndpoint objects
    // created by the same clients at the same concurrency, with no IPAM at all.
    let floor_out = floor(
        &rt,
        &clients,
        ns,
        &format!("{run}-o-0-0"),
        a.per_agent,
        &run,
    )?;

    // Baseline: upstream's pool-status update per allocation.
    let base_pool = format!("{run}-base");
    create_pool(&rt, &client, &base_pool, 9, n + a.spare)?;
    let base: Vec<Arc<PoolStatusStore>> = clients
        .iter()
        .map(|c| Arc::new(PoolStatusStore::start(rt.handle().clone(), c.clone())))
        .collect();
    for s in &base {
        while s.snapshot(&[])?.pool(&base_pool).is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let cpu0 = cpu_now();
    let run_base = drive(
        base_alloc,
        &base,
        ns,
        &base_pool,
        a.per_agent,
        &format!("{run}-b"),
    );
    let writes = base.iter().map(|s| s.writes.load(Ordering::Relaxed)).sum();
    let conflicts = base
        .iter()
        .map(|s| s.conflicts.load(Ordering::Relaxed))
        .sum();
    let base_out = Outcome::of(run_base, cpu_since(cpu0), writes, conflicts);

    println!(
        "{n} allocations by {} agents (concurrency {}), one {}-address pool:\n",
        a.agents,
        a.agents,
        n + a.spare
    );
    println!(
        "| strategy | wall | rate | p50 | p99 | failed | writes/alloc | 409s | CPU agents / apiserver / etcd |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "{}",
        row("ours: per-node blocks, endpoint = record", &ours_out, n)
    );
    println!(
        "{}",
        row("floor: the endpoint creates alone (no IPAM)", &floor_out, n)
    );
    println!(
        "{}",
        row(
            "baseline: pool status update per allocation (upstream)",
            &base_out,
            n
        )
    );
    println!(
        "\nOurs, pool status writes by purpose (sent / refused with 409): {}",
        purposes(&by_purpose)
    );
    for (name, o) in [
        ("ours", &ours_out),
        ("floor", &floor_out),
        ("baseline", &base_out),
    ] {
        println!("{}", spread(name, o));
    }

    // Sequential: one agent, one allocation at a time.
    let seq_pool = format!("{run}-seq");
    create_pool(&rt, &client, &seq_pool, 10, a.sequential.max(1))?;
    let seq_base_pool = format!("{run}-seqb");
    create_pool(&rt, &client, &seq_base_pool, 11, a.sequential.max(1))?;
    while !ours[0]
        .pools()
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some(&seq_pool))
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    while base[0].snapshot(&[])?.pool(&seq_base_pool).is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let Run {
        latencies: seq_ours,
        failures: f1,
        ..
    } = drive(
        ours_alloc,
        &ours[..1],
        ns,
        &seq_pool,
        a.sequential,
        &format!("{run}-so"),
    );
    let Run {
        latencies: seq_base,
        failures: f2,
        ..
    } = drive(
        base_alloc,
        &base[..1],
        ns,
        &seq_base_pool,
        a.sequential,
        &format!("{run}-sb"),
    );
    println!(
        "\nSequential allocations by one agent ({}):\n",
        a.sequential
    );
    println!("| strategy | p50 | p99 | failed |\n|---|---|---|---|");
    println!(
        "| ours | {:.2} ms | {:.2} ms | {f1} |",
        pct(&seq_ours, 0.5).as_secs_f64() * 1e3,
        pct(&seq_ours, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| baseline | {:.2} ms | {:.2} ms | {f2} |",
        pct(&seq_base, 0.5).as_secs_f64() * 1e3,
        pct(&seq_base, 0.99).as_secs_f64() * 1e3
    );

    if let Some(bin) = &a.agent_bin {
        let count = ours[0].endpoint_count();
        let dir = std::env::temp_dir().join(format!("{run}-agent"));
        std::fs::create_dir_all(&dir)?;
        let sock = dir.join("a.sock");
        let mut child = std::process::Command::new(bin)
            .args([
                "--node-name",
                &format!("{run}-o-node-0"),
                "--health-port",
                "0",
                "--log-level",
                "warn",
            ])
            .arg("--socket")
            .arg(&sock)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(2));
        let rss = rss_kib(child.id());
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "\nspiderpool-agent (Kubernetes mode) RSS after sync, serving a node with {count} SpiderEndpoints: {} KiB",
            rss.map_or("?".to_owned(), |r| r.to_string())
        );
    }
    Ok(())
}
