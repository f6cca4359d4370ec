//! Test support shared by the workspace's tests (not published).
//!
//! - [`gate`]: the root/tool gate. Root tests are `#[ignore = "needs root"]` and start with
//!   [`gate::ready`]; under `SPIDERPOOL_REQUIRE_ROOT=1` (CI) a missing need fails the test.
/// The root/tool gate.
pub mod gate;
