//! `spiderpool-controller`: admission webhooks, probes and metrics on every replica; the
//! controllers and IP garbage collection on the replica holding the Lease.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spiderpool_controller::{
    Ctx, clean, coordinator, gc, ippool, leader, metrics, multusconfig, probes, subnet, webhook,
};
use spiderpool_plugin_support::log::{LevelFilter, LogConfig, parse_level};

#[derive(Debug, Parser)]
#[command(
    name = "spiderpool-controller",
    version,
    about = "Spiderpool's cluster side: admission webhooks, pool / SpiderMultusConfig / SpiderCoordinator controllers, IP garbage collection"
)]
struct Cli {
    /// The kubeconfig; default `$KUBECONFIG`, else the in-cluster service account.
    #[arg(long, value_name = "FILE", global = true)]
    kubeconfig: Option<PathBuf>,
    /// One of debug, info, warn, error.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        env = "SPIDERPOOL_LOG_LEVEL",
        default_value = "info"
    )]
    log_level: String,
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", global = true)]
    log_format: spiderpool_plugin_support::log::Format,
    /// Without one: run the controller (as `daemon`).
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    daemon: Daemon,
}

/// Upstream's subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the controller (the default).
    Daemon(Box<Daemon>),
    /// Helm pre-delete hook: delete the webhook configurations, every Spiderpool object, the
    /// Spiderpool CRDs and the init Job.
    Clean(clean::Args),
}

/// Every component's flags.
#[derive(Debug, clap::Args)]
struct Daemon {
    #[command(flatten)]
    webhook: webhook::Args,
    #[command(flatten)]
    probes: probes::Args,
    #[command(flatten)]
    metrics: metrics::Args,
    #[command(flatten)]
    leader: leader::Args,
    #[command(flatten)]
    ippool: ippool::Args,
    #[command(flatten)]
    multusconfig: multusconfig::Args,
    #[command(flatten)]
    coordinator: coordinator::Args,
    #[command(flatten)]
    gc: gc::Args,
    #[command(flatten)]
    subnet: subnet::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match parse_level(&cli.log_level, LevelFilter::Info) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("spiderpool-controller: {e}");
            return ExitCode::from(2);
        }
    };
    spiderpool_plugin_support::log::init_with_format(
        &LogConfig {
            level,
            program: "spiderpool-controller".to_owned(),
            ..LogConfig::default()
        },
        cli.log_format,
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spiderpool-controller: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Some(Command::Clean(args)) => rt.block_on(run_clean(cli.kubeconfig, args)),
        Some(Command::Daemon(daemon)) => rt.block_on(run(cli.kubeconfig, *daemon)),
        None => rt.block_on(run(cli.kubeconfig, cli.daemon)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("spiderpool-controller: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_clean(kubeconfig: Option<PathBuf>, args: clean::Args) -> anyhow::Result<()> {
    let client = spiderpool_k8s::client::connect(kubeconfig.as_deref()).await?;
    clean::run(&client, &args).await?;
    Ok(())
}

async fn run(kubeconfig: Option<PathBuf>, mut cli: Daemon) -> anyhow::Result<()> {
    let client = spiderpool_k8s::client::connect(kubeconfig.as_deref()).await?;
    let ctx = Ctx::new(client);
    cli.webhook.enable_spider_subnet = Some(cli.subnet.enabled);
    // Leader-only work: every controller and the GC, dropped together when the Lease is lost.
    let leading = {
        let ctx = ctx.clone();
        let (ippool, smc, coord, gc) = (cli.ippool, cli.multusconfig, cli.coordinator, cli.gc);
        let subnet = cli.subnet;
        move || {
            let ctx = ctx.clone();
            let (ippool, smc, coord, gc) = (ippool.clone(), smc.clone(), coord.clone(), gc.clone());
            let subnet = subnet.clone();
            async move {
                tokio::try_join!(
                    ippool::run(ctx.clone(), ippool),
                    multusconfig::run(ctx.clone(), smc),
                    coordinator::run(ctx.clone(), coord),
                    gc::run(ctx.clone(), gc),
                    subnet::run(ctx.clone(), subnet),
                )?;
                Ok(())
            }
        }
    };
    // Every replica: webhooks, probes, metrics, and the election; the Lease is released on
    // the way out (an async step Drop cannot take).
    let leader_args = cli.leader.clone();
    let outcome: anyhow::Result<()> = async {
        tokio::select! {
            r = webhook::serve(ctx.clone(), cli.webhook) => r?,
            r = probes::serve(ctx.clone(), cli.probes) => r?,
            r = metrics::serve(ctx.clone(), cli.metrics) => r?,
            r = leader::run_while_leader(ctx.clone(), cli.leader, leading) => r?,
            r = tokio::signal::ctrl_c() => {
                r?;
                log::info!("interrupted: stopping");
            }
            _ = terminated() => log::info!("SIGTERM: stopping"),
        }
        Ok(())
    }
    .await;
    leader::release(&ctx, &leader_args).await;
    outcome
}

/// Resolves on SIGTERM (what the kubelet sends first).
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            log::warn!("no SIGTERM handler: {e}");
            std::future::pending::<()>().await;
        }
    }
}
