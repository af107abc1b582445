"""The search page in a real Chromium: a person signs in, searches, filters, opens a chunk, watches an index
operation to its end and signs out; hostile document text runs nothing; scope and expiry hold.

The gateway serves on this test's event loop (it holds the database pool), so every browser step runs in
a worker thread (`steps`) while the loop keeps answering the browser. Screenshots of each main screen go to
.artifacts/screenshots/ (or $SEMANTIK_SCREENSHOTS_DIR) for a reviewer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import update

from semantik.core.access import Role
from semantik.core.context import Semantik
from semantik.core.db.models import ApiKey
from semantik.core.embedding import Embedder, Embeddings, TextKind
from semantik.core.services.keys import create_key
from semantik.core.settings import OidcGrant, Settings
from semantik.gateway.app import create_app
from tests.integration.conftest import CountingEmbedder
from tests.support.browser import BrowserTools, axe_violations, console_errors, save_screenshot
from tests.support.corpus import KEYS_MD, ONCALL_HTML, VACATION_TXT
from tests.support.oidc import AUDIENCE, ISSUER, Issuer, LoginProvider, serve_login
from tests.support.servers import serve_in_process

T = TypeVar("T")
WAIT = 60.0
SOURCE_BASE = "https://git.example.com/handbook/blob/main"
HOSTILE_MD = """# Release notes

<script>window.pwned = "script"; document.title = "pwned";</script>
<img src="x" onerror="window.pwned = 'onerror'">
<a href="javascript:window.pwned='link'" onclick="window.pwned='click'">quarterly rotation schedule</a>
<svg onload="window.pwned = 'svg'"></svg>
"><script>window.pwned = "attribute"</script>
"""
DEPLOY_MD = """# Deploying

## Rolling out a release

Tag the release, let the pipeline build the images, then roll out to staging before production.
"""


class GatedEmbedder(CountingEmbedder):
    """The real embedder, whose document batches wait while the gate is closed: an index operation then
    stays running long enough for the page to connect to its progress stream, whatever the machine's speed."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def embed(self, texts: Sequence[str], kind: TextKind = TextKind.DOCUMENT) -> Embeddings:
        if kind is TextKind.DOCUMENT and not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await super().embed(texts, kind)


@dataclass
class Site:
    url: str
    semantik: Semantik
    embedder: GatedEmbedder
    keys: dict[str, str]
    provider: LoginProvider


@pytest.fixture
async def site(tmp_path: Path, real_embedder: Embedder) -> AsyncIterator[Site]:
    handbook = tmp_path / "handbook"
    (handbook / "guides").mkdir(parents=True)
    (handbook / "keys.md").write_text(KEYS_MD)
    (handbook / "oncall.html").write_text(ONCALL_HTML)
    (handbook / "vacation.txt").write_text(VACATION_TXT)
    (handbook / "guides" / "deploy.md").write_text(DEPLOY_MD)
    (handbook / "release-notes.md").write_text(HOSTILE_MD)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "plans.md").write_text("# Acquisition plans\n\nThe key rotation vendor will be acquired in March.\n")

    issuer = Issuer()
    embedder = GatedEmbedder(real_embedder)
    with serve_login(LoginProvider(issuer, client_id=AUDIENCE, claims={"groups": ["readers"]})) as provider:
        settings = Settings(
            data_dir=tmp_path / "data",
            source_roots=[tmp_path],
            require_auth=True,
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_file=issuer.write_jwks(tmp_path / "jwks.json"),
            oidc_grants={"readers": OidcGrant(role=Role.READ, collections=["handbook"])},
            oidc_client_id=AUDIENCE,
            oidc_authorization_url=f"{provider.url}/authorize",
            oidc_token_url=f"{provider.url}/token",
            ui_source_urls={"handbook": SOURCE_BASE},
        )
        app = create_app(settings, embedder=embedder)
        async with serve_in_process(app) as url:
            semantik: Semantik = app.state.semantik
            keys = {}
            for name, role, scope in (
                ("admin", Role.ADMIN, "*"),
                ("writer", Role.WRITE, "handbook"),
                ("outsider", Role.READ, "other-*"),
            ):
                keys[name], _ = await create_key(semantik, name, role=role, scopes=(scope,))
            await _index(semantik, url, keys["admin"], "handbook", handbook)
            await _index(semantik, url, keys["admin"], "secret-plans", secret)
            yield Site(url, semantik, embedder, keys, provider)


async def _index(semantik: Semantik, url: str, key: str, name: str, folder: Path) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        # Markdown chunking: each chunk carries the trail of headings it lies under.
        spec = {"name": name, "source_path": str(folder), "chunking": {"strategy": "markdown"}}
        created = await client.post("/api/v1/collections", json=spec)
        assert created.status_code == 201, created.text
        started = await client.post(f"/api/v1/collections/{name}/index")
        operation = started.json()["operation_id"]
        for _ in range(600):
            status = (await client.get(f"/api/v1/operations/{operation}")).json()["status"]
            if status not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
    assert status == "succeeded"


async def steps(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(function, *args)


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, WAIT)


def sign_in(driver: webdriver.Chrome, url: str, key: str) -> None:
    driver.get(url + "/")
    wait(driver).until(expected_conditions.url_contains("/sign-in"))
    driver.find_element(By.ID, "api-key").send_keys(key + Keys.ENTER)
    wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "q")))


def result_paths(driver: webdriver.Chrome) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, ".group h3 a.open")]


def submitted(driver: webdriver.Chrome, submit: Callable[[], object]) -> None:
    """Run `submit` (a key or click that submits the search form) and wait for the new results page: the
    old page must be gone first, or its results would pass for the new ones while the new page loads."""
    old = driver.find_element(By.TAG_NAME, "html")
    submit()
    wait(driver).until(lambda _: gone(old))
    wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "results-heading")))


def gone(element: WebElement) -> bool:
    """Whether `element`'s page has been replaced: selenium's `staleness_of`, plus the error chromedriver
    gives instead of a stale reference when it is asked in the middle of the navigation."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in (exc.msg or ""):
            return True
        raise
    return False


def search(driver: webdriver.Chrome, query: str) -> None:
    box = driver.find_element(By.ID, "q")
    box.clear()
    submitted(driver, lambda: box.send_keys(query + Keys.ENTER))


def no_serious_violations(driver: webdriver.Chrome, tools: BrowserTools, screen: str) -> None:
    violations = axe_violations(driver, tools)
    assert not violations, f"{screen}: " + "; ".join(f"{v['id']} ({v['impact']}): {v['help']}" for v in violations)


def a_writers_session(driver: webdriver.Chrome, tools: BrowserTools, site: Site) -> None:
    driver.get(site.url + "/")
    assert "/sign-in" in driver.current_url  # no session: sent to sign in
    save_screenshot(driver, "sign-in")
    no_serious_violations(driver, tools, "sign-in")

    driver.find_element(By.ID, "api-key").send_keys("smk_not-a-real-key" + Keys.ENTER)
    problem = wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "sign-in-problem")))
    assert "refused" in problem.text or "not an API key" in problem.text
    sign_in(driver, site.url, site.keys["writer"])
    assert "smk_" not in driver.current_url  # the key travels in a POST body and a cookie, never a URL
    session = driver.get_cookie("semantik_session")
    assert session is not None and session["httpOnly"] and session["sameSite"] == "Strict"

    # Only the collections the key may read are offered.
    offered = [e.get_attribute("value") for e in driver.find_elements(By.CSS_SELECTOR, "input[name=c]")]
    assert offered == ["handbook"]
    assert "secret-plans" not in driver.page_source

    # "/" focuses the box from anywhere on the page.
    driver.find_element(By.TAG_NAME, "body").click()
    driver.find_element(By.TAG_NAME, "body").send_keys("/")
    assert driver.switch_to.active_element.get_attribute("id") == "q"
    search(driver, "how do I rotate API keys")
    assert result_paths(driver)[0] == "keys.md"
    first = driver.find_element(By.CSS_SELECTOR, ".group")
    marks = [mark.text.lower() for mark in first.find_elements(By.TAG_NAME, "mark")]
    assert any(mark.startswith("rotat") for mark in marks), marks
    assert any(mark == "keys" or mark == "key" for mark in marks), marks
    assert first.find_element(By.LINK_TEXT, "source file").get_attribute("href") == f"{SOURCE_BASE}/keys.md"
    assert first.find_element(By.CSS_SELECTOR, ".heading").text == "Operations handbook > Rotating API keys"
    assert float(first.find_element(By.CSS_SELECTOR, ".score").text) > 0
    save_screenshot(driver, "results")
    no_serious_violations(driver, tools, "results")

    # Modes: sparse answers by keywords alone and says so.
    driver.find_element(By.CSS_SELECTOR, "details.options summary").click()
    Select(driver.find_element(By.ID, "mode")).select_by_value("sparse")
    submitted(driver, driver.find_element(By.CSS_SELECTOR, ".query button").click)
    assert "handbook: sparse" in driver.find_element(By.ID, "results-heading").text
    assert result_paths(driver)[0] == "keys.md"
    Select(driver.find_element(By.ID, "mode")).select_by_value("hybrid")
    Select(driver.find_element(By.ID, "fusion")).select_by_value("rrf")
    submitted(driver, driver.find_element(By.CSS_SELECTOR, ".query button").click)
    assert "handbook: hybrid" in driver.find_element(By.ID, "results-heading").text
    assert Select(driver.find_element(By.ID, "fusion")).first_selected_option.get_attribute("value") == "rrf"

    # Filters: an extension, then a folder.
    search(driver, "release")
    ext = driver.find_element(By.ID, "ext")
    submitted(driver, lambda: ext.send_keys("md" + Keys.ENTER))
    paths = result_paths(driver)
    assert paths and all(path.endswith(".md") for path in paths), paths
    submitted(driver, lambda: driver.find_element(By.ID, "path").send_keys("guides/" + Keys.ENTER))
    assert result_paths(driver) == ["guides/deploy.md"]
    driver.find_element(By.ID, "path").clear()
    driver.find_element(By.ID, "ext").clear()

    # Keyboard only: arrows move through the results, Enter opens the chunk.
    search(driver, "how do I rotate API keys")
    driver.find_element(By.ID, "q").send_keys(Keys.ARROW_DOWN)
    focused = driver.switch_to.active_element
    assert focused.text == "keys.md"
    # Focus is visible: the focused result carries the 3px outline (never removed by the stylesheet).
    outline = driver.execute_script(
        "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]"
    )
    assert outline == ["solid", "3px"], outline
    links = [link.text for link in driver.find_elements(By.CSS_SELECTOR, ".groups a.open")]
    assert len(links) > 2  # each file's link, then its further chunks' links
    focused.send_keys(Keys.ARROW_DOWN)
    assert driver.switch_to.active_element.text == links[1]
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert driver.switch_to.active_element.text == links[2]
    driver.switch_to.active_element.send_keys(Keys.ARROW_UP)
    driver.switch_to.active_element.send_keys(Keys.ARROW_UP)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    text = wait(driver).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".chunk-text")))
    assert "Create a new key with the key tool" in text.text
    marked = {mark.text.lower() for mark in driver.find_elements(By.CSS_SELECTOR, ".chunk-text mark")}
    assert {"rotating", "keys"} <= marked, marked
    assert driver.find_element(By.CSS_SELECTOR, "h1.path").text == "keys.md"
    save_screenshot(driver, "chunk")
    no_serious_violations(driver, tools, "chunk")


def hostile_text_runs_nothing(driver: webdriver.Chrome, site: Site) -> None:
    driver.get(site.url + "/")
    title = driver.title
    search(driver, "quarterly rotation schedule release notes")
    assert "release-notes.md" in result_paths(driver)
    group = next(g for g in driver.find_elements(By.CSS_SELECTOR, ".group") if "release-notes.md" in g.text)
    assert "<script>" in group.text or "onerror" in group.text  # shown as text
    driver.find_element(By.LINK_TEXT, "release-notes.md").click()
    shown = wait(driver).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".chunk-text")))
    assert '<img src="x" onerror=' in shown.text
    for element in driver.find_elements(
        By.CSS_SELECTOR, "main script, main img, main svg, main [onerror], main [onclick]"
    ):
        raise AssertionError(f"document markup became page markup: {element.get_attribute('outerHTML')}")
    assert driver.execute_script("return window.pwned === undefined")
    assert driver.title != "pwned" and title != "pwned"
    assert not [e for e in console_errors(driver) if "Content Security Policy" in e or "pwned" in e]


def watch_an_index_operation(driver: webdriver.Chrome, site: Site) -> None:
    driver.get(site.url + "/collections/handbook")
    assert driver.find_element(By.ID, "phase").text == "Ready"
    driver.find_element(By.CSS_SELECTOR, "input[name=full]").click()
    driver.find_element(By.ID, "index-now").click()
    wait(driver).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[data-operation][data-active=true]"))
    )
    assert driver.find_element(By.ID, "operation-status").text in ("pending", "running")
    save_screenshot(driver, "collection-indexing")


def progress_reached_the_end(driver: webdriver.Chrome) -> WebElement:
    panel = wait(driver).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[data-operation][data-ended]"))
    )
    return panel


async def test_a_person_signs_in_searches_opens_a_chunk_watches_indexing_and_signs_out(
    site: Site, browser: webdriver.Chrome, browser_tools: BrowserTools
) -> None:
    await steps(a_writers_session, browser, browser_tools, site)
    await steps(hostile_text_runs_nothing, browser, site)

    site.embedder.gate.clear()  # the next operation's batches wait until the page follows its progress
    site.embedder.waiting.clear()
    await steps(watch_an_index_operation, browser, site)
    await asyncio.wait_for(site.embedder.waiting.wait(), WAIT)
    site.embedder.gate.set()
    panel = await steps(progress_reached_the_end, browser)
    assert panel.get_attribute("data-ended") == "succeeded"
    processed = browser.find_element(By.ID, "op-processed").text
    assert processed == browser.find_element(By.ID, "op-total").text == "5"  # updated live from the stream
    assert browser.find_element(By.ID, "phase").text == "Ready"
    await steps(save_screenshot, browser, "collection-indexed")
    await steps(no_serious_violations, browser, browser_tools, "collection")

    def sign_out() -> None:
        browser.find_element(By.CSS_SELECTOR, "form[action$='/sign-out'] button").click()
        wait(browser).until(expected_conditions.url_contains("/sign-in"))
        assert "signed out" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        browser.get(site.url + "/?q=keys")
        assert "/sign-in" in browser.current_url and browser.get_cookie("semantik_session") is None

    await steps(sign_out)


async def test_an_expired_key_is_sent_back_to_sign_in(site: Site, browser: webdriver.Chrome) -> None:
    key, view = await create_key(
        site.semantik, "short-lived", role=Role.READ, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    await steps(sign_in, browser, site.url, key)
    async with site.semantik.sessions.begin() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == view.id).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    def reload() -> None:
        browser.get(site.url + "/?q=keys")
        assert "/sign-in" in browser.current_url
        assert "session ended" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        assert browser.get_cookie("semantik_session") is None

    await steps(reload)


async def test_a_principal_never_sees_a_collection_outside_its_scope(
    site: Site, browser: webdriver.Chrome, browser_tools: BrowserTools
) -> None:
    def outsider() -> None:
        sign_in(browser, site.url, site.keys["outsider"])
        assert not browser.find_elements(By.CSS_SELECTOR, "input[name=c]")
        for path in (
            "/collections/handbook",
            "/collections/secret-plans",
            "/collections/secret-plans/chunk?path=plans.md&index=0",
        ):
            browser.get(site.url + path)
            assert browser.find_element(By.TAG_NAME, "h1").text == "Not found", path
            no_serious_violations(browser, browser_tools, f"not found: {path}")
            assert "Acquisition" not in browser.page_source
        browser.get(site.url + "/?q=acquisition&c=secret-plans")
        assert "does not exist" in browser.find_element(By.CSS_SELECTOR, ".problem").text
        assert not browser.find_elements(By.CSS_SELECTOR, ".group")

    await steps(outsider)


async def test_several_collections_at_once(site: Site, browser: webdriver.Chrome) -> None:
    def admin() -> None:
        sign_in(browser, site.url, site.keys["admin"])
        boxes = browser.find_elements(By.CSS_SELECTOR, "input[name=c]")
        assert [box.get_attribute("value") for box in boxes] == ["handbook", "secret-plans"]
        assert all(box.is_selected() for box in boxes)  # none picked yet: every readable collection
        search(browser, "key rotation vendor acquisition")
        found = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".group .collection")}
        assert found == {"handbook", "secret-plans"}, found
        # Unticking one searches the other alone.
        next(
            box
            for box in browser.find_elements(By.CSS_SELECTOR, "input[name=c]")
            if box.get_attribute("value") == "handbook"
        ).click()
        submitted(browser, browser.find_element(By.CSS_SELECTOR, ".query button").click)
        assert {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".group .collection")} == {"secret-plans"}
        assert result_paths(browser)[0] == "plans.md"

    await steps(admin)


async def test_sign_in_through_the_oidc_issuer(site: Site, browser: webdriver.Chrome) -> None:
    def through_the_issuer() -> None:
        browser.get(site.url + "/sign-in")
        browser.find_element(By.ID, "oidc-sign-in").click()
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "q")))
        assert browser.find_element(By.CSS_SELECTOR, ".who").text == "oidc:alice"
        offered = [e.get_attribute("value") for e in browser.find_elements(By.CSS_SELECTOR, "input[name=c]")]
        assert offered == ["handbook"]  # the "readers" group's grant
        search(browser, "vacation days")
        assert result_paths(browser)[0] == "vacation.txt"

    await steps(through_the_issuer)
    assert site.provider.refused == []
