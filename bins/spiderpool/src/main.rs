//! `spiderpool`: the IPAM CNI plugin. It asks the node's spiderpool-agent, over its UNIX
//! socket, for the addresses and routes of one NIC of a pod, and prints them as a CNI result.
//!
//! Behaviour, configuration keys, local-mode keys and error codes: `docs/plugins.md`.

mod config;
mod detect;
mod ipam;
mod pod;

use std::process::ExitCode;

const ABOUT: &str = "spiderpool IPAM CNI plugin (Rust)";

fn main() -> ExitCode {
    spiderpool_plugin_support::run(&ipam::SpiderpoolIpam, ABOUT)
}
