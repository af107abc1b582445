"""Names, labels and owner references every child shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from semantik.contracts.naming import short_hash as short_hash  # the one definition; builders import it here

GROUP = "semantik.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "semantik-operator"
MAX_NAME = 63


def child_name(*parts: str, suffix: str) -> str:
    """`<parts>-<suffix>`, cut so the whole stays a valid 63-character name."""
    base = "-".join(parts)[: MAX_NAME - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def labels(component: str, instance: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "semantik",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **(extra or {}),
    }


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    metadata = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}
