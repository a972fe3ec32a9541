"""Chromium for the browser tests: Debian's binary driven by Playwright, never a download.

``chromium_context()`` opens a browser context and closes everything after;
``save_screenshot()`` writes to ``test-artifacts/`` and, with
``UPDATE_SCREENSHOTS=1``, to ``docs/screenshots/`` for the documentation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import CHROMIUM
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium_context(monkeypatch: Any, **options: Any) -> Iterator[Any]:
    """A new Playwright browser context (``options`` as ``Browser.new_context`` takes them)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # test makes meanwhile are ordinary blocking calls, which Django allows with this.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    context = browser.new_context(locale="en-US", **options)
    try:
        yield context
    finally:
        context.close()
        browser.close()
        # Between start() and stop() this thread runs in Playwright's contextvars
        # context, where the ORM opened its own connections (Django keeps them per
        # context): close them now, or they outlive the test database.
        connections.close_all()
        playwright.stop()


def save_screenshot(page: Any, name: str, **options: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), **options)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
