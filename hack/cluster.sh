#!/usr/bin/env bash
# A real one-node Kubernetes cluster for tests and the cluster quick start: the test control
# plane (hack/control-plane.sh) plus kube-controller-manager, kube-scheduler, containerd, runc
# and a kubelet, with Multus (thin plugin) as the node's CNI over a Calico-like default network.
#
#   hack/cluster.sh up     [DIR]          start it and wait until the node is Ready
#   hack/cluster.sh import [DIR] FILE...  import OCI image tarballs into the node's containerd
#   hack/cluster.sh down   [DIR]          stop everything and undo what it changed on the host
#   hack/cluster.sh env    [DIR]          print the variables a shell needs (KUBECONFIG...)
#
# DIR defaults to $SPIDERPOOL_CLUSTER_DIR or /tmp/spiderpool-cluster. Root only.
# CLUSTER_MULTUS=chart leaves Multus out of the node's CNI configuration (only the default
# network), for the chart's `multus.multusCNI.install=true` to put it in.
#
# The node lives in a network namespace shaped like the seed's worker: `ens192` 10.6.212.132/16
# whose peer on the host is the underlay router 10.6.0.1/16 (the SpiderIPPool's gateway, where
# the apiserver also listens). Routes, rules and iptables changes of the kubelet, the CNI
# plugins and hostNetwork pods stay inside it. kubelet and containerd only enter the node's
# network namespace (nsenter --net, not `ip netns exec`, which would give each its own mount
# namespace: the kubelet's volume mounts must be visible to containerd).
#
# What stays global, and is undone by `down`: the sysctls the kubelet sets (kernel.panic,
# kernel.panic_on_oops, vm.overcommit_memory: saved at `up`, restored), the cgroups
# `/kubepods` in every hierarchy, a few fixed paths kubelet and containerd create (removed when
# they did not exist before), the agent's socket directory /var/run/spidernet.
set -euo pipefail
cmd=${1:-up}
D=${2:-${SPIDERPOOL_CLUSTER_DIR:-/tmp/spiderpool-cluster}}
here=$(cd "$(dirname "$0")" && pwd)
NETNS=${CLUSTER_NETNS:-spk-node}
HOST_IF=${CLUSTER_HOST_IF:-spk-ens192}
ROUTER=10.6.0.1
NODE_IP=10.6.212.132
NODE=${CLUSTER_NODE_NAME:-spiderpool-worker}
PORT=${CLUSTER_PORT:-17443}
EPORT=${CLUSTER_ETCD_PORT:-24790}
POD_CIDR=10.233.64.0/18
NODE_POD_CIDR=10.233.73.0/24
SERVICE_CIDR=10.233.0.0/18
SANDBOX_IMAGE=${CLUSTER_SANDBOX_IMAGE:-localhost/spiderpool-rs/pause:0.1.0}
# Fixed paths kubelet/containerd create whatever their configuration says.
FIXED_PATHS="/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd
/opt/containerd /usr/libexec/kubernetes /run/nri /var/run/spidernet /etc/kubernetes"
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory"
# Which DIR's cluster holds the node namespace now.
OWNER=/run/spiderpool-cluster.owner

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
innode() { nsenter --net="/run/netns/$NETNS" "$@"; }
# Starts NAME (a daemon) in the background with its log in DIR and its pid recorded; `exec`
# so that the recorded pid is the daemon's own, not a subshell's.
spawn() {
  local name=$1; shift
  ( exec "$@" >>"$D/$name.log" 2>&1 ) &
  echo $! >"$D/$name.pid"
}

binaries() {
  # KEY=path lines: K8S_BIN_DIR (kubelet, kubectl...), NODE_BIN_DIR (containerd...), MULTUS...
  local out
  out=$("$here/node-testbin.sh") || die "hack/node-testbin.sh failed"
  eval "$out"
  for b in "$KUBELET" "$KUBE_CONTROLLER_MANAGER" "$KUBE_SCHEDULER" "$CONTAINERD" \
    "$CONTAINERD_SHIM_RUNC_V2" "$RUNC" "$CTR" "$MULTUS" "$KUBECTL"; do
    [ -x "$b" ] || die "missing $b"
  done
  printf '%s\n' "$out" >"$D/bin.env"
}

# Remember what the host looked like, once, so `down` can put it back.
snapshot() {
  [ -f "$D/host.saved" ] && return 0
  : >"$D/host.saved.tmp"
  for s in $SYSCTLS; do echo "sysctl $s $(sysctl -n "$s")" >>"$D/host.saved.tmp"; done
  for p in $FIXED_PATHS; do [ -e "$p" ] || echo "path $p" >>"$D/host.saved.tmp"; done
  mv "$D/host.saved.tmp" "$D/host.saved"
}

network() {
  ip netns add "$NETNS" 2>/dev/null || true
  if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link add "$HOST_IF" type veth peer name ens192 netns "$NETNS"
    ip addr add "$ROUTER/16" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    innode ip link set lo up
    innode ip addr add "$NODE_IP/16" dev ens192
    innode ip link set ens192 up
    innode ip route add default via "$ROUTER"
    innode sysctl -qw net.ipv4.ip_forward=1
  fi
  # The host answers for the router's address once the link is up (DAD-free for IPv4).
  for _ in $(seq 1 50); do innode ping -c1 -W1 "$ROUTER" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "the node namespace cannot reach $ROUTER"
}

control_plane() {
  local pki="$D/cp/pki"
  # What every ServiceAccount of kube-system did (and was refused): the cluster quick start
  # reads it to prove the chart's RBAC (nothing refused) and to list what was never used.
  cat >"$D/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
# ResponseStarted: a watch is only complete when it ends, so it is logged when it starts.
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:kube-system"]
- level: None
EOF
  SPIDERPOOL_CP_DIR="$D/cp" CP_ADDRESS=$ROUTER CP_PORT=$PORT CP_ETCD_PORT=$EPORT \
    CP_SERVICE_ACCOUNTS=1 \
    CP_APISERVER_ARGS="--kubelet-client-certificate=$pki/admin.crt --kubelet-client-key=$pki/admin.key --kubelet-preferred-address-types=InternalIP,Hostname --enable-aggregator-routing=true --endpoint-reconciler-type=lease --audit-policy-file=$D/audit-policy.yaml --audit-log-path=$D/audit.log --audit-log-format=json" \
    "$here/control-plane.sh" up "$D/cp" >/dev/null
  KC="$D/cp/kubeconfig"
}

controllers() {
  local pki="$D/cp/pki"
  if ! alive "$D/kcm.pid"; then
    spawn kcm "$KUBE_CONTROLLER_MANAGER" --kubeconfig="$KC" --authentication-kubeconfig="$KC" \
      --authorization-kubeconfig="$KC" --leader-elect=false --bind-address=127.0.0.1 \
      --secure-port=0 --service-account-private-key-file="$pki/sa.key" \
      --root-ca-file="$pki/ca.crt" --cluster-signing-cert-file="$pki/ca.crt" \
      --cluster-signing-key-file="$pki/ca.key" --service-cluster-ip-range=$SERVICE_CIDR \
      --cluster-cidr=$POD_CIDR --allocate-node-cidrs=false --use-service-account-credentials=true \
      --node-monitor-grace-period=20s --v=1
  fi
  if ! alive "$D/scheduler.pid"; then
    spawn scheduler "$KUBE_SCHEDULER" --kubeconfig="$KC" --authentication-kubeconfig="$KC" \
      --authorization-kubeconfig="$KC" --leader-elect=false --bind-address=127.0.0.1 \
      --secure-port=0 --v=1
  fi
}

# The node's CNI: Multus (thin plugin) delegating eth0 to a Calico-like network (ptp: a /24 of
# the pod CIDR per node, routed by the node, default route via the node) and extra NICs to the
# NetworkAttachmentDefinitions named in the Pod's annotations.
cni() {
  mkdir -p "$D/cni/bin" "$D/cni/net.d" "$D/cni/multus"
  for p in /usr/lib/cni/*; do cp -f "$p" "$D/cni/bin/"; done
  cp -f "$MULTUS" "$D/cni/bin/multus"
  mkdir -p "$D/cni/multus.d"
  cat >"$D/cni/multus.d/10-k8s-pod-network.conflist" <<EOF
{
  "cniVersion": "0.3.1",
  "name": "k8s-pod-network",
  "plugins": [{
    "type": "ptp",
    "mtu": 1500,
    "ipam": {
      "type": "host-local",
      "dataDir": "$D/cni/host-local",
      "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF
  # CLUSTER_MULTUS=chart: the default network alone, Multus comes later from our chart.
  if [ "${CLUSTER_MULTUS:-node}" = chart ]; then
    cp "$D/cni/multus.d/10-k8s-pod-network.conflist" "$D/cni/net.d/"
    return 0
  fi
  cat >"$D/cni/net.d/00-multus.conflist" <<EOF
{
  "cniVersion": "0.3.1",
  "name": "multus-cni-network",
  "plugins": [{
    "type": "multus",
    "kubeconfig": "$KC",
    "cniDir": "$D/cni/multus",
    "binDir": "$D/cni/bin",
    "confDir": "$D/cni/multus.d",
    "logFile": "$D/multus.log",
    "logLevel": "verbose",
    "clusterNetwork": "$D/cni/multus.d/10-k8s-pod-network.conflist"
  }]
}
EOF
}

containerd_up() {
  local c="$D/containerd"
  mkdir -p "$c"
  cat >"$c/config.toml" <<EOF
version = 3
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "$CONTAINERD_SHIM_RUNC_V2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$D/cni/bin"]
    conf_dir = "$D/cni/net.d"
[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$SANDBOX_IMAGE"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
EOF
  if ! alive "$D/containerd.pid"; then
    spawn containerd nsenter --net="/run/netns/$NETNS" "$CONTAINERD" --config "$c/config.toml"
  fi
  for _ in $(seq 1 100); do
    ctr_ version >/dev/null 2>&1 && return 0
    alive "$D/containerd.pid" || { tail -n 30 "$D/containerd.log" >&2; die "containerd exited"; }
    sleep 0.1
  done
  die "containerd did not answer on $c/containerd.sock"
}

# containerd warns about cgroup v1 on every call; keep the rest of what it says.
import_image() {
  local out
  out=$(ctr_ images import "$1" 2>&1) || die "import of $1 failed: $out"
}

ctr_() { "$CTR" --address "$D/containerd/containerd.sock" -n k8s.io "$@"; }

kubelet_up() {
  local k="$D/kubelet" pki="$D/cp/pki"
  mkdir -p "$k" "$D/pod-logs"
  cat >"$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: $D/pod-logs
volumePluginDir: $k/volume-plugins
resolvConf: /etc/resolv.conf
serializeImagePulls: false
maxPods: 250
EOF
  if ! alive "$D/kubelet.pid"; then
    spawn kubelet nsenter --net="/run/netns/$NETNS" "$KUBELET" --config="$k/config.yaml" --kubeconfig="$KC" --root-dir="$k/root" \
      --cert-dir="$k/pki" --node-ip="$NODE_IP" --hostname-override="$NODE" \
      --v=1
  fi
}

kubeadm_config() {
  # What kubeadm leaves in a cluster; the SpiderCoordinator reads the CIDRs from it.
  "$KUBECTL" --kubeconfig "$KC" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: kubeadm-config, namespace: kube-system}
data:
  ClusterConfiguration: |
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: ClusterConfiguration
    clusterName: spiderpool-test
    kubernetesVersion: v1.36.3
    networking:
      dnsDomain: cluster.local
      podSubnet: $POD_CIDR
      serviceSubnet: $SERVICE_CIDR
EOF
}

wait_ready() {
  local kubectl="$KUBECTL"
  for _ in $(seq 1 240); do
    if [ "$("$kubectl" --kubeconfig "$KC" get node "$NODE" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] &&
      "$kubectl" --kubeconfig "$KC" get serviceaccount default -n default >/dev/null 2>&1; then
      log "node $NODE Ready: KUBECONFIG=$KC"
      return 0
    fi
    for p in kubelet containerd kcm scheduler; do
      alive "$D/$p.pid" || { tail -n 30 "$D/$p.log" >&2; die "$p exited"; }
    done
    sleep 0.5
  done
  tail -n 30 "$D/kubelet.log" >&2
  die "node $NODE not Ready after 120 s"
}

stop_pid() {
  local f="$D/$1.pid" pid
  alive "$f" || return 0
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Every process in the cgroups below /kubepods (the pods' containers), in every hierarchy.
kill_pods() {
  local f pid
  for f in $(find /sys/fs/cgroup -path '*/kubepods*' -name cgroup.procs 2>/dev/null); do
    # A cgroup may go between find and read: that is no failure.
    for pid in $(cat "$f" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done
}

down() {
  # Every step tolerates what is already gone, so a half-started or half-removed cluster goes.
  if [ -f "$D/bin.env" ]; then . "$D/bin.env"; fi
  stop_pid kubelet
  kill_pods
  # Shims outlive containerd; ours name our socket on their command line. The patterns also
  # catch daemons whose pid file is gone.
  pkill -9 -f -- "-address $D/containerd/" 2>/dev/null || true
  stop_pid containerd
  pkill -9 -f -- "$D/containerd/config.toml" 2>/dev/null || true
  pkill -9 -f -- "--config=$D/kubelet/" 2>/dev/null || true
  kill_pods
  stop_pid kcm
  stop_pid scheduler
  # Mounts under DIR (pod volumes, rootfs overlays, netns bind mounts), deepest first.
  for _ in 1 2 3; do
    awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  done
  for h in /sys/fs/cgroup/*/; do
    for top in kubepods k8s.io; do
      [ -d "$h$top" ] || continue
      find "$h$top" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  ip netns del "$NETNS" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true
  SPIDERPOOL_CP_DIR="$D/cp" "$here/control-plane.sh" down "$D/cp" || true
  if [ -f "$D/host.saved" ]; then
    while read -r kind a b; do
      case "$kind" in
      sysctl) sysctl -qw "$a=$b" || true ;;
      path) rm -rf "$a" ;;
      esac
    done <"$D/host.saved"
  fi
  rm -rf "$D"
  [ "$(cat "$OWNER" 2>/dev/null)" = "$D" ] && rm -f "$OWNER"
  return 0
}

case "$cmd" in
up)
  [ "$(id -u)" = 0 ] || die "needs root"
  # One node namespace, host link and router address for every cluster: a cluster of another
  # DIR still up (a run that crashed) is taken down first. Callers serialise runs (the
  # examples library holds a lock for a cluster's whole life).
  if [ -f "$OWNER" ] && [ "$(cat "$OWNER")" != "$D" ]; then
    log "taking down the leftover cluster of $(cat "$OWNER")"
    "$0" down "$(cat "$OWNER")"
  fi
  mkdir -p "$D"
  echo "$D" >"$OWNER"
  snapshot
  binaries
  network
  control_plane
  controllers
  kubeadm_config
  cni
  containerd_up
  [ -n "${CLUSTER_IMAGES:-}" ] && for f in $CLUSTER_IMAGES; do import_image "$f"; done
  kubelet_up
  wait_ready
  echo "$KC"
  ;;
import)
  shift 2 || true
  . "$D/bin.env"
  for f in "$@"; do import_image "$f"; done
  ;;
down)
  down
  ;;
env)
  echo "export KUBECONFIG=$D/cp/kubeconfig"
  ;;
*)
  echo "usage: $0 up|import|down|env [DIR]" >&2
  exit 2
  ;;
esac
