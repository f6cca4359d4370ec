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
echo "== the CNI plugins and core alone (no features unified in from the workspace)"
cargo check -p spiderpool-core --lib
cargo check -p spiderpool -p coordinator --bins
echo "== cargo build (the end-to-end tests run our CNI plugins, agent and examples as separate processes)"
# --examples: an example with its own unit tests (quickstart-k8s, `test = true`) is built by
# `cargo test` only as a test harness, not as the program examples/tests/ runs.
cargo build --workspace --bins --examples
echo "== test control plane: kube-apiserver v1.36.3 + etcd v3.6.16 on loopback"
# Built from the Go module proxy once (about 5 minutes cold on 2 cores, ~3.5 GB of Go caches),
# then cached by version under /var/cache/spiderpool-testbin. Tests marked
# #[ignore = "needs apiserver"] use it through KUBECONFIG; kubectl is the same version.
testbin=$(hack/testbin.sh | tail -n 1)
export PATH="$testbin:$PATH" KUBECTL="$testbin/kubectl"
echo "== Helm v4.3.2 for the chart's lint and golden tests (built once, about a minute, cached)"
HELM=$(hack/helm.sh | tail -n 1)
export HELM
echo "== a real node's binaries (kubelet, kube-controller-manager, kube-scheduler, containerd, runc, Multus; cached)"
# From the Go module proxy like the apiserver (about 9 minutes cold on 2 cores), for the cluster
# quick start (examples/tests/quickstart_k8s.rs), which runs hack/cluster.sh.
hack/node-testbin.sh >/dev/null
echo "== our images without Docker (static musl builds + OCI tarballs; hack/images.sh)"
hack/images.sh >/dev/null
cp_dir=$(mktemp -d /tmp/spiderpool-cp.XXXXXX)
# The fault tests restart the control plane through this directory.
export SPIDERPOOL_CP_DIR="$cp_dir"
trap 'hack/control-plane.sh down "$cp_dir"' EXIT
KUBECONFIG=$(hack/control-plane.sh up "$cp_dir" | tail -n 1)
export KUBECONFIG
echo "== cargo test (unit, integration, CLI, property, root network-namespace, apiserver and doc tests)"
cargo test --workspace --all-features --no-fail-fast -- --include-ignored
echo "== cargo doc (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features
echo "== benches compile and run once in test mode"
cargo test -p spiderpool-benches --benches
