//! `spiderpool-controller` and `spiderpool-init` as a library: the cluster side of Spiderpool
//! on Kubernetes.
//!
//! | module | runs on | what |
//! |---|---|---|
//! | [`webhook`] | every replica | admission webhooks over HTTPS (mutating + validating, every Spiderpool kind), their certificates and registration |
//! | [`leader`] | every replica | Lease election: leader-only work runs while this replica holds the Lease |
//! | [`probes`] | every replica | `/v1/runtime/startup|readiness|liveness` |
//! | [`metrics`] | every replica | Prometheus metrics (upstream's names) |
//! | [`ippool`] | leader | SpiderIPPool status counts and finalizer |
//! | [`multusconfig`] | leader | SpiderMultusConfig → Multus NetworkAttachmentDefinition |
//! | [`subnet`] | leader | SpiderSubnet status and adoption; auto-created pools for applications |
//! | [`coordinator`] | leader | SpiderCoordinator status: the cluster's pod and service CIDRs |
//! | [`gc`] | leader | garbage collection of addresses whose pods are gone |
//! | [`init`] | `spiderpool-init` | the default SpiderCoordinator, pools, subnets and SpiderMultusConfig |
//! | [`clean`] | `spiderpool-controller clean` | the chart's pre-delete hook: webhook configurations, every Spiderpool object, the CRDs, the init Job |
//!
//! Every component has a `clap` argument struct (flags and upstream's environment variables)
//! so the binary is a thin list of them; [`Ctx`] is what they share.

pub mod clean;
pub mod context;
pub mod coordinator;
mod error;
pub mod gc;
pub mod init;
pub mod ippool;
pub mod leader;
pub mod metrics;
pub mod multusconfig;
pub mod probes;
pub mod subnet;
pub mod webhook;

pub use context::Ctx;
pub use error::{Error, Result};
