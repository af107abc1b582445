"""gateway.oidc in the chart: off by default, on it gives the gateway settings that validate and map the
grants as written; the values schema refuses an issuer without its audience and keys, and bad grants."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from semantik.core.access import Role
from semantik.core.settings import Settings
from tests.support.chart import env_of, find, pod_spec, schema_refusal, template

OIDC = {
    "issuer": "https://login.example.com/realms/team",
    "audience": "semantik",
    "jwksUrl": "https://login.example.com/realms/team/certs",
    "grants": {
        "search-admins": {"role": "admin", "collections": ["*"]},
        "team-a": {"role": "write", "collections": ["team-a-*"]},
    },
}


def gateway_env(values: dict[str, Any], directory: Path) -> dict[str, str]:
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    objects = template(path)
    return env_of(pod_spec(find(objects, "Deployment", "-gateway"))["containers"][0], objects)


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("SEMANTIK_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = gateway_env({}, tmp_path)
    assert not [name for name in env if name.startswith("SEMANTIK_OIDC_")]
    assert settings_from(env, monkeypatch).oidc_issuer is None


def test_on_the_gateway_accepts_the_issuers_tokens_with_the_grants_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(gateway_env({"gateway": {"oidc": OIDC}}, tmp_path), monkeypatch)
    assert (settings.oidc_issuer, settings.oidc_audience) == (OIDC["issuer"], "semantik")
    assert settings.oidc_jwks_url == OIDC["jwksUrl"] and settings.oidc_claim == "groups"
    assert {name: (grant.role, grant.collections) for name, grant in settings.oidc_grants.items()} == {
        "search-admins": (Role.ADMIN, ["*"]),
        "team-a": (Role.WRITE, ["team-a-*"]),
    }


@pytest.mark.parametrize(
    "oidc",
    [
        {"issuer": "https://login.example.com"},  # no audience, no keys
        {**OIDC, "jwksUrl": ""},
        {**OIDC, "grants": {"g": {"role": "owner", "collections": ["*"]}}},
        {**OIDC, "grants": {"g": {"role": "read", "collections": ["a/b"]}}},
        {**OIDC, "grants": {"g": {"role": "read", "collections": []}}},
    ],
)
def test_the_schema_refuses_what_the_gateway_would(oidc: dict[str, Any], tmp_path: Path) -> None:
    schema_refusal({"gateway": {"oidc": oidc}}, tmp_path)
