"""Settings of the operator process (env prefix ``SEMANTIK_OPERATOR_``), mirrored in the chart's values."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEMANTIK_OPERATOR_", extra="ignore")

    gateway_url: str = Field(default="http://semantik-gateway:8080", description="The gateway's base URL.")
    internal_token: SecretStr | None = Field(
        default=None, description="The internal API token itself (the chart sets it from that Secret)."
    )
    internal_token_secret: str = Field(
        default="semantik-internal", description="Secret (key `token`) with the gateway's internal API token."
    )
    service_image: str = Field(
        default="ghcr.io/semantik/semantik-service:0.1.0", description="Image of the embedder and the workers."
    )
    image_pull_policy: str = Field(default="IfNotPresent", description="Pull policy of those images.")
    redis_secret: str = Field(
        default="semantik-redis",
        description="Secret (key `redis-url`) with the URL and password of the Redis the workers read jobs from.",
    )
    embedder_token_secret: str = Field(
        default="semantik-embedder-token",
        description="Secret (key `token`) with the bearer token the embedders require and the workers send.",
    )
    model_cache_claim: str = Field(
        default="semantik-models", description="PersistentVolumeClaim holding the model cache, mounted read-only."
    )
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node labels every GPU embedder pod requires, beside the Collection's own.",
    )
    embedder_url_template: str = Field(
        default="http://{name}.{namespace}.svc:8000",
        description="How the gateway and the workers reach an embedder Service ({name} and {namespace} filled in).",
    )
    sources_root: str = Field(default="/sources", description="Where index workers mount each source.")
    allowed_host_paths: list[str] = Field(
        default_factory=list,
        description="Node folders a Collection's hostPath may name (or lie below); empty: every hostPath is refused.",
    )
    job_backoff_limit: int = Field(default=6, ge=0, description="backoffLimit of index Jobs.")
    job_deadline_seconds: int = Field(
        default=6 * 3600,
        ge=60,
        description="activeDeadlineSeconds of index Jobs unless the IndexJob or the Collection's indexing sets one.",
    )
    worker_memory_limit: str = Field(
        default="3Gi",
        description="Memory limit of an index worker: above the extraction sandbox's 1 GiB per child and the worker.",
    )
    job_ttl_seconds: int = Field(default=3600, ge=0, description="ttlSecondsAfterFinished of index Jobs.")
    workers_exit_grace_seconds: float = Field(
        default=300,
        gt=0,
        description="How long an IndexJob's operation may stay open after its Job completed before it is failed.",
    )
    delete_attempts: int = Field(
        default=5, ge=1, description="Tries to drop a deleted Collection's index before its finalizer is released."
    )
    delete_retry_seconds: float = Field(default=10, gt=0, description="Wait between those tries.")
    metrics_port: int = Field(default=9091, description="Port of /metrics.")
