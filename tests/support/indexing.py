"""Helpers that drive the real index path the CLI and the gateway use."""

from __future__ import annotations

from pathlib import Path

from semantik.core.context import Semantik
from semantik.core.errors import NotFoundError
from semantik.core.pipeline.chunk import chunk_text
from semantik.core.pipeline.extract import ExtractionError, read_and_extract
from semantik.core.pipeline.runner import IndexReport
from semantik.core.services import collections, indexing
from semantik.core.store.vectors import SearchFilter


async def index_folder(app: Semantik, name: str, folder: Path, *, full: bool = False) -> IndexReport:
    try:
        await collections.load_collection(app, name)
    except NotFoundError:
        await collections.create_collection(app, collections.CollectionSpec(name=name, source_path=str(folder)))
    operation = await indexing.open_index_operation(app, name, str(folder), full=full)
    return await indexing.run_index_operation(app, operation.id)


async def point_count(app: Semantik, name: str, path: str | None = None) -> int:
    row = await collections.load_collection(app, name)
    return await app.store.count(row.qdrant_collection, SearchFilter(path_prefix=path) if path else None)


async def expected_chunks(app: Semantik, name: str, file: Path) -> int:
    """Chunks the file should have under the collection's chunking, computed apart from the runner."""
    row = await collections.load_collection(app, name)
    spec = collections.ChunkingSpec(
        strategy=row.chunk_strategy, chunk_size=row.chunk_size, chunk_overlap=row.chunk_overlap
    )
    try:
        text = read_and_extract(file, file.name).text
    except ExtractionError:
        return 0
    return len(chunk_text(text, spec.config(), await app.tokenizer()))
