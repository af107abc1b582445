"""Point id schemes on the real model and the embedded store: a collection made before ids carried their file
keeps its ids through updates, removals and searches, and a reindex moves it to ids by file. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from semantik.core.context import Semantik
from semantik.core.db.models import Collection
from semantik.core.pipeline.ids import LATEST_SCHEME, PointIdScheme, point_id
from semantik.core.services import collections, indexing, search
from semantik.core.services.collections import ChunkingSpec, CollectionSpec
from semantik.core.services.search import SearchOptions
from tests.support.indexing import point_count

NAME = "docs"
QUERY = "how the wheel bearing is sealed against water"
SENTENCES = [
    "The sealed bearing keeps water and grit out of the wheel hub for years of service.",
    "Grease the bearing once a season and check that the rubber seal has not cracked.",
    "A worn seal lets water into the hub, and the bearing then rusts within weeks.",
    "Replace the seal together with the bearing: a new bearing behind an old seal fails early.",
]


def write(folder: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)


def long_text(repeats: int) -> str:
    return "\n\n".join(" ".join(SENTENCES) for _ in range(repeats))


async def index(app: Semantik, folder: Path, *, reindex: bool = False) -> None:
    operation = await indexing.open_index_operation(app, NAME, str(folder), full=False, reindex=reindex)
    await indexing.run_index_operation(app, operation.id)


async def stored(app: Semantik) -> dict[str, dict[str, Any]]:
    """Every point of the live generation: id -> payload."""
    row = await collections.load_collection(app, NAME)
    points: dict[str, dict[str, Any]] = {}
    offset: str | None = None
    while True:
        page, offset = await app.store.scroll(row.qdrant_collection, limit=500, offset=offset)
        points.update({p.id: p.payload for p in page})
        if offset is None:
            return points


async def assert_ids_follow(app: Semantik, scheme: PointIdScheme) -> None:
    row = await collections.load_collection(app, NAME)
    assert row.point_id_scheme is scheme
    points = await stored(app)
    expected = {
        point_id(NAME, str(p["path"]), int(p["chunk_index"]), scheme=scheme): (p["path"], p["chunk_index"])
        for p in points.values()
    }
    assert set(points) == set(expected), f"every point carries its {scheme.name} id"
    view = await collections.get_collection(app, NAME)
    assert view.chunks == len(points) == await point_count(app, NAME)


async def hit_paths(app: Semantik, per_document: int | None) -> list[str]:
    options = SearchOptions(per_document=per_document)
    return [hit.path for hit in (await search.search(app, NAME, QUERY, k=20, options=options)).hits]


async def test_a_collection_from_before_id_schemes_keeps_its_ids_until_a_reindex(
    semantik: Semantik, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write(folder, {"hub/bearing.md": long_text(6), "hub/seal.md": long_text(2), "old/notes.md": long_text(1)})
    spec = CollectionSpec(name=NAME, source_path=str(folder), chunking=ChunkingSpec(chunk_size=64, chunk_overlap=8))
    await collections.ensure_collection(semantik, spec)
    # What an upgrade leaves: the row of a collection made before schemes says NAMED, its store holds those ids.
    async with semantik.sessions.begin() as session:
        await session.execute(update(Collection).where(Collection.name == NAME).values(point_ids=PointIdScheme.NAMED))
    await index(semantik, folder)
    await assert_ids_follow(semantik, PointIdScheme.NAMED)
    bearing_chunks = Counter(p["path"] for p in (await stored(semantik)).values())["hub/bearing.md"]
    assert bearing_chunks > 2

    # A shrunk file drops its surplus chunks and a removed one all of its chunks: found by their NAMED ids.
    write(folder, {"hub/bearing.md": long_text(3)})
    (folder / "old/notes.md").unlink()
    await index(semantik, folder)
    await assert_ids_follow(semantik, PointIdScheme.NAMED)
    paths = Counter(p["path"] for p in (await stored(semantik)).values())
    assert "old/notes.md" not in paths and 0 < paths["hub/bearing.md"] < bearing_chunks

    # Search collapses to files by the path each candidate carries.
    assert sorted(await hit_paths(semantik, per_document=1)) == ["hub/bearing.md", "hub/seal.md"]
    assert Counter(await hit_paths(semantik, per_document=2)) == {"hub/bearing.md": 2, "hub/seal.md": 2}

    # A reindex builds a new store collection, on the latest scheme, and swaps it in.
    chunking = ChunkingSpec(chunk_size=96, chunk_overlap=8)
    await collections.ensure_collection(semantik, CollectionSpec(name=NAME, source_path=str(folder), chunking=chunking))
    await index(semantik, folder, reindex=True)
    await assert_ids_follow(semantik, LATEST_SCHEME)
    assert sorted(await hit_paths(semantik, per_document=1)) == ["hub/bearing.md", "hub/seal.md"]
    assert Counter(await hit_paths(semantik, per_document=2)) == {"hub/bearing.md": 2, "hub/seal.md": 2}


async def test_a_new_collection_collapses_to_files_without_reading_candidates_payloads(
    semantik: Semantik, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    write(folder, {"hub/bearing.md": long_text(4), "hub/seal.md": long_text(3), "hub/axle.md": long_text(2)})
    spec = CollectionSpec(name=NAME, source_path=str(folder), chunking=ChunkingSpec(chunk_size=64, chunk_overlap=8))
    await collections.ensure_collection(semantik, spec)
    await index(semantik, folder)
    await assert_ids_follow(semantik, PointIdScheme.BY_FILE)

    asked: list[Any] = []
    retrieve = semantik.store.retrieve

    async def recording(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("payload_keys"))
        return await retrieve(*args, **kwargs)

    monkeypatch.setattr(semantik.store, "retrieve", recording)
    one_each = await search.search(semantik, NAME, QUERY, k=10)
    assert asked and all(keys == () for keys in asked), "candidates are read without their payloads"
    assert sorted(hit.path for hit in one_each.hits) == ["hub/axle.md", "hub/bearing.md", "hub/seal.md"]
    assert all(hit.text and hit.snippet for hit in one_each.hits), "the hits kept still get their payloads"
    two_each = {"hub/axle.md": 2, "hub/bearing.md": 2, "hub/seal.md": 2}
    assert Counter(await hit_paths(semantik, per_document=2)) == two_each
    assert len(await hit_paths(semantik, per_document=None)) > 6
