"""Stores written as users' stores were: qdrant-client local mode, through VectorStore, with known points."""

from __future__ import annotations

import uuid
import zlib
from pathlib import Path

import numpy as np
from qdrant_client import models

from semantik.core.search.sparse import SparseVector
from semantik.core.store.backend import VectorBackend
from semantik.core.store.vectors import ChunkPoint, StoredPoint, VectorStore

NAMESPACE = uuid.UUID("6f1c2d9e-0b7a-4c55-9a57-3f0c5e1d2b44")


def chunk_points(collection: str, count: int, dimension: int, *, legacy: bool = False) -> list[ChunkPoint]:
    """`count` points with distinct vectors, payloads and (unless legacy) sparse vectors, some empty."""
    rng = np.random.default_rng(zlib.crc32(collection.encode()))
    vectors = rng.normal(size=(count, dimension))
    points = []
    for i in range(count):
        sparse = None
        if not legacy:
            terms = sorted({int(t) for t in rng.integers(0, 5000, size=int(rng.integers(0, 6)))})
            sparse = SparseVector(tuple(terms), tuple(float(rng.uniform(0.1, 2.0)) for _ in terms))
        points.append(
            ChunkPoint(
                id=str(uuid.uuid5(NAMESPACE, f"{collection}/{i}")),
                vector=[float(x) for x in vectors[i]],
                path=f"docs/{collection}/part{i % 7}/file{i // 3}.{'md' if i % 2 else 'txt'}",
                chunk_index=i % 3,
                text=f"chunk {i} of {collection}",
                start=i * 10,
                end=i * 10 + 9,
                heading=None if i % 4 else f"Heading {i}",
                sparse=sparse,
            )
        )
    return points


async def build_local_store(path: Path, dimension: int = 8) -> dict[str, list[ChunkPoint]]:
    """Three collections: a large one over several pages, a reindexed generation behind an alias, and one in
    the legacy layout. Returns each collection's points."""
    written = {
        "semantik-docs": chunk_points("semantik-docs", 1300, dimension),
        "semantik-notes.g2": chunk_points("semantik-notes.g2", 40, dimension),
        "semantik-old": chunk_points("semantik-old", 25, dimension, legacy=True),
    }
    store = VectorStore.open(url=None, path=path)
    try:
        await store.ensure_collection("semantik-docs", dimension)
        await store.ensure_collection("semantik-notes.g2", dimension)
        await store.point_alias("semantik-notes", "semantik-notes.g2")
        await store.client.create_collection(
            "semantik-old", vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        )
        for name, points in written.items():
            for start in range(0, len(points), 500):
                await store.upsert(name, points[start : start + 500])
    finally:
        await store.close()
    return written


async def read_all(store: VectorBackend, name: str) -> dict[str, StoredPoint]:
    """Every point of a collection, by id, through the backend's own scroll."""
    points: dict[str, StoredPoint] = {}
    offset: str | None = None
    while True:
        page, offset = await store.scroll(name, limit=200, offset=offset)
        points.update({p.id: p for p in page})
        if offset is None:
            return points
