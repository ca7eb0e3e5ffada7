"""The server's runs as one request's key sees them: what the dashboard and ``Api`` read.

It answers the same calls as a local ``Store`` (rows, history files, media, artifacts) from
PostgreSQL and the blob folder, and only for the projects the request's key may read: a run
of another project is "not found", exactly like a run that does not exist.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstack.core.blobs import BlobStore
from runstack.core.logread import LogContents, read_log
from runstack.core.store import LOG_PATTERN, HostedRuns
from runstack.core.values import has_surrogates, is_blob_name, shown
from runstack.errors import RunNotFoundError
from runstack.server.db import ServerDB


class ServerStore(HostedRuns):
    """``readable``: the projects the key may read, or None for every project."""

    def __init__(self, db: ServerDB, blobs: Any, readable: set[str] | None, label: str) -> None:
        self.db, self.media, self.readable, self.root = db, blobs, readable, label
        super().__init__()

    def can_read(self, project: str) -> bool:
        return self.readable is None or project in self.readable

    def rows(self, project: str | None = None) -> list[dict[str, Any]]:
        if project is not None and not self.can_read(project):
            return []
        return [row for row in self.db.rows(project) if self.can_read(row["project"])]

    def get(self, run_id: str) -> dict[str, Any]:
        if not isinstance(run_id, str) or has_surrogates(run_id):
            raise RunNotFoundError(shown(str(run_id)), self.root)
        row = self.db.row(run_id)
        if row is None or not self.can_read(row["project"]):
            raise RunNotFoundError(run_id, self.root)
        return row

    def log_files(self, run_id: str, pattern: str = LOG_PATTERN) -> list[tuple[Any, Callable[[], LogContents]]]:
        self.get(run_id)
        return [((self.root, run_id, name, length), functools.partial(self._load, run_id, name))
                for name, length in self.db.files(run_id).items() if fnmatch.fnmatch(name, pattern)]  # fmt: skip

    def _load(self, run_id: str, name: str) -> LogContents:
        return read_log(Path(name), self.db.read_file(run_id, name))

    def decode_media(self, ref: dict[str, Any]) -> Any:
        from runstack.core.media import decode

        media = self.media
        digest = ref.get("sha256")
        if not isinstance(media, BlobStore) and isinstance(digest, str) and is_blob_name(digest):
            media = BlobStore(Path(tempfile.gettempdir()) / f"runstack-server-cache-{os.getuid()}")
            if not media.exists(digest):
                media.put_bytes(self.media.read(digest))
        return decode(ref, media)

    def media_file(self, digest: str) -> str | bytes | None:
        """A blob (its local path, or its bytes from remote storage), if a run the key may read
        references it."""
        if not is_blob_name(digest) or not any(self.can_read(p) for p in self.db.blob_projects(digest)):
            return None
        if not isinstance(self.media, BlobStore):
            return bytes(self.media.read(digest)) if self.media.exists(digest) else None
        path = self.media.path(digest)
        return str(path) if os.path.isfile(path) else None

    def run_artifacts(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        self.get(run_id)
        out: dict[str, list[dict[str, Any]]] = {"logged": [], "used": []}
        for rec in self.db.artifacts(run_id):
            item = {k: rec[k] for k in ("name", "version", "type", "digest", "size", "created_at")}
            item.update(aliases=[], produced_by=run_id if rec["role"] == "output" else None,
                        used_by=[run_id] if rec["role"] == "input" else [])  # fmt: skip
            out["logged" if rec["role"] == "output" else "used"].append(item)
        return out
