#!/usr/bin/env bash
# `make test`: lint, build the control plane binaries and the images (cached), start private PostgreSQL
# and Redis servers once, install Chromium and axe-core (cached), run every test tier (unit, integration,
# browser, cluster on kwok, e2e on a real node), and stop the servers whatever happens. Prints how long
# each step took.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv/bin"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

timed() {
  local name="$1" started status=0
  shift
  started=$(date +%s)
  "$@" || status=$?
  echo "test: $name took $(($(date +%s) - started))s" >&2
  return "$status"
}

lint() {
  "$venv/ruff" check .
  "$venv/ruff" format --check .
  # mypy's cache outside the clone: a fresh clone checks in seconds what is unchanged (it re-checks by
  # content hash, so a cache written by another clone is safe to reuse).
  MYPY_CACHE_DIR="${SEMANTIK_CACHE_DIR:-$HOME/.cache/semantik}/mypy" "$venv/mypy" --strict services operator
}

services_dir="$(mktemp -d /tmp/semantik-test-services.XXXXXX)"
chmod 0755 "$services_dir"
cleanup() { hack/test-services.sh down "$services_dir" >/dev/null 2>&1 || true; rm -rf "$services_dir"; }
trap cleanup EXIT

# A green run means every tier ran: what a tier needs and cannot install itself fails the run here, with
# the reason, instead of skipping the tier.
command -v go >/dev/null || {
  echo "test: go is not installed: the cluster and e2e tiers build Kubernetes from Go modules (hack/controlplane.sh)" >&2
  exit 1
}
[[ $(id -u) -eq 0 ]] || {
  echo "test: the e2e tier runs a real kubelet and containerd (hack/node.sh), which need root" >&2
  exit 1
}

timed "lint (ruff, mypy --strict)" lint
# Built once into ~/.cache/semantik; later runs find them there. tests/cluster and tests/e2e start their
# own clusters. The two builds run side by side: the Go build keeps the CPUs busy while the image build
# mostly copies and downloads; its log follows once both are done.
images_log="$services_dir/images.log"
timed "images (hack/images.sh build: podman, cached; beside the Go build)" hack/images.sh build >"$images_log" 2>&1 &
images_build=$!
timed "control plane and node binaries (Go build, cached)" hack/controlplane.sh build
images_status=0
wait "$images_build" || images_status=$?
cat "$images_log" >&2
[[ $images_status -eq 0 ]] || exit "$images_status"
timed "PostgreSQL and Redis (install if absent, start)" hack/test-services.sh up "$services_dir" >"$services_dir/env"
# shellcheck disable=SC1091
source "$services_dir/env"
# tests/browser and the UI's browser tests drive a real headless Chromium and check pages with axe-core.
timed "Chromium, chromedriver and axe-core (browser tier)" hack/browser.sh ensure >"$services_dir/browser-env"
# shellcheck disable=SC1091
source "$services_dir/browser-env"
timed "pytest" "$venv/python" -m pytest tests -q -ra --durations=20 "$@"
