//! Pure Spiderpool logic, with no I/O, no async runtime, no netlink and no Kubernetes client:
//! the IPAM, the coordinator's route planning, the CNI protocol and the Spiderpool objects, to
//! embed in your own CNI plugin, agent or tool.
//!
//! # Start here
//!
//! Four runnable examples, in the workspace's `examples/` directory, show how to embed it. Each
//! is a short, commented `main.rs`, and each has a test that runs it:
//!
//! | run it | what it shows |
//! |---|---|
//! | `cargo run -p spiderpool-examples --example own-store` | allocate from pools with **your own store**: [`ipam::IpamStore`] over a JSON file in about fifty lines, on [`ipam::StoreState`] (compare-and-swap on per-pool and per-endpoint versions); two pods allocate, one releases |
//! | `cargo run -p spiderpool-examples --example plan-routes` | **plan the coordinator's routes** for a pod described in code ([`coordinator::plan_add`]) and print them as `ip` commands and as the tables they leave |
//! | `cargo build -p spiderpool-examples --example apply-plan`, then as root `target/debug/examples/apply-plan` | **apply a plan** to fresh network namespaces with the `spiderpool-netlink` crate and read back the drift |
//! | `cargo build -p spiderpool-examples --example third-party-ipam` | **a minimal IPAM CNI plugin** on [`cni`] (environment, configuration, results in the configuration's version, error replies) and [`ipam`]; its `main.rs` shows how to call it |
//!
//! The smallest use is an allocation in memory, the example at the top of [`ipam`]. The
//! workspace's quick start (`cargo run -p spiderpool-examples --example quickstart`) runs the
//! whole stack: the agent, the plugins and Debian's macvlan in network namespaces.
//!
//! # Modules
//!
//! | module | concept |
//! |---|---|
//! | [`ip`] | addresses, ranges (`10.6.212.100-10.6.212.200`), range sets and CIDR math, v4 and v6 |
//! | [`meta`] | Kubernetes object metadata and label selectors, as plain data |
//! | [`objects`] | the six Spiderpool kinds (SpiderIPPool, SpiderSubnet, ...) with upstream's JSON |
//! | [`manifest`] | reading YAML / JSON manifests into typed objects |
//! | [`admission`] | the mutating and validating webhooks as pure functions |
//! | [`multus`] | SpiderMultusConfig to NetworkAttachmentDefinition rendering |
//! | [`coordinator`] | the coordinator's policy-routing plan, as data |
//! | [`agentapi`] | the spiderpool-agent HTTP API (requests and answers on its UNIX socket) |
//! | [`ipam`] | pool candidates, IP choice, release and GC verdicts, the compare-and-swap store contract |
//! | [`cni`] | CNI spec types: configs, results in every version 0.3.0..1.1.0, error codes |
//!
//! Everything here is plain data in, plain data out, so it runs the same inside the
//! agent, a CNI plugin, the controller or an offline CLI.

pub mod admission;
pub mod agentapi;
pub mod cni;
pub mod coordinator;
pub mod error;
mod gojson;
pub mod ip;
pub mod ipam;
pub mod manifest;
pub mod meta;
pub mod multus;
pub mod objects;

pub use error::Error;
