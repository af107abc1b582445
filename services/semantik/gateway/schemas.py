"""Request and response bodies of the public API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from semantik.core.services.collections import ChunkingSpec


class PendingReindexOut(BaseModel):
    model: str
    quantization: str
    chunking: ChunkingSpec
    generation: int


class CollectionOut(BaseModel):
    name: str
    description: str
    source_path: str | None
    include: list[str]
    exclude: list[str]
    model: str
    dimension: int
    quantization: str
    chunking: ChunkingSpec
    generation: int = Field(description="Which build of the index search reads; a reindex makes the next one.")
    reindex: PendingReindexOut | None = Field(
        description="The next generation a reindex builds (a change of model, quantization or chunking)."
    )
    created_at: datetime
    last_indexed_at: datetime | None
    documents: int
    indexed_documents: int
    failed_documents: int
    chunks: int


class CollectionList(BaseModel):
    items: list[CollectionOut]


class SearchFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path_prefix: str | None = Field(default=None, max_length=4096, description="Only files under this folder.")
    extensions: list[str] = Field(default_factory=list, max_length=50, description='e.g. ["md", "pdf"].')


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=10, ge=1, le=100)
    score_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    max_per_document: int | None = Field(
        default=1, ge=1, le=100, description="At most this many hits from one file; null: no limit."
    )
    filter: SearchFilterIn = Field(default_factory=SearchFilterIn)


class HitOut(BaseModel):
    score: float
    path: str
    chunk_index: int
    snippet: str
    highlights: list[tuple[int, int]]
    text: str
    start: int
    end: int
    heading: str | None


class SearchOut(BaseModel):
    collection: str
    query: str
    took_ms: float
    hits: list[HitOut]


class IndexIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        max_length=4096,
        description="Folder on the server, inside one of SEMANTIK_SOURCE_ROOTS; default: the collection's source.",
    )
    full: bool = Field(default=False, description="Re-index every file, changed or not.")


class OperationOut(BaseModel):
    id: str
    collection: str
    kind: str
    status: str
    files_total: int
    files_processed: int
    files_failed: int
    files_unchanged: int
    files_removed: int
    chunks: int
    tokens: int
    extract_seconds: float = Field(description="Seconds workers spent reading, extracting and chunking files.")
    embed_seconds: float = Field(description="Seconds spent waiting for embeddings.")
    store_seconds: float = Field(description="Seconds spent writing points and document rows.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class OperationAccepted(BaseModel):
    operation_id: str
    status: str
    url: str


class DocumentOut(BaseModel):
    path: str
    status: str
    error: str | None
    size: int
    format: str | None
    chunk_count: int
    indexed_at: datetime | None


class DocumentList(BaseModel):
    items: list[DocumentOut]
    limit: int
    offset: int
