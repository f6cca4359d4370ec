#!/usr/bin/env bash
# Build every binary a real test node needs, from the Go module proxy with the machine's Go
# (docs/testing.md, "A real node's binaries"; the recipe is the design note's §8):
#   - kubelet, kube-controller-manager, kube-scheduler (and the control plane's kube-apiserver,
#     kubectl, etcd): hack/testbin.sh node;
#   - containerd, containerd-shim-runc-v2 and ctr (github.com/containerd/containerd/v2), static;
#   - runc WITH seccomp (cgo, needs apt libseccomp-dev and pkg-config): containerd always gives
#     the sandbox a seccomp profile, so a runc without seccomp fails every pod;
#   - the Multus thin plugin (gopkg.in/k8snetworkplumbingwg/multus-cni.v4, cmd/multus; the proxy
#     serves it only under its gopkg.in path), alone in a cni/ subdirectory so that directory can
#     be one of containerd's CNI bin_dirs.
# `go install pkg@version` is refused for some of these (the proxy will not list multus's
# versions), so each is built in a throw-away wrapper module (`go get -tool PKG@VER`, go build).
#
# Cached outside the clone in a directory keyed by the versions (overridable by env), each
# binary built only when missing: a warm run costs nothing.
#
# Output: stdout is only `KEY=path` lines (shell-quoted, so `eval "$(hack/node-testbin.sh)"`
# works), logs go to stderr:
#   K8S_BIN_DIR NODE_BIN_DIR CNI_BIN_DIR KUBE_APISERVER KUBECTL ETCD KUBELET
#   KUBE_CONTROLLER_MANAGER KUBE_SCHEDULER CONTAINERD CONTAINERD_SHIM_RUNC_V2 CTR RUNC MULTUS
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
RUNC_VERSION=${RUNC_VERSION:-v1.5.3}
MULTUS_VERSION=${MULTUS_VERSION:-v4.3.0}
OUT=${NODE_TESTBIN_DIR:-/var/cache/spiderpool-testbin/node-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-multus-$MULTUS_VERSION}
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-buildvcs=false
mkdir -p "$OUT/cni"

log() { printf 'node-testbin: %s\n' "$*" >&2; }
# Runs a go command quietly; its output is shown only when it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then printf '%s\n' "$out" >&2; return 1; fi
}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# The control plane's and the node's Kubernetes binaries (its own cache directory).
K8S_DIR=$("$HERE/testbin.sh" node | tail -n 1)

# A wrapper module in $TMP/$1 that has $2 (PKG@VERSION) as a tool; prints its directory.
module() {
  mkdir -p "$TMP/$1"
  (cd "$TMP/$1" && quiet go mod init "spiderpool.local/node-testbin-$1" && quiet go get -tool "$2")
  echo "$TMP/$1"
}
# The commit a module version was tagged at, when the proxy reports it (not every module does).
revision() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p'
}
# go build "$@" into $OUT/$dest under a private name, then renamed: a reader never sees half a
# binary. Run inside the wrapper module.
build() {
  local dest=$1; shift
  go build -trimpath -o "$OUT/$dest.$$.tmp" "$@"
  mv "$OUT/$dest.$$.tmp" "$OUT/$dest"
}

if [ ! -x "$OUT/containerd" ] || [ ! -x "$OUT/containerd-shim-runc-v2" ] || [ ! -x "$OUT/ctr" ]; then
  log "building containerd, containerd-shim-runc-v2 and ctr $CONTAINERD_VERSION"
  m=github.com/containerd/containerd/v2
  w=$(module containerd "$m/cmd/containerd@$CONTAINERD_VERSION")
  (
    cd "$w"
    quiet go get -tool "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION"
    ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m"
    rev=$(revision "$m@$CONTAINERD_VERSION")
    [ -z "$rev" ] || ld="$ld -X $m/version.Revision=$rev"
    for b in containerd containerd-shim-runc-v2 ctr; do
      [ -x "$OUT/$b" ] || CGO_ENABLED=0 build "$b" -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ld" "$m/cmd/$b"
    done
  )
fi

if [ ! -x "$OUT/runc" ]; then
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libseccomp; then
    log "runc needs libseccomp's headers: apt-get install libseccomp-dev pkg-config"
    exit 1
  fi
  log "building runc $RUNC_VERSION with seccomp"
  m=github.com/opencontainers/runc
  w=$(module runc "$m@$RUNC_VERSION")
  (
    cd "$w"
    ld="-s -w"   # the version is embedded from the module's VERSION file
    rev=$(revision "$m@$RUNC_VERSION")
    [ -z "$rev" ] || ld="$ld -X main.gitCommit=$rev"
    CGO_ENABLED=1 build runc -tags seccomp -ldflags "$ld" "$m"
  )
fi

if [ ! -x "$OUT/cni/multus" ]; then
  log "building the Multus thin plugin $MULTUS_VERSION"
  m=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
  w=$(module multus "$m/cmd/multus@$MULTUS_VERSION")
  (
    cd "$w"
    p=$m/pkg/multus
    ld="-s -w -X $p.version=$MULTUS_VERSION -X $p.releaseStatus=,released"
    rev=$(revision "$m@$MULTUS_VERSION")
    [ -z "$rev" ] || ld="$ld -X $p.commit=$rev"
    CGO_ENABLED=0 build cni/multus -ldflags "$ld" "$m/cmd/multus"
  )
fi

kv() { printf '%s=%q\n' "$1" "$2"; }
kv K8S_BIN_DIR "$K8S_DIR"
kv NODE_BIN_DIR "$OUT"
kv CNI_BIN_DIR "$OUT/cni"
for b in kube-apiserver kubectl etcd kubelet kube-controller-manager kube-scheduler; do
  kv "$(echo "$b" | tr 'a-z-' 'A-Z_')" "$K8S_DIR/$b"
done
for b in containerd containerd-shim-runc-v2 ctr runc; do
  kv "$(echo "$b" | tr 'a-z-' 'A-Z_')" "$OUT/$b"
done
kv MULTUS "$OUT/cni/multus"
