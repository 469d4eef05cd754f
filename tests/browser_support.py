"""Headless Chromium for the page tests: Debian's /usr/bin/chromium driven through
Playwright's Python API, never a browser downloaded by ``playwright install``. Without
the two, a test skips with the package to install (and fails under ``CI=true``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing_browser() -> str | None:
    """Why no browser can be started here, or None."""
    if not CHROMIUM.exists():
        return "needs Debian's chromium package (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "needs the pip package playwright (pip install -e '.[test]')"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on leaving (skips the test when there is none)."""
    missing = missing_browser()
    if missing is not None:
        unavailable(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for a test module's pages."""
    with chromium() as launched:
        yield launched
