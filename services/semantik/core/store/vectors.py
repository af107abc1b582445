"""The Qdrant store: one Qdrant collection per Semantik collection, the same code for url= and path=."""

from __future__ import annotations

import posixpath
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from semantik.core.errors import BackendUnavailableError


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


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    id: str
    score: float
    payload: dict[str, Any]


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


MAX_OVERSAMPLE = 10_000


def collapse_by_path(points: Sequence[models.ScoredPoint], per_path: int) -> list[models.ScoredPoint]:
    """Keep, in score order, at most `per_path` points of each file."""
    seen: dict[str, int] = {}
    kept = []
    for point in points:
        path = str((point.payload or {}).get("path"))
        if seen.get(path, 0) < per_path:
            seen[path] = seen.get(path, 0) + 1
            kept.append(point)
    return kept


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

    async def ensure_collection(self, name: str, dimension: int) -> None:
        if await self._client.collection_exists(name):
            return
        await self._client.create_collection(
            name, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        )
        with warnings.catch_warnings():
            # Local mode ignores payload indexes and says so; a Qdrant server needs them for filters.
            warnings.simplefilter("ignore", UserWarning)
            for key in ("path", "dirs", "ext"):
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
        aliases = await self._aliases()
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
        if not keep and alias in await self._aliases():
            await self._client.update_collection_aliases(
                change_aliases_operations=[
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
                ]
            )
        names = [c.name for c in (await self._client.get_collections()).collections]
        retired = [n for n in names if (n == alias or n.startswith(f"{alias}.g")) and n not in keep]
        for name in retired:
            await self._client.delete_collection(name)
        return retired

    async def _aliases(self) -> dict[str, str]:
        response = await self._client.get_aliases()
        return {a.alias_name: a.collection_name for a in response.aliases}

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        await self._client.upsert(
            name,
            points=[
                models.PointStruct(id=point.id, vector=list(point.vector), payload=point.payload()) for point in points
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

    async def search(
        self,
        name: str,
        vector: Sequence[float],
        *,
        limit: int,
        score_threshold: float | None = None,
        search_filter: SearchFilter | None = None,
        per_document: int | None = None,
    ) -> list[ScoredChunk]:
        """The `limit` best chunks; with `per_document`, at most that many from any one file.

        Collapsing is done here over an oversampled plain query rather than with Qdrant's group
        search: the local mode runs a group search as many scans, several times slower.
        """
        query_filter = build_filter(search_filter) if search_filter else None
        fetch = limit if per_document is None else max(limit * per_document * 4, 64)
        while True:
            response = await self._client.query_points(
                name,
                query=list(vector),
                limit=fetch,
                score_threshold=score_threshold,
                query_filter=query_filter,
                with_payload=True,
            )
            points = response.points
            if per_document is not None:
                points = collapse_by_path(points, per_document)
            if per_document is None or len(points) >= limit or len(response.points) < fetch or fetch >= 10_000:
                return [ScoredChunk(str(p.id), p.score, dict(p.payload or {})) for p in points[:limit]]
            fetch *= 4

    async def healthy(self) -> bool:
        await self._client.get_collections()
        return True
