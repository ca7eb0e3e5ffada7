"""``runstack server``: one place for a team's runs (``pip install '.[server]'``).

PostgreSQL holds the catalogue, the history (the clients' append-only logs, byte range by
byte range, each stored once) and the API keys; a folder holds media and artifact files.
Clients keep logging to their local store first and ship it in the background
(``RUNSTACK_BASE_URL`` + ``RUNSTACK_API_KEY``), or later with ``runstack sync``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from runstack.errors import InvalidArgumentError


def is_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def serve(db: str, storage: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8080,
          no_auth: bool = False, max_body: int | None = None, ready: Any = None) -> None:  # fmt: skip
    """Run the server until interrupted; ``ready`` is called with its URL once it listens."""
    from runstack.server.app import MAX_BODY, create_server_app
    from runstack.server.db import ServerDB
    from runstack.ui import serve as serve_app

    if no_auth and not is_loopback(host):
        raise InvalidArgumentError("--no-auth", host, "a loopback host (127.0.0.1): reads without a key are "
                                   "only allowed on this machine")  # fmt: skip
    database = ServerDB(db)
    try:
        app = create_server_app(database, storage, open_reads=no_auth, max_body=max_body or MAX_BODY)
        serve_app(host=host, port=port, ready=ready, app=app)
    finally:
        database.close()
