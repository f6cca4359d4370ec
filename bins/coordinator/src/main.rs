//! `coordinator`: the chained CNI plugin that tunes a pod's policy routing after the main
//! plugin configured a NIC, so cluster traffic leaves by `eth0`, underlay traffic by `net1`,
//! replies by the NIC they came in on, and the node reaches the pod's underlay address through
//! the pod's veth. It asks the node's spiderpool-agent for the cluster settings, plans with
//! `spiderpool_core::coordinator` and applies with `spiderpool-netlink`; the CNI result is the
//! `prevResult`, unchanged.
//!
//! Behaviour, keys and error codes: `docs/plugins.md` (section "coordinator").

mod config;
mod live;
mod plugin;

use std::process::ExitCode;

const ABOUT: &str = "coordinator CNI plugin (Rust)";

fn main() -> ExitCode {
    spiderpool_plugin_support::run(&plugin::Coordinator, ABOUT)
}
