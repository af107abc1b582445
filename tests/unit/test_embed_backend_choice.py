"""Which runtime runs the model, and how many CPUs it may use: chosen from settings and the cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from semantik.core.cpus import cgroup_cpu_limit, usable_cpus
from semantik.core.embedding import EmbedBackend
from semantik.core.settings import Settings
from semantik.embedder.settings import EmbedderSettings


def test_backend_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEMANTIK_EMBED_BACKEND", raising=False)
    assert Settings(data_dir=tmp_path).embed_backend is EmbedBackend.TORCH
    assert EmbedderSettings().backend is EmbedBackend.TORCH
    monkeypatch.setenv("SEMANTIK_EMBED_BACKEND", "onnx")
    assert Settings(data_dir=tmp_path).embed_backend is EmbedBackend.ONNX
    assert EmbedderSettings().backend is EmbedBackend.ONNX
    monkeypatch.setenv("SEMANTIK_EMBED_BACKEND", "torch")
    monkeypatch.delenv("SEMANTIK_ONNX_CACHE_DIR", raising=False)
    settings = Settings(data_dir=tmp_path)
    assert settings.embed_backend is EmbedBackend.TORCH
    assert settings.resolved_onnx_cache_dir == tmp_path / "onnx"
    assert EmbedderSettings().backend is EmbedBackend.TORCH
    monkeypatch.setenv("SEMANTIK_EMBEDDER_BACKEND", "onnx")
    assert EmbedderSettings().backend is EmbedBackend.ONNX
    with pytest.raises(ValueError, match="backend"):
        EmbedderSettings(backend="tensorflow")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_cgroup_v2_quota_caps_the_cpus(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(write(tmp_path / "a", {"cpu.max": "150000 100000\n"})) == 1.5
    assert cgroup_cpu_limit(write(tmp_path / "b", {"cpu.max": "max 100000\n"})) is None
    assert usable_cpus(write(tmp_path / "c", {"cpu.max": "50000 100000\n"})) == 1
    assert usable_cpus(write(tmp_path / "d", {"cpu.max": "max 100000\n"})) >= 1


def test_cgroup_v1_quota_and_no_cgroup_files(tmp_path: Path) -> None:
    v1 = write(tmp_path / "v1", {"cpu/cpu.cfs_quota_us": "250000", "cpu/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(v1) == 2.5
    unlimited = write(tmp_path / "v1u", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(unlimited) is None
    assert cgroup_cpu_limit(tmp_path / "nothing") is None
