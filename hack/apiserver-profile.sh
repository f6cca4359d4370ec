#!/usr/bin/env bash
# A CPU profile of the test control plane's kube-apiserver (its /debug/pprof endpoint, on by
# default), taken with the admin certificate of hack/control-plane.sh.
#   hack/apiserver-profile.sh SECONDS NAME   ->  $PROFILE_DIR/NAME.pb.gz (default /tmp)
# Read it with `go tool pprof -top -cum FILE`. benches/src/bin/k8s_ipam.rs runs it per phase:
#   K8S_IPAM_PHASE_CMD="hack/apiserver-profile.sh 2" target/release/k8s_ipam ...
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SECONDS NAME" >&2; exit 2; }
D=${SPIDERPOOL_CP_DIR:-/tmp/spiderpool-control-plane}
# The address as hack/control-plane.sh wrote it into the kubeconfig (it knows the port).
SERVER=$(sed -n 's/.*server: "\([^"]*\)".*/\1/p' "$D/kubeconfig" | head -n 1)
[ -n "$SERVER" ] || { echo "$0: no server in $D/kubeconfig" >&2; exit 1; }
OUT=${PROFILE_DIR:-/tmp}/$2.pb.gz
curl -sf --cacert "$D/pki/ca.crt" --cert "$D/pki/admin.crt" --key "$D/pki/admin.key" \
  "$SERVER/debug/pprof/profile?seconds=$1" -o "$OUT"
echo "apiserver-profile: $OUT" >&2
