"""The edge store's writer builds the HNSW index it left unbuilt when it closes, so the next process (a
search after `semantik index`) opens a shard it need not scan exactly; a process that only read builds
nothing, so a search never pays for a build. A long load flushes as it goes, so edge's write-ahead log does
not keep every update of the load."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from semantik.core.search.sparse import SparseVector
from semantik.core.store import edge
from semantik.core.store.edge import COLLECTIONS_DIR, EdgeVectorStore
from semantik.core.store.vectors import ChunkPoint

COLLECTION = "semantik-builds"
POINTS = 8000
DIMENSION = 384
"""8000 such vectors (12 MB) are past edge's 10 MB indexing threshold: a smaller segment is never built."""


def points(count: int = POINTS, start: int = 0, text: str = "point") -> list[ChunkPoint]:
    vectors = np.random.default_rng(start).standard_normal((count, DIMENSION), dtype=np.float32)
    return [
        ChunkPoint(
            id=str(uuid.UUID(int=n + 1)),
            vector=vectors[n - start].tolist(),
            path=f"docs/file{n}.md",
            chunk_index=0,
            text=f"{text} {n}",
            start=0,
            end=10,
            sparse=SparseVector((n, 1_000_000 + n % 7), (1.0, 0.5)),
        )
        for n in range(start, start + count)
    ]


def dense_vectors_built(path: Path) -> int:
    shard = qe.EdgeShard.load(str(path / COLLECTIONS_DIR / COLLECTION))
    try:
        # Sparse vectors are indexed as they are written; the rest of the count is the HNSW index.
        return shard.info().indexed_vectors_count - POINTS
    finally:
        shard.close()


async def write(path: Path) -> None:
    store = EdgeVectorStore.open(path)
    await store.ensure_collection(COLLECTION, DIMENSION)
    written = points()
    for start in range(0, POINTS, 1000):
        await store.upsert(COLLECTION, written[start : start + 1000])
    await store.close()


async def test_the_writer_builds_what_it_left_unbuilt_when_it_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A load that stopped between two builds: nothing is built while it writes.
    monkeypatch.setattr(edge, "build_due", lambda built, unbuilt: False)
    monkeypatch.setattr(edge, "BUILD_AFTER_POINTS", POINTS)
    await write(tmp_path)
    assert dense_vectors_built(tmp_path) == POINTS


async def test_too_few_points_for_a_build_and_a_reader_build_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "build_due", lambda built, unbuilt: False)
    monkeypatch.setattr(edge, "BUILD_AFTER_POINTS", POINTS + 1)
    await write(tmp_path)
    assert dense_vectors_built(tmp_path) == 0

    monkeypatch.setattr(edge, "BUILD_AFTER_POINTS", 1)
    reader = EdgeVectorStore.open(tmp_path)
    assert await reader.count(COLLECTION) == POINTS
    await reader.close()
    assert dense_vectors_built(tmp_path) == 0


async def test_a_long_load_lets_the_write_ahead_log_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge, "build_due", lambda built, unbuilt: False)  # builds are another matter
    monkeypatch.setattr(edge, "FLUSH_AFTER_POINTS", 4000)
    store = EdgeVectorStore.open(tmp_path)
    await store.ensure_collection(COLLECTION, DIMENSION)
    page = "chunk text " * 180
    # ≈ 3.5 KB an update, 200 MB in all: the log's 32 MB files would fill six times over.
    for start in range(0, 60_000, 1000):
        await store.upsert(COLLECTION, points(1000, start, page))
    log = [f.name for f in (tmp_path / COLLECTIONS_DIR / COLLECTION / "wal").iterdir() if f.name.startswith("closed-")]
    assert len(log) <= 2, log
    assert await store.count(COLLECTION) == 60_000
    await store.close()
