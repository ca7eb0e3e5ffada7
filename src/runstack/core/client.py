"""A small HTTP client for the team server (``runstack server``): standard library only.

One ``Client`` holds one keep-alive connection and is used by one thread. The server's
address and key come from the arguments, else ``$RUNSTACK_BASE_URL`` and ``$RUNSTACK_API_KEY``.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import socket
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from runstack.errors import AuthError, InvalidArgumentError, ServerError

# Answers that mean "try again later": the server or its database is restarting.
RETRYABLE = (408, 425, 429, 500, 502, 503, 504)


def server_from_env(base_url: str | None = None, api_key: str | None = None) -> tuple[str, str | None] | None:
    """(base URL, key) from the arguments or the environment; None when no server is configured."""
    url = base_url or os.environ.get("RUNSTACK_BASE_URL") or None
    if url is None:
        return None
    return url, api_key or os.environ.get("RUNSTACK_API_KEY") or None


class Client:
    """Requests to one server, with its API key as a bearer token."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError("base_url", base_url, "an http:// or https:// address, e.g. http://host:8080")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._parts, self._prefix, self._timeout = parts, parts.path.rstrip("/"), timeout
        self._conn: http.client.HTTPConnection | None = None
        self.timings: collections.deque[float] = collections.deque(maxlen=100_000)  # seconds per request

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            self._conn = kind(self._parts.hostname or "", self._parts.port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: bytes | None = None, params: dict[str, Any] | None = None,
                content_type: str = "application/octet-stream", ok: tuple[int, ...] = (200,)) -> tuple[int, bytes]:  # fmt: skip
        """Send one request; returns (status, body) for statuses in ``ok``.

        Raises:
            AuthError: 401 or 403.
            ServerError: the server cannot be reached, or answered another status (``status`` set).
        """
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = {"Content-Type": content_type}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in (0, 1):  # a keep-alive connection the server closed meanwhile is reopened once
            conn = self._connection()
            began = time.perf_counter()
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.timings.append(time.perf_counter() - began)
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 1 or isinstance(exc, socket.timeout):
                    raise ServerError(self.base_url, f"cannot reach the server ({exc or type(exc).__name__})") from None
        if response.status in ok:
            return response.status, data
        reason = _reason(data) or response.reason
        if response.status in (401, 403):
            raise AuthError(self.base_url, f"{reason}: check RUNSTACK_API_KEY and the key's role", response.status)
        raise ServerError(self.base_url, f"{method} {path}: {response.status} {reason}", response.status)

    def json(self, method: str, path: str, payload: Any = None, params: dict[str, Any] | None = None) -> Any:
        body = None if payload is None else json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        _, data = self.request(method, path, body, params, content_type="application/json")
        return json.loads(data) if data else None


def run_path(run_id: str, *rest: str) -> str:
    return "/".join(["/api/v1/runs", quote(run_id, safe=""), *(quote(p, safe="") for p in rest)])


def _reason(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", ""))
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")
