//! `cni_chain`: wall time of real CNI plugin chains in network namespaces (root only).
//!
//! Run `cni_chain --help` for the usage; results are in docs/benchmarks.md, "CNI chain
//! latency".

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

fn usage() -> String {
    "\
cni_chain: wall time of real CNI plugin chains, each variant beside the others in one run

USAGE:
    sudo cni_chain [--iterations N] [--bin-dir DIR] [--debian-dir DIR] [--keep-going]
                   [--raw FILE] [--log-dir DIR]

Builds a node netns with a veth parent `ens192` (10.6.212.132/16) and, for every run, a fresh
pod netns with a Calico-like eth0 (veth, /32, default via 169.254.1.1); then runs, as a runtime
would (plugins started in the node netns, ifname net1, cniVersion 0.3.1), ADD and then DEL of:

    A  Debian macvlan + Debian host-local IPAM
    B  Debian macvlan + our spiderpool IPAM (spiderpool-agent in local mode, durable store)
    C  B + our coordinator chained after macvlan

The variants are interleaved (A B C, B C A, C A B, ...) after one warm-up round. Each time is
the wall time of one plugin process (spawn to exit; the IPAM plugin runs inside macvlan's), and
a chain's time is the sum over its plugins. Also measured, for locating IPAM's cost: process
start-up (CNI_COMMAND=VERSION) of every binary, and the IPAM plugins alone (ADD then DEL,
without macvlan), ours against an agent with the durable local store and with --store memory.

OPTIONS:
    --iterations N     runs per variant (default 200)
    --bin-dir DIR      where spiderpool, coordinator and spiderpool-agent are
                       (default: the directory of this executable)
    --debian-dir DIR   Debian's CNI plugins (default /usr/lib/cni; package
                       containernetworking-plugins)
    --raw FILE         also write every sample as CSV: group,label,iteration,ms
    --log-dir DIR      keep the plugins' logs (spiderpool-plugin.log, coordinator.log, at
                       their default levels) in DIR instead of the scratch directory
    -h, --help         this text

Build and run (release):
    cargo build --release -p spiderpool -p coordinator -p spiderpool-agent -p spiderpool-benches
    sudo target/release/cni_chain --iterations 200

Without root it prints why it cannot run and exits 0.
"
    .to_owned()
}

struct Args {
    iterations: usize,
    bin_dir: PathBuf,
    debian_dir: PathBuf,
    raw: Option<PathBuf>,
    log_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut args = Args {
        iterations: 200,
        bin_dir: exe
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?,
        debian_dir: PathBuf::from("/usr/lib/cni"),
        raw: None,
        log_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(None);
            }
            "--iterations" => {
                args.iterations = value()?.parse().context("--iterations")?;
                if args.iterations == 0 {
                    bail!("--iterations must be at least 1");
                }
            }
            "--bin-dir" => args.bin_dir = PathBuf::from(value()?),
            "--debian-dir" => args.debian_dir = PathBuf::from(value()?),
            "--raw" => args.raw = Some(PathBuf::from(value()?)),
            "--log-dir" => args.log_dir = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other:?}\n\n{}", usage()),
        }
    }
    Ok(Some(args))
}

/// Runs a command to completion, failing with its stderr.
fn run(args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", args[0]))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NS -batch -` with these lines.
fn ip_batch(ns: &str, lines: &[String]) -> Result<()> {
    run(&["ip", "-n", ns, "-batch", "-"], Some(&lines.join("\n"))).map(|_| ())
}

/// Everything the run creates; removed on drop (also on error).
struct Lab {
    node: String,
    pods: Vec<String>,
    agents: Vec<Child>,
    dir: PathBuf,
}

impl Lab {
    fn new() -> Result<Lab> {
        let id = std::process::id();
        let dir = std::env::temp_dir().join(format!("cni-chain-{id}"));
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        Ok(Lab {
            node: format!("cc{id}-node"),
            pods: Vec::new(),
            agents: Vec::new(),
            dir,
        })
    }

    /// The node netns: `ens192` (a veth whose peer stays in the node) with the node IP, a
    /// default route via the underlay gateway.
    fn build_node(&mut self) -> Result<()> {
        let _ = run(&["ip", "netns", "del", &self.node], None);
        run(&["ip", "netns", "add", &self.node], None)?;
        ip_batch(
            &self.node,
            &[
                "link set lo up".into(),
                "link add ens192 type veth peer name ens192p".into(),
                "link set ens192p up".into(),
                "link set ens192 up".into(),
                "addr add 10.6.212.132/16 dev ens192".into(),
                "route add default via 10.6.0.1 dev ens192".into(),
            ],
        )
    }

    /// A fresh pod netns with a Calico-like eth0 (`/32` `addr`, default via 169.254.1.1; the
    /// node end `cali` answers ARP by proxy and routes `addr` to the pod).
    fn build_pod(&mut self, pod: &str, cali: &str, addr: &str) -> Result<()> {
        run(&["ip", "netns", "add", pod], None)?;
        self.pods.push(pod.to_owned());
        ip_batch(
            &self.node,
            &[format!(
                "link add {cali} type veth peer name eth0 netns {pod}"
            )],
        )?;
        ip_batch(
            pod,
            &[
                "link set lo up".into(),
                format!("addr add {addr}/32 dev eth0"),
                "link set eth0 up".into(),
                "route add 169.254.1.1 dev eth0 scope link".into(),
                "route add default via 169.254.1.1 dev eth0".into(),
            ],
        )?;
        ip_batch(
            &self.node,
            &[
                format!("link set {cali} address ee:ee:ee:ee:ee:ee up"),
                format!("route add {addr}/32 dev {cali} scope link"),
            ],
        )?;
        // This process is in the node netns: /proc/sys/net is the node's.
        std::fs::write(format!("/proc/sys/net/ipv4/conf/{cali}/proxy_arp"), "1")
            .context("proxy_arp")?;
        Ok(())
    }

    fn remove_pod(&mut self, pod: &str, cali: &str) {
        let _ = ip_batch(&self.node, &[format!("link del {cali}")]);
        let _ = run(&["ip", "netns", "del", pod], None);
        self.pods.retain(|p| p != pod);
    }

    /// Starts `spiderpool-agent` in local mode and waits until it answers its health check.
    fn start_agent(&mut self, bin: &Path, name: &str, memory: bool) -> Result<PathBuf> {
        let base = self.dir.join(name);
        let config = base.join("config");
        std::fs::create_dir_all(&config)?;
        std::fs::write(config.join("ippool.yaml"), POOL)?;
        std::fs::write(config.join("coordinator.yaml"), COORDINATOR)?;
        let socket = base.join("agent.sock");
        let log = File::create(base.join("agent.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--local-config")
            .arg(&config)
            .arg("--state-dir")
            .arg(base.join("state"))
            .arg("--socket")
            .arg(&socket)
            .arg("--node")
            .arg("bench-node")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if memory {
            cmd.args(["--store", "memory"]);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.agents.push(child);
        let start = Instant::now();
        while !healthy(&socket) {
            if start.elapsed() > Duration::from_secs(15) {
                bail!(
                    "the agent did not answer on {} (log: {})",
                    socket.display(),
                    base.join("agent.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(socket)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            let _ = Command::new("kill").arg(agent.id().to_string()).status();
            let _ = agent.wait();
        }
        for pod in &self.pods {
            let _ = run(&["ip", "netns", "del", pod], None);
        }
        let _ = run(&["ip", "netns", "del", &self.node], None);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET /v1/ipam/healthy` on the agent's socket answers 200.
fn healthy(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /v1/ipam/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

const POOL: &str = include_str!("../../../examples/quickstart/ippool.yaml");
const COORDINATOR: &str = include_str!("../../../examples/quickstart/coordinator.yaml");

/// One pod NIC attachment, as the runtime describes it to the plugins.
struct Attachment {
    container_id: String,
    netns: String,
    pod: String,
}

/// One plugin process: its wall time and its stdout.
fn exec_plugin(
    cni_path: &Path,
    command: &str,
    conf: &Value,
    att: &Attachment,
) -> Result<(f64, String)> {
    let plugin = conf["type"].as_str().unwrap_or_default().to_owned();
    let bin = cni_path.join(&plugin);
    let body = conf.to_string();
    let start = Instant::now();
    let mut child = Command::new(&bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &att.container_id)
        .env("CNI_NETNS", &att.netns)
        // The IPAM-alone runs use the node's netns on purpose; our plugins refuse their own
        // netns without this (libcni's check). The chains' pod netns are unaffected.
        .env("CNI_NETNS_OVERRIDE", "1")
        .env("CNI_IFNAME", "net1")
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}",
                pod = att.pod
            ),
        )
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| bin.display().to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(body.as_bytes()) {
            // VERSION answers without reading stdin.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r?,
        }
    }
    let out = child.wait_with_output()?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{plugin} {command} failed: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((ms, stdout))
}

/// A plugin's configuration inside the list: the list's name and version, prevResult.
fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("cniVersion".into(), list["cniVersion"].clone());
    conf.insert("name".into(), list["name"].clone());
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    Value::Object(conf)
}

/// Per-plugin wall times of one chain command, in list order.
type Times = Vec<(String, f64)>;

fn chain_add(cni_path: &Path, list: &Value, att: &Attachment) -> Result<(Times, Value)> {
    let mut prev: Option<Value> = None;
    let mut times = Vec::new();
    for plugin in list["plugins"].as_array().into_iter().flatten() {
        let conf = plugin_conf(list, plugin, prev.as_ref());
        let (ms, out) = exec_plugin(cni_path, "ADD", &conf, att)?;
        times.push((plugin["type"].as_str().unwrap_or_default().to_owned(), ms));
        prev = Some(serde_json::from_str(&out).with_context(|| format!("result {out:?}"))?);
    }
    let result = prev.ok_or_else(|| anyhow!("the chain produced no result"))?;
    Ok((times, result))
}

fn chain_del(cni_path: &Path, list: &Value, att: &Attachment, result: &Value) -> Result<Times> {
    let mut times = Vec::new();
    let plugins: Vec<&Value> = list["plugins"].as_array().into_iter().flatten().collect();
    for plugin in plugins.into_iter().rev() {
        let conf = plugin_conf(list, plugin, Some(result));
        let (ms, _) = exec_plugin(cni_path, "DEL", &conf, att)?;
        times.push((plugin["type"].as_str().unwrap_or_default().to_owned(), ms));
    }
    Ok(times)
}

fn macvlan(ipam: Value) -> Value {
    json!({"type": "macvlan", "master": "ens192", "mode": "bridge", "ipam": ipam})
}

fn spiderpool_ipam(socket: &Path, log: &Path) -> Value {
    json!({
        "type": "spiderpool",
        "default_ipv4_ippool": ["10-6-v4"],
        "ipam_unix_socket_path": socket,
        "log_file_path": log,
    })
}

fn host_local_ipam(data_dir: &Path) -> Value {
    // The seed pool's range, gateway and default route, as host-local spells them.
    json!({
        "type": "host-local",
        "ranges": [[{
            "subnet": "10.6.0.0/16",
            "rangeStart": "10.6.212.100",
            "rangeEnd": "10.6.212.200",
            "gateway": "10.6.0.1"
        }]],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.6.0.1"}],
        "dataDir": data_dir,
    })
}

fn list(plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "0.3.1", "name": "macvlan-ens192", "plugins": plugins})
}

/// Samples of one measurement, in milliseconds.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// All samples, keyed by (group, label).
#[derive(Default)]
struct Results {
    samples: BTreeMap<(String, String), Samples>,
    raw: Vec<String>,
}

impl Results {
    fn add(&mut self, group: &str, label: &str, iteration: usize, ms: f64) {
        self.samples
            .entry((group.to_owned(), label.to_owned()))
            .or_default()
            .0
            .push(ms);
        self.raw
            .push(format!("{group},{label},{iteration},{ms:.3}"));
    }

    fn get(&self, group: &str, label: &str) -> Option<&Samples> {
        self.samples.get(&(group.to_owned(), label.to_owned()))
    }

    fn median(&self, group: &str, label: &str) -> f64 {
        self.get(group, label).map_or(f64::NAN, Samples::median)
    }

    fn row(&self, group: &str, label: &str, title: &str) {
        if let Some(s) = self.get(group, label) {
            println!(
                "  {title:<44} {:>8.2} {:>8.2} {:>8.2} {:>5}",
                s.median(),
                s.pct(90.0),
                s.pct(99.0),
                s.0.len()
            );
        }
    }
}

struct Variant {
    name: &'static str,
    title: &'static str,
    list: Value,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cni_chain: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() {
        println!(
            "cni_chain: skipped: needs root (network namespaces, veth, macvlan). \
             Run it with sudo; see --help."
        );
        return Ok(());
    }
    let debian_macvlan = args.debian_dir.join("macvlan");
    let debian_host_local = args.debian_dir.join("host-local");
    for p in [&debian_macvlan, &debian_host_local] {
        if !p.exists() {
            println!(
                "cni_chain: skipped: {} is missing (apt-get install containernetworking-plugins)",
                p.display()
            );
            return Ok(());
        }
    }
    for bin in ["spiderpool", "coordinator", "spiderpool-agent"] {
        if !args.bin_dir.join(bin).exists() {
            bail!(
                "{} is missing: cargo build --release -p spiderpool -p coordinator \
                 -p spiderpool-agent -p spiderpool-benches (or pass --bin-dir)",
                args.bin_dir.join(bin).display()
            );
        }
    }

    let mut lab = Lab::new()?;
    lab.build_node()?;
    // From here on this process (and every plugin it starts) lives in the node netns, as the
    // runtime's plugins do.
    let node_ns = File::open(format!("/var/run/netns/{}", lab.node))?;
    nix::sched::setns(&node_ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .context("entering the node netns")?;

    let agent_bin = args.bin_dir.join("spiderpool-agent");
    let socket = lab.start_agent(&agent_bin, "agent-local", false)?;
    let socket_mem = lab.start_agent(&agent_bin, "agent-memory", true)?;

    let cni_path = lab.dir.join("cni-bin");
    std::fs::create_dir_all(&cni_path)?;
    for (name, target) in [
        ("macvlan", debian_macvlan.clone()),
        ("host-local", debian_host_local.clone()),
        ("spiderpool", args.bin_dir.join("spiderpool")),
        ("coordinator", args.bin_dir.join("coordinator")),
    ] {
        std::os::unix::fs::symlink(&target, cni_path.join(name))?;
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| lab.dir.clone());
    std::fs::create_dir_all(&log_dir)?;
    let plugin_log = log_dir.join("spiderpool-plugin.log");
    let host_local_dir = lab.dir.join("host-local");
    let coordinator = json!({
        "type": "coordinator",
        "ipam_unix_socket_path": socket,
        "logOptions": {"logFile": log_dir.join("coordinator.log")},
    });
    let variants = [
        Variant {
            name: "A",
            title: "A macvlan + host-local",
            list: list(vec![macvlan(host_local_ipam(&host_local_dir))]),
        },
        Variant {
            name: "B",
            title: "B macvlan + spiderpool",
            list: list(vec![macvlan(spiderpool_ipam(&socket, &plugin_log))]),
        },
        Variant {
            name: "C",
            title: "C macvlan + spiderpool + coordinator",
            list: list(vec![
                macvlan(spiderpool_ipam(&socket, &plugin_log)),
                coordinator,
            ]),
        },
    ];

    let mut results = Results::default();
    let n = args.iterations;
    println!(
        "cni_chain: {n} runs per variant (+1 warm-up), interleaved; node netns {}",
        lab.node
    );
    let started = Instant::now();
    for i in 0..=n {
        for k in 0..variants.len() {
            let v = &variants[(i + k) % variants.len()];
            let id = i * variants.len() + k;
            let pod = format!("cc{}-p{id}", std::process::id());
            let cali = format!("calib{id}");
            let addr = format!("10.233.{}.{}", 64 + id / 250, id % 250 + 1);
            lab.build_pod(&pod, &cali, &addr)?;
            let att = Attachment {
                container_id: format!("cid-{}-{id}", v.name),
                netns: format!("/var/run/netns/{pod}"),
                pod: format!("pod-{}-{id}", v.name.to_lowercase()),
            };
            let (add, result) = chain_add(&cni_path, &v.list, &att)
                .with_context(|| format!("variant {} ADD (run {i})", v.name))?;
            let del = chain_del(&cni_path, &v.list, &att, &result)
                .with_context(|| format!("variant {} DEL (run {i})", v.name))?;
            lab.remove_pod(&pod, &cali);
            if i == 0 {
                continue; // warm-up
            }
            let add_ms: f64 = add.iter().map(|(_, t)| t).sum();
            let del_ms: f64 = del.iter().map(|(_, t)| t).sum();
            results.add(v.name, "ADD", i, add_ms);
            results.add(v.name, "DEL", i, del_ms);
            results.add(v.name, "ADD+DEL", i, add_ms + del_ms);
            for (plugin, t) in add {
                results.add(v.name, &format!("ADD {plugin}"), i, t);
            }
            for (plugin, t) in del {
                results.add(v.name, &format!("DEL {plugin}"), i, t);
            }
        }
    }
    let chain_secs = started.elapsed().as_secs_f64();

    // Where IPAM's time goes: start-up, and the IPAM plugins alone (no macvlan).
    let ipam_alone = [
        ("host-local", host_local_ipam(&host_local_dir)),
        ("spiderpool", spiderpool_ipam(&socket, &plugin_log)),
        ("spiderpool-mem", spiderpool_ipam(&socket_mem, &plugin_log)),
    ];
    let version_conf = json!({"cniVersion": "0.3.1", "name": "v", "type": "macvlan"});
    let node_path = format!("/var/run/netns/{}", lab.node);
    for i in 0..=n {
        for k in 0..4 {
            let bin = ["macvlan", "host-local", "spiderpool", "coordinator"][(i + k) % 4];
            let mut conf = version_conf.clone();
            conf["type"] = json!(bin);
            let att = Attachment {
                container_id: "version".into(),
                netns: node_path.clone(),
                pod: "version".into(),
            };
            let (ms, _) = exec_plugin(&cni_path, "VERSION", &conf, &att)?;
            if i > 0 {
                results.add("startup", bin, i, ms);
            }
        }
        for k in 0..ipam_alone.len() {
            let (label, ipam) = &ipam_alone[(i + k) % ipam_alone.len()];
            // As macvlan hands it over: the network's config with `type` naming the IPAM.
            let conf = json!({
                "cniVersion": "0.3.1",
                "name": "macvlan-ens192",
                "type": ipam["type"],
                "master": "ens192",
                "ipam": ipam,
            });
            let att = Attachment {
                container_id: format!("ipam-{label}-{i}"),
                netns: node_path.clone(),
                pod: format!("ipam-{label}-{i}"),
            };
            let (add, _) = exec_plugin(&cni_path, "ADD", &conf, &att)
                .with_context(|| format!("{label} ADD alone"))?;
            let (del, _) = exec_plugin(&cni_path, "DEL", &conf, &att)
                .with_context(|| format!("{label} DEL alone"))?;
            if i > 0 {
                results.add("ipam", &format!("{label} ADD"), i, add);
                results.add("ipam", &format!("{label} DEL"), i, del);
            }
        }
    }

    report(&results, &variants, n, chain_secs);
    if let Some(path) = &args.raw {
        let mut text = String::from("group,label,iteration,ms\n");
        for line in &results.raw {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| path.display().to_string())?;
        println!("raw samples: {}", path.display());
    }
    Ok(())
}

fn report(r: &Results, variants: &[Variant], n: usize, chain_secs: f64) {
    println!("chain runs took {chain_secs:.1} s (setup and teardown of pods included)\n");
    println!(
        "  {:<44} {:>8} {:>8} {:>8} {:>5}",
        "wall time per plugin chain (ms)", "median", "p90", "p99", "n"
    );
    for v in variants {
        for op in ["ADD", "DEL", "ADD+DEL"] {
            r.row(v.name, op, &format!("{} {op}", v.title));
        }
    }
    println!("\n  per plugin process (ms)");
    for v in variants {
        let mut labels: Vec<&String> = r
            .samples
            .keys()
            .filter(|(g, l)| g == v.name && l.contains(' '))
            .map(|(_, l)| l)
            .collect();
        labels.sort();
        for l in labels {
            r.row(v.name, l, &format!("{} {l}", v.name));
        }
    }
    println!("\n  process start-up, CNI_COMMAND=VERSION (ms)");
    for bin in ["macvlan", "host-local", "spiderpool", "coordinator"] {
        r.row("startup", bin, bin);
    }
    println!("\n  IPAM plugin alone, no macvlan (ms)");
    for l in [
        "host-local ADD",
        "host-local DEL",
        "spiderpool ADD",
        "spiderpool DEL",
        "spiderpool-mem ADD",
        "spiderpool-mem DEL",
    ] {
        r.row("ipam", l, l);
    }
    let d = |a: &str, b: &str, op: &str| r.median(a, op) - r.median(b, op);
    println!("\n  differences of medians (ms), {n} runs each");
    for op in ["ADD", "DEL", "ADD+DEL"] {
        println!(
            "  {op:<8} IPAM (B - A) {:>+7.2}   coordinator (C - B) {:>+7.2}",
            d("B", "A", op),
            d("C", "B", op)
        );
    }
    println!(
        "  coordinator ADD process alone (C): median {:.2} ms",
        r.median("C", "ADD coordinator")
    );
}
