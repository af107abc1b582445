#!/usr/bin/env bash
# `make test`: lint, start private PostgreSQL and Redis servers once, run every test tier that can run
# here, and stop the servers whatever happens. Prints how long each step took.
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

timed "lint (ruff, mypy --strict)" lint
if command -v go >/dev/null; then
  # Built once into ~/.cache/semantik/bin; later runs find it there. tests/cluster starts its own cluster.
  timed "control plane binaries (Go build, cached)" hack/controlplane.sh build
fi
timed "PostgreSQL and Redis (install if absent, start)" hack/test-services.sh up "$services_dir" >"$services_dir/env"
# shellcheck disable=SC1091
source "$services_dir/env"
timed "pytest" "$venv/python" -m pytest tests -q -ra --durations=20 "$@"
