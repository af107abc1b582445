"""Principals over HTTP: scoped API keys made by admins over REST, and OIDC tokens mapped to grants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from semantik.core.access import Role
from semantik.core.context import open_semantik
from semantik.core.services.keys import create_key
from semantik.core.settings import OidcGrant, Settings
from semantik.gateway.app import create_app
from tests.integration.conftest import CountingEmbedder
from tests.integration.test_gateway import assert_error, create_and_index, open_client
from tests.support.oidc import AUDIENCE, ISSUER, Issuer, serve_jwks

GRANTS = {
    "editors": OidcGrant(role=Role.WRITE, collections=["handbook*"]),
    "readers": OidcGrant(role=Role.READ, collections=["*"]),
}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def secured(settings: Settings, issuer: Issuer, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "require_auth": True,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "oidc_jwks_file": issuer.write_jwks(tmp_path / "jwks.json"),
            "oidc_grants": GRANTS,
        }
    )


@pytest.fixture
async def admin_key(secured: Settings, embedder: CountingEmbedder) -> str:
    async with open_semantik(secured, embedder=embedder) as semantik:
        key, _ = await create_key(semantik, "root")
    return key


@pytest.fixture
async def client(secured: Settings, embedder: CountingEmbedder, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(create_app(secured, embedder=embedder)):
        client.headers.update(bearer(admin_key))
        yield client


async def test_an_admin_makes_a_scoped_key_over_rest_and_it_holds_to_its_scope(
    client: httpx.AsyncClient, keys_folder: Path
) -> None:
    await create_and_index(client, keys_folder, "handbook")
    await create_and_index(client, keys_folder, "private")

    made = await client.post("/api/v1/keys", json={"name": "bot", "role": "read", "collections": ["handbook*"]})
    assert made.status_code == 201, made.text
    secret = made.json()["key"]
    assert made.json()["role"] == "read" and made.json()["collections"] == ["handbook*"]
    listed = (await client.get("/api/v1/keys")).json()["items"]
    assert [item["name"] for item in listed] == ["root", "bot"]
    assert all("key" not in item for item in listed)  # the secret is shown once, at creation

    reader = bearer(secret)
    assert [c["name"] for c in (await client.get("/api/v1/collections", headers=reader)).json()["items"]] == [
        "handbook"
    ]
    found = await client.post("/api/v1/collections/handbook/search", json={"query": "rotate keys"}, headers=reader)
    assert found.status_code == 200 and found.json()["hits"]
    # Outside the scope: exactly what a missing collection answers.
    hidden = await client.post("/api/v1/collections/private/search", json={"query": "keys"}, headers=reader)
    missing = await client.post("/api/v1/collections/nowhere/search", json={"query": "keys"}, headers=reader)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"].replace("nowhere", "private")
    # Many collections: one the caller cannot read is an error naming the field, not silently dropped.
    both = await client.post(
        "/api/v1/search", json={"query": "keys", "collections": ["handbook", "private"]}, headers=reader
    )
    assert_error(both, 404, "not_found", "collections")
    # In scope but too weak a role.
    assert_error(await client.delete("/api/v1/collections/handbook", headers=reader), 403, "forbidden")
    assert_error(await client.post("/api/v1/collections/handbook/index", headers=reader), 403, "forbidden")
    assert_error(await client.get("/api/v1/keys", headers=reader), 403, "forbidden")
    assert_error(
        await client.post("/api/v1/collections", json={"name": "handbook-2"}, headers=reader), 403, "forbidden"
    )

    used = next(item for item in (await client.get("/api/v1/keys")).json()["items"] if item["name"] == "bot")
    assert used["last_used_at"] is not None

    assert (await client.delete(f"/api/v1/keys/{made.json()['id']}")).status_code == 204
    assert_error(await client.get("/api/v1/collections", headers=reader), 401, "unauthorized")
    revoked = next(item for item in (await client.get("/api/v1/keys")).json()["items"] if item["name"] == "bot")
    assert revoked["revoked"] is True


async def test_a_write_key_creates_only_inside_its_scope_and_an_expired_key_stops(
    client: httpx.AsyncClient, keys_folder: Path
) -> None:
    writer = (
        await client.post("/api/v1/keys", json={"name": "ci", "role": "write", "collections": ["team-a-*"]})
    ).json()["key"]
    created = await client.post(
        "/api/v1/collections", json={"name": "team-a-docs", "source_path": str(keys_folder)}, headers=bearer(writer)
    )
    assert created.status_code == 201, created.text
    assert_error(
        await client.post("/api/v1/collections", json={"name": "team-b-docs"}, headers=bearer(writer)),
        403,
        "forbidden",
    )
    started = await client.post("/api/v1/collections/team-a-docs/index", headers=bearer(writer))
    assert started.status_code == 202

    soon = datetime.now(UTC) + timedelta(seconds=2)
    short = await client.post("/api/v1/keys", json={"name": "short", "role": "read", "expires_at": soon.isoformat()})
    assert short.status_code == 201 and short.json()["expires_at"] is not None
    assert (await client.get("/api/v1/collections", headers=bearer(short.json()["key"]))).status_code == 200
    past = await client.post(
        "/api/v1/keys", json={"name": "past", "expires_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()}
    )
    assert_error(past, 422, "invalid_input", "expires_at")
    bad_scope = await client.post("/api/v1/keys", json={"name": "x", "collections": ["a/b"]})
    assert_error(bad_scope, 422, "invalid_input", "collections")
    bad_role = await client.post("/api/v1/keys", json={"name": "x", "role": "owner"})
    assert_error(bad_role, 422, "invalid_input", "role")

    await asyncio.sleep((soon - datetime.now(UTC)).total_seconds() + 0.5)
    expired = await client.get("/api/v1/collections", headers=bearer(short.json()["key"]))
    error = assert_error(expired, 401, "unauthorized")
    assert "expired" in error["message"]


async def test_oidc_tokens_map_their_groups_to_grants(
    client: httpx.AsyncClient, keys_folder: Path, issuer: Issuer
) -> None:
    await create_and_index(client, keys_folder, "handbook")
    await create_and_index(client, keys_folder, "private")

    editor = bearer(issuer.token({"groups": ["editors"], "email": "ed@example.com"}))
    listed = (await client.get("/api/v1/collections", headers=editor)).json()["items"]
    assert [item["name"] for item in listed] == ["handbook"]
    assert (await client.post("/api/v1/collections/handbook/index", headers=editor)).status_code == 202
    assert_error(await client.get("/api/v1/collections/private", headers=editor), 404, "not_found")
    assert_error(await client.get("/api/v1/keys", headers=editor), 403, "forbidden")

    # Two groups, two grants: write on handbook*, read elsewhere — never write everywhere.
    both = bearer(issuer.token({"groups": ["editors", "readers"]}))
    assert (await client.get("/api/v1/collections/private", headers=both)).status_code == 200
    assert_error(await client.delete("/api/v1/collections/private", headers=both), 403, "forbidden")

    # A single string claim counts too; a group that maps to nothing sees nothing.
    assert (
        await client.get("/api/v1/collections/private", headers=bearer(issuer.token({"groups": "readers"})))
    ).status_code == 200
    stranger = bearer(issuer.token({"groups": ["visitors"]}))
    assert (await client.get("/api/v1/collections", headers=stranger)).json()["items"] == []

    for token, why in [
        (Issuer(kid=issuer.kid).token({"groups": ["readers"]}), "Signature verification failed"),
        (issuer.token({"groups": ["readers"]}, lifetime=-120), "expired"),
        (issuer.token({"groups": ["readers"]}, aud="another-service"), "audience"),
        (issuer.token({"groups": ["readers"]}, iss="https://elsewhere.test"), "issuer"),
        ("not.a.token", "invalid token"),
    ]:
        error = assert_error(await client.get("/api/v1/collections", headers=bearer(token)), 401, "unauthorized")
        assert why.lower() in error["message"].lower(), (why, error)


async def test_oidc_keys_come_from_the_issuers_jwks_url(
    secured: Settings, embedder: CountingEmbedder, issuer: Issuer, keys_folder: Path, admin_key: str
) -> None:
    with serve_jwks(issuer) as url:
        online = secured.model_copy(update={"oidc_jwks_file": None, "oidc_jwks_url": url})
        async for client in open_client(create_app(online, embedder=embedder)):
            client.headers.update(bearer(admin_key))
            await create_and_index(client, keys_folder, "handbook")
            reader = bearer(issuer.token({"groups": ["readers"]}))
            assert (await client.get("/api/v1/collections/handbook", headers=reader)).status_code == 200
            forged = bearer(Issuer(kid=issuer.kid).token({"groups": ["readers"]}))
            assert_error(await client.get("/api/v1/collections/handbook", headers=forged), 401, "unauthorized")


def test_oidc_settings_must_be_whole(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AUDIENCE"):
        Settings(data_dir=tmp_path, oidc_issuer=ISSUER, oidc_jwks_url="https://x/jwks")
    with pytest.raises(ValidationError, match="exactly one"):
        Settings(data_dir=tmp_path, oidc_issuer=ISSUER, oidc_audience=AUDIENCE)
    with pytest.raises(ValidationError, match="asymmetric"):
        Settings(
            data_dir=tmp_path,
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_url="https://x/jwks",
            oidc_algorithms=["HS256"],
        )
    with pytest.raises(ValidationError, match="collections"):
        Settings(data_dir=tmp_path, oidc_grants={"g": {"role": "read", "collections": ["a/b"]}})
