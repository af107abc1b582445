"""The embedded store on qdrant-edge: Qdrant's engine (HNSW, payload indexes, sparse vectors with IDF) in this
process, one edge shard per store collection, with VectorStore's methods and meaning.

Layout of the store directory:
- `store.lock`: held (flock) by the one process that has the store open;
- `aliases.json`: alias name -> collection, replaced atomically (edge has no aliases);
- `collections/<name>/`: one edge shard; `collections/.new-*` and `.old-*` are a create or a drop a crash cut
  short, removed on open.

Edge is synchronous and holds the GIL: every call runs on one thread per store, so the event loop never waits
on the engine except while it holds the GIL, and a shard never sees two calls at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from semantik.core.errors import BackendUnavailableError
from semantik.core.search.sparse import SparseVector
from semantik.core.store.backend import StoreMemory
from semantik.core.store.placement import StorePlacement
from semantik.core.store.vectors import (
    DENSE,
    INDEXED_KEYS,
    SPARSE,
    ChunkPoint,
    RetrieverQuery,
    ScoredChunk,
    SearchFilter,
    StoredPoint,
    payload_selector,
    worth_asking,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

LOCK_FILE = "store.lock"
ALIASES_FILE = "aliases.json"
COLLECTIONS_DIR = "collections"
BUILD_AFTER_POINTS = 20_000
"""Edge builds HNSW only when asked; points written since the last build are scanned exactly (≈ 3 ms at 20k
on this CPU). No build is worth its cost for fewer than this many."""


FLUSH_AFTER_POINTS = 20_000
"""Edge keeps every update in its write-ahead log until a flush has written the segments, and only then lets
the log's old files go: a load of a million chunks that never flushed held a 3.6 GB log (a Qdrant server
flushes every 5 s)."""


QUANTIZED = qe.TurboQuantQuantizationConfig(bits=qe.TurboQuantBitSize.Bits4, memory=qe.Memory.Pinned)
"""Dense vectors are searched as compressed copies held in memory and each retriever's candidates rescored
with the float originals. The copies are TurboQuant's 4-bit codes: 192 bytes a 384-d chunk, half of int8's,
so 183 MiB less heap at a million chunks, with recall@10 there still 0.991-1.000 after the rescore. int8
copies, which collections made before keep, took a search at 200k chunks from 0.63 ms on floats to 0.26."""


INDEXES_IN_MEMORY = frozenset({"ext"})
"""The keyword indexes kept in memory; the others are read on touch. `path` and `dirs` hold a value or more
for every chunk, yet a search reads them only for a folder filter and a write only for one file's chunks:
read on touch (with `ext`), they left the heap 371 MiB smaller at a million chunks. `ext` holds six values
whose postings every extension filter walks; read on touch it took those searches from ≈ 3.5 to 5.4 ms
there, so it stays in memory."""


def build_due(built: int, unbuilt: int) -> bool:
    """Whether to build the index now, with `built` points in it and `unbuilt` written since.

    A build's cost grows with the whole shard, not just the new points (measured 5, 10 and 22 s for builds
    at 10k, 20k and 30k points), so a build every 20k points made loading
    quadratic. Waiting until the unbuilt part is half the built one makes the builds' total at most three
    times one build of everything, at the price of an exact scan of up to a third of the points until the
    next build or the writer's close."""
    return unbuilt >= max(BUILD_AFTER_POINTS, built // 2)


RESCORE_AT_LEAST = 100
"""Candidates a dense retriever rescores with the float originals, however few it is asked for. The 4-bit
codes rank near ties loosely: asked for its 5 best of 1,300 chunks, a retriever that rescored only 5
candidates returned another chunk fourth. A search asks for 100 by default, so this costs it nothing."""


def rescored(limit: int) -> qe.SearchParams:
    """Scores are the float vectors' cosines, never the compressed copies' estimates (fusion and thresholds use
    them), taken over at least RESCORE_AT_LEAST candidates."""
    oversampling = max(1.0, RESCORE_AT_LEAST / limit)
    return qe.SearchParams(quantization=qe.QuantizationSearchParams(rescore=True, oversampling=oversampling))


def edge_filter(search_filter: SearchFilter) -> qe.Filter | None:
    """`build_filter` in edge's types: the same conditions on the same payload keys."""
    must: list[Any] = []
    if search_filter.path_prefix:
        prefix = search_filter.path_prefix.strip("/")
        must.append(
            qe.Filter(
                should=[
                    qe.FieldCondition(key="path", match=qe.MatchValue(prefix)),
                    qe.FieldCondition(key="dirs", match=qe.MatchValue(prefix)),
                ]
            )
        )
    if search_filter.extensions:
        extensions = [ext.lstrip(".").lower() for ext in search_filter.extensions]
        must.append(qe.FieldCondition(key="ext", match=qe.MatchAny(extensions)))
    return qe.Filter(must=must) if must else None


def edge_vectors(point: ChunkPoint) -> qe.Vector:
    if point.sparse is None:
        return list(point.vector)
    return {
        DENSE: list(point.vector),
        SPARSE: qe.SparseVector(list(point.sparse.indices), list(point.sparse.values)),
    }


def _query_vector(vector: Sequence[float] | SparseVector) -> qe.NamedVector:
    if isinstance(vector, SparseVector):
        return qe.SparseVector(list(vector.indices), list(vector.values))
    return list(vector)


def _using(query: RetrieverQuery, shard: _Shard) -> str | None:
    # A legacy collection migrated from local mode is stored in the named layout with no terms yet: its row
    # still asks for the unnamed dense vector until a backfill, and the named one is that vector.
    if query.using is None and not shard.legacy:
        return DENSE
    return query.using


def _dense_of(vector: Any) -> list[float]:
    """The dense vector of a record: named `dense`, or a legacy collection's unnamed one."""
    if isinstance(vector, dict):
        vector = vector.get(DENSE, vector.get(""))
    return [float(x) for x in vector] if isinstance(vector, list) else []


def _sparse_of(vector: Any) -> SparseVector | None:
    sparse = vector.get(SPARSE) if isinstance(vector, dict) else None
    if isinstance(sparse, qe.SparseVector):
        return SparseVector(tuple(sparse.indices), tuple(sparse.values))
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` so a reader (or a crash) sees the old content or the new, never a mix."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _check_name(name: str) -> str:
    # Store collection names become directory names.
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise ValueError(f"not a store collection name: {name!r}")
    return name


def shard_config(dimension: int, memory: StoreMemory) -> qe.EdgeConfig:
    """The layout of a new shard; fixed for the shard's life."""
    # Mapped files are either warmed into the page cache when a shard opens (`Cached`) or read on first touch
    # (`Cold`). Each search rescores ~100 float originals per retriever at random, so they are warmed unless
    # memory is asked to stay low (+1 ms a search at a million chunks here, for 0.9 GB less RSS).
    # Payloads and the sparse index are read only for the ten hits and the query's terms, so they stay
    # cold: warming them held 1.2 GB more RSS at a million chunks to save ≈ 0.7 ms of a hybrid search.
    originals = qe.Memory.Cached if memory is StoreMemory.WARM else qe.Memory.Cold
    return qe.EdgeConfig(
        vectors={
            DENSE: qe.EdgeVectorParams(
                size=dimension,
                distance=qe.Distance.Cosine,
                memory=originals,
                quantization_config=QUANTIZED,
            )
        },
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf, memory=qe.Memory.Cold)},
        payload_memory=qe.Memory.Cold,
    )


def create_payload_indexes(shard: qe.EdgeShard) -> None:
    """The keyword indexes filters and deletes by file use, each where INDEXES_IN_MEMORY puts it."""
    for key in INDEXED_KEYS:
        memory = qe.Memory.Pinned if key in INDEXES_IN_MEMORY else qe.Memory.Cold
        shard.update(qe.UpdateOperation.create_field_index(key, qe.KeywordIndexParams(memory=memory)))


class _Shard:
    def __init__(self, shard: qe.EdgeShard, legacy: bool) -> None:
        self.shard = shard
        self.legacy = legacy
        self.vector_kinds = 1 if legacy else 2
        info = shard.info()
        # Sparse vectors are indexed as they are written; dense ones wait for optimize().
        self.unbuilt = max(0, info.points_count * self.vector_kinds - info.indexed_vectors_count)
        self.built = info.points_count - self.unbuilt
        self.written = False
        self.unflushed = 0

    def wrote(self, points: int) -> None:
        self.written = True
        self.unbuilt += points
        self.unflushed += points
        if build_due(self.built, self.unbuilt):
            self.build()
        if self.unflushed >= FLUSH_AFTER_POINTS:
            self.flush()

    def build(self) -> None:
        self.shard.optimize()
        self.built += self.unbuilt
        self.unbuilt = 0

    def flush(self) -> None:
        self.shard.flush()
        self.unflushed = 0


class EdgeVectorStore:
    def __init__(self, root: Path, lock_fd: int, memory: StoreMemory) -> None:
        self._root = root
        self._memory = memory
        self._lock_fd = lock_fd
        self._collections = root / COLLECTIONS_DIR
        self._aliases_file = root / ALIASES_FILE
        self._shards: dict[str, _Shard] = {}
        self._alias_map: dict[str, str] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store")

    @classmethod
    def open(cls, path: Path, *, memory: StoreMemory = StoreMemory.WARM) -> EdgeVectorStore:
        """Open (or start) the store in `path`, locked to this process until close(); `memory` shapes the
        collections it makes (those it has keep theirs)."""
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(lock_fd)
            raise BackendUnavailableError(
                f"the vector store at {path} is in use by another Semantik process; stop it, or use "
                "`semantik serve` and its API, or point SEMANTIK_QDRANT_URL at a Qdrant server"
            ) from exc
        (path / COLLECTIONS_DIR).mkdir(exist_ok=True)
        for leftover in (path / COLLECTIONS_DIR).glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)
        return cls(path, lock_fd, memory)

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        await self._run(self._close_shards)
        self._executor.shutdown(wait=True)
        os.close(self._lock_fd)  # releases the flock

    def _close_shards(self) -> None:
        for shard in self._shards.values():
            # The writer's close ends an indexing run (the CLI's, or a gateway's shutdown): build what it left
            # unbuilt, so that the next process opens a fully indexed shard. A reader builds nothing.
            if shard.written and shard.unbuilt >= BUILD_AFTER_POINTS:
                log.info("building the search index for %d points written since the last build", shard.unbuilt)
                shard.build()
            shard.shard.flush()
            shard.shard.close()
        self._shards.clear()

    # -- names, on the store's thread ---------------------------------------------------------------------

    def _read_aliases(self) -> dict[str, str]:
        # Kept in memory after the first read: the lock makes this process the file's only writer.
        if self._alias_map is None:
            try:
                data = json.loads(self._aliases_file.read_bytes())
            except FileNotFoundError:
                data = {}
            self._alias_map = {str(k): str(v) for k, v in data.items()}
        return dict(self._alias_map)

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        _write_atomically(self._aliases_file, json.dumps(aliases, sort_keys=True).encode())
        self._alias_map = dict(aliases)

    def _names(self) -> set[str]:
        return {p.name for p in self._collections.iterdir() if not p.name.startswith(".")}

    def _resolve(self, name: str) -> str:
        # The alias wins: point_alias writes it before retiring a collection of the same name, so a crash in
        # between never sends readers back to the retired one.
        return self._read_aliases().get(name, name)

    def _shard(self, name: str) -> _Shard:
        physical = _check_name(self._resolve(name))
        if physical not in self._shards:
            directory = self._collections / physical
            if not directory.is_dir():
                raise ValueError(f"Collection {name} not found")  # local mode's words
            shard = qe.EdgeShard.load(str(directory))
            self._shards[physical] = _Shard(shard, legacy=DENSE not in shard_vectors(directory))
        return self._shards[physical]

    def _exists(self, name: str) -> bool:
        return (self._collections / _check_name(self._resolve(name))).is_dir()

    def _create(self, name: str, dimension: int) -> None:
        staging = self._collections / f".new-{uuid.uuid4().hex}"
        shard = qe.EdgeShard.create(str(staging), shard_config(dimension, self._memory))
        create_payload_indexes(shard)
        shard.flush()
        shard.close()
        # Whole or not at all: a crash before this rename leaves a `.new-*` that the next open removes.
        os.replace(staging, self._collections / name)

    def _drop(self, physical: str) -> None:
        shard = self._shards.pop(physical, None)
        if shard is not None:
            shard.shard.close()
        directory = self._collections / physical
        if directory.is_dir():
            retired = self._collections / f".old-{uuid.uuid4().hex}"
            os.replace(directory, retired)
            shutil.rmtree(retired, ignore_errors=True)
        aliases = self._read_aliases()
        kept = {alias: target for alias, target in aliases.items() if target != physical}
        if kept != aliases:
            self._write_aliases(kept)

    # -- VectorBackend ------------------------------------------------------------------------------------

    async def ensure_collection(self, name: str, dimension: int, *, placement: StorePlacement | None = None) -> None:
        """Create `name` in the named layout unless it exists; a placement is a Qdrant server's matter."""

        def ensure() -> None:
            if not self._exists(name):
                self._create(_check_name(name), dimension)

        await self._run(ensure)

    async def drop_collection(self, name: str) -> None:
        await self._run(lambda: self._drop(_check_name(name)))

    async def point_alias(self, alias: str, physical: str) -> None:
        """Make `alias` name `physical` with one atomic file replace; a collection still called `alias` (a
        first generation) is retired after, its readers already sent to `physical` by the alias."""

        def point() -> None:
            if alias == physical:
                return
            aliases = self._read_aliases()
            if aliases.get(alias) != physical:
                self._write_aliases({**aliases, alias: physical})
            if (self._collections / _check_name(alias)).is_dir():
                self._drop(alias)

        await self._run(point)

    async def drop_generations(self, alias: str, keep: Collection[str] = ()) -> list[str]:
        def drop() -> list[str]:
            if not keep:
                aliases = self._read_aliases()
                if alias in aliases:
                    self._write_aliases({a: t for a, t in aliases.items() if a != alias})
            retired = sorted(n for n in self._names() if (n == alias or n.startswith(f"{alias}.g")) and n not in keep)
            for name in retired:
                self._drop(name)
            return retired

        return await self._run(drop)

    async def collection_names(self) -> set[str]:
        return await self._run(self._names)

    async def aliases(self) -> dict[str, str]:
        return await self._run(self._read_aliases)

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Durable against a killed process on return: edge appends each update to its write-ahead log
        before applying it, and a reopened shard replays the log."""
        if not points:
            return
        batch = [qe.Point(p.id, edge_vectors(p), p.payload()) for p in points]

        def upsert() -> None:
            shard = self._shard(name)
            shard.shard.update(qe.UpdateOperation.upsert_points(batch))
            shard.wrote(len(batch))

        await self._run(upsert)

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            operation = qe.UpdateOperation.delete_points(list(ids))
            await self._run(lambda: self._shard(name).shard.update(operation))

    async def count(self, name: str, search_filter: SearchFilter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=edge_filter(search_filter) if search_filter else None)
        return await self._run(lambda: self._shard(name).shard.count(request))

    async def retrieve(
        self,
        name: str,
        queries: Sequence[RetrieverQuery],
        *,
        limit: int,
        search_filter: SearchFilter | None = None,
        payload_keys: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredChunk]]:
        """Each retriever's `limit` best chunks, as one planned batch; the caller fuses and collapses.

        A sparse query with no terms (a query of stopwords) finds nothing and is not sent."""
        query_filter = edge_filter(search_filter) if search_filter else None
        asked = worth_asking(queries)
        with_payload = payload_selector(payload_keys)
        params = rescored(limit)

        def batch() -> list[list[qe.ScoredPoint]]:
            shard = self._shard(name)
            requests = [
                qe.QueryRequest(
                    limit=limit,
                    query=qe.Query.Nearest(_query_vector(q.vector), using=_using(q, shard)),
                    params=params,
                    filter=query_filter,
                    score_threshold=q.score_threshold,
                    with_payload=with_payload,
                )
                for q in asked
            ]
            return shard.shard.query_batch(qe.QueryBatchRequest(requests))

        responses = await self._run(batch) if asked else []
        runs: dict[str, list[ScoredChunk]] = {q.retriever: [] for q in queries}
        for query, response in zip(asked, responses, strict=True):
            runs[query.retriever] = [ScoredChunk(str(p.id), p.score, dict(p.payload or {})) for p in response]
        return runs

    async def payloads(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        records = await self._run(
            lambda: self._shard(name).shard.retrieve(list(ids), with_payload=True, with_vector=False)
        )
        return {str(r.id): dict(r.payload or {}) for r in records}

    async def dense_vectors(self, name: str, ids: Sequence[str]) -> list[list[float]]:
        """The named dense vectors of these points, in the order given (missing ones left out)."""
        records = await self._run(
            lambda: self._shard(name).shard.retrieve(list(ids), with_payload=False, with_vector=[DENSE])
        )
        by_id = {str(r.id): r.vector for r in records}
        found = [_dense_of(by_id[i]) for i in ids if i in by_id and isinstance(by_id[i], dict)]
        return [v for v in found if v]

    async def scroll(self, name: str, *, limit: int, offset: str | None = None) -> tuple[list[StoredPoint], str | None]:
        """A page of points with their vectors and payload, and the offset of the next page."""
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=True)
        records, next_offset = await self._run(lambda: self._shard(name).shard.scroll(request))
        page = [
            StoredPoint(str(r.id), _dense_of(r.vector), dict(r.payload or {}), sparse=_sparse_of(r.vector))
            for r in records
        ]
        return page, None if next_offset is None else str(next_offset)

    async def healthy(self) -> bool:
        await self._run(self._names)
        return True


def shard_vectors(directory: Path) -> set[str]:
    """The dense vector names of the shard in `directory`, from the config edge keeps beside it."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        config = json.loads((directory / "edge_config.json").read_bytes())
        return set(config.get("vectors") or {})
    return set()
