#!/usr/bin/env bash
# Copies what the chart must hold byte-identical to its one source: the CRDs (crds/ ->
# charts/semantik/crds/) and the operator's RBAC list (operator/semantik_operator/rbac.py ->
# charts/semantik/files/operator-rbac.yaml, rendered into the ClusterRole). Run it after changing
# either; tests/unit/test_chart.py fails, naming this script, while they differ.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$root/charts/semantik"

cp "$root"/crds/*.yaml "$chart/crds/"
"$root/.venv/bin/python" - "$chart/files/operator-rbac.yaml" <<'PY'
import sys

import yaml

from semantik_operator.rbac import RULES

header = "# Generated from operator/semantik_operator/rbac.py by hack/chart-sync.sh: do not edit.\n"
with open(sys.argv[1], "w") as out:
    out.write(header + yaml.safe_dump(RULES, sort_keys=False, default_flow_style=None, width=120))
PY
echo "chart-sync: copied crds/*.yaml and wrote charts/semantik/files/operator-rbac.yaml" >&2
