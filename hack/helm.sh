#!/usr/bin/env bash
# Build Helm ($HELM_VERSION, default v4.3.2) from the Go module proxy with the machine's Go, for
# the chart's lint and golden tests (spiderpool-k8s/tests/chart.rs).
#
# The binary is built through a throw-away wrapper module (`go get -tool` pins Helm and its
# dependencies exactly as its own go.mod says) and cached outside the clone, keyed by version:
# a warm run costs nothing. Cold on 2 cores: about 75 s. Prints the binary's path last.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v4.3.2}
OUT=${HELM_DIR:-/var/cache/spiderpool-testbin/helm-$HELM_VERSION}
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-buildvcs=false
mkdir -p "$OUT"

if [ ! -x "$OUT/helm" ]; then
  printf 'helm: building helm %s (cold: about a minute)\n' "$HELM_VERSION" >&2
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  (
    cd "$W"
    go mod init spiderpool.local/helm >/dev/null 2>&1
    go get -tool "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >/dev/null 2>&1
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
      -o "$OUT/helm.tmp" helm.sh/helm/v4/cmd/helm
    mv "$OUT/helm.tmp" "$OUT/helm"
  )
fi
echo "$OUT/helm"
