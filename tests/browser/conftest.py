"""A real headless Chromium per test (tests/support/browser.py, hack/browser.sh).

Sync tests serve their app with serve_in_thread and call the driver directly; async tests that serve on
the session's loop (serve_in_process) call the driver through asyncio.to_thread, so the loop keeps
serving the pages the browser asks for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.support import browser as support
from tests.support.browser import BrowserTools, open_browser, save_screenshot


@pytest.fixture(scope="session")
def browser_tools() -> BrowserTools:
    """Chromium, chromedriver and axe-core, from `make test`'s environment or hack/browser.sh; a missing
    tool fails the tier with the reason."""
    return support.browser_tools()


@pytest.fixture
def browser(browser_tools: BrowserTools, request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    """A fresh browser and profile for the test; a screenshot of where it stood when the test failed."""
    with open_browser(browser_tools) as driver:
        yield driver
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            sys.stderr.write(f"screenshot of the failed test: {save_screenshot(driver, request.node.nodeid)}\n")
