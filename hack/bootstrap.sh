#!/usr/bin/env bash
# Creates .venv/ at the repository root from uv.lock. Idempotent and fast when nothing changed:
# uv itself and every downloaded wheel are cached under ~/.cache/semantik, outside the clone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SEMANTIK_CACHE_DIR:-$HOME/.cache/semantik}"
uv_version="0.13.9"
uv_home="$cache/tools/uv-$uv_version"
uv="$uv_home/bin/uv"

export UV_CACHE_DIR="$cache/uv"
export UV_PYTHON_DOWNLOADS=never
export UV_LINK_MODE="${UV_LINK_MODE:-hardlink}"

step() {
  local name="$1" started
  shift
  started=$(date +%s)
  "$@"
  echo "bootstrap: $name took $(($(date +%s) - started))s" >&2
}

install_uv() {
  if [[ -x "$uv" ]] && [[ "$("$uv" --version)" == "uv $uv_version"* ]]; then
    return
  fi
  rm -rf "$uv_home"
  mkdir -p "$cache/tools"
  python3 -m venv "$uv_home"
  "$uv_home/bin/pip" install --quiet --disable-pip-version-check "uv==$uv_version"
}

python_for_venv() {
  local candidate
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  echo "bootstrap: Python 3.11 or 3.12 is required" >&2
  exit 1
}

sync_venv() {
  (cd "$root" && "$uv" sync --frozen --compile-bytecode --python "$(python_for_venv)" --quiet)
}

stamp="$root/.venv/.semantik-bootstrap"
if [[ -f "$stamp" && "$stamp" -nt "$root/uv.lock" && "$stamp" -nt "$root/pyproject.toml" && -x "$root/.venv/bin/semantik" ]]; then
  exit 0
fi
started=$(date +%s)
step "uv $uv_version" install_uv
step "virtual environment from uv.lock" sync_venv
touch "$stamp"
echo "bootstrap: ready in $(($(date +%s) - started))s (.venv)" >&2
