"""A real headless Chromium for the browser tier, driven by Selenium, with axe-core for accessibility.

`make test` installs Chromium, chromedriver and axe-core with hack/browser.sh and passes their paths in
SEMANTIK_TEST_CHROMIUM, SEMANTIK_TEST_CHROMEDRIVER and SEMANTIK_TEST_AXE; a bare `pytest` runs
`hack/browser.sh ensure` itself. Nothing is downloaded at test time: Selenium is given the driver and
the browser, and told it is offline, so its selenium-manager never looks for either.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from starlette.types import ASGIApp

from tests.support.servers import HACK, serve_in_process

REPO = HACK.parent
ENV_VARS = {
    "chromium": "SEMANTIK_TEST_CHROMIUM",
    "chromedriver": "SEMANTIK_TEST_CHROMEDRIVER",
    "axe": "SEMANTIK_TEST_AXE",
}
WINDOW_SIZE = (1280, 900)
PAGE_LOAD_TIMEOUT = 30.0
SCRIPT_TIMEOUT = 30.0

# Headless without a sandbox (the tests run as root, in containers without user namespaces) or a GPU.
# The closed network refuses the connections Chromium makes on its own (component updates, sync, QUIC
# probes, field trials), and a refused background fetch can stall a page load or fill the log with
# errors that are not the page's: those features are turned off. /dev/shm is small in containers.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
)


@dataclass(frozen=True)
class BrowserTools:
    """Absolute paths of the browser, its matching driver, and axe-core's axe.min.js."""

    chromium: Path
    chromedriver: Path
    axe: Path


@functools.cache
def browser_tools() -> BrowserTools:
    """The tools `make test` installed (found in the environment), or those `hack/browser.sh ensure`
    installs now; once per session. Raises RuntimeError when they cannot be had: the tier fails with
    the reason instead of skipping."""
    found = {field: os.environ.get(var, "") for field, var in ENV_VARS.items()}
    if not all(found.values()):
        found = _run_browser_sh()
    tools = BrowserTools(**{field: Path(value) for field, value in found.items()})
    for field, var in ENV_VARS.items():
        path: Path = getattr(tools, field)
        if not path.is_file():
            raise RuntimeError(f"{var}={path} is not a file: run `hack/browser.sh ensure` to install it")
    return tools


def _run_browser_sh() -> dict[str, str]:
    """The paths from the `export NAME='VALUE'` lines `hack/browser.sh ensure` prints."""
    command = [str(HACK / "browser.sh"), "ensure"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"hack/browser.sh ensure could not run: {error}") from error
    if result.returncode != 0:
        raise RuntimeError(f"hack/browser.sh ensure failed:\n{result.stderr}")
    sys.stderr.write(result.stderr)  # install timings, shown by pytest with a failure
    exported: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if match := re.fullmatch(r"export (\w+)=(.*)", line.strip()):
            exported[match[1]] = shlex.split(match[2])[0]
    missing = [var for var in ENV_VARS.values() if not exported.get(var)]
    if missing:
        raise RuntimeError(f"hack/browser.sh ensure did not print {', '.join(missing)}:\n{result.stdout}")
    return {field: exported[var] for field, var in ENV_VARS.items()}


@contextmanager
def open_browser(tools: BrowserTools) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh empty profile, removed when the block ends.

    The browser log is kept (goog:loggingPrefs browser=ALL) so a test reads the console's errors, CSP
    violations among them, with console_errors.
    """
    # selenium-manager runs when Selenium lacks a path; given both it should not, and offline it cannot
    # try to download a driver or a browser, whatever a future Selenium decides.
    os.environ["SE_OFFLINE"] = "true"
    profile = Path(tempfile.mkdtemp(prefix="semantik-chromium-"))
    try:
        options = webdriver.ChromeOptions()
        options.binary_location = str(tools.chromium)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(tools.chromedriver)))
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
            driver.set_script_timeout(SCRIPT_TIMEOUT)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# WebDriver's execute_script runs through the DevTools protocol (Runtime.callFunctionOn), which a page's
# Content-Security-Policy does not govern: axe's source is injected and run even where script-src is
# 'self' with no inline script and no eval, and the page's own policy stays in force for everything else.
_RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  (results) => done({violations: results.violations}),
  (error) => done({error: String(error && error.stack || error)}),
);
"""


@functools.cache
def _axe_source(path: Path) -> str:
    return path.read_text()


def axe_violations(
    driver: webdriver.Chrome, tools: BrowserTools, *, impacts: Sequence[str] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """axe-core's violations on the loaded page at the given impacts; each has id, impact, help, nodes."""
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    driver.execute_script(_axe_source(tools.axe))
    result = cast(dict[str, Any], driver.execute_async_script(_RUN_AXE))
    if "error" in result:
        raise RuntimeError(f"axe.run failed on {driver.current_url}: {result['error']}")
    violations = cast(list[dict[str, Any]], result["violations"])
    return [
        {key: violation[key] for key in ("id", "impact", "help", "nodes")}
        for violation in violations
        if violation["impact"] in impacts
    ]


def save_screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The page as `<name>.png` in $SEMANTIK_SCREENSHOTS_DIR, else in <repo>/.artifacts/screenshots."""
    directory = Path(os.environ.get("SEMANTIK_SCREENSHOTS_DIR") or REPO / ".artifacts" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (re.sub(r"[^\w.-]+", "_", name) + ".png")  # a test id's [params] and slashes
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"the browser could not save a screenshot to {path}")
    return path


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The browser log's SEVERE entries since the last call (reading the log empties it)."""
    entries = cast(list[dict[str, Any]], cast(Any, driver).get_log("browser"))  # get_log is untyped
    return [str(entry["message"]) for entry in entries if entry["level"] == "SEVERE"]


@contextmanager
def serve_in_thread(app: ASGIApp, *, start_timeout: float = 60) -> Iterator[str]:
    """`app` served by serve_in_process on an event loop of its own in a background thread; yields its
    base URL. Selenium's calls block: a sync test drives the browser while this thread serves the page.
    An app bound to the test's own loop (a database pool made there) is served with serve_in_process
    instead, and the test calls Selenium through asyncio.to_thread."""
    started = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    url = ""
    failure: list[BaseException] = []

    async def serve() -> None:
        nonlocal stop, loop, url
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        async with serve_in_process(app, start_timeout=start_timeout) as url:
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # handed to the test's thread
            failure.append(error)
        finally:
            started.set()

    thread = threading.Thread(target=run, name="serve_in_thread", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise RuntimeError("the app did not start") from failure[0]
    assert loop is not None and stop is not None
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
    if failure:
        raise RuntimeError("serving the app failed") from failure[0]
