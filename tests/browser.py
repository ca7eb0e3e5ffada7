"""Debian's headless Chromium driven by Playwright: shared by the dashboard's and the server's
browser tests (the ``chromium`` and ``page`` fixtures live in tests/conftest.py)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def open_page(page, url):
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready !== undefined", timeout=30_000)
    assert page.evaluate("document.body.dataset.ready") == "1", page.content()[-2000:]
    return page
