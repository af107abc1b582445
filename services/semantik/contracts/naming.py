"""Names shared by the operator and the gateway: a namespaced Collection's name in the gateway's store."""

from __future__ import annotations

import hashlib

MAX_STORE_NAME = 63


def short_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:8]


def store_name(namespace: str, name: str) -> str:
    """The gateway's name for a namespaced Collection; gateway names are global, so the namespace is part of it."""
    full = f"{namespace}-{name}"
    return full if len(full) <= MAX_STORE_NAME else f"{name}-{short_hash(namespace)}"


def owner_name(namespace: str, name: str) -> str:
    """How the gateway records which Collection a store belongs to: unlike `store_name`, never ambiguous
    (neither part can hold a `/`), so two Collections whose store names collide are told apart."""
    return f"{namespace}/{name}"


def held_by_another(recorded: str | None, owner: str) -> bool:
    """Whether a store's recorded owner is some other Collection than `owner` (`owner_name`); a store without
    one (made before owners were recorded) is held by no one."""
    return recorded is not None and recorded != owner


def collection_name(namespace: str, store: str) -> str | None:
    """The Collection in `namespace` whose store is `store`, or None when no name there maps to it."""
    prefix, suffix = f"{namespace}-", f"-{short_hash(namespace)}"
    candidates = []
    if store.startswith(prefix):
        candidates.append(store.removeprefix(prefix))
    if store.endswith(suffix):
        candidates.append(store.removesuffix(suffix))
    return next((name for name in candidates if name and store_name(namespace, name) == store), None)
