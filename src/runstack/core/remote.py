"""Reading runs from the team server: what ``Api(base_url=...)`` reads through.

It answers the calls ``Api`` and ``RunView`` make of a local store, from the server's
read endpoints; history files arrive as they are stored and are parsed here, so a run's
history, summary and media read the same from the server as from the folder they came from.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstack.core.blobs import BlobStore
from runstack.core.client import Client, run_path
from runstack.core.logread import LogContents, read_log
from runstack.core.store import LOG_PATTERN, HostedRuns
from runstack.core.values import has_surrogates, is_blob_name, shown
from runstack.errors import RunNotFoundError, ServerError


class RemoteStore(HostedRuns):
    """A server's runs, read over HTTP with one key."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.root = client.base_url
        super().__init__()
        self._lock = threading.Lock()  # one connection, shared by the threads of the caller
        cache = Path(tempfile.gettempdir()) / f"runstack-media-{os.getuid()}"
        self.media = BlobStore(cache)  # content-addressed: a file there is what its name says

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self.client.json("GET", path, params=params)

    def rows(self, project: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("/api/v1/runs", {"project": project} if project else None)
        return found

    def get(self, run_id: str) -> dict[str, Any]:
        if not isinstance(run_id, str) or has_surrogates(run_id) or not run_id:
            raise RunNotFoundError(shown(str(run_id)), self.root)
        try:
            row: dict[str, Any] = self._json(run_path(run_id))
        except ServerError as exc:
            if exc.status == 404:
                raise RunNotFoundError(run_id, self.root) from None
            raise
        return row

    def log_files(self, run_id: str, pattern: str = LOG_PATTERN) -> list[tuple[Any, Callable[[], LogContents]]]:
        files: dict[str, int] = self._json(run_path(run_id, "files"))
        return [((self.root, run_id, name, length), functools.partial(self._load, run_id, name))
                for name, length in sorted(files.items()) if fnmatch.fnmatch(name, pattern)]  # fmt: skip

    def _load(self, run_id: str, name: str) -> LogContents:
        with self._lock:
            _, data = self.client.request("GET", run_path(run_id, "files", name))
        return read_log(Path(name), data)

    def decode_media(self, ref: dict[str, Any]) -> Any:
        """The media object; its file is fetched once into a local content-addressed cache."""
        from runstack.core.media import decode

        digest = ref.get("sha256")
        if isinstance(digest, str) and is_blob_name(digest) and not self.media.exists(digest):
            with self._lock:
                _, data = self.client.request("GET", f"/api/v1/blobs/{digest}")
            self.media.put_bytes(data)
        return decode(ref, self.media)

    def run_artifacts(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = self._json(run_path(run_id, "artifacts"))
        return found
