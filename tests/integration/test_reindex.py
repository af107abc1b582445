"""A change of chunking (or model, or quantization) is built as the next generation by a reindex while
search keeps answering from the live one, then swapped in at once. Real model, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from semantik.core.context import Semantik
from semantik.core.errors import InvalidInputError
from semantik.core.pipeline.runner import Progress
from semantik.core.services import collections, indexing, search
from semantik.core.services.collections import ChunkingSpec, CollectionSpec
from semantik.core.store import metadata
from tests.integration.conftest import CountingEmbedder
from tests.support.indexing import expected_chunks, point_count

NAME = "docs"
QUERY = "what must I include in a NOTICE file when I redistribute"


def spec(corpus: Path, chunk_size: int) -> CollectionSpec:
    return CollectionSpec(
        name=NAME, source_path=str(corpus), chunking=ChunkingSpec(chunk_size=chunk_size, chunk_overlap=8)
    )


async def first_index(app: Semantik, corpus: Path) -> int:
    await collections.ensure_collection(app, spec(corpus, 200))
    operation = await indexing.open_index_operation(app, NAME, None, full=False)
    report = await indexing.run_index_operation(app, operation.id)
    return report.progress.chunks


async def store_names(app: Semantik) -> tuple[set[str], dict[str, str]]:
    return await app.store.collection_names(), await app.store.aliases()


async def rows_match_points(app: Semantik) -> None:
    view = await collections.get_collection(app, NAME)
    assert view.chunks == await point_count(app, NAME) == await app.store.count(f"semantik-{NAME}")


async def test_a_chunking_change_is_built_aside_and_swapped_in(
    semantik: Semantik, corpus: Path, embedder: CountingEmbedder
) -> None:
    old_chunks = await first_index(semantik, corpus)
    view, created = await collections.ensure_collection(semantik, spec(corpus, 64))

    assert not created
    assert view.chunking.chunk_size == 200 and view.generation == 1, "the live index keeps its chunking"
    assert view.reindex is not None and view.reindex.chunking.chunk_size == 64 and view.reindex.generation == 2
    names, _ = await store_names(semantik)
    assert {f"semantik-{NAME}", f"semantik-{NAME}.g2"} <= names

    operation = await indexing.open_index_operation(semantik, NAME, None, full=False, reindex=True)
    seen_during: list[tuple[int, list[str]]] = []

    async def search_meanwhile(progress: Progress) -> None:
        if progress.phase == "indexing" and progress.chunks > 0 and not seen_during:
            hits = (await search.search(semantik, NAME, QUERY, k=3)).hits
            seen_during.append((await point_count(semantik, NAME), [hit.path for hit in hits]))

    embedder.texts = 0
    report = await indexing.run_index_operation(semantik, operation.id, on_progress=search_meanwhile)

    assert seen_during, "the reindex ran in more than one batch, so search was asked mid-way"
    live_points, paths = seen_during[0]
    assert live_points == old_chunks and "licenses/Apache-2.0" in paths, "search answered from the live index"
    assert embedder.texts == report.progress.chunks > old_chunks, "every file re-chunked smaller and re-embedded"

    after = await collections.get_collection(semantik, NAME)
    assert after.generation == 2 and after.chunking.chunk_size == 64 and after.reindex is None
    assert after.qdrant_collection == f"semantik-{NAME}.g2"
    assert after.chunks == report.progress.chunks and after.last_indexed_at is not None
    await rows_match_points(semantik)
    names, aliases = await store_names(semantik)
    assert aliases[f"semantik-{NAME}"] == f"semantik-{NAME}.g2"
    assert f"semantik-{NAME}" not in names, "the retired generation is dropped"
    assert "licenses/Apache-2.0" in [hit.path for hit in (await search.search(semantik, NAME, QUERY, k=3)).hits]
    apache = corpus / "licenses" / "Apache-2.0"
    assert await point_count(semantik, NAME, "licenses/Apache-2.0") == await expected_chunks(semantik, NAME, apache)

    # Point ids of the new generation are the ones incremental runs compute: a shrunk file leaves no strays.
    apache.write_text(apache.read_text()[:2000])
    edit = await indexing.open_index_operation(semantik, NAME, None, full=False)
    await indexing.run_index_operation(semantik, edit.id)
    await rows_match_points(semantik)
    assert await point_count(semantik, NAME, "licenses/Apache-2.0") == await expected_chunks(semantik, NAME, apache)

    # A third generation moves the alias again, atomically, and drops the second.
    await collections.ensure_collection(semantik, spec(corpus, 128))
    third = await indexing.open_index_operation(semantik, NAME, None, full=False, reindex=True)
    await indexing.run_index_operation(semantik, third.id)
    names, aliases = await store_names(semantik)
    assert aliases[f"semantik-{NAME}"] == f"semantik-{NAME}.g3" and f"semantik-{NAME}.g2" not in names
    await rows_match_points(semantik)


async def test_a_stopped_reindex_leaves_the_live_index_and_resumes(
    semantik: Semantik, corpus: Path, embedder: CountingEmbedder
) -> None:
    old_chunks = await first_index(semantik, corpus)
    await collections.ensure_collection(semantik, spec(corpus, 64))
    operation = await indexing.open_index_operation(semantik, NAME, None, full=False, reindex=True)
    # Stopped while the first batch is embedded: that batch is committed, and no other is started.
    embedder.texts = 0
    report = await indexing.run_index_operation(semantik, operation.id, cancelled=lambda: embedder.texts > 0)

    assert report.cancelled
    view = await collections.get_collection(semantik, NAME)
    assert view.generation == 1 and view.chunking.chunk_size == 200 and view.chunks == old_chunks
    assert view.reindex is not None, "the half-built generation waits to be resumed"
    await rows_match_points(semantik)
    assert "licenses/Apache-2.0" in [hit.path for hit in (await search.search(semantik, NAME, QUERY, k=3)).hits]

    embedder.texts = 0
    again = await indexing.open_index_operation(semantik, NAME, None, full=False, reindex=True)
    resumed = await indexing.run_index_operation(semantik, again.id)
    after = await collections.get_collection(semantik, NAME)
    assert after.generation == 2 and after.chunks > old_chunks
    assert 0 < embedder.texts < after.chunks, "the files the stopped run committed were not embedded again"
    assert resumed.progress.files_unchanged > 0
    await rows_match_points(semantik)


async def test_a_change_taken_back_drops_the_pending_generation(semantik: Semantik, corpus: Path) -> None:
    await first_index(semantik, corpus)
    await collections.ensure_collection(semantik, spec(corpus, 64))
    view, _ = await collections.ensure_collection(semantik, spec(corpus, 200))

    assert view.reindex is None and view.generation == 1
    names, _ = await store_names(semantik)
    assert f"semantik-{NAME}.g2" not in names
    async with semantik.sessions() as session:
        live = await metadata.get_collection(session, NAME)
        assert live is not None and await metadata.get_shadow(session, live.id) is None


async def test_deleting_a_collection_drops_every_generation(semantik: Semantik, corpus: Path) -> None:
    await first_index(semantik, corpus)
    await collections.ensure_collection(semantik, spec(corpus, 64))
    operation = await indexing.open_index_operation(semantik, NAME, None, full=False, reindex=True)
    await indexing.run_index_operation(semantik, operation.id)
    await collections.ensure_collection(semantik, spec(corpus, 128))  # a pending third generation

    await collections.delete_collection(semantik, NAME)

    names, aliases = await store_names(semantik)
    assert not {n for n in names if n.startswith(f"semantik-{NAME}")} and f"semantik-{NAME}" not in aliases
    async with semantik.sessions() as session:
        assert await metadata.list_collections(session) == []


async def test_a_reindex_into_another_model_than_the_process_runs_fails_and_keeps_the_index(
    semantik: Semantik, corpus: Path
) -> None:
    old_chunks = await first_index(semantik, corpus)
    other = spec(corpus, 200).model_copy(update={"model": "Qwen/Qwen3-Embedding-0.6B"})
    view, _ = await collections.ensure_collection(semantik, other)
    assert view.reindex is not None and view.reindex.model == "Qwen/Qwen3-Embedding-0.6B"

    operation = await indexing.open_index_operation(semantik, NAME, None, full=False, reindex=True)
    with pytest.raises(InvalidInputError, match=r"index is built with Qwen/Qwen3-Embedding-0\.6B"):
        await indexing.run_index_operation(semantik, operation.id)

    failed = await indexing.get_operation(semantik, operation.id)
    assert failed.status == "failed" and "Qwen3" in (failed.error or "")
    view = await collections.get_collection(semantik, NAME)
    assert view.generation == 1 and view.chunks == old_chunks
    assert "licenses/Apache-2.0" in [hit.path for hit in (await search.search(semantik, NAME, QUERY, k=3)).hits]
