from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from semantik.core.pipeline.chunk import MAX_CHUNK_CHARS
from semantik.core.settings import Settings, is_loopback
from semantik.core.store.backend import StoreEngine, StoreMemory
from semantik.embedder.settings import EmbedderSettings
from semantik.worker.config import WorkerConfig
from semantik_operator.settings import OperatorSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme_tables() -> None:
    documented = set(re.findall(r"^\| `SEMANTIK_([A-Z_]+)` \|", README.read_text(), flags=re.MULTILINE))
    gateway = {name.upper() for name in Settings.model_fields}
    embedder = {f"EMBEDDER_{name.upper()}" for name in EmbedderSettings.model_fields}
    worker = {name.upper() for name in WorkerConfig.model_fields}
    operator = {f"OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    assert documented == gateway | embedder | worker | operator


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings()
    assert settings.data_dir == tmp_path / ".local/share/semantik"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/.local/share/semantik/semantik.db"
    assert settings.resolved_qdrant_path == tmp_path / ".local/share/semantik/qdrant"
    # Edge is the embedded engine, in a directory of its own; local mode, when chosen, keeps its old one.
    assert settings.store_engine is StoreEngine.EDGE
    assert settings.resolved_store_path == tmp_path / ".local/share/semantik/store-edge"
    assert settings.store_memory is StoreMemory.WARM
    local = Settings(store_engine="qdrant-local")
    assert local.resolved_store_path == settings.resolved_qdrant_path
    assert (settings.resolved_model_path / "config.json").is_file()
    assert not settings.auth_required


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIK_DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/s")
    monkeypatch.setenv("SEMANTIK_HOST", "0.0.0.0")
    monkeypatch.setenv("SEMANTIK_CHUNK_STRATEGY", "markdown")
    monkeypatch.setenv("SEMANTIK_STORE_MEMORY", "low")
    settings = Settings()
    assert settings.store_memory is StoreMemory.LOW
    assert settings.resolved_database_url == "postgresql+asyncpg://u:p@db:5432/s"
    assert settings.auth_required
    assert settings.chunk_strategy == "markdown"


def test_auth_can_be_forced_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIK_REQUIRE_AUTH", "true")
    assert Settings().auth_required


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEMANTIK_PORT", "0"),
        ("SEMANTIK_EMBED_BATCH_TOKENS", "-1"),
        ("SEMANTIK_CHUNK_STRATEGY", "sentences"),
        ("SEMANTIK_STORE_MEMORY", "tiny"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("gateway", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_service_mode_needs_redis() -> None:
    with pytest.raises(ValidationError, match="SEMANTIK_REDIS_URL"):
        Settings(mode="service")
    assert Settings(mode="service", redis_url="redis://redis:6379/0").mode == "service"


def test_the_embedder_takes_every_chunk_an_indexer_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lower cap would fail, in service mode only, every file with a long run of text without spaces.
    monkeypatch.delenv("SEMANTIK_EMBEDDER_MAX_TEXT_CHARS", raising=False)

    assert EmbedderSettings().max_text_chars >= MAX_CHUNK_CHARS
