#!/usr/bin/env bash
# Builds the CNI plugins `spiderpool` and `coordinator` as static, stripped binaries: the
# `release-plugins` profile of Cargo.toml (size-optimised, LTO, panic=abort) for musl, so they
# run on any x86_64 Linux node without a matching glibc. Not part of scripts/test.sh (a release
# build takes minutes).
#
#   scripts/build-plugins.sh [--target TRIPLE] [--install DIR]
#
#   --target TRIPLE  another target (default x86_64-unknown-linux-musl; installed with rustup
#                    when missing)
#   --install DIR    also copy both binaries into DIR (e.g. /opt/cni/bin)
#
# The binaries land in ${CARGO_TARGET_DIR:-target}/TRIPLE/release-plugins/. Set
# CARGO_TARGET_DIR to build outside the shared debug target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
install_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target=${2:?--target needs a triple}; shift 2 ;;
        --install) install_dir=${2:?--install needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "build-plugins.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

cargo build --profile release-plugins --target "$target" -p spiderpool -p coordinator

out="${CARGO_TARGET_DIR:-target}/$target/release-plugins"
for bin in spiderpool coordinator; do
    printf '%-12s %9d bytes  %s\n' "$bin" "$(stat -c %s "$out/$bin")" "$out/$bin"
done
if [ -n "$install_dir" ]; then
    install -d "$install_dir"
    install -m 0755 "$out/spiderpool" "$out/coordinator" "$install_dir/"
    echo "installed into $install_dir"
fi
