"""Deterministic point ids: re-running any step upserts the same points instead of adding new ones."""

from __future__ import annotations

import hashlib
import uuid

POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://semantik.io/points")


def point_id(collection: str, path: str, chunk_index: int) -> str:
    # A NUL separator cannot occur in a collection name or a path, so no two triples share a name.
    return str(uuid.uuid5(POINT_NAMESPACE, f"{collection}\0{path}\0{chunk_index}"))


def point_ids(collection: str, path: str, indexes: range) -> list[str]:
    return [point_id(collection, path, index) for index in indexes]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
