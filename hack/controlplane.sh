#!/usr/bin/env bash
# A real Kubernetes control plane for the cluster test tier (tests/cluster), built from Go modules: no
# container engine, nothing downloaded but from the Go module proxy. Versions: hack/controlplane/versions.env.
#   hack/controlplane.sh build         build etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                                      kubectl, kwok, kwokctl, helm, and for a real node (hack/node.sh)
#                                      kubelet, kube-proxy, coredns and crictl once into ~/.cache/semantik/bin/<key>/
#   hack/controlplane.sh up [DIR]      build if needed, start the cluster (kwokctl --runtime binary: etcd,
#                                      apiserver, controller-manager, scheduler, kwok) with its state in DIR,
#                                      create the fake nodes (SEMANTIK_KWOK_NODES, default "cpu-0 cpu-1
#                                      gpu-0"; empty: none, for a cluster of real nodes only); idempotent
#   hack/controlplane.sh env [DIR]     print `export KUBECONFIG=...` and `export PATH=<bin>:$PATH`:
#                                      eval "$(hack/controlplane.sh env)"
#   hack/controlplane.sh down [DIR]    stop and delete the cluster (no-op when there is none)
# DIR defaults to ~/.cache/semantik/cluster. Logs go to stderr; only `env` writes to stdout.
set -euo pipefail
hack="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$hack/lib.sh"
# shellcheck source=hack/controlplane/versions.env
source "$hack/controlplane/versions.env"

modules="$hack/controlplane"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/semantik"
key="k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION-coredns-$COREDNS_VERSION-crictl-$CRICTL_VERSION"
bin="$cache/bin/$key"
# The key before CoreDNS and crictl joined it: its binaries are the same builds, linked into $bin, not rebuilt.
previous_bin="$cache/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
cluster_name=semantik
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl helm kubelet kube-proxy
  coredns crictl)
# The fake nodes kwok drives (see nodes_manifest); empty for none.
kwok_nodes="${SEMANTIK_KWOK_NODES-cpu-0 cpu-1 gpu-0}"

# --- build ---------------------------------------------------------------------------------------

# The module versions a wrapper go.mod requires must be the ones versions.env pins.
check_modules() {
  if ! grep -Eq "^\s*k8s.io/kubernetes $KUBERNETES_VERSION\b" "$modules/kube/go.mod" ||
    ! grep -Eq "^(require)?\s*go.etcd.io/etcd/server/v3 $ETCD_VERSION\b" "$modules/etcd/go.mod"; then
    die "hack/controlplane/{kube,etcd}/go.mod do not match versions.env: run hack/controlplane/sync-modules.sh"
  fi
  [[ $KUBECTL_VERSION == "$KUBERNETES_VERSION" ]] || die "KUBECTL_VERSION must equal KUBERNETES_VERSION"
}

# Real versions in the binaries (a plain `go build` says v0.0.0), as Kubernetes' hack/lib/version.sh sets them.
kube_ldflags() {
  local version="$KUBERNETES_VERSION" flags=(-s -w) package key value minor
  minor="${version#v1.}"
  minor="${minor%%.*}"
  for package in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for key in gitVersion gitMajor gitMinor gitTreeState buildDate; do
      case $key in
        gitVersion) value="$version" ;;
        gitMajor) value=1 ;;
        gitMinor) value="$minor" ;;
        gitTreeState) value=clean ;;
        buildDate) value="$(date -u +%Y-%m-%dT%H:%M:%SZ)" ;;
      esac
      flags+=("-X" "$package.$key=$value")
    done
  done
  echo "${flags[*]}"
}

# Helm's own Makefile sets its default Kubernetes version (used by `helm template` and lint) from the
# k8s.io/client-go it builds with.
helm_ldflags() {
  local gomod minor flags=(-s -w)
  gomod="$(cd /tmp && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')"
  minor="$(awk '$1 == "k8s.io/client-go" { sub(/^v0\./, "", $2); sub(/\..*/, "", $2); print $2 }' "$gomod")"
  [[ -n $minor ]] || die "no k8s.io/client-go in $gomod"
  flags+=(-X "helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean)
  for package in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=(-X "$package.k8sVersionMajor=1" -X "$package.k8sVersionMinor=$minor")
  done
  echo "${flags[*]}"
}

# build_one NAME COMMAND...: COMMAND writes the binary to $out (NAME in a fresh directory), moved to
# $bin/NAME when complete; skipped when $bin/NAME exists.
build_one() {
  local name="$1" started
  shift
  if [[ -x $bin/$name ]]; then
    return 0
  fi
  if [[ -x $previous_bin/$name ]]; then
    ln -f "$previous_bin/$name" "$bin/$name" 2>/dev/null || cp -p "$previous_bin/$name" "$bin/$name"
    return 0
  fi
  started=$EPOCHREALTIME
  log "building $name"
  local tmp
  tmp="$(mktemp -d "$bin/.build.XXXXXX")"
  out="$tmp/$name"
  "$@"
  mv -f "$out" "$bin/$name"
  rm -rf "$tmp"
  log "built $name in $(since "$started")"
}

go_build_kube() {
  (cd "$modules/kube" && go build -p 2 -ldflags "$(kube_ldflags)" -o "$out" "k8s.io/kubernetes/cmd/$1")
}

go_build_etcd() {
  (cd "$modules/etcd" && go build -p 2 -ldflags "-s -w" -o "$out" .)
}

# `go install module@version` builds with that module's own go.mod, as its authors do, into GOBIN:
# the directory of $out, the command's name being $out's.
go_install() {
  GOBIN="$(dirname "$out")" go install -p 2 -ldflags "$2" "$1"
}

go_install_static() { CGO_ENABLED=0 go_install "$@"; }

build() {
  command -v go >/dev/null || die "go is not installed"
  check_modules
  local missing=() name started=$EPOCHREALTIME
  for name in "${binaries[@]}"; do [[ -x $bin/$name ]] || missing+=("$name"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  mkdir -p "$bin"
  # One build at a time per key (two test sessions may start at once); the second finds it done.
  exec 8>"$bin.lock"
  flock 8
  missing=()
  for name in "${binaries[@]}"; do [[ -x $bin/$name ]] || missing+=("$name"); done
  if [[ ${#missing[@]} -eq 0 ]]; then
    exec 8>&-
    return 0
  fi
  rm -rf "$bin"/.build.?????? # what a killed build left
  log "building ${missing[*]} into $bin with $(go env GOVERSION)"
  # Default module and build caches (so a rebuild after a version bump reuses what it can), paths
  # trimmed from the binaries; only the module proxy is asked for sources.
  export GOFLAGS="${GOFLAGS:-$(go env GOFLAGS)} -trimpath" GOTOOLCHAIN=local
  build_one etcd go_build_etcd
  build_one kube-apiserver go_build_kube kube-apiserver
  build_one kube-controller-manager go_build_kube kube-controller-manager
  build_one kube-scheduler go_build_kube kube-scheduler
  build_one kubectl go_build_kube kubectl
  local kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}"
  build_one kwok go_install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "$kwok_ldflags"
  build_one kwokctl go_install "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION" "$kwok_ldflags"
  build_one helm go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$(helm_ldflags)"
  build_one kubelet go_build_kube kubelet
  build_one kube-proxy go_build_kube kube-proxy
  # Static, as CoreDNS releases are: it runs alone in a FROM scratch image (hack/node.sh).
  build_one coredns go_install_static "github.com/coredns/coredns@$COREDNS_VERSION" "-s -w"
  build_one crictl go_install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
  log "built ${missing[*]} in $(since "$started") in all"
  exec 8>&-
}

# --- cluster ---------------------------------------------------------------------------------------

# Fake nodes, driven by the kwok controller: two CPU nodes and a GPU node that advertises one
# nvidia.com/gpu, carries labels like those of NVIDIA's GPU feature discovery (the operator's GPU node
# selector is nvidia.com/gpu.present=true) and the taint nvidia.com/gpu=present:NoSchedule, as GPU node
# pools commonly do, so only pods that tolerate it land there. kwok keeps capacity and allocatable as
# given here.
nodes_manifest() {
  local name labels taints resources
  for name in $kwok_nodes; do
    labels="type: kwok, kubernetes.io/hostname: $name, kubernetes.io/os: linux, kubernetes.io/arch: amd64"
    resources='cpu: "8", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi'
    taints=""
    if [[ $name == gpu-* ]]; then
      labels+=', nvidia.com/gpu.present: "true", nvidia.com/gpu.count: "1", nvidia.com/gpu.product: kwok-fake-gpu'
      resources+=', nvidia.com/gpu: "1"'
      taints="{key: nvidia.com/gpu, value: present, effect: NoSchedule}"
    fi
    cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {$labels}
spec:
  taints: [$taints]
status:
  capacity: {$resources}
  allocatable: {$resources}
NODE
  done
}

kubectl_() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

# The address a real node (hack/node.sh) and its pods reach the API server at: the source address of
# the default route, else the first global IPv4 address.
node_ip() {
  local address
  address="$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)"
  [[ -n $address ]] || address="$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')"
  [[ -n $address ]] || die "no IPv4 address for the API server to advertise (no default route, no global address)"
  echo "$address"
}

# kwokctl's settings: the binaries built above (without them it downloads release binaries) and every
# port on loopback (its default is 0.0.0.0, for which it has no flag). No Stage objects are given, so
# kwokctl hands kwok its default stages: nodes become Ready and keep a heartbeat; pods on them become
# Running and Ready (pod-ready), pods owned by a Job then Succeeded (pod-complete), deleted pods go.
# For a real node (hack/node.sh) beside the fake ones:
# - kwok manages only the nodes annotated kwok.x-k8s.io/node=fake (ours are), not a kubelet's;
# - the API server listens on every address and advertises the node IP, the `kubernetes` Service's
#   endpoint, so pods reach it at 10.96.0.1:443 through kube-proxy; both are in its serving cert;
# - etcd does not fsync: the cluster is thrown away after the tests, and an fsync queued behind gigabytes
#   of image writes (hack/images.sh import) stalled it past the API server's request timeout;
# - it dials kubelets at their InternalIP with the admin certificate, which the kubelet checks against
#   the cluster CA.
kwokctl_config() {
  local pki="$dir/clusters/$cluster_name/pki" address
  address="$(node_ip)"
  cat <<CONFIG
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: $KUBERNETES_VERSION
  bindAddress: 127.0.0.1
  etcdBinary: $bin/etcd
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kwokControllerBinary: $bin/kwok
  kubectlBinary: $bin/kubectl
  kubeApiserverCertSANs: [10.96.0.1, $address, kubernetes.default.svc, kubernetes.default.svc.cluster.local]
componentsPatches:
- name: etcd
  extraArgs:
  - {key: unsafe-no-fsync, value: "true"}
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
- name: kube-apiserver
  extraArgs:
  - {key: bind-address, value: 0.0.0.0, override: true}
  - {key: advertise-address, value: "$address"}
  - {key: service-cluster-ip-range, value: 10.96.0.0/16}
  - {key: kubelet-preferred-address-types, value: InternalIP}
  - {key: kubelet-client-certificate, value: "$pki/admin.crt"}
  - {key: kubelet-client-key, value: "$pki/admin.key"}
CONFIG
}

# The daemons kwokctl starts must not inherit the lock descriptors: they would hold the locks for life.
kwokctl_() {
  KWOK_WORKDIR="$dir" "$bin/kwokctl" --config "$dir/kwokctl.yaml" --name "$cluster_name" "$@" 8>&- 9>&-
}

exists() { [[ -f $dir/clusters/$cluster_name/kwok.yaml ]]; }

up() {
  local started=$EPOCHREALTIME step
  build
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  if exists && [[ $(cat "$dir/key" 2>/dev/null) != "$key" ]]; then
    log "the cluster in $dir was made with other binaries: recreating it"
    down_locked
  fi
  echo "$key" >"$dir/key"
  kwokctl_config >"$dir/kwokctl.yaml"
  node_ip >"$dir/node-ip" # what the API server advertises; hack/node.sh registers its node with it
  forget_dead_processes
  step=$EPOCHREALTIME
  # Creates the cluster, or starts the processes of one that exists and is not running (after a reboot).
  # --kubeconfig "" leaves ~/.kube/config alone; ours is $kubeconfig.
  kwokctl_ create cluster --runtime binary --kubeconfig "" --timeout 5m >"$dir/kwokctl.log" 2>&1 || {
    tail -n 40 "$dir/kwokctl.log" >&2
    die "kwokctl create cluster failed; see $dir/kwokctl.log and $dir/clusters/$cluster_name/logs/"
  }
  log "kwokctl create cluster took $(since "$step")"
  step=$EPOCHREALTIME
  local tries=0
  until kubectl_ get --raw /readyz >/dev/null 2>&1; do
    ((tries++ < 600)) || die "the API server did not become ready; see $dir/clusters/$cluster_name/logs/"
    sleep 0.1
  done
  if [[ -n ${kwok_nodes// /} ]]; then
    local nodes=()
    read -ra nodes <<<"$kwok_nodes"
    nodes_manifest | kubectl_ apply -f - >/dev/null
    kubectl_ wait --for=condition=Ready "${nodes[@]/#/node/}" --timeout=120s >/dev/null
  fi
  # Pods are refused until the controller-manager has made the namespace's default service account.
  kubectl_ wait --for=create serviceaccount/default --namespace default --timeout=120s >/dev/null
  log "API server ready, fake nodes [${kwok_nodes}] Ready in $(since "$step")"
  log "cluster up in $(since "$started"): eval \"\$($0 env${dir_arg:+ $dir_arg})\""
}

# "pid name" of each process kwokctl started for the cluster and recorded.
cluster_processes() {
  local file pid
  for file in "$dir/clusters/$cluster_name/pids"/*.pid; do
    [[ -f $file ]] || continue
    pid="$(<"$file")"
    echo "$pid $(basename "$file" .pid)"
  done
}

# kwokctl takes a component for running when its recorded pid answers signal 0, which a zombie does
# (this machine's init reaps late) and so does another process that got the pid after a reboot. Its
# `create cluster` then starts nothing and waits minutes for an API server that is not there. A pid
# file whose process is not that live component is stale: remove it, and kwokctl starts the component.
forget_dead_processes() {
  local pid name
  while read -r pid name; do
    [[ -n $pid ]] || continue
    process_is "${name:0:15}" "$pid" || rm -f "$dir/clusters/$cluster_name/pids/$name.pid"
  done <<<"$(cluster_processes)"
}

down_locked() {
  if exists; then
    local started=$EPOCHREALTIME pids tries=0 pid name
    [[ -x $bin/kwokctl ]] || die "no $bin/kwokctl to delete the cluster in $dir with: run $0 build"
    pids="$(cluster_processes)"
    # SIGKILLs the processes, removes the cluster's directory.
    kwokctl_ delete cluster >>"$dir/kwokctl.log" 2>&1 || {
      tail -n 20 "$dir/kwokctl.log" >&2
      die "kwokctl delete cluster failed; see $dir/kwokctl.log"
    }
    # Gone, so their ports are free and nothing writes under $dir any more when this returns.
    while read -r pid name; do
      [[ -n $pid ]] || continue
      while process_is "${name:0:15}" "$pid"; do
        ((tries++ < 200)) || die "$name ($pid) outlived kwokctl delete cluster"
        sleep 0.05
      done
    done <<<"$pids"
    log "cluster in $dir deleted in $(since "$started")"
  fi
  rm -rf "$dir/clusters" "$dir/key" "$dir/kwokctl.yaml" "$dir/node-ip"
}

down() {
  [[ -d $dir ]] || return 0
  exec 9>"$dir/.lock"
  flock 9
  down_locked
}

env_() {
  [[ -f $kubeconfig ]] || log "warning: no cluster in $dir yet: run $0 up${dir_arg:+ $dir_arg}"
  printf 'export KUBECONFIG=%q\n' "$kubeconfig"
  # shellcheck disable=SC2016  # $PATH expands where the output is eval'ed
  printf 'export PATH=%q:"$PATH"\n' "$bin"
}

usage="usage: $0 build|up [DIR]|env [DIR]|down [DIR]"
command="${1:-}"
[[ $# -le 2 ]] || die "$usage"
dir_arg="${2:-}"
dir="$(realpath -m "${dir_arg:-$cache/cluster}")"
kubeconfig="$dir/clusters/$cluster_name/kubeconfig.yaml"

case "$command" in
  build)
    [[ $# -eq 1 ]] || die "$usage"
    build
    ;;
  up) up ;;
  down) down ;;
  env) env_ ;;
  *) die "$usage" ;;
esac
