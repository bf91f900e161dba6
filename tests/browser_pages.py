"""Debian's chromium driven by Playwright, as the browser tests use it: one browser per module,
one page per test that fails the test on any uncaught page error."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ART = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui"   # screenshots (gitignored)

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="needs Debian chromium: bash scripts/install_browser.sh")


@contextlib.contextmanager
def chromium():
    """A headless chromium (and the screenshot folder made)."""
    from playwright.sync_api import sync_playwright

    ART.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def checked_page(browser, height: int = 1000, scheme: str = "light"):
    """A page 1400 px wide in the colour ``scheme``; afterwards, no uncaught page error may be
    left."""
    ctx = browser.new_context(viewport={"width": 1400, "height": height}, color_scheme=scheme)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page
    finally:
        ctx.close()
    assert not errors, errors
