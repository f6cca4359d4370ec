//! `spiderpool-agent`: the node agent, serving the IPAM API on a UNIX socket. Local mode
//! (`--local-config DIR`): without Kubernetes, fed by a directory of Spiderpool YAML.
//! Kubernetes mode (no `--local-config`): pools, endpoints and pods from the apiserver
//! (see docs/agent.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use nix::sys::signal::{SigSet, Signal};
use spiderpool_agent::agent::{Agent, AgentOptions, ReloadReport};
use spiderpool_agent::api::{self, PATH_LOCAL_STATE};
use spiderpool_agent::backend::AgentStore;
use spiderpool_agent::localstore::LocalStore;
use spiderpool_agent::server::{self, Handler, Shutdown};
use spiderpool_core::agentapi::DEFAULT_SOCKET;
use spiderpool_core::ipam::MemoryStore;
use spiderpool_plugin_support::agent_client::AgentClient;
use spiderpool_plugin_support::log::{LevelFilter, LogConfig, parse_level};

#[derive(Debug, Parser)]
#[command(
    name = "spiderpool-agent",
    version,
    about = "Spiderpool's node agent: the IPAM API on a UNIX socket, on Kubernetes or (--local-config) without it",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory of SpiderIPPool, SpiderSubnet, SpiderReservedIP, SpiderCoordinator and
    /// SpiderMultusConfig files (*.yaml, *.yml, *.json); re-read on SIGHUP.
    #[arg(long, value_name = "DIR")]
    local_config: Option<PathBuf>,
    /// Directory of the agent's durable state (the local store).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The API socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The node name pods run on (pool nodeName / nodeAffinity); default: the hostname.
    #[arg(
        long,
        visible_alias = "node-name",
        value_name = "NAME",
        env = "SPIDERPOOL_NODE_NAME"
    )]
    node: Option<String>,
    /// Kubernetes mode: the kubeconfig to use; default `$KUBECONFIG`, else the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE", conflicts_with = "local_config")]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes mode: TCP port of the health probes (`/v1/runtime/startup|readiness|
    /// liveness`); 0 turns them off.
    #[arg(long, value_name = "PORT", env = "SPIDERPOOL_HEALTH_PORT",
          default_value_t = spiderpool_agent::probes::DEFAULT_HEALTH_PORT)]
    health_port: u16,
    /// Serve Prometheus metrics of allocations and releases (both modes).
    #[arg(long, value_name = "BOOL", env = "SPIDERPOOL_ENABLED_METRIC", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    enable_metric: bool,
    /// TCP port of `/metrics` (with --enable-metric).
    #[arg(long, value_name = "PORT", env = "SPIDERPOOL_METRIC_HTTP_PORT",
          default_value_t = spiderpool_agent::metrics::DEFAULT_METRIC_PORT)]
    metric_port: u16,
    /// One of debug, info, warn, error, fatal, panic (fatal and panic mean error).
    #[arg(
        long,
        value_name = "LEVEL",
        env = "SPIDERPOOL_LOG_LEVEL",
        default_value = "info"
    )]
    log_level: String,
    /// Kubernetes mode: the NAD of the first NIC (`ns/name`) when a pod has no
    /// `v1.multus-cni.io/default-network` annotation (Multus' clusterNetwork; upstream's
    /// `MULTUS_CLUSTER_NETWORK`).
    #[arg(long, value_name = "NS/NAME", env = "MULTUS_CLUSTER_NETWORK")]
    multus_cluster_network: Option<String>,
    /// Kubernetes mode: the namespace Spiderpool runs in (bare NAD names in pool `multusName`
    /// resolve there); upstream's `SPIDERPOOL_POD_NAMESPACE`.
    #[arg(long, value_name = "NS", env = "SPIDERPOOL_POD_NAMESPACE")]
    agent_namespace: Option<String>,
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: spiderpool_plugin_support::log::Format,
    /// Log to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Where allocations are kept.
    #[arg(long, value_enum, default_value_t = StoreKind::Local)]
    store: StoreKind,
    /// API requests handled at once (at least 1); health checks have slots of their own.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = parse_workers)]
    workers: usize,
    /// Seconds a client has to send one whole request (then 408 and the connection closes).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = parse_request_timeout)]
    request_timeout: u64,
    /// ConfigMap `enableIPConflictDetection`: the IPAM plugin probes every address (ARP /
    /// NDP) before returning it, and fails the ADD when another host answers for it.
    #[arg(long)]
    enable_ip_conflict_detection: bool,
    /// ConfigMap `enableGatewayDetection`: the IPAM plugin checks that the pool's gateway
    /// answers (ARP / NDP) before returning an address, and fails the ADD when it does not.
    #[arg(long)]
    enable_gateway_detection: bool,
    /// `SPIDERPOOL_ENABLED_RELEASE_CONFLICT_IPS`: whether the plugin may release a pod's
    /// addresses after a failed detection (`DELETE /v1/ipam/ips` with isReleaseConflictIPs);
    /// false answers 521 and the addresses stay until DEL.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    enable_release_conflict_ips: bool,
    /// Kubernetes mode, ConfigMap `enableSpiderSubnet`: pods may name SpiderSubnets
    /// (`ipam.spidernet.io/subnet(s)`) and get their application's auto-created pool.
    #[arg(long, value_name = "BOOL", env = "SPIDERPOOL_ENABLE_SPIDER_SUBNET",
          default_value_t = true, action = clap::ArgAction::Set)]
    enable_spider_subnet: bool,
    /// Kubernetes mode: how often to look for the application's auto-created pool before an
    /// ADD fails (times `--wait-subnet-pool-time-in-second`).
    #[arg(
        long,
        value_name = "N",
        env = "SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES",
        default_value_t = 25
    )]
    wait_subnet_pool_max_retries: u32,
    /// Kubernetes mode: seconds between two looks for the auto-created pool (we re-plan as
    /// soon as a pool changes; the product of the two is the longest wait).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND",
        default_value_t = 2
    )]
    wait_subnet_pool_time_in_second: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// In memory: lost when the agent stops.
    Memory,
    /// The durable local store under --state-dir.
    Local,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the pools, records and endpoints as JSON: those of the agent answering on
    /// --socket, or, with --state-dir, those of the local store on disk (read-only; works
    /// whether or not an agent runs).
    Dump {
        /// The running agent's socket [default: /var/run/spidernet/spiderpool.sock].
        #[arg(long, value_name = "PATH", conflicts_with = "state_dir")]
        socket: Option<PathBuf>,
        /// Read the local store under this state dir instead of asking an agent.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1: no worker would answer any request".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a number of workers: {e}")),
    }
}

fn parse_request_timeout(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a number of seconds: {e}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Dump {
            state_dir: Some(dir),
            ..
        }) => match spiderpool_agent::localstore::inspect(&dir) {
            Ok(v) => print_json(&v),
            Err(e) => {
                eprintln!("spiderpool-agent dump: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Dump { socket, .. }) => {
            dump(&socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)))
        }
        None => {
            // With --log-file the error goes to the log too; without, the log is stderr
            // already and one line is enough.
            let logs_to_file = cli.log_file.is_some();
            match run(cli) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    if logs_to_file {
                        log::error!("{e}");
                    }
                    eprintln!("spiderpool-agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints `v` as pretty JSON. A reader that went away (`dump | head`) ends the output
/// quietly, as for any Unix tool.
fn print_json(v: &serde_json::Value) -> ExitCode {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    print_text(&text)
}

fn print_text(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spiderpool-agent dump: writing the output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dump(socket: &std::path::Path) -> ExitCode {
    let client = AgentClient::new(socket);
    match client.request(
        "GET",
        PATH_LOCAL_STATE,
        None,
        std::time::Duration::from_secs(30),
    ) {
        Ok(raw) if raw.status == 200 => {
            let text = serde_json::from_slice::<serde_json::Value>(&raw.body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| String::from_utf8_lossy(&raw.body).into_owned());
            print_text(&text)
        }
        Ok(raw) => {
            eprintln!(
                "spiderpool-agent dump: HTTP {}: {}",
                raw.status,
                String::from_utf8_lossy(&raw.body)
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("spiderpool-agent dump: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn open_store(kind: StoreKind, state_dir: &std::path::Path) -> Result<Box<dyn AgentStore>, String> {
    match kind {
        StoreKind::Memory => {
            log::warn!(
                "--store memory: allocations live in memory only and are lost when the agent stops"
            );
            Ok(Box::new(MemoryStore::new()))
        }
        StoreKind::Local => {
            let (store, report) = LocalStore::open(state_dir).map_err(|e| e.to_string())?;
            log::info!(
                "local store {}: {} journal record(s) replayed, {} record(s), {} endpoint(s){}",
                store.dir().display(),
                report.replayed,
                report.records,
                report.endpoints,
                if report.torn_bytes > 0 {
                    format!(
                        ", a torn last record of {} bytes cut off",
                        report.torn_bytes
                    )
                } else {
                    String::new()
                }
            );
            Ok(Box::new(store))
        }
    }
}

fn log_report(report: &ReloadReport) {
    for (file, objects) in &report.loaded {
        log::info!("loaded {file}: {}", objects.join(", "));
    }
    for (file, lines) in &report.rejected {
        log::error!("skipped {file}: {} problem(s)", lines.len());
        for line in lines {
            log::error!("skipped {file}: {line}");
        }
    }
    for (pool, records) in &report.vanished_kept {
        log::warn!(
            "IPPool {pool} is no longer configured but holds {records} record(s): \
             kept as terminating (no new allocations) until they are released"
        );
    }
    for pool in &report.removed {
        log::info!("IPPool {pool} is no longer configured and empty: removed");
    }
    for (pool, records) in &report.orphaned {
        log::warn!(
            "IPPool {pool} is not configured but the store holds {records} record(s) of it: \
             kept, not allocatable; configure the pool again to release them"
        );
    }
    for (object, reason) in &report.failed {
        log::error!("{object}: not applied: {reason}");
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let level = parse_level(&cli.log_level, LevelFilter::Info)?;
    spiderpool_plugin_support::log::init_with_format(
        &LogConfig {
            level,
            file: cli.log_file.clone(),
            program: "spiderpool-agent".to_owned(),
            ..LogConfig::default()
        },
        cli.log_format,
    );
    let Some(config_dir) = cli.local_config.clone() else {
        return run_kube(cli);
    };
    let state_dir = cli.state_dir.clone().ok_or("--state-dir DIR is required")?;
    if !config_dir.is_dir() {
        return Err(format!(
            "--local-config {}: not a directory",
            config_dir.display()
        ));
    }
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| format!("--state-dir {}: {e}", state_dir.display()))?;

    let signals = block_signals()?;

    let store = open_store(cli.store, &state_dir)?;
    let node = cli.node.clone().unwrap_or_else(hostname);
    let mut opts = AgentOptions::new(&config_dir, &node);
    opts.enable_ip_conflict_detection = cli.enable_ip_conflict_detection;
    opts.enable_gateway_detection = cli.enable_gateway_detection;
    opts.enable_release_conflict_ips = cli.enable_release_conflict_ips;
    let agent = Arc::new(Agent::new(store, opts));
    let report = agent.reload()?;
    log_report(&report);

    let listener = server::bind(&cli.socket).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new(&cli.socket);
    {
        let agent = Arc::clone(&agent);
        spawn_signal_thread(signals, shutdown.clone(), move || {
            log::info!("SIGHUP: reloading {}", config_dir.display());
            match agent.reload() {
                Ok(report) => log_report(&report),
                Err(e) => log::error!("reload failed, keeping the last configuration: {e}"),
            }
        })?;
    }
    log::info!(
        "serving the agent API on {} (node {node}, config {}, state {})",
        cli.socket.display(),
        agent.options().config_dir.display(),
        state_dir.display()
    );
    let o = agent.options();
    if o.enable_ip_conflict_detection || o.enable_gateway_detection {
        log::info!(
            "detection asked of the IPAM plugin: IP conflict {}, gateway {}",
            o.enable_ip_conflict_detection,
            o.enable_gateway_detection
        );
    }
    serve_api(&cli, listener, agent, &shutdown)
}

/// Blocks SIGTERM, SIGINT and SIGHUP before any thread starts, so every thread inherits the
/// mask and only the signal thread receives them (with sigwait: no handler, no unsafe).
fn block_signals() -> Result<SigSet, String> {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    Ok(signals)
}

/// The thread that owns the blocked signals: SIGHUP runs `on_hup`, SIGTERM / SIGINT (or a
/// failing sigwait) stop the server.
fn spawn_signal_thread(
    signals: SigSet,
    shutdown: Shutdown,
    on_hup: impl Fn() + Send + 'static,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            loop {
                match signals.wait() {
                    Ok(Signal::SIGHUP) => on_hup(),
                    Ok(sig) => {
                        log::info!("{sig}: shutting down");
                        shutdown.trigger();
                        return;
                    }
                    Err(e) => {
                        log::error!("sigwait: {e}");
                        shutdown.trigger();
                        return;
                    }
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// Kubernetes mode: the API on the Kubernetes store, health probes on `--health-port`.
fn run_kube(cli: Cli) -> Result<(), String> {
    use spiderpool_agent::kube_mode::{KubeAgent, KubeOptions};
    use spiderpool_agent::service::{Detection, IpamService};

    if cli.state_dir.is_some() {
        return Err("--state-dir is for local mode (with --local-config)".to_owned());
    }
    let signals = block_signals()?;
    let node = cli.node.clone().unwrap_or_else(hostname);
    let mut opts = KubeOptions::new(&node);
    opts.detection = Detection {
        ip_conflict: cli.enable_ip_conflict_detection,
        gateway: cli.enable_gateway_detection,
    };
    opts.enable_release_conflict_ips = cli.enable_release_conflict_ips;
    opts.ipam.enable_spider_subnet = cli.enable_spider_subnet;
    opts.ipam.cluster_network = cli.multus_cluster_network.clone().filter(|s| !s.is_empty());
    if let Some(ns) = cli.agent_namespace.clone().filter(|s| !s.is_empty()) {
        opts.ipam.agent_namespace = ns;
    }
    opts.ipam.enable_auto_pool = cli.enable_spider_subnet;
    opts.store.auto_pool_wait = std::time::Duration::from_secs(
        u64::from(cli.wait_subnet_pool_max_retries)
            .saturating_mul(cli.wait_subnet_pool_time_in_second),
    );
    log::info!("Kubernetes mode, node {node}: syncing pools, endpoints and pods");
    let agent = Arc::new(KubeAgent::start(cli.kubeconfig.as_deref(), opts)?);
    if cli.health_port != 0 {
        let service: Arc<dyn IpamService> = agent.clone();
        let port = spiderpool_agent::probes::spawn(cli.health_port, service)
            .map_err(|e| format!("--health-port {}: {e}", cli.health_port))?;
        log::info!("health probes on port {port}");
    }
    let listener = server::bind(&cli.socket).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new(&cli.socket);
    spawn_signal_thread(signals, shutdown.clone(), || {
        log::info!("SIGHUP: nothing to reload in Kubernetes mode");
    })?;
    log::info!(
        "serving the agent API on {} (node {node})",
        cli.socket.display()
    );
    serve_api(&cli, listener, agent, &shutdown)
}

/// Serves `service` on `listener` until `shutdown`, with the command line's server settings.
fn serve_api(
    cli: &Cli,
    listener: std::os::unix::net::UnixListener,
    service: Arc<dyn spiderpool_agent::service::IpamService>,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let service = if cli.enable_metric {
        use spiderpool_agent::metrics::{self, AgentMetrics, Metered};
        let m = Arc::new(AgentMetrics::new());
        let addr = metrics::spawn(cli.metric_port, m.clone())
            .map_err(|e| format!("--metric-port {}: {e}", cli.metric_port))?;
        log::info!("metrics on http://{addr}/metrics");
        Arc::new(Metered::new(service, m))
    } else {
        service
    };
    let handler: Handler = Arc::new(move |req| api::handle(service.as_ref(), req));
    server::serve_with(
        listener,
        handler,
        &server_config(cli.workers, cli.request_timeout),
        shutdown,
    )
    .map_err(|e| format!("serving {}: {e}", cli.socket.display()))?;
    log::info!("stopped; removed {}", cli.socket.display());
    Ok(())
}

/// The socket server's settings from the command line.
fn server_config(workers: usize, request_timeout_secs: u64) -> server::ServerConfig {
    let mut config = server::ServerConfig::new(workers);
    config.request_timeout = std::time::Duration::from_secs(request_timeout_secs);
    config
}
