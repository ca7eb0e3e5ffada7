"""A real dashboard server on a free port, and a real headless Chromium (Debian's package)
driven by Playwright; the store is made by logging real runs."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


class Server:
    def __init__(self, store_dir) -> None:
        import uvicorn

        from runstack.ui.app import create_app

        self.server = uvicorn.Server(uvicorn.Config(create_app(store_dir), host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off"))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve():
    servers = []

    def start(store_dir):
        server = Server(store_dir)
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, tmp_path):
    context = chromium.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.dialogs = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()


def open_page(page, url):
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready !== undefined", timeout=30_000)
    assert page.evaluate("document.body.dataset.ready") == "1", page.content()[-2000:]
    return page
