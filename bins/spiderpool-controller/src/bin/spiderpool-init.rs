//! `spiderpool-init`: creates the cluster's default Spiderpool objects from upstream's
//! environment variables (Helm post-install Job); idempotent, never modifies what exists.
//! Exit status: 0 done, 2 an invalid flag or variable (nothing created), 1 anything else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "spiderpool-init",
    version,
    about = "Creates the default SpiderCoordinator, pools, subnets and SpiderMultusConfig"
)]
struct Cli {
    /// The kubeconfig; default `$KUBECONFIG`, else the in-cluster service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    init: spiderpool_controller::init::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    spiderpool_plugin_support::log::init(&spiderpool_plugin_support::log::LogConfig {
        program: "spiderpool-init".to_owned(),
        ..Default::default()
    });
    // Every variable is checked before anything is contacted.
    if let Err(e) = spiderpool_controller::init::plan(&cli.init) {
        eprintln!("spiderpool-init: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spiderpool-init: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = rt.block_on(async {
        let client = spiderpool_k8s::client::connect(cli.kubeconfig.as_deref()).await?;
        let ctx = spiderpool_controller::Ctx::new(client);
        spiderpool_controller::init::run(ctx, cli.init).await
    });
    match out {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spiderpool-init: {e}");
            ExitCode::FAILURE
        }
    }
}
