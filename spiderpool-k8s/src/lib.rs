//! Spiderpool on Kubernetes: the CRDs, the Kubernetes IPAM store, and the cluster view the
//! agent allocates with (Pods, Namespaces, Nodes from watch caches).
//!
//! | module | what |
//! |---|---|
//! | [`client`] | a client from a kubeconfig, `$KUBECONFIG` or the in-cluster account |
//! | [`cluster`] | watch caches of this node's Pods, Namespaces and Node; top controllers |
//! | [`crds`] | the CRDs (six Spiderpool kinds + Multus NAD), their files, install |
//! | [`kinds`] | `spiderpool-core` objects ⇄ the apiserver's dynamic objects |
//! | [`store`] | [`store::KubeStore`]: the IPAM store on SpiderIPPools (per-node blocks) and SpiderEndpoints |
//!
//! Everything async runs on tokio; the IPAM store exposes core's synchronous
//! [`spiderpool_core::ipam::IpamStore`] so the same engine runs on every store.

pub mod client;
pub mod cluster;
pub mod crds;
mod error;
pub mod kinds;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;

pub use error::{Error, Result};
