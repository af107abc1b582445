"""The web UI over HTTP, as a browser with JavaScript off (or a hostile page) would meet it: security headers
on every response, the session cookie's flags, CSRF on every form, the OIDC flow's state and PKCE, and a
search that needs no script. The real-browser tests are in tests/browser/test_web_ui.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from semantik.core.access import Role
from semantik.core.context import Semantik
from semantik.core.services.keys import create_key
from semantik.core.settings import Settings
from semantik.gateway.app import create_app
from semantik.gateway.ui.headers import CONTENT_SECURITY_POLICY
from tests.integration.conftest import CountingEmbedder
from tests.support.corpus import KEYS_MD, VACATION_TXT
from tests.support.oidc import AUDIENCE, ISSUER, Issuer, LoginProvider, serve_login

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def _app_client(
    settings: Settings, embedder: CountingEmbedder
) -> AsyncIterator[tuple[httpx.AsyncClient, Semantik]]:
    app = create_app(settings, embedder=embedder)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client, app.state.semantik


async def _indexed(client: httpx.AsyncClient, folder: Path, headers: dict[str, str]) -> None:
    created = await client.post(
        "/api/v1/collections", json={"name": "handbook", "source_path": str(folder)}, headers=headers
    )
    assert created.status_code == 201, created.text
    operation = (await client.post("/api/v1/collections/handbook/index", headers=headers)).json()["operation_id"]
    for _ in range(600):
        status = (await client.get(f"/api/v1/operations/{operation}", headers=headers)).json()["status"]
        if status == "succeeded":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"indexing ended {status}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text(KEYS_MD)
    (docs / "vacation.txt").write_text(VACATION_TXT)
    return docs


@pytest.fixture
async def local(tmp_path: Path, folder: Path, embedder: CountingEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway on loopback, as `semantik serve` runs by default: no sign-in."""
    settings = Settings(
        data_dir=tmp_path / "data", source_roots=[tmp_path], ui_source_urls={"hand*": "https://git.example.com/hb"}
    )
    async with _app_client(settings, embedder) as (client, _):
        await _indexed(client, folder, {})
        yield client


@pytest.fixture
async def guarded(
    tmp_path: Path, folder: Path, embedder: CountingEmbedder
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A gateway that requires credentials, and a write key for its collection."""
    settings = Settings(data_dir=tmp_path / "data", source_roots=[tmp_path], require_auth=True)
    async with _app_client(settings, embedder) as (client, semantik):
        admin, _ = await create_key(semantik, "admin")
        await _indexed(client, folder, {"Authorization": f"Bearer {admin}"})
        writer, _ = await create_key(semantik, "writer", role=Role.WRITE, scopes=("handbook",))
        yield client, writer, admin


async def test_every_response_carries_the_security_headers(local: httpx.AsyncClient) -> None:
    for path in (
        "/",
        "/?q=keys",
        "/sign-in",
        "/static/ui.js",
        "/static/ui.css",
        "/api/v1/collections",
        "/nowhere",
        "/healthz",
    ):
        response = await local.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["script-src"] == "'self'" and "unsafe" not in CONTENT_SECURITY_POLICY
    assert policy["frame-ancestors"] == "'none'"
    page = (await local.get("/?q=keys")).text
    scripts = re.findall(r"<script[^>]*>", page)
    assert len(scripts) == 1 and re.fullmatch(r'<script src="(/static/ui\.js\?v=[0-9a-f]{12})" defer>', scripts[0])
    # Assets named by their digest are kept by the browser (no revalidation before the first paint).
    versioned = await local.get(scripts[0].split('"')[1])
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "immutable" not in (await local.get("/static/ui.js?v=stale")).headers.get("cache-control", "")
    assert not re.search(r"<[^>]+\son[a-z]+=", page), "no inline event handler on any element"


async def test_search_works_with_javascript_off(local: httpx.AsyncClient) -> None:
    response = await local.get("/", params={"q": "how long are backups kept", "mode": "", "fusion": "rrf"})
    assert response.status_code == 200
    first = re.search(r'<h3 class="path"[^>]*>\s*<a class="open" href="([^"]+)">([^<]+)</a>', response.text)
    assert first is not None and first[2] == "keys.md"
    assert "<mark>" in response.text and 'href="https://git.example.com/hb/keys.md"' in response.text
    chunk = await local.get(first[1].replace("&amp;", "&"))
    assert chunk.status_code == 200 and "Nightly backups of the Postgres database" in re.sub(r"<[^>]+>", "", chunk.text)

    assert "<mark>backups</mark>" in chunk.text.lower()  # the query's words, marked in the whole chunk

    filtered = await local.get("/", params={"q": "leave per year", "ext": "md"})
    assert "vacation.txt" not in filtered.text
    bad = await local.get("/", params={"q": "x", "mode": "psychic"})
    assert bad.status_code == 422 and 'data-field="mode"' in bad.text


async def test_sign_in_keeps_the_key_in_a_strict_httponly_cookie(guarded: tuple[httpx.AsyncClient, str, str]) -> None:
    client, key, admin = guarded
    assert (await client.get("/")).headers["location"] == "/sign-in"
    form = await client.get("/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    login_cookie = form.headers["set-cookie"]
    assert "HttpOnly" in login_cookie and "SameSite=strict" in login_cookie

    # A page of another site cannot sign a browser in: no token, a wrong one, or another Origin.
    for data, headers in (
        ({"api_key": key}, {}),
        ({"api_key": key, "csrf": "guess"}, {}),
        ({"api_key": key, "csrf": token[1]}, {"Origin": "https://evil.example.com"}),
        ({"api_key": key, "csrf": token[1]}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        refused = await client.post("/sign-in", data=data, headers=headers)
        assert refused.status_code == 403 and 'data-field="csrf"' in refused.text
        assert "semantik_session" not in refused.headers.get("set-cookie", "")

    wrong = await client.post("/sign-in", data={"api_key": key[:-2] + "xx", "csrf": token[1]})
    assert wrong.status_code == 401 and "semantik_session" not in client.cookies
    token = CSRF.search(wrong.text)  # each form the page renders comes with a fresh token
    assert token is not None

    signed_in = await client.post(
        "/sign-in", data={"api_key": key, "csrf": token[1]}, headers={"Origin": "http://gateway.test"}
    )
    assert signed_in.status_code == 200
    session = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("semantik_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    assert key not in str(signed_in.url) and key not in signed_in.text
    page = await client.get("/")
    assert page.status_code == 200 and "key:" in page.text

    # Every state-changing form needs the session's token.
    page_token = CSRF.search(page.text)
    assert page_token is not None
    assert (await client.post("/collections/handbook/index", data={})).status_code == 403
    assert (await client.post("/collections/handbook/index", data={"csrf": token[1]})).status_code == 403
    assert (await client.post("/sign-out", data={"csrf": "nope"})).status_code == 403
    assert (await client.get("/")).status_code == 200  # still signed in
    started = await client.post("/collections/handbook/index", data={"csrf": page_token[1]})
    assert started.status_code == 303 and started.headers["location"] == "/collections/handbook#progress"

    out = await client.post("/sign-out", data={"csrf": page_token[1]})
    assert out.status_code == 303 and out.headers["location"] == "/sign-in?reason=signed-out"
    assert "semantik_session" not in client.cookies
    assert (await client.get("/")).headers["location"] == "/sign-in"

    trail = (await client.get("/api/v1/audit", headers={"Authorization": f"Bearer {admin}"})).json()["items"]
    seen = [
        (e["action"], e["outcome"], e["principal"])
        for e in reversed(trail)
        if not e["action"].startswith("collection.create")
    ]
    assert ("session.sign_in", "denied", "anonymous") in seen  # the wrong key
    assert [s for s in seen if s[1] == "succeeded"][-3:] == [
        ("session.sign_in", "succeeded", "key:2 writer"),
        ("collection.index", "succeeded", "key:2 writer"),
        ("session.sign_out", "succeeded", "key:2 writer"),
    ]


async def test_the_oidc_flow_checks_state_and_pkce(tmp_path: Path, embedder: CountingEmbedder) -> None:
    issuer = Issuer()
    with serve_login(LoginProvider(issuer, client_id=AUDIENCE)) as provider:
        settings = Settings(
            data_dir=tmp_path / "data",
            require_auth=True,
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_file=issuer.write_jwks(tmp_path / "jwks.json"),
            oidc_client_id=AUDIENCE,
            oidc_authorization_url=f"{provider.url}/authorize",
            oidc_token_url=f"{provider.url}/token",
        )
        async with _app_client(settings, embedder) as (client, _):
            start = await client.get("/sign-in/oidc")
            assert start.status_code == 303
            asked = parse_qs(urlsplit(start.headers["location"]).query)
            assert asked["code_challenge_method"] == ["S256"] and asked["client_id"] == [AUDIENCE]
            assert asked["redirect_uri"] == ["http://gateway.test/sign-in/oidc/callback"]
            flow_cookie = client.cookies["semantik_oidc_flow"]

            async with httpx.AsyncClient() as browser:
                back = await browser.get(start.headers["location"])
            callback = urlsplit(back.headers["location"])
            code, state = parse_qs(callback.query)["code"][0], parse_qs(callback.query)["state"][0]

            # A callback whose state is not the one this browser started is refused, before any exchange.
            forged = await client.get("/sign-in/oidc/callback", params={"code": code, "state": "forged"})
            assert forged.status_code == 401 and 'data-field="state"' in forged.text
            # A stolen code without the browser's PKCE verifier is refused by the issuer.
            state_part, _, nonce = flow_cookie.split(".")
            client.cookies.set("semantik_oidc_flow", f"{state_part}.stolen-verifier.{nonce}", path="/sign-in/oidc")
            stolen = await client.get("/sign-in/oidc/callback", params={"code": code, "state": state})
            assert stolen.status_code == 401
            assert provider.refused == ["wrong PKCE verifier"]
            assert "semantik_session" not in client.cookies


async def test_a_chunk_whole_over_the_api(local: httpx.AsyncClient) -> None:
    chunk = await local.get(
        "/api/v1/collections/handbook/chunk", params={"path": "keys.md", "index": 0, "q": "rotating keys"}
    )
    assert chunk.status_code == 200, chunk.text
    body = chunk.json()
    assert body["path"] == "keys.md" and body["text"].startswith("# Operations handbook")
    marked = {body["text"][start:end].lower() for start, end in body["highlights"]}
    assert {"rotating", "keys", "key"} <= marked, marked
    missing = await local.get("/api/v1/collections/handbook/chunk", params={"path": "keys.md", "index": 99})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "path"
    elsewhere = await local.get("/api/v1/collections/handbook/chunk", params={"path": "../etc/passwd", "index": 0})
    assert elsewhere.status_code == 404


async def test_pages_behind_a_path_prefix_link_and_redirect_under_it(
    tmp_path: Path, folder: Path, embedder: CountingEmbedder
) -> None:
    """An Ingress that mounts the gateway at /search (with uvicorn's --root-path): every link, redirect and
    cookie stays under the prefix."""
    settings = Settings(data_dir=tmp_path / "data", source_roots=[tmp_path], require_auth=True)
    app = create_app(settings, embedder=embedder)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path="/search")
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            assert (await client.get("/search/")).headers["location"] == "/search/sign-in"
            form = await client.get("/search/sign-in")
            assert 'action="/search/sign-in"' in form.text and 'href="/search/static/ui.css?v=' in form.text
            assert "Path=/search/sign-in" in form.headers["set-cookie"]
