"""Where the server keeps media and artifact files: a folder, or any fsspec URL.

``--storage /srv/blobs`` is a local (or mounted) folder; ``--storage s3://bucket/runstack`` (or
gs://, az://, file://, ...) goes through fsspec with that protocol's package installed. Either
way a file is named by its SHA-256 and written whole before its name appears.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from runstack.core.blobs import BlobStore
from runstack.errors import MissingDependencyError, StoreError


class RemoteBlobs:
    """Content-addressed files under an fsspec URL."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise MissingDependencyError("fsspec", "server") from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise StoreError(url, f"cannot open this storage URL ({exc}): install its fsspec package") from None
        self.url = url.rstrip("/")

    def key(self, digest: str) -> str:
        return f"{self.root.rstrip('/')}/{digest[:2]}/{digest}"

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self.key(digest)))

    def put_bytes(self, data: bytes) -> tuple[str, int, bool]:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest, len(data), False
        target = self.key(digest)
        temporary = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(temporary, data)
            self.fs.mv(temporary, target)
        except OSError as exc:
            raise StoreError(self.url, f"cannot write a blob ({exc})") from exc
        return digest, len(data), True

    def read(self, digest: str) -> bytes:
        data: bytes = self.fs.cat_file(self.key(digest))
        return data


def open_blobs(storage: str | Path) -> Any:
    """A ``BlobStore`` for a folder, ``RemoteBlobs`` for a URL."""
    text = str(storage)
    return RemoteBlobs(text) if "://" in text else BlobStore(Path(text) / "blobs")
