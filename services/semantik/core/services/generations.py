"""Generations of a collection's index.

A change of model, quantization or chunking cannot be applied to an index in place: every vector would
be wrong until all are rebuilt. So the change is built as the collection's *shadow* — a hidden row with
its own documents and its own store collection (`semantik-<name>.g<N>`) — by a `reindex` operation,
while search keeps reading the live generation. When the reindex succeeds, one database transaction
makes the shadow live (its rows, its config, its store collection); then the stable Qdrant alias
`semantik-<name>` is pointed at it and the retired generation is dropped. The database is what search
reads, so no reader ever sees a half-built index; the alias follows it and is repaired on every ensure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from semantik.core.context import Semantik
from semantik.core.db.models import Collection
from semantik.core.errors import ConflictError
from semantik.core.store import metadata

log = logging.getLogger(__name__)


def qdrant_collection_name(name: str) -> str:
    """The stable name: the first generation's store collection, then an alias of the live one."""
    return f"semantik-{name}"


def generation_collection_name(name: str, generation: int) -> str:
    # '.' cannot occur in a collection name, so one collection's generations never match another's.
    base = qdrant_collection_name(name)
    return base if generation == 1 else f"{base}.g{generation}"


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """What an index is built with; two generations with equal configs hold interchangeable vectors."""

    model_name: str
    dimension: int
    quantization: str
    chunk_strategy: str
    chunk_size: int
    chunk_overlap: int

    @classmethod
    def of(cls, row: Collection) -> IndexConfig:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    def values(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        return (
            f"{self.model_name} ({self.quantization}), {self.chunk_strategy} chunks of {self.chunk_size} "
            f"tokens overlapping {self.chunk_overlap}"
        )


async def prepare_shadow(app: Semantik, live: Collection, config: IndexConfig, embedder_url: str | None) -> Collection:
    """The shadow that builds `config`: the one there is when it builds the same, else a new generation.

    The caller makes sure no reindex is writing into a shadow this replaces."""
    async with app.sessions() as session:
        shadow = await metadata.get_shadow(session, live.id)
    if shadow is not None and IndexConfig.of(shadow) == config:
        async with app.sessions.begin() as session:
            await session.execute(
                update(Collection)
                .where(Collection.id == shadow.id)
                .values(
                    embedder_url=embedder_url,
                    source_path=live.source_path,
                    include=list(live.include),
                    exclude=list(live.exclude),
                )
            )
        await app.store.ensure_collection(shadow.qdrant_collection, shadow.dimension, placement=shadow.placement)
        return shadow
    generation = max(live.generation, shadow.generation if shadow else 0) + 1
    if shadow is not None:
        await discard_shadow(app, shadow)
    row = Collection(
        name=f"~{live.id}",
        reindex_of_id=live.id,
        description="",
        source_path=live.source_path,
        include=list(live.include),
        exclude=list(live.exclude),
        embedder_url=embedder_url,
        generation=generation,
        qdrant_collection=generation_collection_name(live.name, generation),
        language=live.language,
        sparse_language=live.language,
        shards=live.shards,
        replication_factor=live.replication_factor,
        on_disk=live.on_disk,
        **config.values(),
    )
    try:
        async with app.sessions.begin() as session:
            session.add(row)
    except IntegrityError as exc:
        raise ConflictError(f"collection {live.name!r} is being changed by another request; retry") from exc
    await app.store.ensure_collection(row.qdrant_collection, row.dimension, placement=row.placement)
    log.info("reindex prepared collection=%s generation=%d config=%s", live.name, generation, config.describe())
    return row


async def discard_shadow(app: Semantik, shadow: Collection) -> None:
    """Drop a shadow that will not be swapped in: its store collection first, then its rows."""
    await app.store.drop_collection(shadow.qdrant_collection)
    async with app.sessions.begin() as session:
        await session.execute(delete(Collection).where(Collection.id == shadow.id))


@dataclass(frozen=True, slots=True)
class Swap:
    alias: str
    live: str
    retired: str


async def promote_shadow(session: AsyncSession, live: Collection, when: datetime) -> Swap:
    """Make the shadow live, inside the caller's transaction (the one that marks the reindex succeeded)."""
    shadow = await metadata.get_shadow(session, live.id)
    if shadow is None:
        raise ConflictError(f"collection {live.name!r} has no reindex to swap in", field="collection")
    retired = live.qdrant_collection
    promoted = {
        **IndexConfig.of(shadow).values(),
        "qdrant_collection": shadow.qdrant_collection,
        "generation": shadow.generation,
        "embedder_url": shadow.embedder_url,
        "last_indexed_at": when,
        # The keyword index comes with the store collection; if the language changed meanwhile, the
        # difference starts a backfill.
        "sparse_language": shadow.sparse_language,
        "sparse_terms": shadow.sparse_terms,
        "sparse_chunks": shadow.sparse_chunks,
        # The ids come with the store collection too: a reindex is how a collection reaches a newer scheme.
        "point_ids": shadow.point_ids,
    }
    await metadata.replace_documents(session, live.id, shadow.id)
    # The shadow row goes before the live row takes its store collection: that name is unique.
    await session.execute(delete(Collection).where(Collection.id == shadow.id))
    await session.execute(update(Collection).where(Collection.id == live.id).values(**promoted))
    log.info("reindex swapped collection=%s generation=%d", live.name, shadow.generation)
    return Swap(qdrant_collection_name(live.name), shadow.qdrant_collection, retired)


async def reconcile_store(app: Semantik, name: str) -> list[str]:
    """Point the alias at the live generation and drop retired ones; idempotent, so it also repairs
    what a crash between the swap's commit and its store steps left. Returns what was dropped."""
    async with app.sessions() as session:
        live = await metadata.get_collection(session, name)
        if live is None:
            return []
        shadow = await metadata.get_shadow(session, live.id)
    alias = qdrant_collection_name(name)
    await app.store.point_alias(alias, live.qdrant_collection)
    keep = {live.qdrant_collection} | ({shadow.qdrant_collection} if shadow else set())
    retired = await app.store.drop_generations(alias, keep)
    if retired:
        log.info("retired generations dropped collection=%s dropped=%s", name, retired)
    return retired
