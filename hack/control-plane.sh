#!/usr/bin/env bash
# A test control plane on loopback: etcd + kube-apiserver, generated certificates, an admin
# kubeconfig. No kubelet, scheduler or controller-manager: tests create Nodes and Pods directly.
#
#   hack/control-plane.sh up   [DIR]   start (or reuse a running one) and wait until ready
#   hack/control-plane.sh down [DIR]   stop it (by pid) and remove DIR
#   hack/control-plane.sh env  [DIR]   print `export KUBECONFIG=...` for a shell
#
# DIR defaults to $SPIDERPOOL_CP_DIR or /tmp/spiderpool-control-plane. Binaries come from
# hack/testbin.sh (or $KUBE_APISERVER / $ETCD). Ports: $CP_PORT (16443) and $CP_ETCD_PORT
# (23790, and +1 for peers). $CP_ADDRESS (127.0.0.1) is where the apiserver listens and what it
# advertises (hack/cluster.sh puts it on a link a node namespace reaches); $CP_APISERVER_ARGS adds
# flags (a real node needs ServiceAccount admission, kubelet client certificates...). etcd runs with --unsafe-no-fsync: the data is throw-away, and a
# test machine's disk should not decide how fast the apiserver is.
set -euo pipefail
cmd=${1:-up}
D=${2:-${SPIDERPOOL_CP_DIR:-/tmp/spiderpool-control-plane}}
PORT=${CP_PORT:-16443}
EPORT=${CP_ETCD_PORT:-23790}
ADDR=${CP_ADDRESS:-127.0.0.1}
here=$(cd "$(dirname "$0")" && pwd)

log() { printf 'control-plane: %s\n' "$*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ready() {
  curl -sf --max-time 2 --cacert "$D/pki/ca.crt" --cert "$D/pki/admin.crt" --key "$D/pki/admin.key" \
    "https://$ADDR:$PORT/readyz" >/dev/null 2>&1
}

certs() {
  mkdir -p "$D/pki"
  cd "$D/pki"
  [ -f ca.crt ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=spiderpool-test-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key \
    -out apiserver.csr 2>/dev/null
  # 10.233.0.1: the `kubernetes` Service's address in the 10.233.0.0/18 service range.
  printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:10.233.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' "$ADDR" >san.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile san.ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=admin/O=system:masters" -keyout admin.key \
    -out admin.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile client.ext -out admin.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() {
  cat >"$D/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: spiderpool-test
  cluster: {server: "https://$ADDR:$PORT", certificate-authority: "$D/pki/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$D/pki/admin.crt", client-key: "$D/pki/admin.key"}
contexts:
- name: spiderpool-test
  context: {cluster: spiderpool-test, user: admin}
current-context: spiderpool-test
KC
}

start_etcd() {
  alive "$D/etcd.pid" && return 0
  "$ETCD" --name spiderpool-test --data-dir "$D/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$EPORT" --advertise-client-urls "http://127.0.0.1:$EPORT" \
    --listen-peer-urls "http://127.0.0.1:$((EPORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((EPORT + 1))" \
    --initial-cluster "spiderpool-test=http://127.0.0.1:$((EPORT + 1))" \
    --log-level warn >>"$D/etcd.log" 2>&1 &
  echo $! >"$D/etcd.pid"
}

start_apiserver() {
  alive "$D/apiserver.pid" && return 0
  # Without kube-controller-manager no namespace gets its `default` ServiceAccount, so the
  # plain plane turns ServiceAccount admission off; a plane with a real node keeps it
  # (CP_SERVICE_ACCOUNTS=1): pods get their projected tokens as on any cluster.
  local admission=--disable-admission-plugins=ServiceAccount
  [ "${CP_SERVICE_ACCOUNTS:-0}" = 1 ] && admission=
  "$KUBE_APISERVER" --etcd-servers="http://127.0.0.1:$EPORT" \
    --bind-address="$ADDR" --secure-port="$PORT" --advertise-address="$ADDR" \
    --tls-cert-file="$D/pki/apiserver.crt" --tls-private-key-file="$D/pki/apiserver.key" \
    --client-ca-file="$D/pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$D/pki/sa.pub" --service-account-signing-key-file="$D/pki/sa.key" \
    --service-cluster-ip-range=10.233.0.0/18 --authorization-mode=Node,RBAC \
    $admission --allow-privileged=true \
    ${CP_APISERVER_ARGS:-} --v=0 >>"$D/apiserver.log" 2>&1 &
  echo $! >"$D/apiserver.pid"
}

case "$cmd" in
up)
  if [ -z "${KUBE_APISERVER:-}" ] || [ -z "${ETCD:-}" ]; then
    bin=$("$here/testbin.sh" | tail -n 1)
    KUBE_APISERVER=${KUBE_APISERVER:-$bin/kube-apiserver}
    ETCD=${ETCD:-$bin/etcd}
  fi
  mkdir -p "$D"
  certs
  kubeconfig
  start_etcd
  start_apiserver
  for _ in $(seq 1 240); do
    if ready; then
      log "ready: KUBECONFIG=$D/kubeconfig"
      echo "$D/kubeconfig"
      exit 0
    fi
    alive "$D/apiserver.pid" || { log "kube-apiserver exited:"; tail -n 30 "$D/apiserver.log" >&2; exit 1; }
    sleep 0.5
  done
  log "kube-apiserver not ready after 120 s:"; tail -n 30 "$D/apiserver.log" >&2
  exit 1
  ;;
down)
  for p in apiserver etcd; do
    if alive "$D/$p.pid"; then
      pid=$(cat "$D/$p.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$D"
  ;;
env)
  echo "export KUBECONFIG=$D/kubeconfig"
  ;;
*)
  echo "usage: $0 up|down|env [DIR]" >&2
  exit 2
  ;;
esac
