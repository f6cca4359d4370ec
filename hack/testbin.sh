#!/usr/bin/env bash
# Build the test control plane's binaries from the Go module proxy with the machine's Go:
# kube-apiserver and kubectl (k8s.io/kubernetes $K8S_VERSION) and etcd ($ETCD_VERSION).
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod points every staging module
# (k8s.io/api, k8s.io/apiserver, ...) at ./staging. A throw-away wrapper module requires it and
# replaces each staging module with the published v0.Y.Z of the same release; the list is read
# from the release's own go.mod, so it follows the version. etcd's server module has the same
# problem (replace ../api) and gets the same treatment.
#
# Binaries are cached outside the clone, keyed by version: a warm run costs nothing. Cold on
# 2 cores: about 4 minutes, ~2 GB of Go caches (GOMODCACHE, GOCACHE). Prints the bin dir last.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
OUT=${TESTBIN_DIR:-/var/cache/spiderpool-testbin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION}
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-buildvcs=false
mkdir -p "$OUT"

log() { printf 'testbin: %s\n' "$*" >&2; }

if [ ! -x "$OUT/kube-apiserver" ] || [ ! -x "$OUT/kubectl" ]; then
  log "building kube-apiserver and kubectl $K8S_VERSION (cold: a few minutes)"
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  (
    cd "$W"
    go mod init spiderpool.local/testbin-k8s >/dev/null 2>&1
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    staging_version="v0.${K8S_VERSION#v1.}"          # v1.36.3 -> v0.36.3
    for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace="$m=$m@$staging_version"
    done
    go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >/dev/null 2>&1
    go get -tool "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" >/dev/null 2>&1
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    go build -trimpath -ldflags "$ld" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags "$ld" -o "$OUT/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
    mv "$OUT/kubectl.tmp" "$OUT/kubectl"
  )
fi

if [ ! -x "$OUT/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  W2=$(mktemp -d)
  (
    cd "$W2"
    go mod init spiderpool.local/testbin-etcd >/dev/null 2>&1
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
    go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$OUT/etcd.tmp" "$OUT/etcd"
  )
  rm -rf "$W2"
fi
echo "$OUT"
