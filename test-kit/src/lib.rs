//! Test support shared by the workspace's tests (not published): one place for what the root
//! tests, the plugin tests and the store tests of several crates need.
//!
//! - [`gate`]: the root/tool gate. Root tests are `#[ignore = "needs root"]` (a plain
//!   `cargo test` reports them as ignored) and start with [`gate::ready`]; under
//!   `SPIDERPOOL_REQUIRE_ROOT=1` (`scripts/test.sh`, CI) a missing need fails the test instead
//!   of skipping it.
//! - [`lab`]: network namespaces for root tests (named ones via `ip netns`; with the feature
//!   `netlink`, helpers over `spiderpool_netlink::NetNs` handles: run a program or a plugin
//!   inside, `ip`, `sysctl`, `ping`).
//! - [`cni`]: the CNI harness, running a plugin binary with the `CNI_*` environment and the
//!   configuration on stdin.
//! - [`conformance`]: the `IpamStore` conformance suite (generated allocate / release /
//!   retry / stale-commit interleavings against a model, and a concurrent allocation check),
//!   run against `MemoryStore` and the local store, and meant for every other store.
//!
//! Add it as a dev-dependency: `spiderpool-test-kit = { path = "../test-kit" }` (with
//! `features = ["netlink"]` for the namespace-handle helpers).

pub mod cni;
pub mod conformance;
pub mod gate;
pub mod lab;
