"""One stored chunk, whole: what a search hit's "open" shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from semantik.core.context import Semantik
from semantik.core.errors import NotFoundError
from semantik.core.pipeline.ids import point_id
from semantik.core.search.analyzer import analyzer_for
from semantik.core.search.snippets import marked_spans
from semantik.core.services.collections import load_collection


@dataclass(frozen=True, slots=True)
class ChunkView:
    path: str
    chunk_index: int
    text: str
    heading: str | None
    start: int
    end: int
    highlights: list[tuple[int, int]] = field(default_factory=list)
    """Spans of `text` whose words match the query's terms, when a query was given."""


async def get_chunk(app: Semantik, name: str, path: str, chunk_index: int, query: str = "") -> ChunkView:
    """The chunk of the live generation; point ids are derived from (collection, path, index), so this is
    one lookup by id, and a path the collection never held is simply not found. With `query`, its words
    are marked by the collection's analyzer, as a hit's snippet is."""
    row = await load_collection(app, name)
    point = point_id(row.name, path, chunk_index, scheme=row.point_id_scheme)
    found = await app.store.payloads(row.qdrant_collection, [point])
    payload = next(iter(found.values()), None)
    if payload is None:
        raise NotFoundError(f"{path!r} has no chunk {chunk_index} in {name!r}", field="path")
    text = str(payload.get("text", ""))
    analyzer = analyzer_for(row.sparse_language or row.language)
    return ChunkView(
        path=str(payload["path"]),
        chunk_index=int(payload["chunk_index"]),
        text=text,
        heading=payload.get("heading"),
        start=int(payload["start"]),
        end=int(payload["end"]),
        highlights=marked_spans(text, analyzer.terms(query), analyzer) if query else [],
    )
