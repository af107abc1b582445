"""Request and response bodies of the public API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from semantik.core.access import MAX_SCOPES, Role
from semantik.core.search.fusion import DEFAULT_RRF_K, Fusion
from semantik.core.services.audit import Outcome
from semantik.core.services.collections import ChunkingSpec, CollectionView, StoreSpec
from semantik.core.services.search import (
    DEFAULT_FEEDBACK,
    DEFAULT_FEEDBACK_WEIGHT,
    DEFAULT_PREFETCH,
    MAX_COLLECTIONS,
    MAX_FEEDBACK,
    MAX_PREFETCH,
    Mode,
    SearchOptions,
)
from semantik.core.store.vectors import SearchFilter


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
    language: str = Field(description="Language of the keyword index: its stopwords and stemmer.")
    keyword_index: bool = Field(
        description="Whether keyword (sparse) vectors are built in that language; until they are, search is "
        "dense-only and says so, and a backfill builds them from stored text."
    )
    store: StoreSpec = Field(description="Shards, replicas and on-disk storage of its Qdrant collections.")
    reindex: PendingReindexOut | None = Field(
        description="The next generation a reindex builds (a change of model, quantization or chunking)."
    )
    created_at: datetime
    last_indexed_at: datetime | None
    documents: int
    indexed_documents: int
    failed_documents: int
    chunks: int


def collection_out(view: CollectionView) -> CollectionOut:
    data = asdict(view)
    data["chunking"] = view.chunking
    return CollectionOut.model_validate(data)


class CollectionList(BaseModel):
    items: list[CollectionOut]


class SearchFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path_prefix: str | None = Field(default=None, max_length=4096, description="Only files under this folder.")
    extensions: list[str] = Field(default_factory=list, max_length=50, description='e.g. ["md", "pdf"].')


class SearchOptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=10, ge=1, le=100, description="Hits to return (over all collections).")
    mode: Mode | None = Field(
        default=None,
        description="dense (embeddings), sparse (keywords, BM25) or hybrid (both, fused); default hybrid where "
        "the collection's keyword vectors are built, else dense.",
    )
    fusion: Fusion = Field(
        default=Fusion.DBSF,
        description="How hybrid runs, and several collections, are merged: rrf (reciprocal rank fusion) or dbsf "
        "(scores normalised by their distribution, then summed).",
    )
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=1, le=10_000, description="RRF's k: larger flattens rank differences.")
    weights: dict[str, float] | None = Field(
        default=None,
        max_length=2,
        description='Per retriever, e.g. {"dense": 1.0, "sparse": 0.5}; only the mode\'s retrievers may be named.',
    )
    prefetch: int = Field(
        default=DEFAULT_PREFETCH, ge=1, le=MAX_PREFETCH, description="Chunks each retriever hands to fusion."
    )
    score_threshold: float | None = Field(
        default=None,
        description="Drop hits below this score, on the mode's own scale: cosine (dense, -1..1), BM25 (sparse), "
        "the fused score (hybrid).",
    )
    max_per_document: int | None = Field(
        default=1, ge=1, le=100, description="At most this many hits from one file; null: no limit."
    )
    rerank: bool | None = Field(
        default=None,
        description="Rerank the best fused hits with the configured cross-encoder; default: when one is configured.",
    )
    feedback: int = Field(
        default=DEFAULT_FEEDBACK,
        ge=0,
        le=MAX_FEEDBACK,
        description="Hybrid: the best fused chunks whose embeddings move the query for a second dense run "
        "(pseudo-relevance feedback); 0: off.",
    )
    feedback_weight: float = Field(
        default=DEFAULT_FEEDBACK_WEIGHT, ge=0, le=10, description="How far feedback moves the query."
    )
    filter: SearchFilterIn = Field(default_factory=SearchFilterIn)

    def options(self) -> SearchOptions:
        return SearchOptions(
            mode=self.mode,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=self.weights,
            prefetch=self.prefetch,
            score_threshold=self.score_threshold,
            search_filter=SearchFilter(self.filter.path_prefix, tuple(self.filter.extensions)),
            per_document=self.max_per_document,
            rerank=self.rerank,
            feedback=self.feedback,
            feedback_weight=self.feedback_weight,
        )


class SearchIn(SearchOptionsIn):
    """A search of one collection (named in the path)."""


class MultiSearchIn(SearchOptionsIn):
    collections: list[str] = Field(
        min_length=1, max_length=MAX_COLLECTIONS, description="Collections to search (each may use its own model)."
    )


class ExplainOut(BaseModel):
    retriever: str = Field(description="dense, sparse, collection (rank in its collection) or rerank.")
    rank: int
    score: float


class HitOut(BaseModel):
    collection: str
    score: float
    path: str
    chunk_index: int
    snippet: str
    highlights: list[tuple[int, int]]
    text: str
    start: int
    end: int
    heading: str | None
    explain: list[ExplainOut] = Field(description="Where each retriever ranked this chunk, with its raw score.")


class ChunkOut(BaseModel):
    collection: str
    path: str
    chunk_index: int
    text: str = Field(description="The chunk's whole text, as indexed.")
    heading: str | None
    start: int = Field(description="Where the chunk starts in the file's extracted text (characters).")
    end: int
    highlights: list[tuple[int, int]] = Field(description="Spans of `text` matching the words of `q`, if given.")


class SearchOut(BaseModel):
    collection: str | None = Field(description="The collection searched; null for a search of several.")
    collections: list[str]
    query: str
    took_ms: float
    modes: dict[str, Mode] = Field(description="The mode each collection was searched in.")
    fusion: Fusion
    reranked: bool
    notes: list[str] = Field(description="What the search could not do as asked, and why (dense-only, reranker).")
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
    seq: int = Field(
        description="Bumped on every change of the operation: the id of its progress events (resume after it)."
    )


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


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the key is for; the audit trail names it.")
    role: Role = Field(
        default=Role.READ,
        description="read: search and read; write: also index, cancel, create "
        "and delete collections; admin: also manage keys and read the audit trail.",
    )
    collections: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=MAX_SCOPES,
        description="Collection names or patterns with * and ? the key may act on; ['*'] for all.",
    )
    expires_at: datetime | None = Field(default=None, description="When the key stops working; unset: never.")


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it; never the key.")
    role: Role
    collections: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class KeyList(BaseModel):
    items: list[KeyOut]


class AuditEventOut(BaseModel):
    id: int
    at: datetime = Field(description="When the request arrived.")
    principal: str = Field(description='Who made it: "key:<id> <name>", "oidc:<subject>", "local" or "anonymous".')
    action: str = Field(description="collection.create, collection.delete, collection.index, operation.cancel, ...")
    target: str | None = Field(description="The collection name, operation id or key id acted on, when known.")
    outcome: Outcome = Field(description="succeeded, denied (by authentication or authorisation) or failed.")
    status: int = Field(description="The HTTP status the client got.")
    detail: str | None = Field(description="The error message, or what a created key grants.")


class AuditList(BaseModel):
    items: list[AuditEventOut] = Field(description="Newest first.")
    limit: int
    offset: int
