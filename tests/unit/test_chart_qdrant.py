"""qdrant.mode in the chart without a cluster: `statefulset` runs a Qdrant server in the release,
`external` points the gateway at one, `embedded` runs none and has the one gateway pod keep Qdrant's
local-mode store on its own claim, which the values schema guards (one replica, no autoscaler)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from semantik.core.settings import Settings
from tests.support.chart import CHART, env_of, find, helm, pod_spec, schema_refusal, template

EMBEDDED = ["qdrant.mode=embedded", "gateway.replicas=1"]


def qdrant_objects(objects: list[dict[str, Any]]) -> list[str]:
    return [
        f"{o['kind']} {o['metadata']['name']}"
        for o in objects
        if "qdrant" in o["metadata"]["name"] or o["metadata"]["labels"].get("app.kubernetes.io/component") == "qdrant"
    ]


def gateway_of(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The gateway Deployment, its pod spec and its container's environment."""
    deployment = find(objects, "Deployment", "-gateway")
    spec = pod_spec(deployment)
    return deployment, spec, env_of(spec["containers"][0], objects)


def test_statefulset_is_the_default_and_runs_a_qdrant_server() -> None:
    objects = template()
    assert sorted(qdrant_objects(objects)) == [
        "NetworkPolicy semantik-qdrant",
        "Secret semantik-qdrant",
        "Service semantik-qdrant",
        "StatefulSet semantik-qdrant",
    ]
    deployment, spec, env = gateway_of(objects)
    assert env["SEMANTIK_QDRANT_URL"] == "http://semantik-qdrant:6333"
    assert "SEMANTIK_QDRANT_PATH" not in env
    key = next(e for e in spec["containers"][0]["env"] if e["name"] == "SEMANTIK_QDRANT_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "semantik-qdrant", "key": "api-key"}
    assert deployment["spec"]["replicas"] == 2 and "strategy" not in deployment["spec"]
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim" and "gateway" in o["metadata"]["name"]]
    assert {"name": "data", "emptyDir": {}} in spec["volumes"]


def test_external_runs_no_qdrant_and_points_the_gateway_at_the_given_server() -> None:
    url = "https://q.example.com:6333"
    objects = template(set_values=["qdrant.mode=external", f"qdrant.external.url={url}", "qdrant.external.apiKey=k"])
    assert qdrant_objects(objects) == ["Secret semantik-qdrant-external"]
    _, spec, env = gateway_of(objects)
    assert env["SEMANTIK_QDRANT_URL"] == url
    key = next(e for e in spec["containers"][0]["env"] if e["name"] == "SEMANTIK_QDRANT_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "semantik-qdrant-external", "key": "api-key"}
    result = helm("template", "semantik", str(CHART), "--set", "qdrant.mode=external", check=False)
    assert result.returncode != 0 and "qdrant.external.url is required when qdrant.mode is external" in result.stderr


def test_embedded_keeps_the_store_in_the_one_gateway_pod_on_its_own_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = template(set_values=[*EMBEDDED, "qdrant.persistence.size=3Gi", "qdrant.persistence.storageClass=fast"])
    assert qdrant_objects(objects) == []
    deployment, spec, env = gateway_of(objects)
    # One writer: Qdrant's local mode locks its folder, so the old pod goes before the new one starts.
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not {"SEMANTIK_QDRANT_URL", "SEMANTIK_QDRANT_API_KEY"} & env.keys()
    claim = find(objects, "PersistentVolumeClaim", "-gateway-data")
    assert claim["metadata"]["name"] == "semantik-gateway-data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "semantik-gateway-data"}
    # The gateway's settings put the store on that volume, below the read-only root filesystem.
    for name in list(env):
        monkeypatch.setenv(name, env[name])
    settings = Settings()
    assert settings.qdrant_url is None
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert settings.resolved_qdrant_path.is_relative_to(mounts["data"])
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    # The notes (which `helm template` does not render) say where the vectors are.
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert 'eq .Values.qdrant.mode "embedded"' in notes and '"semantik.gatewayDataClaim"' in notes


def test_embedded_without_persistence_is_an_empty_dir() -> None:
    objects = template(set_values=[*EMBEDDED, "qdrant.persistence.enabled=false"])
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim" and "gateway" in o["metadata"]["name"]]
    _, spec, _ = gateway_of(objects)
    assert {"name": "data", "emptyDir": {}} in spec["volumes"]


def test_the_mode_rolls_the_gateway() -> None:
    def checksum(*set_values: str) -> str:
        deployment = find(template(set_values=set_values), "Deployment", "-gateway")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum("gateway.replicas=1") != checksum(*EMBEDDED)


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"qdrant": {"mode": "embedded"}}, "at '/gateway/replicas': value must be 1"),
        ({"qdrant": {"mode": "embedded"}, "gateway": {"replicas": 3}}, "at '/gateway/replicas': value must be 1"),
        (
            {"qdrant": {"mode": "embedded"}, "gateway": {"replicas": 1, "autoscaling": {"enabled": True}}},
            "at '/gateway/autoscaling/enabled': value must be false",
        ),
    ],
    ids=["default-replicas", "three-replicas", "autoscaling"],
)
def test_the_schema_refuses_a_second_gateway_in_embedded_mode(
    values: dict[str, Any], refused: str, tmp_path: Path
) -> None:
    """The message names both ways out: another mode, or one gateway pod."""
    message = schema_refusal(values, tmp_path)
    assert "'anyOf' failed" in message
    assert "at '/qdrant/mode': value must be one of 'statefulset', 'external'" in message, message
    assert refused in message, message


def test_the_old_switch_and_unknown_modes_are_refused() -> None:
    result = helm("template", "semantik", str(CHART), "--set", "qdrant.enabled=false", check=False)
    assert "at '/qdrant': additional properties 'enabled' not allowed" in result.stderr
    result = helm("template", "semantik", str(CHART), "--set", "qdrant.mode=local", check=False)
    assert "at '/qdrant/mode': value must be one of 'statefulset', 'external', 'embedded'" in result.stderr
