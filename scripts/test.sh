#!/usr/bin/env bash
# The project's test command (see README.md): formatting, lints, every test including doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Root tests are #[ignore = "needs root"] (a plain `cargo test` reports them as ignored) and run
# here with --include-ignored; with SPIDERPOOL_REQUIRE_ROOT=1 one that lacks root or a tool
# fails instead of skipping (set SPIDERPOOL_REQUIRE_ROOT=0 to let them skip on a dev machine).
export SPIDERPOOL_REQUIRE_ROOT="${SPIDERPOOL_REQUIRE_ROOT:-1}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo build (the end-to-end tests run our CNI plugins and agent as separate processes)"
cargo build --workspace --bins
echo "== cargo test (unit, integration, CLI, property, root network-namespace and doc tests)"
cargo test --workspace --all-features -- --include-ignored
echo "== cargo doc (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features
echo "== benches compile and run once in test mode"
cargo test -p spiderpool-benches --benches
