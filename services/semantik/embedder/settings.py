"""Settings of the embedder service process (env prefix ``SEMANTIK_EMBEDDER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from semantik.core.embedding import Precision
from semantik.core.settings import DEFAULT_MODEL_NAME, bundled_model_path


class EmbedderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMANTIK_EMBEDDER_", extra="ignore")

    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="A name from the model table.")
    model_path: Path | None = Field(
        default=None, description="Local directory with the model's files (the HF cache mount in a cluster)."
    )
    dtype: Precision = Field(default=Precision.FLOAT32, description="float32, float16, bfloat16 or int8.")
    device: str = Field(default="cpu", description="cpu or cuda.")
    host: str = Field(default="127.0.0.1")
    port: int = Field(default=8000, ge=1, le=65535)
    max_batch_tokens: int | None = Field(
        default=None, ge=256, description="Padded tokens in one forward pass; default: measured per device/dtype."
    )
    max_batch_size: int = Field(default=256, ge=1, description="Texts in one forward pass.")
    max_queue_texts: int = Field(default=8192, ge=1, description="Texts waiting; beyond it: 503.")
    max_request_texts: int = Field(default=2048, ge=1, description="Texts in one request.")
    log_level: str = Field(default="INFO")

    @property
    def resolved_model_path(self) -> Path:
        return (self.model_path or bundled_model_path()).expanduser()
