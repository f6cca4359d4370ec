//! Runnable examples for the Spiderpool SDK (`cargo run -p spiderpool-examples --example NAME`):
//!
//! - `quickstart`: the seed's Calico quick start, end to end (root for the live part);
//! - `own-store`: allocate from pools with your own `IpamStore` (a JSON file);
//! - `plan-routes`: plan the coordinator's routes for a described pod and print them;
//! - `apply-plan`: apply a plan to fresh network namespaces and read back the drift (root);
//! - `third-party-ipam`: a minimal IPAM CNI plugin on the CNI types and the allocator;
//! - `quickstart-k8s`: the same quick start on a real one-node cluster, installed by our Helm
//!   chart from our images (root).
//!
//! Each lives in its own directory beside this one, with a test in `tests/` that runs it.
//!
//! The library itself only holds what the examples (and their tests) share: running commands
//! with Ctrl-C in mind, and a one-node cluster with kubectl and Helm.

pub mod cluster;
pub mod kube;
pub mod rbac;
pub mod shell;
