"""One stored chunk, whole: what a search hit's "open" shows."""

from __future__ import annotations

from dataclasses import dataclass

from semantik.core.context import Semantik
from semantik.core.errors import NotFoundError
from semantik.core.pipeline.ids import point_id
from semantik.core.services.collections import load_collection


@dataclass(frozen=True, slots=True)
class ChunkView:
    path: str
    chunk_index: int
    text: str
    heading: str | None
    start: int
    end: int


async def get_chunk(app: Semantik, name: str, path: str, chunk_index: int) -> ChunkView:
    """The chunk of the live generation; point ids are derived from (collection, path, index), so this is
    one lookup by id, and a path the collection never held is simply not found."""
    row = await load_collection(app, name)
    found = await app.store.payloads(row.qdrant_collection, [point_id(row.name, path, chunk_index)])
    payload = next(iter(found.values()), None)
    if payload is None:
        raise NotFoundError(f"{path!r} has no chunk {chunk_index} in {name!r}", field="path")
    return ChunkView(
        path=str(payload["path"]),
        chunk_index=int(payload["chunk_index"]),
        text=str(payload.get("text", "")),
        heading=payload.get("heading"),
        start=int(payload["start"]),
        end=int(payload["end"]),
    )
