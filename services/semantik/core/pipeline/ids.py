"""Deterministic point ids: re-running any step upserts the same points instead of adding new ones.

A store collection's ids follow one scheme for its whole life (the collection row records it): a stale
chunk is deleted by recomputing its id, so two schemes in one store would leave chunks no one can find.
"""

from __future__ import annotations

import hashlib
import uuid
from enum import IntEnum

POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://semantik.io/points")
FILE_KEY_BYTES = 12
FILE_KEY_CHARS = 28
"""The hyphenated UUID's first 12 bytes: `xxxxxxxx-xxxx-xxxx-xxxx-xxxx`."""
MAX_CHUNK_INDEX = 2**32 - 1


class PointIdScheme(IntEnum):
    NAMED = 1
    """uuid5 of (collection, path, chunk index): a candidate's file is read from its payload. Collections
    made before the scheme below keep it."""
    BY_FILE = 2
    """A 96-bit hash of (collection, path), then the chunk index: a candidate's file is read off its id, so
    a search collapses to files without reading one payload (at a million chunks, reading `path` of every
    candidate cost more than the vector search)."""


LATEST_SCHEME = PointIdScheme.BY_FILE


def point_id(collection: str, path: str, chunk_index: int, *, scheme: PointIdScheme) -> str:
    # A NUL separator cannot occur in a collection name or a path, so no two pairs or triples share a name.
    if scheme is PointIdScheme.NAMED:
        return str(uuid.uuid5(POINT_NAMESPACE, f"{collection}\0{path}\0{chunk_index}"))
    if not 0 <= chunk_index <= MAX_CHUNK_INDEX:
        raise ValueError(f"chunk index {chunk_index} does not fit a point id")
    return str(uuid.UUID(bytes=_file_hash(collection, path) + chunk_index.to_bytes(4, "big")))


def point_ids(collection: str, path: str, indexes: range, *, scheme: PointIdScheme) -> list[str]:
    return [point_id(collection, path, index, scheme=scheme) for index in indexes]


def file_key(point: str) -> str:
    """The part of a BY_FILE id that names its file: equal for two points exactly when their files are.
    96 bits: two files sharing it is a birthday bound of 2^48 files away."""
    return point[:FILE_KEY_CHARS]


def _file_hash(collection: str, path: str) -> bytes:
    return hashlib.blake2b(f"{collection}\0{path}".encode(), digest_size=FILE_KEY_BYTES).digest()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
