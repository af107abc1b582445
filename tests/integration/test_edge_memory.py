"""How much of an edge collection stays resident is chosen when the collection is made (SEMANTIK_STORE_MEMORY)
and kept by it: the layout edge itself records beside the shard says which files are warmed when it opens
and which are read on first touch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from semantik.core.search.sparse import SparseVector
from semantik.core.store.backend import StoreMemory, open_backend
from semantik.core.store.edge import COLLECTIONS_DIR
from semantik.core.store.vectors import DENSE, SPARSE, ChunkPoint, RetrieverQuery

DIMENSION = 4


def layout(store: Path, name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((store / COLLECTIONS_DIR / name / "edge_config.json").read_text())
    return config


async def test_new_collections_take_the_stores_memory_and_keep_theirs(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = open_backend(url=None, path=path, memory=StoreMemory.WARM)
    await store.ensure_collection("warm", DIMENSION)
    await store.close()
    store = open_backend(url=None, path=path, memory=StoreMemory.LOW)
    try:
        await store.ensure_collection("low", DIMENSION)
        point = ChunkPoint(
            str(uuid.UUID(int=1)),
            [1.0, 0, 0, 0],
            path="a.md",
            chunk_index=0,
            text="a",
            start=0,
            end=1,
            sparse=SparseVector((7,), (1.0,)),
        )
        for name in ("warm", "low"):
            await store.upsert(name, [point])
            found = await store.retrieve(name, [RetrieverQuery(DENSE, [1.0, 0, 0, 0])], limit=1, payload_keys=())
            assert [c.id for c in found[DENSE]] == [point.id], f"{name} answers"
    finally:
        await store.close()

    warm, low = layout(path, "warm"), layout(path, "low")
    assert warm["vectors"][DENSE]["memory"] == "cached", "the vectors searches rescore are warmed"
    assert low["vectors"][DENSE]["memory"] == "cold", "the vectors searches rescore are read on touch"
    for name, made in (("warm", warm), ("low", low)):
        # Read for the ten hits and the query's terms only: never warmed, whatever the setting.
        assert made["payload_memory"] == "cold" and made["sparse_vectors"][SPARSE]["memory"] == "cold"
        # What HNSW walks stays in memory: 4-bit codes, half the heap int8 copies would take.
        assert made["vectors"][DENSE]["quantization_config"]["turbo"] == {"memory": "pinned", "bits": "bits4"}
        shard = qe.EdgeShard.load(str(path / COLLECTIONS_DIR / name))
        try:
            indexes = {key: index.params.memory for key, index in shard.info().payload_schema.items() if index.params}
        finally:
            shard.close()
        # Every chunk has a path and folders but only folder filters and one file's writes read them; every
        # extension filter walks the six extensions' postings.
        assert indexes == {"path": qe.Memory.Cold, "dirs": qe.Memory.Cold, "ext": qe.Memory.Pinned}, name
