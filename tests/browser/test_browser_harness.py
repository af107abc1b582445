"""The browser tier's harness is real: a real Chromium loads pages over a socket under a strict CSP,
axe-core finds what it should (and nothing where there is nothing), and console errors are seen."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.browser import (
    WINDOW_SIZE,
    BrowserTools,
    axe_violations,
    console_errors,
    save_screenshot,
    serve_in_thread,
)
from tests.support.servers import serve_in_process

# The gateway's UI sends a policy at least this strict: no inline script, no eval, nothing from elsewhere.
CSP = "default-src 'none'; script-src 'self'; style-src 'self'"

PAGES = {
    "/": """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Accessible</title><link rel="stylesheet" href="/style.css"></head>
<body>
<main>
  <h1>Search</h1>
  <form action="/" method="get">
    <label for="q">Query</label> <input id="q" name="q" type="search">
    <button type="submit">Search</button>
  </form>
</main>
<script src="/app.js"></script>
</body>
</html>""",
    "/broken": """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Broken</title></head>
<body>
<main>
  <h1>Broken</h1>
  <img src="/logo.png">
  <input type="text" name="unlabelled">
</main>
<script>document.title = "inline ran";</script>
<script src="/app.js"></script>
</body>
</html>""",
}
ASSETS = {
    "/app.js": ("text/javascript", "document.documentElement.dataset.script = 'external';\n"),
    "/style.css": ("text/css", "body { font-family: sans-serif; margin: 2rem; }\n"),
}


async def page(request: Request) -> Response:
    return Response(PAGES[request.url.path], media_type="text/html", headers={"Content-Security-Policy": CSP})


async def asset(request: Request) -> Response:
    media_type, body = ASSETS[request.url.path]
    return Response(body, media_type=media_type, headers={"Content-Security-Policy": CSP})


async def favicon(request: Request) -> Response:
    return Response(status_code=204)  # a 404 here would be a console error on every page


APP = Starlette(
    routes=[
        *(Route(path, page) for path in PAGES),
        *(Route(path, asset) for path in ASSETS),
        Route("/favicon.ico", favicon),
    ]
)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_in_thread(APP) as url:
        yield url


def test_axe_finds_nothing_serious_on_an_accessible_page(
    site: str, browser: webdriver.Chrome, browser_tools: BrowserTools
) -> None:
    browser.get(site + "/")
    assert browser.title == "Accessible"
    assert browser.execute_script("return document.documentElement.dataset.script") == "external"
    assert axe_violations(browser, browser_tools) == []
    assert console_errors(browser) == []


def test_axe_reports_a_missing_alt_and_a_missing_label(
    site: str, browser: webdriver.Chrome, browser_tools: BrowserTools
) -> None:
    browser.get(site + "/broken")
    violations = axe_violations(browser, browser_tools)
    found = {violation["id"]: violation for violation in violations}
    assert {"image-alt", "label"} <= found.keys(), violations
    assert found["image-alt"]["impact"] == "critical"
    assert [node["target"] for node in found["label"]["nodes"]] == [["input"]]
    assert all(violation["help"] and violation["nodes"] for violation in violations)


def test_csp_blocks_inline_script_and_the_console_shows_it(site: str, browser: webdriver.Chrome) -> None:
    browser.get(site + "/broken")
    # The inline script did not run; the same-origin one did, so the page's scripts are not all broken.
    assert browser.title == "Broken"
    assert browser.execute_script("return document.documentElement.dataset.script") == "external"
    errors = console_errors(browser)
    assert any("Content Security Policy" in error and "inline script" in error for error in errors), errors


def test_screenshot_is_a_png_of_the_window(
    site: str, browser: webdriver.Chrome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMANTIK_SCREENSHOTS_DIR", str(tmp_path))
    browser.get(site + "/")
    path = save_screenshot(browser, "tests/browser::accessible[page]")
    assert path == tmp_path / "tests_browser_accessible_page_.png"
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width == WINDOW_SIZE[0] and 0 < height <= WINDOW_SIZE[1]


async def test_an_async_test_serves_on_its_loop_and_drives_the_browser_from_a_thread(
    browser: webdriver.Chrome, browser_tools: BrowserTools
) -> None:
    # Selenium blocks; called on this loop it would starve the server the page comes from.
    async with serve_in_process(APP) as url:
        await asyncio.to_thread(browser.get, url + "/broken")
        violations = await asyncio.to_thread(axe_violations, browser, browser_tools)
    assert {"image-alt", "label"} <= {violation["id"] for violation in violations}
