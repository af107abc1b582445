"""Every permission the operator needs, in one list: the chart's ClusterRole is rendered from it
(a test checks the two are equal), so the operator never runs with more than this."""

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
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]},
]
