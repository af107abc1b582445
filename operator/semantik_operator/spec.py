"""The Collection and IndexJob specs as Pydantic models: handlers parse the body once, builders read these.

The CRD schema already rejected what it can (types, ranges, CEL rules); these models carry its defaults
too, so a builder sees the same values whether the API server defaulted them or a test left them out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Spec(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class PvcSource(Spec):
    claim_name: str = Field(alias="claimName")
    path: str = "/"


class Source(Spec):
    name: str
    pvc: PvcSource | None = None
    host_path: str | None = Field(default=None, alias="hostPath")
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


class Quantization(StrEnum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    INT8 = "int8"


class Embedding(Spec):
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    dimension: int | None = None
    quantization: Quantization = Quantization.FLOAT32
    max_sequence_length: int | None = Field(default=None, alias="maxSequenceLength")
    query_instruction: str | None = Field(default=None, alias="queryInstruction")


class Chunking(Spec):
    strategy: str = "recursive"
    chunk_size: int = Field(default=200, alias="chunkSize")
    chunk_overlap: int = Field(default=32, alias="chunkOverlap")


class Language(StrEnum):
    """The CRD's spec.search.language enum; the gateway's own list is semantik.core.services.collections.Language,
    which the operator cannot import (it pulls in the store clients), so a unit test keeps the two equal."""

    DANISH = "danish"
    DUTCH = "dutch"
    ENGLISH = "english"
    FRENCH = "french"
    GERMAN = "german"
    ITALIAN = "italian"
    NORWEGIAN = "norwegian"
    PORTUGUESE = "portuguese"
    RUSSIAN = "russian"
    SPANISH = "spanish"
    SWEDISH = "swedish"
    TURKISH = "turkish"


class Search(Spec):
    language: Language = Language.ENGLISH


class Store(Spec):
    """spec.store: the Qdrant layout of the collection; None takes Qdrant's default."""

    shards: int | None = None
    replication_factor: int | None = Field(default=None, alias="replicationFactor")
    on_disk: bool | None = Field(default=None, alias="onDisk")


class Gpu(Spec):
    count: int = 0
    resource_name: str = Field(default="nvidia.com/gpu", alias="resourceName")


class Toleration(Spec):
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Resources(Spec):
    requests: dict[str, str | int] = Field(default_factory=dict)
    limits: dict[str, str | int] = Field(default_factory=dict)


class Backend(StrEnum):
    """What runs the model in the embedder pods (SEMANTIK_EMBEDDER_BACKEND)."""

    TORCH = "torch"
    ONNX = "onnx"


class EmbedderPlacement(Spec):
    backend: Backend = Backend.TORCH
    replicas: int = 1
    gpu: Gpu = Field(default_factory=Gpu)
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: tuple[Toleration, ...] = ()
    resources: Resources = Field(default_factory=Resources)


class Indexing(Spec):
    parallelism: int = 2
    batch_size: int = Field(default=16, alias="batchSize")
    schedule: str | None = None
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds")


class CollectionSpec(Spec):
    sources: tuple[Source, ...]
    embedding: Embedding = Field(default_factory=Embedding)
    chunking: Chunking = Field(default_factory=Chunking)
    search: Search = Field(default_factory=Search)
    store: Store | None = None
    embedder: EmbedderPlacement = Field(default_factory=EmbedderPlacement)
    indexing: Indexing = Field(default_factory=Indexing)
    retain_on_delete: bool = Field(default=False, alias="retainOnDelete")


class IndexMode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    REINDEX = "reindex"


class CollectionRef(Spec):
    name: str


class IndexJobSpec(Spec):
    collection_ref: CollectionRef = Field(alias="collectionRef")
    mode: IndexMode = IndexMode.INCREMENTAL
    sources: tuple[str, ...] = ()
    parallelism: int | None = None
    batch_size: int | None = Field(default=None, alias="batchSize")
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds")
