"""What the rest of Semantik asks of a vector store, whichever engine holds the vectors.

Two engines satisfy it: `VectorStore` (qdrant-client: a Qdrant server, or its local mode) and `EdgeVectorStore`
(qdrant-edge, Qdrant's engine in this process). `open_backend` picks one; callers are typed against this.
`VectorStore.open` still opens qdrant-client alone, for what reads a local-mode store as such (the migration).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from semantik.core.store.placement import StorePlacement
    from semantik.core.store.vectors import ChunkPoint, RetrieverQuery, ScoredChunk, SearchFilter, StoredPoint


class StoreEngine(StrEnum):
    """The engine of an embedded store (one without a Qdrant server)."""

    EDGE = "edge"
    """qdrant-edge: HNSW and payload indexes in this process."""
    QDRANT_LOCAL = "qdrant-local"
    """qdrant-client's local mode: an exact scan, fine to about 20k chunks."""


class StoreMemory(StrEnum):
    """How much of an embedded (edge) store collection stays resident; fixed when the collection is made.

    Payloads, the sparse index and the path and folder indexes are read on first touch either way: a search
    reads the payloads of its ten hits, the postings of its query's terms and of its folder filter, nothing
    else of them (docs/search.md)."""

    WARM = "warm"
    """The float vectors each search rescores are read into the page cache when a shard opens: the faster
    searches (at a million chunks on the slower 2-core machine: p50 dense 4.2 ms, hybrid 4.6-6 ms, RSS
    2.35 GB)."""
    LOW = "low"
    """Those vectors too are read on first touch: the least memory (RSS 1.4 GB at a million chunks) for
    1-2 ms more per dense search there, until the vectors searches touch have been read."""


class VectorBackend(Protocol):
    async def close(self) -> None: ...

    async def ensure_collection(self, name: str, dimension: int, *, placement: StorePlacement | None = None) -> None:
        """Create `name` in the named layout (dense and sparse vectors) unless it exists, in any layout."""

    async def drop_collection(self, name: str) -> None: ...

    async def point_alias(self, alias: str, physical: str) -> None:
        """Make `alias` name `physical` in one atomic step; a collection still called `alias` is retired."""

    async def drop_generations(self, alias: str, keep: Collection[str] = ()) -> list[str]:
        """Drop `alias` and `alias.g<N>` not in `keep` (the alias too when nothing is kept); returns them."""

    async def collection_names(self) -> set[str]:
        """The collections that hold points (aliases are not collections)."""

    async def aliases(self) -> dict[str, str]:
        """Alias name -> the collection it names."""

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace these points; they survive the process being killed once this returns."""

    async def delete(self, name: str, ids: Sequence[str]) -> None: ...

    async def count(self, name: str, search_filter: SearchFilter | None = None) -> int: ...

    async def retrieve(
        self,
        name: str,
        queries: Sequence[RetrieverQuery],
        *,
        limit: int,
        search_filter: SearchFilter | None = None,
        payload_keys: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredChunk]]:
        """Each retriever's `limit` best chunks with the engine's raw scores; the caller fuses them.

        Each chunk carries only `payload_keys` of its payload (all of it when None, none when empty): reading
        the whole payload, chunk text included, of every candidate cost more than the search itself (`payloads`
        reads it for the hits that are kept)."""

    async def payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The whole payload of each of these points, by id; a point that is gone is left out."""

    async def dense_vectors(self, name: str, ids: Sequence[str]) -> list[list[float]]: ...

    async def scroll(
        self, name: str, *, limit: int, offset: str | None = None
    ) -> tuple[list[StoredPoint], str | None]: ...

    async def healthy(self) -> bool: ...


def open_backend(
    *,
    url: str | None,
    path: Path | None,
    api_key: str | None = None,
    engine: StoreEngine = StoreEngine.EDGE,
    memory: StoreMemory = StoreMemory.WARM,
) -> VectorBackend:
    """A Qdrant server when `url` is set; else the embedded store in `path`, on `engine`; `memory` shapes the
    edge collections made from now on."""
    # Imported here: each engine loads only when chosen.
    if url or engine is StoreEngine.QDRANT_LOCAL:
        from semantik.core.store.vectors import VectorStore

        return VectorStore.open(url=url, path=path, api_key=api_key)
    if path is None:
        raise ValueError("either a Qdrant url or an embedded store path is required")
    from semantik.core.store.edge import EdgeVectorStore

    return EdgeVectorStore.open(path, memory=memory)
