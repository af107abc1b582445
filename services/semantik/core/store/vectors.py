"""The Qdrant store: one Qdrant collection per Semantik collection, the same code for url= and path=.

A collection's points carry two named vectors: `dense` (the embedding, cosine) and `sparse` (BM25 term
weights, with Qdrant's IDF modifier). Collections built before hybrid search hold one unnamed dense vector
(the *legacy* layout) until a backfill copies them into the named layout.
"""

from __future__ import annotations

import posixpath
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from qdrant_client import AsyncQdrantClient, models

from semantik.core.errors import BackendUnavailableError
from semantik.core.search.sparse import SparseVector
from semantik.core.store.placement import StorePlacement

DENSE = "dense"
SPARSE = "sparse"
INDEXED_KEYS = ("path", "dirs", "ext")
"""The payload keys filters and deletes by file match on: every engine keeps a keyword index of each."""


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    id: str
    vector: Sequence[float]
    path: str
    chunk_index: int
    text: str
    start: int
    end: int
    heading: str | None = None
    sparse: SparseVector | None = None
    """None: the point goes to a legacy collection, which has only its dense vector."""

    def vectors(self) -> models.VectorStruct:
        if self.sparse is None:
            return list(self.vector)
        return {
            DENSE: list(self.vector),
            SPARSE: models.SparseVector(indices=list(self.sparse.indices), values=list(self.sparse.values)),
        }

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dirs": ancestor_dirs(self.path),
            "ext": extension_of(self.path),
            "chunk_index": self.chunk_index,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "heading": self.heading,
        }


@dataclass(frozen=True, slots=True)
class SearchFilter:
    path_prefix: str | None = None
    """A directory (`docs/api`) or a file path; matches that file or everything under that directory."""
    extensions: Sequence[str] = field(default_factory=tuple)
    """Lower-case extensions without the dot; `""` matches files without one (LICENSE, Makefile)."""


class ScoredChunk(NamedTuple):
    """One retriever's hit. A named tuple because a hybrid search makes 200 to 300 of them (fusion.Ranked)."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RetrieverQuery:
    retriever: str
    """The run's name in the results: `dense` or `sparse`."""
    vector: Sequence[float] | SparseVector
    legacy: bool = False
    """The collection has one unnamed dense vector."""
    score_threshold: float | None = None

    @property
    def using(self) -> str | None:
        return None if self.legacy else self.retriever


def _query_vector(vector: Sequence[float] | SparseVector) -> list[float] | models.SparseVector:
    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return list(vector)


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point as a backfill reads it: its dense vector and its payload."""

    id: str
    vector: list[float]
    payload: dict[str, Any]
    sparse: SparseVector | None = None
    """None in a legacy collection."""


def ancestor_dirs(path: str) -> list[str]:
    """`a/b/c.md` -> `["a", "a/b"]`: stored so a path-prefix filter is an exact keyword match."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def extension_of(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[1].lstrip(".").lower()


def build_filter(search_filter: SearchFilter) -> models.Filter | None:
    must: list[models.Condition] = []
    if search_filter.path_prefix:
        prefix = search_filter.path_prefix.strip("/")
        must.append(
            models.Filter(
                should=[
                    models.FieldCondition(key="path", match=models.MatchValue(value=prefix)),
                    models.FieldCondition(key="dirs", match=models.MatchValue(value=prefix)),
                ]
            )
        )
    if search_filter.extensions:
        extensions = [ext.lstrip(".").lower() for ext in search_filter.extensions]
        must.append(models.FieldCondition(key="ext", match=models.MatchAny(any=extensions)))
    return models.Filter(must=must) if must else None


def collection_params(dimension: int, placement: StorePlacement) -> dict[str, Any]:
    """create_collection's keyword arguments for a store collection in the named layout; a placement field
    left None is left out, so the server's default applies."""
    on_disk = placement.on_disk
    return {
        "vectors_config": {
            DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE, on_disk=on_disk)
        },
        "sparse_vectors_config": {
            SPARSE: models.SparseVectorParams(
                modifier=models.Modifier.IDF,
                index=None if on_disk is None else models.SparseIndexParams(on_disk=on_disk),
            )
        },
        "shard_number": placement.shards,
        "replication_factor": placement.replication_factor,
        "on_disk_payload": on_disk,
    }


def worth_asking(queries: Sequence[RetrieverQuery]) -> list[RetrieverQuery]:
    """The queries an engine should run: a sparse query with no terms (a query of stopwords) finds nothing."""
    return [q for q in queries if not (isinstance(q.vector, SparseVector) and not q.vector.indices)]


def payload_selector(keys: Sequence[str] | None) -> bool | list[str]:
    """Qdrant's `with_payload` for `keys`: all of it (None), none of it (no keys), or just those."""
    if keys is None:
        return True
    return list(keys) if keys else False


class VectorStore:
    def __init__(self, client: AsyncQdrantClient) -> None:
        self._client = client

    @classmethod
    def open(cls, *, url: str | None, path: Path | None, api_key: str | None = None) -> VectorStore:
        if url:
            return cls(AsyncQdrantClient(url=url, api_key=api_key, timeout=30))
        if path is None:
            raise ValueError("either a Qdrant url or a local-mode path is required")
        path.mkdir(parents=True, exist_ok=True)
        try:
            return cls(AsyncQdrantClient(path=str(path)))
        except RuntimeError as exc:
            # Local mode locks its directory: a second process gets this instead of corrupting it.
            raise BackendUnavailableError(
                f"the Qdrant store at {path} is in use by another Semantik process ({exc}); stop it, "
                "or use `semantik serve` and its API, or point SEMANTIK_QDRANT_URL at a Qdrant server"
            ) from exc

    @property
    def client(self) -> AsyncQdrantClient:
        return self._client

    async def close(self) -> None:
        await self._client.close()

    async def ensure_collection(self, name: str, dimension: int, *, placement: StorePlacement | None = None) -> None:
        """Create `name` in the named layout (dense and sparse vectors) unless it exists, in any layout; an
        existing one keeps the placement it was made with. Local mode ignores shards and replicas."""
        if await self._client.collection_exists(name):
            return
        await self._client.create_collection(name, **collection_params(dimension, placement or StorePlacement()))
        with warnings.catch_warnings():
            # Local mode ignores payload indexes and says so; a Qdrant server needs them for filters.
            warnings.simplefilter("ignore", UserWarning)
            for key in INDEXED_KEYS:
                await self._client.create_payload_index(name, key, models.PayloadSchemaType.KEYWORD)

    async def drop_collection(self, name: str) -> None:
        if await self._client.collection_exists(name):
            await self._client.delete_collection(name)

    async def point_alias(self, alias: str, physical: str) -> None:
        """Make `alias` name the store collection `physical`, in one atomic alias update.

        A collection that still holds the alias's name (a first generation, created under the stable
        name) is retired first: the caller has already moved its readers to `physical`."""
        if alias == physical:
            return
        aliases = await self.aliases()
        if aliases.get(alias) == physical:
            return
        if alias not in aliases and await self._client.collection_exists(alias):
            await self._client.delete_collection(alias)
        actions: list[models.AliasOperations] = []
        if alias in aliases:
            actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        actions.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=physical, alias_name=alias))
        )
        await self._client.update_collection_aliases(change_aliases_operations=actions)

    async def drop_generations(self, alias: str, keep: Collection[str] = ()) -> list[str]:
        """Drop every generation of `alias` (`alias` itself and `alias.g<N>`) not in `keep`; with nothing
        kept, the alias goes too. Returns what was dropped: retired generations a crash left behind."""
        if not keep and alias in await self.aliases():
            await self._client.update_collection_aliases(
                change_aliases_operations=[
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
                ]
            )
        names = await self.collection_names()
        retired = [n for n in sorted(names) if (n == alias or n.startswith(f"{alias}.g")) and n not in keep]
        for name in retired:
            await self._client.delete_collection(name)
        return retired

    async def collection_names(self) -> set[str]:
        return {c.name for c in (await self._client.get_collections()).collections}

    async def aliases(self) -> dict[str, str]:
        response = await self._client.get_aliases()
        return {a.alias_name: a.collection_name for a in response.aliases}

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        await self._client.upsert(
            name,
            points=[
                models.PointStruct(id=point.id, vector=point.vectors(), payload=point.payload()) for point in points
            ],
            wait=True,
        )

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            await self._client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    async def count(self, name: str, search_filter: SearchFilter | None = None) -> int:
        result = await self._client.count(
            name, count_filter=build_filter(search_filter) if search_filter else None, exact=True
        )
        return result.count

    async def retrieve(
        self,
        name: str,
        queries: Sequence[RetrieverQuery],
        *,
        limit: int,
        search_filter: SearchFilter | None = None,
        payload_keys: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredChunk]]:
        """Each retriever's `limit` best chunks, asked in one round trip; the caller fuses and collapses.

        A sparse query with no terms (a query of stopwords) finds nothing and is not sent."""
        query_filter = build_filter(search_filter) if search_filter else None
        asked = worth_asking(queries)
        with_payload = payload_selector(payload_keys)
        requests = [
            models.QueryRequest(
                query=_query_vector(q.vector),
                using=q.using,
                limit=limit,
                filter=query_filter,
                score_threshold=q.score_threshold,
                with_payload=with_payload,
            )
            for q in asked
        ]
        responses = await self._client.query_batch_points(name, requests=requests) if requests else []
        runs: dict[str, list[ScoredChunk]] = {q.retriever: [] for q in queries}
        for query, response in zip(asked, responses, strict=True):
            runs[query.retriever] = [ScoredChunk(str(p.id), p.score, dict(p.payload or {})) for p in response.points]
        return runs

    async def payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        points = await self._client.retrieve(name, ids=list(ids), with_payload=True, with_vectors=False)
        return {str(p.id): dict(p.payload or {}) for p in points}

    async def dense_vectors(self, name: str, ids: Sequence[str]) -> list[list[float]]:
        """The named dense vectors of these points, in the order given (missing ones left out)."""
        points = await self._client.retrieve(name, ids=list(ids), with_vectors=[DENSE], with_payload=False)
        by_id = {str(p.id): p.vector for p in points}
        found = [by_id[i] for i in ids if i in by_id]
        return [list(v[DENSE]) for v in found if isinstance(v, dict)]  # type: ignore[arg-type]

    async def scroll(self, name: str, *, limit: int, offset: str | None = None) -> tuple[list[StoredPoint], str | None]:
        """A page of points with their vectors and payload, and the offset of the next page."""
        points, next_offset = await self._client.scroll(
            name, limit=limit, offset=offset, with_payload=True, with_vectors=True
        )
        page = []
        for point in points:
            vector = point.vector
            dense = vector.get(DENSE) if isinstance(vector, dict) else vector
            sparse = vector.get(SPARSE) if isinstance(vector, dict) else None
            terms = (
                SparseVector(tuple(sparse.indices), tuple(sparse.values))
                if isinstance(sparse, models.SparseVector)
                else None
            )
            page.append(StoredPoint(str(point.id), list(dense or []), dict(point.payload or {}), terms))  # type: ignore[arg-type]
        return page, None if next_offset is None else str(next_offset)

    async def healthy(self) -> bool:
        await self._client.get_collections()
        return True
