"""Creating, reading and deleting collections: the one path the CLI and the gateway share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError

from semantik.contracts.naming import held_by_another
from semantik.core.context import Semantik
from semantik.core.db.models import Collection, Document
from semantik.core.embedding import model_for
from semantik.core.errors import ConflictError, InvalidInputError, NotFoundError
from semantik.core.pipeline.chunk import ChunkingConfig, ChunkStrategy
from semantik.core.pipeline.roots import require_within_roots
from semantik.core.pipeline.scan import InvalidGlobError, validate_globs
from semantik.core.search.analyzer import Language
from semantik.core.services.generations import (
    IndexConfig,
    discard_shadow,
    prepare_shadow,
    qdrant_collection_name,
    reconcile_store,
)
from semantik.core.store import metadata
from semantik.core.store.placement import StorePlacement

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAME_RULE = "1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"


def validate_name(name: str, field: str = "name") -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(f"invalid collection name {name!r}: use {NAME_RULE}", field=field)
    return name


class ChunkingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: ChunkStrategy = ChunkStrategy.RECURSIVE
    chunk_size: int = Field(default=200, ge=16, le=8192)
    chunk_overlap: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSpec:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    def config(self) -> ChunkingConfig:
        return ChunkingConfig(self.strategy, self.chunk_size, self.chunk_overlap)


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language = Field(
        default="english", description="Language of the keyword (sparse) index: its stopwords and stemmer."
    )


class StoreSpec(BaseModel):
    """How a Qdrant server lays the collection out over its peers; a field left null takes the server's default.

    Every store collection made for the collection (each reindex generation too) is made so; one that exists
    keeps its layout, as Qdrant cannot reshard in place."""

    model_config = ConfigDict(extra="forbid")

    shards: int | None = Field(
        default=None, ge=1, le=64, description="Shards spread over the Qdrant peers; a few per peer lets it grow."
    )
    replication_factor: int | None = Field(
        default=None, ge=1, le=8, description="Copies of each shard on different peers: 2 survives one peer down."
    )
    on_disk: bool | None = Field(
        default=None,
        description="Keep vectors and payloads memory-mapped on disk (the HNSW graph stays in RAM): less RAM, "
        "slower searches whose pages are not cached.",
    )

    @classmethod
    def of(cls, placement: StorePlacement) -> StoreSpec:
        return cls(shards=placement.shards, replication_factor=placement.replication_factor, on_disk=placement.on_disk)

    def placement(self) -> StorePlacement:
        return StorePlacement(self.shards, self.replication_factor, self.on_disk)


class CollectionSpec(BaseModel):
    """What a user asks for; validated here so both the CLI and the API reject the same input."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(default="", max_length=2000)
    source_path: str | None = Field(
        default=None,
        max_length=4096,
        description="Folder to index; over the REST API it must lie inside one of SEMANTIK_SOURCE_ROOTS.",
    )
    include: list[str] = Field(default_factory=lambda: ["**"])
    exclude: list[str] = Field(default_factory=list)
    model: str | None = None
    chunking: ChunkingSpec = Field(default_factory=ChunkingSpec)
    search: SearchSpec | None = Field(
        default=None, description="The keyword index's settings; default: the language SEMANTIK_LANGUAGE names."
    )
    store: StoreSpec | None = Field(
        default=None, description="Shards, replicas and on-disk storage in a Qdrant server; default its own."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"invalid collection name {value!r}: use {NAME_RULE}")
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _valid_globs(cls, value: list[str]) -> list[str]:
        try:
            validate_globs(value, "globs")
        except InvalidGlobError as exc:
            raise ValueError(str(exc)) from exc
        return value


@dataclass(frozen=True, slots=True)
class PendingReindex:
    """The next generation a reindex builds, while search still reads the live one."""

    model: str
    quantization: str
    chunking: ChunkingSpec
    generation: int


@dataclass(frozen=True, slots=True)
class CollectionView:
    name: str
    description: str
    source_path: str | None
    include: list[str]
    exclude: list[str]
    model: str
    dimension: int
    quantization: str
    chunking: ChunkingSpec
    qdrant_collection: str
    generation: int
    language: str
    keyword_index: bool
    """Whether the store's sparse vectors are built in `language`; False while a backfill is due."""
    store: StoreSpec
    reindex: PendingReindex | None
    created_at: datetime
    last_indexed_at: datetime | None
    documents: int
    indexed_documents: int
    failed_documents: int
    chunks: int
    owner: str | None
    """The Collection resource this belongs to (`Collection.owner`)."""


def wanted_config(app: Semantik, spec: CollectionSpec, quantization: str | None) -> IndexConfig:
    model = model_for(spec.model or app.settings.model_name)
    return IndexConfig(
        model_name=model.name,
        dimension=model.dimension,
        quantization=quantization or app.settings.dtype.value,
        chunk_strategy=spec.chunking.strategy.value,
        chunk_size=spec.chunking.chunk_size,
        chunk_overlap=spec.chunking.chunk_overlap,
    )


async def create_collection(
    app: Semantik,
    spec: CollectionSpec,
    *,
    quantization: str | None = None,
    embedder_url: str | None = None,
    roots: Sequence[Path] | None = None,
    owner: str | None = None,
) -> CollectionView:
    """With `roots` (the REST API passes SEMANTIK_SOURCE_ROOTS) the source path must resolve inside one."""
    if roots is not None:
        require_within_roots(spec.source_path, roots, "source_path")
    config = wanted_config(app, spec, quantization)
    language = spec.search.language if spec.search is not None else app.settings.language
    placement = spec.store.placement() if spec.store is not None else StorePlacement()
    row = Collection(
        name=spec.name,
        description=spec.description,
        source_path=spec.source_path,
        include=spec.include,
        exclude=spec.exclude,
        embedder_url=embedder_url,
        qdrant_collection=qdrant_collection_name(spec.name),
        language=language,
        sparse_language=language,
        shards=placement.shards,
        replication_factor=placement.replication_factor,
        on_disk=placement.on_disk,
        owner=owner,
        **config.values(),
    )
    try:
        async with app.sessions.begin() as session:
            if await metadata.get_collection(session, spec.name) is not None:
                raise ConflictError(f"collection {spec.name!r} already exists", field="name")
            session.add(row)
    except IntegrityError as exc:
        raise ConflictError(f"collection {spec.name!r} already exists", field="name") from exc
    # The row is the record of intent; the store collection follows and is re-ensured on every index.
    await app.store.ensure_collection(row.qdrant_collection, row.dimension, placement=row.placement)
    return await get_collection(app, spec.name)


async def ensure_collection(
    app: Semantik,
    spec: CollectionSpec,
    *,
    quantization: str | None = None,
    embedder_url: str | None = None,
    owner: str | None = None,
) -> tuple[CollectionView, bool]:
    """Create the collection, or bring an existing one to the spec (the operator's way).

    An `owner` claims a collection that has none and is refused by one that has another (`check_owner`).
    Folder and globs apply at once. A change of model, quantization or chunking is prepared as the next
    generation (see `generations`) for a reindex to build; search reads the live one meanwhile. Returns
    the view (its `reindex` says what is pending) and whether the collection was created."""
    wanted = wanted_config(app, spec, quantization)
    async with app.sessions() as session:
        existing = await metadata.get_collection(session, spec.name)
    if existing is None:
        try:
            created = await create_collection(
                app, spec, quantization=quantization, embedder_url=embedder_url, owner=owner
            )
            return created, True
        except ConflictError:
            pass  # created by a concurrent call: fall through and compare
    async with app.sessions.begin() as session:
        live = await metadata.get_collection(session, spec.name)
        if live is None:
            raise NotFoundError(f"collection {spec.name!r} was deleted meanwhile", field="name")
        check_owner(live, owner)
        live.owner = live.owner or owner
        live.source_path = spec.source_path
        live.include = spec.include
        live.exclude = spec.exclude
        if spec.search is not None:
            # A new language applies at once to what search asks; a backfill rebuilds the stored sparse vectors.
            live.language = spec.search.language
        if spec.store is not None:
            # Applies to store collections made from now on (the next reindex's); the live one keeps its layout.
            live.shards = spec.store.shards
            live.replication_factor = spec.store.replication_factor
            live.on_disk = spec.store.on_disk
        if IndexConfig.of(live) == wanted:
            live.embedder_url = embedder_url
        active = await metadata.active_operation(session, live.id)
        shadow = await metadata.get_shadow(session, live.id)
    if IndexConfig.of(live) == wanted:
        if shadow is not None and active is None:
            await discard_shadow(app, shadow)  # a change taken back before its reindex ran
    else:
        if active is not None and active.kind == "reindex" and (shadow is None or IndexConfig.of(shadow) != wanted):
            building = IndexConfig.of(shadow).describe() if shadow else "another config"
            raise ConflictError(
                f"collection {spec.name!r} is being reindexed to {building} by operation {active.id}; "
                f"{wanted.describe()} can be prepared when it ends",
                field="chunking" if wanted.model_name == live.model_name else "model",
            )
        await prepare_shadow(app, live, wanted, embedder_url)
    await app.store.ensure_collection(live.qdrant_collection, live.dimension, placement=live.placement)
    await reconcile_store(app, spec.name)
    return await get_collection(app, spec.name), False


async def load_collection(app: Semantik, name: str, *, owner: str | None = None) -> Collection:
    """The collection's row; with an `owner`, refused when it belongs to another (`check_owner`)."""
    async with app.sessions() as session:
        row = await metadata.get_collection(session, name)
    if row is None:
        raise NotFoundError(f"collection {name!r} does not exist", field="name")
    check_owner(row, owner)
    return row


def check_owner(row: Collection, owner: str | None) -> None:
    """Refuse a caller speaking for another owner than the collection's.

    Store names of namespaced Collections can collide (`team` + `a-docs` and `team-a` + `docs` both make
    `team-a-docs`): without this the second Collection would index into, and on deletion drop, the first
    one's collection. A collection without an owner (made before owners were recorded, or not by the
    operator) refuses no one; the operator's next ensure claims it."""
    if owner is not None and held_by_another(row.owner, owner):
        raise ConflictError(
            f"collection {row.name!r} belongs to the Collection {row.owner}, not to {owner}: their names map "
            "to one store name; rename one of them",
            field="owner",
        )


async def get_collection(app: Semantik, name: str) -> CollectionView:
    async with app.sessions() as session:
        row = await metadata.get_collection(session, name)
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist", field="name")
        return _view(row, await metadata.collection_counts(session, row.id), await metadata.get_shadow(session, row.id))


async def list_collections(app: Semantik) -> Sequence[CollectionView]:
    async with app.sessions() as session:
        rows = await metadata.list_collections(session)
        return [
            _view(row, await metadata.collection_counts(session, row.id), await metadata.get_shadow(session, row.id))
            for row in rows
        ]


async def collection_names(app: Semantik) -> list[str]:
    """The names alone, in one query: what a picker needs, without each collection's counts."""
    async with app.sessions() as session:
        return [row.name for row in await metadata.list_collections(session)]


async def delete_collection(app: Semantik, name: str) -> None:
    row = await load_collection(app, name)
    async with app.sessions() as session:
        active = await metadata.active_operation(session, row.id)
    if active is not None:
        raise ConflictError(f"collection {name!r} has a running operation {active.id}; wait for it or cancel it")
    # Store first: a crash after it leaves a row whose delete can simply be retried. Every generation
    # goes: the live one, a reindex's shadow, any a crash left behind, and the alias.
    await app.store.drop_generations(qdrant_collection_name(name))
    async with app.sessions.begin() as session:
        fresh = await metadata.get_collection(session, name)
        if fresh is not None:
            await session.delete(fresh)


def _chunking(row: Collection) -> ChunkingSpec:
    return ChunkingSpec(
        strategy=ChunkStrategy(row.chunk_strategy), chunk_size=row.chunk_size, chunk_overlap=row.chunk_overlap
    )


def _view(row: Collection, counts: metadata.CollectionCounts, shadow: Collection | None) -> CollectionView:
    return CollectionView(
        name=row.name,
        description=row.description,
        source_path=row.source_path,
        include=list(row.include),
        exclude=list(row.exclude),
        model=row.model_name,
        dimension=row.dimension,
        quantization=row.quantization,
        chunking=_chunking(row),
        qdrant_collection=row.qdrant_collection,
        generation=row.generation,
        language=row.language,
        keyword_index=row.sparse_language == row.language,
        store=StoreSpec.of(row.placement),
        reindex=None
        if shadow is None
        else PendingReindex(shadow.model_name, shadow.quantization, _chunking(shadow), shadow.generation),
        created_at=row.created_at,
        last_indexed_at=row.last_indexed_at,
        documents=counts.documents,
        indexed_documents=counts.indexed,
        failed_documents=counts.failed,
        chunks=counts.chunks,
        owner=row.owner,
    )


async def update_globs(app: Semantik, name: str, include: list[str] | None, exclude: list[str] | None) -> None:
    for patterns, field in ((include, "include"), (exclude, "exclude")):
        if patterns is not None:
            try:
                validate_globs(patterns, field)
            except InvalidGlobError as exc:
                raise InvalidInputError(str(exc), field=field) from exc
    async with app.sessions.begin() as session:
        row = await metadata.get_collection(session, name)
        if row is None:
            raise NotFoundError(f"collection {name!r} does not exist", field="name")
        if include is not None:
            row.include = include
        if exclude is not None:
            row.exclude = exclude


async def list_documents(
    app: Semantik, name: str, *, status: str | None = None, limit: int = 1000, offset: int = 0
) -> Sequence[Document]:
    row = await load_collection(app, name)
    async with app.sessions() as session:
        return await metadata.list_documents(session, row.id, status=status, limit=limit, offset=offset)


async def list_failed_documents(app: Semantik, name: str, limit: int = 1000) -> list[tuple[str, str]]:
    failed = await list_documents(app, name, status="failed", limit=limit)
    return [(doc.path, doc.error or "failed") for doc in failed]
