"""A real dashboard server on a free port, and a real headless Chromium (Debian's package)
driven by Playwright; the store is made by logging real runs."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tests.browser import CHROMIUM, CHROMIUM_ARGS, open_page  # noqa: F401 - the dashboard tests import them here


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
