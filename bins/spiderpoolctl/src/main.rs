//! `spiderpoolctl`: the operator's CLI.
//!
//! Offline commands (no cluster needed): `validate` runs the admission webhooks on manifests,
//! `render` prints the NetworkAttachmentDefinition a SpiderMultusConfig becomes, `crds`
//! prints the CustomResourceDefinitions, `plan` prints the coordinator's routing plan for a
//! described pod. The README documents the exact interface.

/// `eprintln!` that never panics: with `2>&1 | head` stderr is a closed pipe too, and a
/// message that cannot be written is not worth a crash.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod crds;
mod input;
mod output;
mod plan;
mod render;
mod validate;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code when every object was accepted.
const EXIT_OK: u8 = 0;
/// Exit code when at least one object was rejected by admission.
const EXIT_REJECTED: u8 = 1;
/// Exit code for unreadable input or an unknown kind.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(name = "spiderpoolctl", version, about = "Spiderpool operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Default and validate Spiderpool objects as the admission webhooks would.
    Validate(ValidateArgs),
    /// Print the NetworkAttachmentDefinition of each SpiderMultusConfig.
    Render(RenderArgs),
    /// Print the CustomResourceDefinitions of all Spiderpool kinds.
    Crds,
    /// Print the coordinator's plan for one NIC of a described pod (offline).
    Plan(PlanArgs),
    /// Compare a live pod (and node) netns with the coordinator's plan; report drift.
    Verify(verify::VerifyArgs),
}

/// How `plan` prints the plan.
#[derive(Clone, Copy, ValueEnum)]
enum PlanOutput {
    /// The equivalent `ip` / `sysctl` commands, pod then node.
    Commands,
    /// `ip rule` and `ip route show table N` of the pod and the node after the plan.
    Tables,
    /// The plan as data.
    Json,
}

#[derive(Args)]
struct PlanArgs {
    /// Topology file: the pod's and host's interfaces, addresses and routes (YAML or JSON).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// The cluster's SpiderCoordinator (YAML or JSON); defaults apply without it.
    #[arg(long, value_name = "FILE")]
    coordinator: Option<PathBuf>,
    /// The NIC being configured (overrides the topology file's `ifname`).
    #[arg(long, value_name = "NAME")]
    ifname: Option<String>,
    /// What to print.
    #[arg(short = 'o', long = "output", value_enum, default_value = "commands")]
    output: PlanOutput,
}

/// Output formats for objects.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// YAML documents separated by `---`.
    Yaml,
    /// JSON: one object, or a `kind: List` when there are several.
    Json,
}

/// The cluster switches shared by `validate` and `render`: `--ipv6`, `--ipv6=false` and
/// `--ipv6 false` all work (a bare flag means `true`).
#[derive(Args)]
struct SwitchArgs {
    /// enableIPv4: allow IPv4 pools, subnets and reserved IPs.
    #[arg(long = "ipv4", value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    ipv4: bool,
    /// enableIPv6: allow IPv6 pools, subnets and reserved IPs.
    #[arg(long = "ipv6", value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    ipv6: bool,
    /// enableSpiderSubnet: pools are adopted by and checked against SpiderSubnets.
    #[arg(long = "spider-subnet", value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    spider_subnet: bool,
}

#[derive(Args)]
struct ValidateArgs {
    /// Manifest (YAML, multi-document, or JSON object / List), `-` for standard input, or a
    /// directory (its *.yaml, *.yml and *.json files); repeatable. Objects of other kinds
    /// are skipped and counted.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Objects already in the cluster (e.g. `kubectl get sp,ss,sr,smc -o yaml`).
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    #[command(flatten)]
    switches: SwitchArgs,
    /// Print the defaulted objects when all are accepted.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
}

#[derive(Args)]
struct RenderArgs {
    /// Manifest file holding SpiderMultusConfigs (other kinds are validated and skipped).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Objects already in the cluster (same formats as for `validate`).
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    #[command(flatten)]
    switches: SwitchArgs,
    /// Output format of the NetworkAttachmentDefinitions.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Crds => crds::run(),
        Command::Plan(args) => plan::run(&args),
        Command::Verify(args) => verify::run(&args),
    };
    ExitCode::from(code)
}
