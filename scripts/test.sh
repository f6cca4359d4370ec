#!/usr/bin/env bash
# The project's test command (see README.md): formatting, lints, every test including doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo build (the end-to-end tests run our CNI plugins and agent as separate processes)"
cargo build --workspace --bins
echo "== cargo test (unit, integration, CLI, property, root network-namespace and doc tests)"
cargo test --workspace --all-features
echo "== cargo doc (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features
echo "== benches compile and run once in test mode"
cargo test -p spiderpool-benches --benches
