//! The spiderpool-agent as a library: the embedded local store and the agent's services.
//!
//! | module | concept |
//! |---|---|
//! | [`localstore`] | the durable, crash-safe [`spiderpool_core::ipam::IpamStore`] on local disk |
//! | [`config_dir`] | the local-mode configuration directory, admitted file by file |
//! | [`backend`] | [`backend::AgentStore`]: what the agent needs of a store |
//! | [`service`] | [`service::IpamService`]: the API's behaviour, whatever the mode |
//! | [`agent`] | [`agent::Agent`]: the IPAM API's behaviour in local mode |
//! | [`kube_mode`] | [`kube_mode::KubeAgent`]: the same API on Kubernetes (store, pods from the apiserver) |
//! | [`api`] | HTTP routing of the API onto the agent |
//! | [`http`] | the HTTP types: plugin-support's bounded HTTP/1.1 framing, shared with the client |
//! | [`metrics`] | Prometheus metrics of allocations and releases (upstream's names) |
//! | [`probes`] | upstream's health probes (`/v1/runtime/*`) on a TCP port |
//! | [`server`] | the UNIX-socket server: a total time limit per request, bounded handlers plus health slots, graceful shutdown |
//!
//! The binary (`spiderpool-agent`) wires these to the UNIX-socket HTTP API.

pub mod agent;
pub mod api;
pub mod backend;
pub mod config_dir;
pub mod http;
pub mod kube_mode;
pub mod localstore;
pub mod metrics;
pub mod probes;
pub mod server;
pub mod service;
