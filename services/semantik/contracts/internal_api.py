"""Bodies of the internal API: what workers hand the gateway, the one writer of Postgres and Qdrant.

The gateway validates these and the worker and tests build them; vectors cross as contracts.vectors encodes them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from semantik.contracts.vectors import decode_vector


class DocumentStatus(StrEnum):
    """A document's outcome: sent by workers, stored by the gateway."""

    INDEXED = "indexed"
    FAILED = "failed"


class TargetOut(BaseModel):
    operation_id: str
    status: str
    full: bool
    queue: str | None
    batches_total: int | None
    model: str
    collection_id: int
    collection: str
    qdrant_collection: str
    root: str
    include: list[str]
    exclude: list[str]
    chunk_strategy: str
    chunk_size: int
    chunk_overlap: int
    max_file_bytes: int
    point_ids: int
    """The store collection's point id scheme (a worker reading a gateway from before schemes takes 1)."""


class KnownDocumentOut(BaseModel):
    path: str
    content_hash: str | None
    status: str
    error: str | None
    chunk_count: int
    size: int
    mtime: float


class KnownDocumentsOut(BaseModel):
    items: list[KnownDocumentOut]


class PlannedFileIO(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    content_hash: str = Field(min_length=1, max_length=64)


class RejectedFileIn(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    reason: str = Field(min_length=1, max_length=2000)


class PlanIn(BaseModel):
    files_total: int = Field(ge=0)
    unchanged: int = Field(ge=0)
    rejected: list[RejectedFileIn] = Field(default_factory=list)
    batches: list[list[PlannedFileIO]] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class PlanOut(BaseModel):
    created: bool = Field(description="False when the operation already had a plan: that plan is the answer.")
    batches_total: int
    pending: list[int] = Field(description="Batches not yet committed.")


class BatchOut(BaseModel):
    target: TargetOut
    number: int
    done: bool
    remaining: int = Field(description="Batches of the operation still to commit.")
    files: list[PlannedFileIO]


class PointIn(BaseModel):
    id: str
    chunk_index: int = Field(ge=0)
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    heading: str | None = None
    vector: str = Field(description="Little-endian float32 values, base64-encoded.")

    @field_validator("vector")
    @classmethod
    def _decodes(cls, value: str) -> str:
        decode_vector(value)
        return value

    def floats(self) -> list[float]:
        values: list[float] = decode_vector(self.vector).tolist()
        return values


class DocumentIn(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    content_hash: str | None = Field(default=None, max_length=64)
    size: int = Field(ge=0)
    mtime: float
    status: DocumentStatus
    error: str | None = None
    token_count: int = Field(default=0, ge=0)
    format: str | None = Field(default=None, max_length=20)
    points: list[PointIn] = Field(default_factory=list)


class BatchIn(BaseModel):
    documents: list[DocumentIn]
    extract_seconds: float = Field(default=0.0, ge=0)
    embed_seconds: float = Field(default=0.0, ge=0)


class CommitOut(BaseModel):
    duplicate: bool = Field(description="True when this batch had been committed before: nothing changed.")
    remaining: int = Field(description="Batches of the operation still to commit.")


class FailIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class StatusOut(BaseModel):
    status: str
