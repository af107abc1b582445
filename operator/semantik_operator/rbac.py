"""Every permission the operator needs, in two lists the chart renders (a test checks they are equal),
so the operator never runs with more than this.

RULES are granted where Collections are watched: a Role in the release's namespace (kopf --namespace,
the default), or a ClusterRole only with operator.watchAllNamespaces. DISCOVERY_RULES are read-only over
two cluster-scoped kinds, so only a ClusterRole can grant them: kopf lists namespaces and watches CRDs
even when it serves one namespace (without them it logs 403s and stops noticing a CRD upgrade).
"""

from __future__ import annotations

from typing import Any

RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["semantik.io"],
        "resources": ["collections", "indexjobs"],
        "verbs": ["get", "list", "watch", "patch", "create", "delete"],
    },
    {"apiGroups": ["semantik.io"], "resources": ["collections/status", "indexjobs/status"], "verbs": ["get", "patch"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    # delete: an embedder no Collection searches with any more (after a reindex) is removed by the operator.
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]},
]

DISCOVERY_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]
