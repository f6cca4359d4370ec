//! Pure Spiderpool logic, with no I/O, no async runtime, no netlink and no Kubernetes client.
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
