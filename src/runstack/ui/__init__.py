"""``runstack ui``: a local dashboard over the store (``pip install '.[ui]'``).

Pages (projects, runs table, run, compare) are Jinja2 templates plus a small vanilla script and
the vendored uPlot chart library; they read the JSON API under ``/api/`` that other tools may
use too (``/api/openapi.json``). Importing ``runstack`` imports none of this.
"""

from __future__ import annotations

import os
from typing import Any


def serve(store_dir: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = 8765,
          open_browser: bool = False, ready: Any = None, app: Any = None) -> None:  # fmt: skip
    """Serve the dashboard (or another ``app``: the team server's) until interrupted (Ctrl-C stops
    it cleanly).

    ``ready`` (optional) is called with the URL once the server listens.
    """
    import uvicorn

    from runstack.ui.app import create_app

    app = app if app is not None else create_app(store_dir)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        url = f"http://{host}:{bound}/"
        if ready is not None:
            ready(url)
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the signal it caught
        pass
