"""gateway.oidc.login and gateway.ui in the chart: the settings they give the gateway validate and mean what
was written; the client secret comes from its Secret; the schema refuses what the gateway would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart import find, pod_spec, schema_refusal, template
from tests.unit.test_chart_oidc import OIDC, gateway_env, settings_from

LOGIN = {
    "clientId": "semantik-ui",
    "authorizationUrl": "https://login.example.com/realms/team/auth",
    "tokenUrl": "https://login.example.com/realms/team/token",
    "redirectUrl": "https://search.example.com/sign-in/oidc/callback",
    "clientSecret": {"name": "semantik-oidc", "key": "secret"},
}


def test_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = gateway_env({}, tmp_path)
    assert not [name for name in env if name.startswith(("SEMANTIK_UI_", "SEMANTIK_OIDC_CLIENT"))]
    settings = settings_from(env, monkeypatch)
    assert settings.oidc_client_id is None and settings.ui_source_urls == {} and settings.ui_cookie_secure is None


def test_sign_in_through_the_issuer_and_source_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values: dict[str, Any] = {
        "gateway": {
            "oidc": {**OIDC, "login": LOGIN},
            "ui": {
                "sourceUrls": {
                    "handbook": "https://git.example.com/hb/blob/main",
                    "team-*": "https://files.example.com",
                }
            },
        }
    }
    env = gateway_env(values, tmp_path)
    assert env["SEMANTIK_OIDC_CLIENT_SECRET"] == "secret"  # env_of reads secretKeyRefs as this placeholder
    settings = settings_from(env, monkeypatch)
    assert settings.oidc_client_id == "semantik-ui"
    assert (settings.oidc_authorization_url, settings.oidc_token_url) == (LOGIN["authorizationUrl"], LOGIN["tokenUrl"])
    assert settings.oidc_redirect_url == LOGIN["redirectUrl"]
    assert settings.ui_source_urls == values["gateway"]["ui"]["sourceUrls"]

    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    container = pod_spec(find(template(tmp_path / "values.yaml"), "Deployment", "-gateway"))["containers"][0]
    secret = next(e for e in container["env"] if e["name"] == "SEMANTIK_OIDC_CLIENT_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "semantik-oidc", "key": "secret"}


def test_cookies_are_secure_behind_an_ingress_with_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingress = {"enabled": True, "tls": [{"secretName": "search-tls", "hosts": ["semantik.example.com"]}]}
    assert settings_from(gateway_env({"gateway": {"ingress": ingress}}, tmp_path), monkeypatch).ui_cookie_secure is True
    explicit = {"gateway": {"ingress": ingress, "ui": {"secureCookies": False}}}
    assert settings_from(gateway_env(explicit, tmp_path), monkeypatch).ui_cookie_secure is False


@pytest.mark.parametrize(
    "gateway",
    [
        {"oidc": {**OIDC, "login": {"clientId": "semantik-ui"}}},  # no endpoints
        {"oidc": {**OIDC, "login": {**LOGIN, "tokenUrl": "javascript:alert(1)"}}},
        {"ui": {"sourceUrls": {"handbook": "javascript:alert(1)"}}},
        {"ui": {"sourceUrls": {"handbook": 'https://x.example.com/"onmouseover'}}},
        {"ui": {"secureCookies": "yes"}},
    ],
)
def test_the_schema_refuses_what_the_gateway_would(gateway: dict[str, Any], tmp_path: Path) -> None:
    schema_refusal({"gateway": gateway}, tmp_path)
