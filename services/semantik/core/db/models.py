"""Metadata tables: collections, their documents, index operations, API keys, the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from semantik.core.pipeline.ids import LATEST_SCHEME, PointIdScheme
from semantik.core.store.placement import StorePlacement


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class OperationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.CANCELLED)


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source_path: Mapped[str | None] = mapped_column(Text, default=None)
    include: Mapped[list[str]] = mapped_column(default=list)
    exclude: Mapped[list[str]] = mapped_column(default=list)
    model_name: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    chunk_strategy: Mapped[str] = mapped_column(String(20))
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    quantization: Mapped[str] = mapped_column(String(20), default="float32")
    """The precision the vectors were made at: a change of it, like one of model or chunking, needs a reindex."""
    qdrant_collection: Mapped[str] = mapped_column(String(255), unique=True)
    """The physical store collection search reads: `semantik-<name>`, then `semantik-<name>.g<N>` after reindexes."""
    generation: Mapped[int] = mapped_column(Integer, default=1)
    embedder_url: Mapped[str | None] = mapped_column(Text, default=None)
    """The embedder that serves this collection's model (cluster mode); None: the process's own."""
    reindex_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), unique=True, default=None
    )
    """Set on a hidden shadow row: the next generation of that collection, built by a reindex and swapped
    in when it succeeds. Its documents describe the shadow's store collection, never the live one."""
    language: Mapped[str] = mapped_column(String(20), default="english")
    """The keyword index's language, as asked for."""
    sparse_language: Mapped[str | None] = mapped_column(String(20), default=None)
    """The language the store's sparse vectors were made with; None: the store collection has only an
    unnamed dense vector (built before hybrid search). A backfill runs while this differs from `language`."""
    sparse_terms: Mapped[int] = mapped_column(BigInteger, default=0)
    sparse_chunks: Mapped[int] = mapped_column(BigInteger, default=0)
    """Terms and chunks written with sparse vectors: their ratio is the average chunk length that BM25
    normalises by. Deleted chunks are not subtracted; a backfill recounts exactly."""
    point_ids: Mapped[int] = mapped_column(Integer, default=int(LATEST_SCHEME))
    """How the store collection's point ids are made (`PointIdScheme`); fixed for the store collection's life,
    so only a reindex (a new one) moves a collection to a newer scheme."""
    shards: Mapped[int | None] = mapped_column(Integer, default=None)
    replication_factor: Mapped[int | None] = mapped_column(Integer, default=None)
    on_disk: Mapped[bool | None] = mapped_column(Boolean, default=None)
    """The store placement (see store.placement) of every store collection made for this collection from
    now on; None: the Qdrant server's default."""
    owner: Mapped[str | None] = mapped_column(String(200), default=None)
    """`<namespace>/<name>` of the Collection resource this belongs to (cluster mode); None: made over the
    REST API or the CLI, or before owners were recorded. See `collections.check_owner`."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_indexed_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def average_chunk_terms(self) -> float:
        return self.sparse_terms / self.sparse_chunks if self.sparse_chunks else 0.0

    @property
    def point_id_scheme(self) -> PointIdScheme:
        return PointIdScheme(self.point_ids)

    @property
    def placement(self) -> StorePlacement:
        return StorePlacement(self.shards, self.replication_factor, self.on_disk)

    documents: Mapped[list[Document]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    """Hash of the content whose chunks are in the store; None while nothing of it was ever indexed."""
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[float] = mapped_column(default=0.0)
    format: Mapped[str | None] = mapped_column(String(20), default=None)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    """Points in the store for this document (ids 0..chunk_count-1): what a re-index must replace."""
    token_count: Mapped[int] = mapped_column(BigInteger, default=0)
    indexed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    collection: Mapped[Collection] = relationship(back_populates="documents")


ACTIVE_OPERATION = text("status IN ('pending', 'running')")


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_collection_status", "collection_id", "status"),
        # At most one active operation per collection, held by the database itself so two requests
        # racing to start an index cannot both win.
        Index(
            "uq_operations_one_active",
            "collection_id",
            unique=True,
            postgresql_where=ACTIVE_OPERATION,
            sqlite_where=ACTIVE_OPERATION,
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=OperationStatus.PENDING)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_processed: Mapped[int] = mapped_column(Integer, default=0)
    files_failed: Mapped[int] = mapped_column(Integer, default=0)
    files_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    extract_seconds: Mapped[float] = mapped_column(default=0.0)
    embed_seconds: Mapped[float] = mapped_column(default=0.0)
    store_seconds: Mapped[float] = mapped_column(default=0.0)
    queue: Mapped[str | None] = mapped_column(String(100), default=None)
    """The arq queue of a service-mode operation; None when it runs inside the gateway."""
    batches_total: Mapped[int | None] = mapped_column(Integer, default=None)
    """Set once, when the scan's plan is recorded; None while the folder is being scanned."""
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    removed_paths: Mapped[list[str]] = mapped_column(default=list)
    """Documents whose files are gone: dropped when the operation finalizes."""
    request_key: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    """A caller's idempotency key (the operator sends its IndexJob's uid): the same key, the same operation."""
    error: Mapped[str | None] = mapped_column(Text, default=None)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """Bumped by every change to the row: the progress streams' event id (Last-Event-ID resumes after it)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


NEXT_SEQ = Operation.seq + 1
"""What every UPDATE of an operation sets `seq` to; Core updates name it, ORM flushes get it from the hook below."""


@event.listens_for(Operation, "before_update")
def _bump_seq(_mapper: Mapper[Operation], _connection: object, target: Operation) -> None:
    # A SQL expression, not a Python increment: two writers racing on the row still get distinct values.
    target.seq = NEXT_SEQ


class OperationBatch(Base):
    """One planned batch of a service-mode operation: what a worker processes and hands back once."""

    __tablename__ = "operation_batches"
    __table_args__ = (PrimaryKeyConstraint("operation_id", "number"),)

    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """[{"path", "content_hash"}] as the scan saw them."""
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    committed_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(10), default="admin")
    """read, write or admin (semantik.core.access.Role)."""
    scopes: Mapped[list[str]] = mapped_column(default=lambda: ["*"])
    """Collection names or patterns (`*`, `team-?-*`) the key may act on."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEvent(Base):
    """One state-changing request: who, when, on what, and how it ended. Appended, never updated."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    principal: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(200), default=None)
    outcome: Mapped[str] = mapped_column(String(20))
    """succeeded, denied (401/403/404 on auth) or failed."""
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
