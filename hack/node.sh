#!/usr/bin/env bash
# A real Kubernetes node (containerd, kubelet, kube-proxy, CoreDNS) on this host, joined to the control
# plane of `hack/controlplane.sh up DIR`, so the chart's pods really run. Root only; one node per host
# (the CNI bridge cni0, iptables and sysctls are the host's). See docs/node.md.
#   hack/node.sh up DIR     start the node node-0 (state under DIR/node, containerd's image store under
#                           ~/.cache/semantik/node so imported images survive), wait until it is Ready
#                           and cluster DNS answers; idempotent
#   hack/node.sh env DIR    print exports: KUBECONFIG, PATH, CONTAINERD_ADDRESS, SEMANTIK_NODE_NAME,
#                           SEMANTIK_NODE_IP: eval "$(hack/node.sh env DIR)"
#   hack/node.sh down DIR   stop the node and undo what it did to the host (pods, mounts, links, netns,
#                           iptables chains, sysctls, cgroups); idempotent, a no-op when nothing runs
# Images the node runs are imported, never pulled: registry.k8s.io/pause:$PAUSE_VERSION (hack/node/pause.c),
# semantik.local/coredns:<version> and semantik.local/node-tools:1 (busybox and kubectl, for tests).
set -euo pipefail
hack="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$hack/lib.sh"
# shellcheck source=hack/controlplane/versions.env
source "$hack/controlplane/versions.env"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/semantik"
node_name=node-0
# kubeadm's PauseVersion of Kubernetes 1.36 (cmd/kubeadm/app/constants): the sandbox image the kubelet pins.
PAUSE_VERSION=3.10.2
pause_image="registry.k8s.io/pause:$PAUSE_VERSION"
coredns_image="semantik.local/coredns:$COREDNS_VERSION"
tools_image="semantik.local/node-tools:1"
pod_cidr=10.88.0.0/16
cluster_dns=10.96.0.10
# Sysctls the node changes: ip_forward (pods' traffic), and those the kubelet and kube-proxy set.
sysctls=(net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.conf.all.route_localnet)
host_lock=/run/semantik-node.lock
host_owner=/run/semantik-node.owner

# --- helpers ---------------------------------------------------------------------------------------

ctr_() { ctr --address "$socket" --namespace k8s.io "$@"; }
crictl_() { "$bin/crictl" --runtime-endpoint "unix://$socket" --timeout 10s "$@"; }
kubectl_() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

# start NAME COMMAND...: a daemon in a session of its own, its pid in $node/pids, its log in $node/logs.
start() {
  local name="$1" pid
  shift
  if [[ -f $node/pids/$name ]] && process_is "${name:0:15}" "$(<"$node/pids/$name")"; then
    return 0
  fi
  setsid "$@" >>"$node/logs/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$node/pids/$name"
}

# stop NAME: SIGTERM, then SIGKILL after 20 s; waits until the process is gone.
stop() {
  local name="$1" pid tries=0
  [[ -f $node/pids/$name ]] || return 0
  pid="$(<"$node/pids/$name")"
  if process_is "${name:0:15}" "$pid"; then
    kill "$pid" 2>/dev/null || true
    while process_is "${name:0:15}" "$pid"; do
      if ((tries++ == 200)); then kill -9 "$pid" 2>/dev/null || true; fi
      sleep 0.1
    done
  fi
  rm -f "$node/pids/$name"
}

# wait_for WHAT SECONDS COMMAND...: retry COMMAND every 0.2 s.
wait_for() {
  local what="$1" deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not happen within ${deadline}s; logs in $node/logs"
    sleep 0.2
  done
}

# --- images ----------------------------------------------------------------------------------------

# podman with hack/images.sh's storage when that script is there (so its `import` finds our images),
# else the default storage with ulimits within root's hard limits here (no CAP_SYS_RESOURCE).
podman_() {
  if [[ -x $hack/images.sh ]]; then
    (eval "$("$hack/images.sh" env 8>&- 9>&-)" && podman "$@")
  else
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' >"$node/containers.conf"
    CONTAINERS_CONF="${CONTAINERS_CONF:-$node/containers.conf}" podman "$@"
  fi
}

# import_image NAME: the podman image NAME into containerd's k8s.io namespace, unless the same image
# (its config digest, podman's image id) is there under that name already.
import_image() {
  local name="$1" id
  id="$(podman_ image inspect --format '{{.Id}}' "$name")"
  if ctr_ images ls name=="$name" 2>/dev/null | grep -q . && ctr_ content ls -q 2>/dev/null | grep -qx "sha256:$id"; then
    return 0
  fi
  if [[ -x $hack/images.sh ]]; then
    "$hack/images.sh" import "$socket" "$name" 8>&- 9>&-
  else
    podman_ save --format docker-archive "$name" | ctr_ images import - >/dev/null
  fi
}

# build_image NAME CONTEXT: `podman build` of CONTEXT/Containerfile, then import it.
build_image() {
  podman_ build --quiet --tag "$1" "$2" >/dev/null
  import_image "$1"
}

images() {
  local started=$EPOCHREALTIME context="$node/images"
  rm -rf "$context"
  mkdir -p "$context/pause" "$context/coredns" "$context/tools/rootfs/bin"
  gcc -Os -static -Wall -o "$context/pause/pause" "$hack/node/pause.c"
  strip "$context/pause/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$context/pause/Containerfile"
  build_image "$pause_image" "$context/pause"
  cp "$bin/coredns" "$context/coredns/coredns"
  printf 'FROM scratch\nCOPY coredns /coredns\nEXPOSE 53 53/udp\nENTRYPOINT ["/coredns"]\n' >"$context/coredns/Containerfile"
  build_image "$coredns_image" "$context/coredns"
  # Debian's static busybox (sh, wget, nslookup, ...) and kubectl (in-cluster config checks the API
  # server's certificate against the service account's ca.crt): a small image for tests.
  cp /bin/busybox "$context/tools/rootfs/bin/busybox"
  # kubectl is built with cgo (as Kubernetes' own go_build_kube does here): its libraries come along.
  cp "$bin/kubectl" "$context/tools/rootfs/bin/kubectl"
  local library
  for library in $(ldd "$bin/kubectl" | grep -o '/[^ ]*'); do
    mkdir -p "$context/tools/rootfs$(dirname "$library")"
    cp -L "$library" "$context/tools/rootfs$library"
  done
  local applet
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$context/tools/rootfs/bin/$applet"
  done
  printf 'FROM scratch\nCOPY rootfs /\nENV PATH=/bin\nCMD ["/bin/sh"]\n' >"$context/tools/Containerfile"
  build_image "$tools_image" "$context/tools"
  rm -rf "$context"
  log "images $pause_image $coredns_image $tools_image built and imported in $(since "$started")"
}

# --- configuration ---------------------------------------------------------------------------------

containerd_config() {
  cat <<CONFIG
# Written by hack/node.sh. cgroupfs (no systemd here); restrict_oom_score_adj because root here cannot
# lower oom_score_adj (without it every sandbox fails in runc); no hugetlb controller on cgroup v1 here.
version = 2
root = "$containerd_root"
state = "$node/containerd/state"
[grpc]
  address = "$socket"
[ttrpc]
  address = "$socket.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni"
CONFIG
}

# A bridge network: every pod gets an address of $pod_cidr from host-local (the node's podCIDR stays
# unset), masqueraded when it leaves the host; portmap for hostPorts. containerd adds loopback itself.
cni_config() {
  cat <<CONFIG
{
  "cniVersion": "1.0.0",
  "name": "semantik",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node/cni-ipam",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONFIG
}

# The API server reaches the kubelet with the cluster's admin certificate (hack/controlplane.sh), so
# the kubelet trusts the cluster CA and asks the API server whether a caller may (Webhook).
kubelet_config() {
  cat <<CONFIG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$socket
podLogsDir: $node/pod-logs
clusterDNS: [$cluster_dns]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
# A test machine's disk is often fuller than the defaults allow: no eviction or image GC for that.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
CONFIG
}

# iptables mode; localhostNodePorts off so it leaves route_localnet alone; conntrack sysctls untouched.
kube_proxy_config() {
  cat <<CONFIG
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $node_name
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
clientConnection: {kubeconfig: $kubeconfig}
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
CONFIG
}

# Running, and its rules for the `kubernetes` Service are there.
kube_proxy_serving() {
  process_is kube-proxy "$(<"$node/pids/kube-proxy")" && iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 10.96.0.1/32
}

# --- up --------------------------------------------------------------------------------------------

save_sysctls() {
  [[ -f $node/sysctls.saved ]] && return 0
  local name
  for name in "${sysctls[@]}"; do echo "$name=$(sysctl -n "$name")"; done >"$node/sysctls.saved.tmp"
  # What existed on the host before the node, so `down` removes only what the node made.
  local path
  for path in /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni; do
    if [[ -e $path ]]; then echo "existed $path"; fi
  done >>"$node/sysctls.saved.tmp"
  mv "$node/sysctls.saved.tmp" "$node/sysctls.saved"
}

up() {
  local started=$EPOCHREALTIME step
  [[ $(id -u) -eq 0 ]] || die "hack/node.sh needs root: it runs containerd and the kubelet, sets sysctls and iptables"
  [[ -f $kubeconfig ]] || die "no cluster in $dir: run hack/controlplane.sh up $dir first"
  [[ -x $bin/kubelet && -x $bin/kube-proxy && -x $bin/coredns && -x $bin/crictl ]] ||
    die "no kubelet, kube-proxy, coredns or crictl in $bin: run hack/controlplane.sh build"
  step=$EPOCHREALTIME
  ensure_debian_packages containerd runc containernetworking-plugins iptables podman busybox-static gcc libc6-dev
  log "Debian packages checked in $(since "$step")"
  exec 9>"$host_lock"
  flock 9
  if [[ -f $host_owner && $(<"$host_owner") != "$dir" && -d $(<"$host_owner")/node/pids ]]; then
    die "a node of $(<"$host_owner") runs on this host: hack/node.sh down $(<"$host_owner") first"
  fi
  echo "$dir" >"$host_owner"
  mkdir -p "$node"/{pids,logs,cni,cni-ipam,pod-logs,kubelet,containerd/state} "$containerd_root"
  save_sysctls
  sysctl -qw net.ipv4.ip_forward=1

  step=$EPOCHREALTIME
  containerd_config >"$node/containerd.toml"
  cni_config >"$node/cni/10-semantik.conflist"
  start containerd containerd --config "$node/containerd.toml"
  wait_for "containerd answering on $socket" 60 ctr --address "$socket" version
  log "containerd up in $(since "$step")"
  step=$EPOCHREALTIME
  images

  step=$EPOCHREALTIME
  kubelet_config >"$node/kubelet.yaml"
  start kubelet "$bin/kubelet" --config "$node/kubelet.yaml" --kubeconfig "$kubeconfig" \
    --root-dir "$node/kubelet" --cert-dir "$node/kubelet/pki" --hostname-override "$node_name" \
    --node-ip "$node_ip" --node-labels semantik.io/real-node=true --v 1
  kube_proxy_config >"$node/kube-proxy.yaml"
  start kube-proxy "$bin/kube-proxy" --config "$node/kube-proxy.yaml" --v 1
  wait_for "node $node_name registering" 60 kubectl_ get node "$node_name"
  kubectl_ wait --for=condition=Ready "node/$node_name" --timeout=120s >/dev/null
  wait_for "kube-proxy writing its iptables rules" 60 kube_proxy_serving
  log "kubelet and kube-proxy up, node $node_name Ready in $(since "$step")"

  step=$EPOCHREALTIME
  sed "s|@IMAGE@|$coredns_image|" "$hack/node/coredns.yaml" | kubectl_ apply -f - >/dev/null
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null ||
    die "CoreDNS did not become ready: kubectl -n kube-system describe pod -l k8s-app=kube-dns"
  log "CoreDNS ready at $cluster_dns in $(since "$step")"
  log "node $node_name up in $(since "$started"): eval \"\$($0 env $dir)\""
}

# --- down ------------------------------------------------------------------------------------------

# Mount points under PREFIX, deepest first.
mounts_under() {
  awk -v prefix="$1" '{ gsub(/\\040/, " ", $5); if (index($5, prefix) == 1) print $5 }' /proc/self/mountinfo | sort -r
}

unmount_under() {
  local path
  while read -r path; do
    if [[ -n $path ]]; then umount "$path" 2>/dev/null || umount -l "$path" 2>/dev/null || true; fi
  done <<<"$(mounts_under "$1")"
}

# Chains and rules named KUBE-* or CNI-* in every table of both iptables backends, v4 and v6.
remove_chains() {
  local save restore table chains chain
  for save in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
    command -v "$save" >/dev/null || continue
    # Listing a legacy table instantiates it in the kernel: only look when some exist already.
    if [[ $save == ip6tables-legacy-save && ! -s /proc/net/ip6_tables_names ]] ||
      [[ $save == iptables-legacy-save && ! -s /proc/net/ip_tables_names ]]; then
      continue
    fi
    restore="${save%-save}"
    for table in filter nat mangle raw; do
      "$save" -t "$table" 2>/dev/null | grep -qE 'KUBE-|CNI-' || continue
      # Rules first (a chain that is jumped to cannot be deleted), then the chains.
      { "$save" -t "$table" | grep -E '^-A' | grep -E 'KUBE-|CNI-' || true; } | sed 's/^-A/-D/' |
        while read -r rule; do eval "$restore -t $table $rule" 2>/dev/null || true; done
      mapfile -t chains < <("$save" -t "$table" | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\).*/\1/p')
      for chain in "${chains[@]}"; do "$restore" -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in "${chains[@]}"; do "$restore" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
}

restore_host() {
  local line name value
  [[ -f $node/sysctls.saved ]] || return 0
  while IFS= read -r line; do
    case $line in
      existed\ *) ;;
      *=*)
        name="${line%%=*}"
        value="${line#*=}"
        sysctl -qw "$name=$value" || log "warning: could not restore $name=$value"
        ;;
    esac
  done <"$node/sysctls.saved"
  local path
  for path in /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni; do
    grep -qx "existed $path" "$node/sysctls.saved" || rm -rf "$path"
  done
  rm -f "$node/sysctls.saved"
}

down() {
  [[ -d $node ]] || return 0
  [[ $(id -u) -eq 0 ]] || die "hack/node.sh down needs root"
  local started=$EPOCHREALTIME
  exec 9>"$host_lock"
  flock 9
  # The kubelet first, so it restarts nothing; then every pod through the CRI, which runs the CNI
  # plugins' DEL (veths, addresses, CNI-* chains) and removes the pods' network namespaces.
  stop kubelet
  # After a crash, containerd again (its shims and containers outlived it) so the CRI removes the pods.
  if [[ -f $node/containerd.toml ]] && ! ctr --address "$socket" version >/dev/null 2>&1; then
    mkdir -p "$node/pids" "$node/logs"
    start containerd containerd --config "$node/containerd.toml"
    local tries=0
    until ctr --address "$socket" version >/dev/null 2>&1 || ((tries++ > 100)); do sleep 0.2; done
  fi
  if ctr --address "$socket" version >/dev/null 2>&1; then
    if [[ -x $bin/crictl ]]; then
      crictl_ rmp --all --force >/dev/null 2>&1 || crictl_ rmp --all --force >/dev/null 2>&1 || true
    fi
    # Whatever the CRI did not remove (a killed run): kill the tasks, remove the containers.
    local container
    for container in $(ctr_ containers ls -q 2>/dev/null); do
      ctr_ tasks kill --signal SIGKILL "$container" >/dev/null 2>&1 || true
      ctr_ tasks rm --force "$container" >/dev/null 2>&1 || true
      ctr_ containers rm "$container" >/dev/null 2>&1 || true
    done
  fi
  stop kube-proxy
  if [[ -x $bin/kube-proxy ]]; then "$bin/kube-proxy" --cleanup >>"$node/logs/kube-proxy.log" 2>&1 || true; fi
  stop containerd
  # The runc shims outlive containerd when it is stopped; those of this node go too.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $socket" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  # Any container process still alive (the CRI could not remove it) lives in a kubepods cgroup.
  for pid in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null); do
    kill -9 "$pid" 2>/dev/null || true
  done
  unmount_under "$node/"
  unmount_under "$containerd_root/"
  local netns
  for netns in /run/netns/cni-*; do
    [[ -e $netns ]] || continue
    umount "$netns" 2>/dev/null || true
    rm -f "$netns"
  done
  ip link delete cni0 2>/dev/null || true
  remove_chains
  restore_host
  # The kubelet's cgroups (cgroupfs driver, cgroup v1): every controller's kubepods tree, leaves first.
  local controller
  for controller in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
    if [[ -d $controller ]]; then find "$controller" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  rm -rf "$node"
  if [[ -f $host_owner && $(<"$host_owner") == "$dir" ]]; then rm -f "$host_owner"; fi
  log "node $node_name down in $(since "$started")"
}

env_() {
  [[ -f $kubeconfig ]] || log "warning: no cluster in $dir yet: run hack/controlplane.sh up $dir"
  printf 'export KUBECONFIG=%q\n' "$kubeconfig"
  # shellcheck disable=SC2016  # $PATH expands where the output is eval'ed
  printf 'export PATH=%q:"$PATH"\n' "$bin"
  printf 'export CONTAINERD_ADDRESS=%q\n' "$socket"
  printf 'export SEMANTIK_NODE_NAME=%q\n' "$node_name"
  printf 'export SEMANTIK_NODE_IP=%q\n' "$node_ip"
}

usage="usage: $0 up DIR|env DIR|down DIR"
[[ $# -eq 2 ]] || die "$usage"
command="$1"
dir="$(realpath -m "$2")"
node="$dir/node"
containerd_root="$cache/node/containerd"
socket="$node/containerd/containerd.sock"
pki="$dir/clusters/semantik/pki"
# The binaries and kubeconfig of hack/controlplane.sh (its `env` is the one place that names them).
eval "$("$hack/controlplane.sh" env "$dir" 2>/dev/null)"
bin="${PATH%%:*}"
kubeconfig="$KUBECONFIG"
node_ip="$(cat "$dir/node-ip" 2>/dev/null || true)"

case "$command" in
  up)
    [[ -n $node_ip ]] || die "no $dir/node-ip: the cluster in $dir was started by an older hack/controlplane.sh"
    up
    ;;
  down) down ;;
  env) env_ ;;
  *) die "$usage" ;;
esac
