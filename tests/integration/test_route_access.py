"""Every route of the gateway by every kind of caller, from the app's own route table.

A route added without a row here fails `test_every_route_has_a_row`, so no route ships unchecked. The
expected status comes from the rule (scope first, then role), written out here apart from the code under test.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from sqlalchemy import update
from starlette.routing import Route

from semantik.core.access import Role
from semantik.core.context import open_semantik
from semantik.core.db.models import ApiKey
from semantik.core.services.keys import create_key
from semantik.core.settings import OidcGrant, Settings
from semantik.gateway.app import create_app
from semantik.gateway.ui.session import CSRF_FIELD, SESSION_COOKIE, csrf_token
from tests.integration.conftest import CountingEmbedder
from tests.support.corpus import KEYS_MD
from tests.support.oidc import AUDIENCE, ISSUER, Issuer
from tests.support.servers import serve_in_process

INTERNAL_TOKEN = "route-walk-internal-token"
HOME = "handbook"  # the collection every collection route is asked about


class Access(enum.Enum):
    PUBLIC = "public"  # no credentials needed
    INTERNAL = "internal"  # the internal token only
    LIST = "list"  # any principal; the answer is filtered by scope
    GLOBAL = "global"  # the role over every collection ('*')
    COLLECTION = "collection"  # the role on an existing collection
    NEW = "new"  # the role on a collection about to be made


@dataclass(frozen=True)
class Row:
    access: Access
    ok: int  # the status an allowed caller gets
    role: str = "read"
    fresh: bool = False  # the call destroys or starts something: each caller gets its own target
    body: Callable[[Target], Any] | None = None
    query: str = ""
    page: bool = False  # a web page: the credential goes in the session cookie; none valid -> 303 to sign-in


@dataclass
class Target:
    collection: str
    operation_id: str
    key_id: int
    folder: Path


ROWS: dict[tuple[str, str], Row] = {
    ("GET", "/healthz"): Row(Access.PUBLIC, 200),
    ("GET", "/readyz"): Row(Access.PUBLIC, 200),
    ("GET", "/metrics"): Row(Access.PUBLIC, 200),
    ("GET", "/openapi.json"): Row(Access.PUBLIC, 200),
    # The web UI. Sign-in pages are public; posting the sign-in form without its CSRF token is refused for
    # all; the walk's gateway has no OIDC client, so its sign-in routes are not found.
    ("GET", "/sign-in"): Row(Access.PUBLIC, 200, page=True),
    ("POST", "/sign-in"): Row(Access.PUBLIC, 403, page=True),
    ("GET", "/sign-in/oidc"): Row(Access.PUBLIC, 404, page=True),
    ("GET", "/sign-in/oidc/callback"): Row(Access.PUBLIC, 404, page=True),
    ("GET", "/"): Row(Access.LIST, 200, page=True),
    ("POST", "/sign-out"): Row(Access.LIST, 303, page=True),
    ("GET", "/collections/{name}"): Row(Access.COLLECTION, 200, page=True),
    ("GET", "/collections/{name}/chunk"): Row(Access.COLLECTION, 200, query="?path=keys.md&index=0", page=True),
    ("POST", "/collections/{name}/index"): Row(Access.COLLECTION, 303, "write", fresh=True, page=True),
    ("GET", "/progress/{operation_id}"): Row(Access.COLLECTION, 200, page=True),
    ("GET", "/api/v1/collections"): Row(Access.LIST, 200),
    ("POST", "/api/v1/collections"): Row(
        Access.NEW, 201, "write", body=lambda t: {"name": t.collection, "source_path": str(t.folder)}
    ),
    ("GET", "/api/v1/collections/{name}"): Row(Access.COLLECTION, 200),
    ("DELETE", "/api/v1/collections/{name}"): Row(Access.COLLECTION, 204, "write", fresh=True),
    ("GET", "/api/v1/collections/{name}/documents"): Row(Access.COLLECTION, 200),
    ("GET", "/api/v1/collections/{name}/chunk"): Row(Access.COLLECTION, 200, query="?path=keys.md&index=0"),
    ("POST", "/api/v1/collections/{name}/search"): Row(Access.COLLECTION, 200, body=lambda t: {"query": "keys"}),
    ("POST", "/api/v1/search"): Row(
        Access.COLLECTION, 200, body=lambda t: {"query": "keys", "collections": [t.collection]}
    ),
    ("POST", "/api/v1/collections/{name}/index"): Row(Access.COLLECTION, 202, "write", fresh=True),
    ("GET", "/api/v1/operations/{operation_id}"): Row(Access.COLLECTION, 200),
    # The operation has ended: an allowed caller gets past authorisation to the conflict.
    ("POST", "/api/v1/operations/{operation_id}/cancel"): Row(Access.COLLECTION, 409, "write"),
    ("GET", "/api/v1/operations/{operation_id}/events"): Row(Access.COLLECTION, 200),
    ("POST", "/api/v1/keys"): Row(Access.GLOBAL, 201, "admin", body=lambda t: {"name": "made-by-walk"}),
    ("GET", "/api/v1/keys"): Row(Access.GLOBAL, 200, "admin"),
    ("DELETE", "/api/v1/keys/{key_id}"): Row(Access.GLOBAL, 204, "admin", fresh=True),
    ("GET", "/api/v1/audit"): Row(Access.GLOBAL, 200, "admin"),
    # A WebSocket answers with close codes 4000 + the HTTP status; an allowed caller gets the `end` event.
    ("WS", "/api/v1/operations/{operation_id}/ws"): Row(Access.COLLECTION, 200),
}
INTERNAL_PREFIX = "/internal/v1/"

# Who asks: (role, scope pattern) for the principals that hold a grant.
GRANTS: dict[str, tuple[str, str]] = {
    "key scoped to another collection": ("admin", "other*"),
    "read key": ("read", "handbook*"),
    "write key": ("write", "handbook*"),
    "admin key": ("admin", "*"),
    "valid JWT": ("write", "handbook*"),
}
UNAUTHENTICATED = ("no credentials", "expired key", "internal token", "JWT with a bad signature")
CALLERS = (*UNAUTHENTICATED[:2], *GRANTS, *UNAUTHENTICATED[2:])
ROLE_ORDER = ("read", "write", "admin")


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if isinstance(route, APIWebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, APIRoute | Route):
            found.update((method, route.path) for method in route.methods or () if method != "HEAD")
    return found


def expected(method: str, path: str, row: Row, caller: str, collection: str) -> int | None:
    """The status `caller` must get; None: anything but a refusal (an internal call with made-up ids)."""
    if row.access is Access.PUBLIC:
        return row.ok
    if path.startswith(INTERNAL_PREFIX):
        return None if caller == "internal token" else 401
    if caller in UNAUTHENTICATED:
        return 303 if row.page else 401
    role, pattern = GRANTS[caller]
    strong_enough = ROLE_ORDER.index(role) >= ROLE_ORDER.index(row.role)
    if row.access is Access.LIST:
        return row.ok
    if row.access is Access.GLOBAL:
        return row.ok if pattern == "*" and strong_enough else 403
    in_scope = fnmatchcase(collection, pattern)
    if row.access is Access.NEW:
        return row.ok if in_scope and strong_enough else 403
    if not in_scope:
        return 404
    return row.ok if strong_enough else 403


@dataclass
class Gateway:
    url: str
    app: FastAPI
    credentials: dict[str, dict[str, str]]
    admin: dict[str, str]
    folder: Path

    async def fresh(self, client: httpx.AsyncClient, serial: int) -> Target:
        """A collection, an ended operation and a key of their own, for a call that uses them up."""
        name = f"{HOME}-{serial}"
        created = await client.post(
            "/api/v1/collections", json={"name": name, "source_path": str(self.folder)}, headers=self.admin
        )
        assert created.status_code == 201, created.text
        key = await client.post("/api/v1/keys", json={"name": f"walk-{serial}"}, headers=self.admin)
        return Target(name, "", key.json()["id"], self.folder)


@pytest.fixture
async def gateway(tmp_path: Path, embedder: CountingEmbedder) -> AsyncIterator[Gateway]:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "keys.md").write_text(KEYS_MD)
    issuer = Issuer()
    settings = Settings(
        data_dir=tmp_path / "data",
        source_roots=[tmp_path],
        require_auth=True,
        internal_token=INTERNAL_TOKEN,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_file=issuer.write_jwks(tmp_path / "jwks.json"),
        oidc_grants={"editors": OidcGrant(role=Role.WRITE, collections=["handbook*"])},
    )
    credentials: dict[str, dict[str, str]] = {"no credentials": {}}
    async with open_semantik(settings, embedder=embedder) as semantik:
        for caller, (role, pattern) in GRANTS.items():
            if caller != "valid JWT":
                key, _ = await create_key(semantik, caller, role=Role(role), scopes=(pattern,))
                credentials[caller] = {"Authorization": f"Bearer {key}"}
        expired, view = await create_key(semantik, "expired", expires_at=datetime.now(UTC) + timedelta(hours=1))
        async with semantik.sessions.begin() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.id == view.id).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
    credentials["expired key"] = {"Authorization": f"Bearer {expired}"}
    credentials["internal token"] = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    credentials["valid JWT"] = {"Authorization": f"Bearer {issuer.token({'groups': ['editors']})}"}
    forged = Issuer(kid=issuer.kid).token({"groups": ["editors"]})
    credentials["JWT with a bad signature"] = {"Authorization": f"Bearer {forged}"}

    app = create_app(settings, embedder=embedder)
    async with serve_in_process(app) as url:
        yield Gateway(url, app, credentials, credentials["admin key"], folder)


def test_every_route_has_a_row(embedder: CountingEmbedder, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, internal_token=INTERNAL_TOKEN), embedder=embedder)
    routes = routes_of(app)
    public = {route for route in routes if not route[1].startswith(INTERNAL_PREFIX)}
    missing = public - ROWS.keys()
    stale = ROWS.keys() - public
    assert not missing, f"routes without a row in ROWS (say who may call them): {sorted(missing)}"
    assert not stale, f"rows for routes that no longer exist: {sorted(stale)}"
    assert any(path.startswith(INTERNAL_PREFIX) for _, path in routes)


async def test_every_route_answers_every_caller_as_the_rule_says(gateway: Gateway, subtests: Any) -> None:
    serial = itertools.count()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        # The shared target: an indexed collection and its ended operation.
        home = Target(HOME, "", 0, gateway.folder)
        created = await client.post(
            "/api/v1/collections", json={"name": HOME, "source_path": str(gateway.folder)}, headers=gateway.admin
        )
        assert created.status_code == 201, created.text
        started = await client.post(f"/api/v1/collections/{HOME}/index", headers=gateway.admin)
        home.operation_id = started.json()["operation_id"]
        for _ in range(600):
            operation = await client.get(f"/api/v1/operations/{home.operation_id}", headers=gateway.admin)
            if operation.json()["status"] == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert operation.json()["status"] == "succeeded", operation.text

        routes = sorted(routes_of(gateway.app))
        for (method, path), caller in itertools.product(routes, CALLERS):
            row = ROWS.get((method, path), Row(Access.INTERNAL, 0))
            target = await gateway.fresh(client, next(serial)) if row.fresh else home
            if row.access is Access.NEW:
                target = Target(f"{HOME}-new-{next(serial)}", "", 0, gateway.folder)
            elif row.access is Access.INTERNAL:
                # Made-up ids: the internal API must refuse or answer without touching the real collection.
                target = Target("absent", "", 0, gateway.folder)
            url = (
                path.format(
                    name=target.collection,
                    operation_id=target.operation_id or "00000000-0000-0000-0000-000000000000",
                    key_id=target.key_id,
                    number=0,
                )
                + row.query
            )
            want = expected(method, path, row, caller, target.collection)
            with subtests.test(route=f"{method} {path}", caller=caller):
                if method == "WS":
                    assert want is not None
                    await check_socket(gateway.url + url, gateway.credentials[caller], want)
                    continue
                if row.page:
                    response = await page_request(client, method, url, gateway.credentials[caller])
                else:
                    response = await client.request(
                        method,
                        url,
                        headers=gateway.credentials[caller],
                        json=row.body(target) if row.body else None,
                    )
                if want is None:
                    assert response.status_code not in (401, 403), response.text
                else:
                    assert response.status_code == want, f"{method} {url} as {caller}: {response.text[:300]}"
                if row.page and caller in UNAUTHENTICATED and row.access is not Access.PUBLIC:
                    assert response.headers["location"].startswith("/sign-in"), response.headers
                elif row.page and want in (403, 404):
                    assert ("Not found" if want == 404 else "Not allowed") in response.text
                elif want in (401, 403, 404) and response.status_code == want:
                    assert response.json()["error"]["code"] in ("unauthorized", "forbidden", "not_found")


async def page_request(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    """A page's request as a browser sends it: the credential in the session cookie and, for a form, the
    session's CSRF token and an Origin of the gateway's own."""
    credential = headers.get("Authorization", "").removeprefix("Bearer ")
    cookie = {"Cookie": f"{SESSION_COOKIE}={credential}"} if credential else {}
    if method == "GET":
        return await client.get(url, headers=cookie)
    origin = {"Origin": str(client.base_url).rstrip("/")}
    return await client.post(url, headers={**cookie, **origin}, data={CSRF_FIELD: csrf_token(credential)})


async def check_socket(url: str, headers: dict[str, str], want: int) -> None:
    async with websockets.connect(url.replace("http://", "ws://"), additional_headers=headers, open_timeout=30) as ws:
        if want != 200:
            with pytest.raises(websockets.ConnectionClosed) as refused:
                await asyncio.wait_for(ws.recv(), timeout=30)
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 4000 + want, refused.value.rcvd
            return
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    assert message["event"] == "end" and message["data"]["status"] == "succeeded", message
