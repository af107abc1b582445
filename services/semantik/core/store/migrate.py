"""Move a qdrant-client local-mode store (`<data_dir>/qdrant`) into an edge store, nothing lost.

Every collection is copied page by page into a staging directory beside the edge store's path: same names,
point ids, dense and sparse vectors and payloads, then the aliases. The copy is verified by counting each
collection and alias on both sides; only then is the staging directory renamed into place (one atomic
rename) and the source renamed aside (`qdrant.migrated-<UTC time>`), never deleted. A crash before the first
rename leaves the source whole and no edge store, so the next run drops the partial copy and starts over.

A legacy collection (one unnamed dense vector, made before hybrid search) stays legacy: search reads it
dense-only, as its metadata row says, and the backfill later copies it into the named layout with sparse
vectors, exactly as it would have in local mode.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import qdrant_edge as qe
from qdrant_client import models

from semantik.core.errors import SemantikError
from semantik.core.search.sparse import SparseVector
from semantik.core.store.edge import COLLECTIONS_DIR, EdgeVectorStore, create_payload_indexes
from semantik.core.store.vectors import DENSE, ChunkPoint, StoredPoint, VectorStore

log = logging.getLogger(__name__)

PAGE_POINTS = 512
"""Points read and written at a time: the copy itself holds one page, whatever the store's size."""

NO_TERMS = SparseVector(indices=(), values=())


class MigrationError(SemantikError):
    code = "store_migration_failed"


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    collection: str
    copied: int
    total: int


@dataclass(frozen=True, slots=True)
class CopiedStore:
    counts: dict[str, int]
    """Points per collection, as counted in the edge store."""
    aliases: dict[str, str]
    legacy: list[str]
    """Collections in the legacy layout (one unnamed dense vector), carried over as they were."""


@dataclass(frozen=True, slots=True)
class MigrationReport:
    copied: CopiedStore
    retired: Path
    """Where the local-mode store now lies."""

    @property
    def points(self) -> int:
        return sum(self.copied.counts.values())


OnProgress = Callable[[MigrationProgress], None]


def has_local_store(path: Path) -> bool:
    """Local mode writes `meta.json` when it first opens a directory; without it there is nothing to copy."""
    return (path / "meta.json").is_file()


def needs_migration(source: Path, target: Path) -> bool:
    return has_local_store(source) and not target.exists()


def staging_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.migrating")


def retired_path(source: Path, now: datetime) -> Path:
    return source.with_name(f"{source.name}.migrated-{now.strftime('%Y%m%dT%H%M%SZ')}")


async def migrate_store(source: Path, target: Path, *, on_progress: OnProgress | None = None) -> MigrationReport:
    """Copy the local-mode store in `source` into a new edge store in `target`, verify it, and move the
    source aside. Raises MigrationError, the source left as it was, when there is nothing to copy, the
    target exists, a point would not come back as it is, or a count differs."""
    if not has_local_store(source):
        raise MigrationError(f"no local-mode store at {source}: nothing to migrate")
    if target.exists():
        raise MigrationError(f"an edge store already exists at {target}; move it aside to migrate {source} again")
    staging = staging_path(target)
    shutil.rmtree(staging, ignore_errors=True)  # what an interrupted migration left
    copied = await _copy(source, staging, on_progress)
    # In this order, a crash between the renames leaves a complete edge store, which is used, and the
    # source in place, unused but whole (migrate_on_open says so).
    staging.rename(target)
    retired = retired_path(source, datetime.now(UTC))
    source.rename(retired)
    report = MigrationReport(copied, retired)
    log.info("store migrated source=%s target=%s retired=%s points=%d", source, target, retired, report.points)
    return report


async def migrate_on_open(source: Path, target: Path) -> MigrationReport | None:
    """Before the edge store's first open: migrate when a local-mode store exists and no edge store does."""
    if not needs_migration(source, target):
        if has_local_store(source):
            log.warning("local-mode store unused beside the edge store local=%s edge=%s", source, target)
        return None
    log.info("migrating local-mode store source=%s target=%s", source, target)
    return await migrate_store(source, target, on_progress=_log_progress)


def _log_progress(progress: MigrationProgress) -> None:
    log.info("store migration collection=%s copied=%d total=%d", progress.collection, progress.copied, progress.total)


async def _copy(source: Path, staging: Path, on_progress: OnProgress | None) -> CopiedStore:
    local = VectorStore.open(url=None, path=source)
    try:
        edge = EdgeVectorStore.open(staging)
        try:
            return await _copy_store(local, edge, staging, on_progress)
        finally:
            await edge.close()
    finally:
        await local.close()


async def _copy_store(
    local: VectorStore, edge: EdgeVectorStore, staging: Path, on_progress: OnProgress | None
) -> CopiedStore:
    counts: dict[str, int] = {}
    legacy: list[str] = []
    for name in sorted(await local.collection_names()):
        dimension, is_legacy = _layout(await local.client.get_collection(name))
        if is_legacy:
            _create_legacy_collection(staging, name, dimension)
            legacy.append(name)
        else:
            await edge.ensure_collection(name, dimension)
        total = await local.count(name)
        copied = await _copy_points(local, edge, name, total, legacy=is_legacy, on_progress=on_progress)
        stored = await edge.count(name)
        if not copied == stored == total:
            raise MigrationError(
                f"collection {name!r}: {total} points in the local-mode store, {copied} read, {stored} in the "
                "edge store; the local-mode store is left as it was"
            )
        counts[name] = stored
    aliases = await local.aliases()
    for alias, physical in sorted(aliases.items()):
        await edge.point_alias(alias, physical)
    if await edge.aliases() != aliases:
        raise MigrationError(f"the edge store's aliases {await edge.aliases()} differ from the source's {aliases}")
    return CopiedStore(counts, aliases, legacy)


async def _copy_points(
    local: VectorStore, edge: EdgeVectorStore, name: str, total: int, *, legacy: bool, on_progress: OnProgress | None
) -> int:
    copied = 0
    offset: str | None = None
    if on_progress is not None:
        on_progress(MigrationProgress(name, 0, total))
    while True:
        page, offset = await local.scroll(name, limit=PAGE_POINTS, offset=offset)
        await edge.upsert(name, [chunk_point(name, point, legacy=legacy) for point in page])
        copied += len(page)
        if on_progress is not None and page:
            on_progress(MigrationProgress(name, copied, total))
        if offset is None:
            return copied


def chunk_point(collection: str, point: StoredPoint, *, legacy: bool) -> ChunkPoint:
    """A stored point as the store's writers build it. Its payload must be the very one it writes back: a
    field this version does not know would be lost, so such a point stops the migration instead."""
    payload = point.payload
    if not point.vector:
        raise MigrationError(f"collection {collection!r}, point {point.id}: no dense vector")
    try:
        chunk = ChunkPoint(
            id=point.id,
            vector=point.vector,
            path=str(payload["path"]),
            chunk_index=int(payload["chunk_index"]),
            text=str(payload["text"]),
            start=int(payload["start"]),
            end=int(payload["end"]),
            heading=payload.get("heading"),
            # A legacy point has no sparse vector; a named one always has one, empty for a chunk of stopwords.
            sparse=None if legacy else point.sparse or NO_TERMS,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MigrationError(f"collection {collection!r}, point {point.id}: payload without {exc}") from exc
    if chunk.payload() != payload:
        raise MigrationError(
            f"collection {collection!r}, point {point.id}: its payload holds what this version would not write "
            f"back (fields {sorted(set(payload) ^ set(chunk.payload()))} or their values); the local-mode store "
            "is left as it was"
        )
    return chunk


def _layout(info: models.CollectionInfo) -> tuple[int, bool]:
    """The dense dimension, and whether the collection is in the legacy (unnamed dense vector) layout."""
    vectors = info.config.params.vectors
    if isinstance(vectors, models.VectorParams):
        return vectors.size, True
    if vectors is None or DENSE not in vectors:
        raise MigrationError(f"a collection without a `{DENSE}` vector: {vectors}")
    return vectors[DENSE].size, False


def _create_legacy_collection(store: Path, name: str, dimension: int) -> None:
    """An edge collection in the legacy layout, which EdgeVectorStore reads and writes but never creates:
    made as EdgeVectorStore makes its own (payload indexes, then one rename into place)."""
    collections = store / COLLECTIONS_DIR
    staging = collections / f".new-{uuid.uuid4().hex}"
    shard = qe.EdgeShard.create(
        str(staging), qe.EdgeConfig(vectors={"": qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)})
    )
    create_payload_indexes(shard)
    shard.flush()
    shard.close()
    os.replace(staging, collections / name)
