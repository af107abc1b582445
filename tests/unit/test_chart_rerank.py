"""gateway.rerank in the chart without a cluster: off by default (no model cache in the gateway, no
SEMANTIK_RERANK_*), on it mounts the model cache claim read-only and gives the gateway settings that
point at the reranker inside it; the values schema refuses what the settings would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from semantik.core.settings import Settings
from tests.support.chart import env_of, find, pod_spec, schema_refusal, template

SNAPSHOT = "models--cross-encoder--ms-marco-MiniLM-L-6-v2/snapshots/main"
RERANK = {"enabled": True, "modelPath": SNAPSHOT, "candidates": 80, "batchSize": 8, "timeoutSeconds": 0.75}


def render(values: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
    """A values file rather than --set: --set makes 0.75 a string."""
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return template(path)


def gateway_of(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The gateway's pod spec and its container's environment."""
    spec = pod_spec(find(objects, "Deployment", "-gateway"))
    return spec, env_of(spec["containers"][0], objects)


def gateway_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("SEMANTIK_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def model_mounts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for c in spec["containers"] for m in c.get("volumeMounts", []) if m["name"] == "models"]


def test_off_by_default_the_gateway_has_no_reranker_and_no_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    spec, env = gateway_of(template())
    assert not [name for name in env if name.startswith("SEMANTIK_RERANK_")]
    assert model_mounts(spec) == [] and "models" not in {v["name"] for v in spec["volumes"]}
    assert gateway_settings(env, monkeypatch).rerank_model_path is None


def test_on_the_gateway_mounts_the_model_cache_read_only_and_points_the_setting_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render({"gateway": {"rerank": RERANK}}, tmp_path)
    spec, env = gateway_of(objects)
    assert model_mounts(spec) == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    volume = next(v for v in spec["volumes"] if v["name"] == "models")
    claim = find(objects, "PersistentVolumeClaim", "-models")["metadata"]["name"]
    assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    settings = gateway_settings(env, monkeypatch)
    assert settings.rerank_model_path == Path("/models") / SNAPSHOT
    assert (settings.rerank_candidates, settings.rerank_batch_size) == (80, 8)
    assert settings.rerank_timeout_seconds == 0.75 and settings.rerank_device == "cpu"
    # Only the gateway reranks: the query embedder (bundled model) still needs no model cache.
    assert model_mounts(pod_spec(find(objects, "Deployment", "-embedder"))) == []


def test_an_existing_claim_is_the_one_mounted(tmp_path: Path) -> None:
    objects = render({"gateway": {"rerank": RERANK}, "models": {"existingClaim": "shared-models"}}, tmp_path)
    spec, _ = gateway_of(objects)
    volume = next(v for v in spec["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": "shared-models", "readOnly": True}


def test_a_cached_embedding_model_and_a_reranker_share_one_mount(tmp_path: Path) -> None:
    values = {"embedder": {"model": "BAAI/bge-small-en-v1.5"}, "gateway": {"rerank": RERANK}}
    spec, env = gateway_of(render(values, tmp_path))
    assert len(model_mounts(spec)) == 1 and [v["name"] for v in spec["volumes"]].count("models") == 1
    assert env["SEMANTIK_MODEL_PATH"].startswith("/models/")
    assert env["SEMANTIK_RERANK_MODEL_PATH"] == f"/models/{SNAPSHOT}"


def test_turning_it_on_rolls_only_the_gateway(tmp_path: Path) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for o in render(values, tmp_path)
            if o["kind"] in ("Deployment", "StatefulSet")
        }

    before, after = checksums({}), checksums({"gateway": {"rerank": RERANK}})
    assert {name for name in before if before[name] != after[name]} == {"semantik-gateway"}


@pytest.mark.parametrize(
    ("rerank", "refused"),
    [
        ({"enabled": True}, "at '/gateway/rerank/modelPath': minLength: got 0, want 1"),
        ({"enabled": True, "modelPath": "/models/x"}, "at '/gateway/rerank/modelPath': '/models/x' does not match"),
        ({"enabled": True, "modelPath": "a/../../etc"}, "at '/gateway/rerank/modelPath': 'a/../../etc' does not match"),
        ({"candidates": 0}, "at '/gateway/rerank/candidates': minimum: got 0, want 1"),
        ({"candidates": 501}, "at '/gateway/rerank/candidates': maximum: got 501, want 500"),
        ({"batchSize": 2.5}, "at '/gateway/rerank/batchSize': got number, want integer"),
        ({"timeoutSeconds": 0}, "at '/gateway/rerank/timeoutSeconds': exclusiveMinimum: got 0, want 0"),
        ({"timeoutSeconds": "2s"}, "at '/gateway/rerank/timeoutSeconds': got string, want number"),
        ({"device": "cuda"}, "at '/gateway/rerank': additional properties 'device' not allowed"),
    ],
    ids=[
        "enabled-without-path",
        "absolute-path",
        "parent-segments",
        "no-candidates",
        "too-many-candidates",
        "fractional-batch",
        "zero-timeout",
        "timeout-string",
        "unknown-key",
    ],
)
def test_the_schema_refuses_bad_rerank_values(rerank: dict[str, Any], refused: str, tmp_path: Path) -> None:
    message = schema_refusal({"gateway": {"rerank": rerank}}, tmp_path)
    assert refused in message, message
