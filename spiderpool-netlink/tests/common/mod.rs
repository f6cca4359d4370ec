//! Helpers shared by the root tests: the root/tool gate and the netns helpers, from
//! `spiderpool-test-kit`.

#![allow(dead_code)] // not every test uses every helper

use spiderpool_test_kit::gate::{self, Need};
// Re-exported for the test files; not every test crate uses every one.
#[allow(unused_imports)]
pub use spiderpool_test_kit::lab::{ip_in, ip_script, ping, run_in};

/// True when running as root; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1` (CI).
#[track_caller]
pub fn root() -> bool {
    gate::ready(&[Need::Root])
}

/// True when `program` is on PATH; else skips, or fails under `SPIDERPOOL_REQUIRE_ROOT=1`.
#[track_caller]
pub fn have(program: &str) -> bool {
    gate::ready(&[Need::Program(program)])
}
