"""Settings of a `semantik worker` process (env prefix ``SEMANTIK_``): no database credentials here."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from semantik.core.pipeline.roots import SourceRoots
from semantik.core.settings import DEFAULT_MODEL_NAME, ExtractionSettings, bundled_model_path


class WorkerConfig(ExtractionSettings):
    model_config = SettingsConfigDict(env_prefix="SEMANTIK_", extra="ignore")

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis holding the work queues.")
    gateway_url: str = Field(
        default="http://127.0.0.1:8080", description="The gateway whose internal API takes finished batches."
    )
    internal_token: SecretStr | None = Field(default=None, description="Bearer token of the internal API.")
    embedder_url: str = Field(default="http://127.0.0.1:8000", description="The embedder service.")
    embedder_token: SecretStr | None = Field(default=None, description="Bearer token of the embedder service.")
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Model whose tokenizer sizes the chunks.")
    model_path: Path | None = Field(default=None, description="Directory of that model's files (its tokenizer).")
    source_roots: SourceRoots = Field(
        default_factory=list,
        description="Folders this worker may read; an operation whose folder resolves elsewhere fails. Empty: none.",
    )
    worker_queue: str = Field(
        default="arq:queue", description="Queue served by `arq semantik.worker.main.WorkerSettings`."
    )
    worker_concurrency: int = Field(default=2, ge=1, le=64, description="Jobs one worker runs at once.")
    worker_job_timeout: int = Field(
        default=300,
        ge=5,
        description="Seconds a job may run before it is retried; a killed worker's job is retried this + 15 s later.",
    )
    worker_max_tries: int = Field(default=8, ge=1, le=50, description="Tries of a job before its files fail.")
    worker_batch_chunks: int = Field(default=64, ge=1, description="Estimated chunks in one batch job.")
    worker_batch_files: int = Field(default=16, ge=1, description="Files in one batch job at most.")
    worker_redis_grace: float = Field(
        default=120.0, ge=0, description="Seconds a running worker waits for a lost Redis before it exits."
    )

    @property
    def resolved_model_path(self) -> Path:
        return (self.model_path or bundled_model_path()).expanduser()


def redacted(url: str) -> str:
    """A Redis URL fit for a log line or an error: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
