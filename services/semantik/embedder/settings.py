"""Settings of the embedder service process (env prefix ``SEMANTIK_EMBEDDER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from semantik.core.embedding import EmbedBackend, Precision
from semantik.core.pipeline.chunk import MAX_CHUNK_CHARS
from semantik.core.settings import DEFAULT_MODEL_NAME, bundled_model_path, is_loopback


class EmbedderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMANTIK_EMBEDDER_", extra="ignore")

    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="A name from the model table.")
    model_path: Path | None = Field(
        default=None, description="Local directory with the model's files (the HF cache mount in a cluster)."
    )
    dtype: Precision = Field(default=Precision.FLOAT32, description="float32, float16, bfloat16 or int8.")
    device: str = Field(default="cpu", description="cpu or cuda.")
    backend: EmbedBackend = Field(
        default=EmbedBackend.TORCH,
        validation_alias=AliasChoices("SEMANTIK_EMBEDDER_BACKEND", "SEMANTIK_EMBED_BACKEND", "backend"),
        description="torch, or onnx (ONNX Runtime on the CPU, float32 or int8; exported once and cached).",
    )
    cache_dir: Path | None = Field(
        default=None, description="Where ONNX exports are cached (the pod's cache volume); default ~/.cache/semantik."
    )
    host: str = Field(default="127.0.0.1")
    port: int = Field(default=8000, ge=1, le=65535)
    max_batch_tokens: int | None = Field(
        default=None, ge=256, description="Padded tokens in one forward pass; default: measured per device/dtype."
    )
    max_batch_size: int = Field(default=256, ge=1, description="Texts in one forward pass.")
    max_queue_texts: int = Field(default=8192, ge=1, description="Texts waiting; beyond it: 503.")
    max_request_texts: int = Field(default=2048, ge=1, description="Texts in one request.")
    max_text_chars: int = Field(
        default=MAX_CHUNK_CHARS,
        ge=1,
        description="Characters of one text; a longer one is refused before tokenizing. The default is the "
        "chunker's own bound, so every chunk an indexer makes is accepted.",
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Bytes of one request body; a larger one gets 413 unread."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token required on /embed and /models; unset: allowed only on a loopback host.",
    )
    log_level: str = Field(default="INFO")

    @model_validator(mode="after")
    def _listening_beyond_this_host_needs_a_token(self) -> EmbedderSettings:
        # Any pod that reaches an open embedder can burn its GPU: off this host, a token is required.
        if self.token is None and not is_loopback(self.host):
            raise ValueError(f"SEMANTIK_EMBEDDER_TOKEN is required when the embedder listens on {self.host}")
        return self

    @property
    def resolved_onnx_cache_dir(self) -> Path:
        return (self.cache_dir or Path.home() / ".cache" / "semantik").expanduser() / "onnx"

    @property
    def resolved_model_path(self) -> Path:
        return (self.model_path or bundled_model_path()).expanduser()
