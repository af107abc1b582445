#!/usr/bin/env bash
# Copies what the chart must hold byte-identical to its one source: the CRDs (crds/ ->
# charts/semantik/crds/) and the operator's RBAC list (operator/semantik_operator/rbac.py ->
# charts/semantik/files/operator-rbac.yaml and operator-discovery-rbac.yaml, rendered into the operator's
# Role or ClusterRole and its discovery ClusterRole). Run it after changing
# either; tests/unit/test_chart.py fails, naming this script, while they differ.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$root/charts/semantik"

cp "$root"/crds/*.yaml "$chart/crds/"
"$root/.venv/bin/python" - "$chart/files/operator-rbac.yaml" "$chart/files/operator-discovery-rbac.yaml" <<'PY'
import sys

import yaml

from semantik_operator.rbac import DISCOVERY_RULES, RULES

header = "# Generated from operator/semantik_operator/rbac.py by hack/chart-sync.sh: do not edit.\n"
for path, rules in ((sys.argv[1], RULES), (sys.argv[2], DISCOVERY_RULES)):
    with open(path, "w") as out:
        out.write(header + yaml.safe_dump(rules, sort_keys=False, default_flow_style=None, width=120))
PY
echo "chart-sync: copied crds/*.yaml and wrote charts/semantik/files/operator-{,discovery-}rbac.yaml" >&2
