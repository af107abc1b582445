"""kill -9 leaves the edge store whole: every upsert that returned is there, no batch is half there; and a
migration killed mid-copy leaves the local-mode store whole, so the next run completes it."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from semantik.core.search.sparse import SparseVector
from semantik.core.store.edge import EdgeVectorStore
from semantik.core.store.migrate import has_local_store
from semantik.core.store.vectors import ChunkPoint, VectorStore
from tests.support.local_store import chunk_points, read_all

DIMENSION = 16
COLLECTION = "semantik-crash"
BATCH_SIZES = (100, 1000, 5000)
"""Cumulative sizes cross the edge store's 20k-point index rebuild around the 12th batch."""
NAMESPACE = uuid.UUID("0d8a4f52-5a0e-4f3b-9a63-0b5c7f2e9d11")
REPO = Path(__file__).resolve().parents[2]


def batch(number: int) -> list[ChunkPoint]:
    size = BATCH_SIZES[number % len(BATCH_SIZES)]
    vectors = np.random.default_rng(number).uniform(0.01, 1.0, size=(size, DIMENSION))
    return [
        ChunkPoint(
            id=str(uuid.uuid5(NAMESPACE, f"{number}/{i}")),
            vector=[float(x) for x in vectors[i]],
            path=f"batch{number}/file{i}.md",
            chunk_index=i,
            text=f"batch {number} point {i}",
            start=0,
            end=i,
            sparse=SparseVector((number, 10_000 + i), (1.0, 0.5)),
        )
        for i in range(size)
    ]


async def write_until_killed(path: Path) -> None:
    """The child: upsert batch after batch, saying how many batches have returned after each."""
    store = EdgeVectorStore.open(path)
    await store.ensure_collection(COLLECTION, DIMENSION)
    number = 0
    while True:
        await store.upsert(COLLECTION, batch(number))
        number += 1
        print(number, flush=True)


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def kill_writer(path: Path, returned: int, delay: float) -> int:
    """Run the writer until `returned` upserts have returned, wait `delay`, SIGKILL it; the upserts seen."""
    code = f"import asyncio, pathlib, {__name__} as t; asyncio.run(t.write_until_killed(pathlib.Path({str(path)!r})))"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdout is not None
    seen = 0
    while seen < returned:
        line = child.stdout.readline()
        assert line, f"the writer stopped after {seen} batches"
        seen = int(line)
    time.sleep(delay)  # into the next upsert, or the index rebuild after it
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    return seen


@pytest.mark.parametrize(("returned", "delay"), [(1, 0.0), (5, 0.02), (11, 0.0), (12, 0.05), (14, 0.2)])
async def test_kill_during_upserts_keeps_exactly_whole_batches(tmp_path: Path, returned: int, delay: float) -> None:
    path = tmp_path / "store-edge"
    seen = await asyncio.to_thread(kill_writer, path, returned, delay)

    store = EdgeVectorStore.open(path)
    try:
        stored = await read_all(store, COLLECTION)
        by_batch: dict[int, int] = {}
        for found in stored.values():
            number = int(found.payload["path"].split("/")[0].removeprefix("batch"))
            by_batch[number] = by_batch.get(number, 0) + 1
        whole = sorted(by_batch)
        assert whole == list(range(len(whole))), "batches are kept in order, none skipped"
        assert len(whole) >= seen, "every batch whose upsert returned is there"
        for number in whole:
            expected = batch(number)
            assert by_batch[number] == len(expected), f"batch {number} is all there or not at all"
            for point in expected[:: max(1, len(expected) // 50)]:
                got = stored[point.id]
                assert got.payload == point.payload()
                assert got.vector == pytest.approx(unit(list(point.vector)), rel=1e-5)
                assert got.sparse == point.sparse
        assert await store.count(COLLECTION) == len(stored)
    finally:
        await store.close()


def migrate_command(data: Path) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-m", "semantik.cli", "store", "migrate"], {**os.environ, "SEMANTIK_DATA_DIR": str(data)}


def kill_migration(data: Path) -> None:
    """Start `semantik store migrate` and SIGKILL it a tenth of a second into copying its first collection."""
    command, environment = migrate_command(data)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    assert child.stdout is not None
    assert "semantik-big: 0/12,000 points" in child.stdout.readline()
    staged = data / "store-edge.migrating" / "collections" / "semantik-big"
    deadline = time.monotonic() + 60
    while not staged.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    child.stdout.close()


def run_migrate(data: Path) -> subprocess.CompletedProcess[str]:
    command, environment = migrate_command(data)
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)


async def test_a_migration_killed_mid_copy_leaves_the_source_whole_and_completes_on_the_next_run(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    source = data / "qdrant"
    points = chunk_points("semantik-big", 12_000, DIMENSION)
    local = VectorStore.open(url=None, path=source)
    await local.ensure_collection("semantik-big", DIMENSION)
    for start in range(0, len(points), 2000):
        await local.upsert("semantik-big", points[start : start + 2000])
    await local.close()

    await asyncio.to_thread(kill_migration, data)

    assert not (data / "store-edge").exists(), "killed before the copy was verified: no edge store"
    assert has_local_store(source)
    local = VectorStore.open(url=None, path=source)
    try:
        assert await local.count("semantik-big") == len(points)
    finally:
        await local.close()

    again = await asyncio.to_thread(run_migrate, data)
    assert again.returncode == 0, again.stderr
    assert "semantik-big: 12,000/12,000 points" in again.stdout
    edge = EdgeVectorStore.open(data / "store-edge")
    try:
        stored = await read_all(edge, "semantik-big")
        assert stored.keys() == {p.id for p in points}
        for point in points[::997]:
            assert stored[point.id].payload == point.payload()
            assert stored[point.id].vector == pytest.approx(unit(list(point.vector)), rel=1e-5)
    finally:
        await edge.close()
