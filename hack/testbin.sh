#!/usr/bin/env bash
# Build the test control plane's binaries from the Go module proxy with the machine's Go:
# kube-apiserver and kubectl (k8s.io/kubernetes $K8S_VERSION) and etcd ($ETCD_VERSION).
# `hack/testbin.sh node` (or TESTBIN_NODE=1) also builds a real node's Kubernetes binaries,
# kubelet, kube-controller-manager and kube-scheduler, into the same directory
# (hack/node-testbin.sh asks for them, with containerd, runc and Multus).
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod points every staging module
# (k8s.io/api, k8s.io/apiserver, ...) at ./staging. A throw-away wrapper module requires it and
# replaces each staging module with the published v0.Y.Z of the same release; the list is read
# from the release's own go.mod, so it follows the version. etcd's server module has the same
# problem (replace ../api) and gets the same treatment.
#
# Binaries are cached outside the clone, keyed by version, each built only when missing: a warm
# run costs nothing. Cold on 2 cores: about 4 minutes, ~2 GB of Go caches (GOMODCACHE, GOCACHE);
# the node's three add about 7 minutes (see docs/testing.md). Prints the bin dir last.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
OUT=${TESTBIN_DIR:-/var/cache/spiderpool-testbin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION}
NODE=${TESTBIN_NODE:-0}
case "${1:-}" in
  "") ;;
  node) NODE=1 ;;
  *) echo "usage: $0 [node]" >&2; exit 2 ;;
esac
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-buildvcs=false
mkdir -p "$OUT"

log() { printf 'testbin: %s\n' "$*" >&2; }
# Runs a go command quietly; its output is shown only when it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then printf '%s\n' "$out" >&2; return 1; fi
}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# The wrapper module for k8s.io/kubernetes in $TMP/k8s: every staging module replaced by its
# published release.
k8s_module() {
  mkdir -p "$TMP/k8s"
  cd "$TMP/k8s"
  quiet go mod init spiderpool.local/testbin-k8s
  local gomod staging_version m
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  staging_version="v0.${K8S_VERSION#v1.}"          # v1.36.3 -> v0.36.3
  for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$m=$m@$staging_version"
  done
}

# Builds each named k8s.io/kubernetes command that is not in $OUT yet.
build_k8s() {
  local missing=() b
  for b in "$@"; do [ -x "$OUT/$b" ] || missing+=("$b"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "building ${missing[*]} $K8S_VERSION (cold: a few minutes each)"
  (
    k8s_module
    local tools=() minor ld p
    for b in "${missing[@]}"; do tools+=("k8s.io/kubernetes/cmd/$b@$K8S_VERSION"); done
    quiet go get -tool "${tools[@]}"
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    for b in "${missing[@]}"; do
      # Built under a private name and renamed: a reader never sees half a binary.
      go build -trimpath -ldflags "$ld" -o "$OUT/.$b.$$" "k8s.io/kubernetes/cmd/$b"
      mv "$OUT/.$b.$$" "$OUT/$b"
    done
  )
}

k8s_bins=(kube-apiserver kubectl)
[ "$NODE" != 1 ] || k8s_bins+=(kubelet kube-controller-manager kube-scheduler)
build_k8s "${k8s_bins[@]}"

if [ ! -x "$OUT/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  (
    mkdir "$TMP/etcd" && cd "$TMP/etcd"
    quiet go mod init spiderpool.local/testbin-etcd
    quiet go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$OUT/.etcd.$$" go.etcd.io/etcd/server/v3
    mv "$OUT/.etcd.$$" "$OUT/etcd"
  )
fi
echo "$OUT"
