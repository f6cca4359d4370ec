//! What our CNI plugins (`spiderpool` IPAM and `coordinator`) share.
//!
//! Kept small on purpose: a CNI plugin is a short-lived process started for every pod, so
//! start-up time matters more than features. No async runtime, no Kubernetes client, no HTTP
//! stack: `std`, serde and two tiny crates (`httparse`, `log`).
//!
//! | module | what |
//! |---|---|
//! | [`agent_client`] | [`AgentClient`]: synchronous HTTP/1.1 over the agent's UNIX socket, typed errors that map to CNI codes |
//! | [`http`] | bounded HTTP/1.1 framing (requests and responses, checked sizes, total-time limits), shared with the agent's server |
//! | [`runner`] | [`Plugin`] and [`run`] / [`run_with`]: environment + stdin → dispatch → stdout and exit code |
//! | [`log`] | a minimal logger for the `log` facade, to stderr or a size-rotated file; never stdout |
//!
//! A plugin's `main`, in outline:
//!
//! ```no_run
//! use spiderpool_core::cni::CniError;
//! use spiderpool_plugin_support::{Context, Output, Plugin};
//!
//! struct Noop;
//! impl Plugin for Noop {
//!     fn add(&self, _ctx: &Context) -> Result<Output, CniError> {
//!         Ok(Output::Result(Default::default()))
//!     }
//!     fn del(&self, _ctx: &Context) -> Result<(), CniError> {
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     spiderpool_plugin_support::run(&Noop, "noop CNI plugin")
//! }
//! ```

pub mod agent_client;
pub mod http;
pub mod log;
pub mod runner;

pub use agent_client::{AgentClient, ClientError, PendingCall, PendingResponse};
pub use runner::{Context, Outcome, Output, Plugin, run, run_with};
