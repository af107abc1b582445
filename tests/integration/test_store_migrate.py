"""A local-mode store moves into the edge store with nothing lost: by the API, the CLI, and on first open."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qdrant_client import models

from semantik.core.context import open_semantik
from semantik.core.settings import Settings
from semantik.core.store.edge import EdgeVectorStore
from semantik.core.store.migrate import (
    MigrationError,
    MigrationProgress,
    has_local_store,
    migrate_store,
    staging_path,
)
from semantik.core.store.vectors import ChunkPoint, RetrieverQuery, StoredPoint, VectorStore
from tests.support.local_store import build_local_store, chunk_points, read_all

SEMANTIK = [sys.executable, "-m", "semantik.cli"]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def assert_same_point(copied: StoredPoint, original: StoredPoint) -> None:
    assert copied.payload == original.payload
    assert copied.vector == pytest.approx(unit(original.vector), rel=1e-5, abs=1e-6)
    if original.sparse is None or not original.sparse.indices:
        assert copied.sparse is None or not copied.sparse.indices
    else:
        assert copied.sparse is not None
        assert copied.sparse.indices == original.sparse.indices
        assert copied.sparse.values == pytest.approx(original.sparse.values, rel=1e-6)


def queries_for(point: ChunkPoint, *, legacy: bool) -> list[RetrieverQuery]:
    dense = RetrieverQuery("dense", point.vector, legacy=legacy)
    if legacy or point.sparse is None or not point.sparse.indices:
        return [dense]
    return [dense, RetrieverQuery("sparse", point.sparse)]


async def test_migration_copies_every_collection_point_and_alias(tmp_path: Path) -> None:
    source, target = tmp_path / "qdrant", tmp_path / "store-edge"
    written = await build_local_store(source)
    progress: list[MigrationProgress] = []

    report = await migrate_store(source, target, on_progress=progress.append)

    assert not source.exists() and has_local_store(report.retired), "the source is kept aside, never deleted"
    assert not staging_path(target).exists()
    assert report.copied.counts == {name: len(points) for name, points in written.items()}
    assert report.copied.aliases == {"semantik-notes": "semantik-notes.g2"}
    assert report.copied.legacy == ["semantik-old"]

    docs = [p for p in progress if p.collection == "semantik-docs"]
    assert [p.copied for p in docs] == [0, 512, 1024, 1300], "pages of 512, from nothing to all"
    assert {p.total for p in docs} == {1300}

    local = VectorStore.open(url=None, path=report.retired)
    edge = EdgeVectorStore.open(target)
    try:
        assert await edge.collection_names() == await local.collection_names()
        assert await edge.aliases() == await local.aliases()
        assert await edge.count("semantik-notes") == 40
        for name, points in written.items():
            originals = await read_all(local, name)
            copies = await read_all(edge, name)
            assert copies.keys() == originals.keys()
            assert await edge.count(name) == len(points)
            for point_id, original in originals.items():
                assert_same_point(copies[point_id], original)
            legacy = name == "semantik-old"
            for probe in points[:: max(1, len(points) // 8)]:
                queries = queries_for(probe, legacy=legacy)
                expected = await local.retrieve(name, queries, limit=5)
                found = await edge.retrieve(name, queries, limit=5)
                for retriever, hits in expected.items():
                    assert [h.id for h in found[retriever]] == [h.id for h in hits], (name, retriever)
                    if retriever == "dense":
                        # Sparse scores differ by a constant factor (edge's IDF counts only the points with
                        # terms, local mode every point); the ranking is the same.
                        assert [h.score for h in found[retriever]] == pytest.approx([h.score for h in hits], rel=1e-4)
        by_alias = await edge.retrieve(
            "semantik-notes", [RetrieverQuery("dense", written["semantik-notes.g2"][3].vector)], limit=1
        )
        assert by_alias["dense"][0].id == written["semantik-notes.g2"][3].id
    finally:
        await edge.close()
        await local.close()


async def test_a_payload_the_store_would_not_write_back_stops_the_migration(tmp_path: Path) -> None:
    source, target = tmp_path / "qdrant", tmp_path / "store-edge"
    store = VectorStore.open(url=None, path=source)
    await store.ensure_collection("semantik-docs", 8)
    point = chunk_points("semantik-docs", 1, 8)[0]
    await store.client.upsert(
        "semantik-docs",
        points=[models.PointStruct(id=point.id, vector=point.vectors(), payload={**point.payload(), "owner": "ops"})],
    )
    await store.close()

    with pytest.raises(MigrationError, match="owner"):
        await migrate_store(source, target)

    assert has_local_store(source) and not target.exists()
    store = VectorStore.open(url=None, path=source)
    try:
        assert (await read_all(store, "semantik-docs"))[point.id].payload["owner"] == "ops"
    finally:
        await store.close()


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SEMANTIK_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run([*SEMANTIK, *args], capture_output=True, text=True, env=environment, timeout=300)


async def test_store_migrate_command_prints_progress_and_refuses_a_second_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    written = await build_local_store(data / "qdrant")

    result = run_cli("store", "migrate", data_dir=data)

    assert result.returncode == 0, result.stderr
    assert "semantik-docs: 0/1,300 points" in result.stdout
    assert "semantik-docs: 1,300/1,300 points" in result.stdout
    assert "Migrated 3 collections (1,365 points)" in result.stdout
    edge = EdgeVectorStore.open(data / "store-edge")
    try:
        for name, points in written.items():
            assert await edge.count(name) == len(points)
    finally:
        await edge.close()

    again = run_cli("store", "migrate", data_dir=data)
    assert again.returncode == 1
    assert "no local-mode store" in again.stderr


async def test_first_open_in_embedded_mode_migrates_by_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    written = await build_local_store(data / "qdrant")

    async with open_semantik(Settings(data_dir=data)) as app:
        assert isinstance(app.store, EdgeVectorStore)
        for name, points in written.items():
            assert await app.store.count(name) == len(points)
        assert await app.store.aliases() == {"semantik-notes": "semantik-notes.g2"}

    assert not (data / "qdrant").exists()
    assert [p.name.startswith("qdrant.migrated-") for p in data.iterdir() if p.name.startswith("qdrant")] == [True]
    async with open_semantik(Settings(data_dir=data)) as app:  # a second open finds nothing to migrate
        assert await app.store.count("semantik-docs") == len(written["semantik-docs"])
