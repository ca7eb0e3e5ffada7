"""Content-addressed files: each distinct content is stored once, under its SHA-256.

    <folder>/<first two hex digits>/<sha256>

Writes go to a temporary file in the same folder and are renamed into place, so a blob
is either complete or absent; blobs are made read-only once written.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from runstack.errors import StoreError

CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    """The SHA-256 hex digest and size of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BlobStore:
    """One folder of content-addressed blobs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, digest: str) -> Path:
        return self.folder / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def _place(self, digest: str, write: Callable[[BinaryIO], bool]) -> bool:
        """Write a blob through ``write`` unless it exists; ``write`` returning False discards it."""
        target = self.path(digest)
        if target.exists():
            return False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                keep = write(handle)
            if not keep:
                os.unlink(tmp)
                return False
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except OSError as exc:
            raise StoreError(
                self.folder, f"cannot write a blob ({exc.strerror}): free space or make the store writable"
            ) from exc
        return True

    def put_bytes(self, data: bytes) -> tuple[str, int, bool]:
        """Store ``data``; returns (digest, size, whether it was new)."""
        digest = hashlib.sha256(data).hexdigest()
        return digest, len(data), self._place(digest, lambda handle: handle.write(data) >= 0)

    def put_file(self, source: Path, digest: str) -> tuple[str, int, bool]:
        """Store a copy of ``source``, expected to hash to ``digest``, reading it once.

        Returns (digest of the bytes read, size, whether a blob was written). A file whose
        content no longer matches ``digest`` is not stored; the returned digest tells.
        """
        actual, size = digest, source.stat().st_size

        def copy(handle: BinaryIO) -> bool:
            nonlocal actual, size
            hasher, size = hashlib.sha256(), 0
            with open(source, "rb") as src:
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
            actual = hasher.hexdigest()
            return actual == digest

        written = self._place(digest, copy)  # runs copy(), which sets actual and size
        return actual, size, written

    def verify(self, digest: str) -> bool:
        """Whether the blob exists and its content still hashes to its name."""
        path = self.path(digest)
        return path.exists() and sha256_file(path)[0] == digest

    def digests(self) -> set[str]:
        if not self.folder.exists():
            return set()
        return {p.name for p in self.folder.glob("??/*") if not p.name.startswith(".tmp-")}

    def remove(self, digest: str) -> int:
        path = self.path(digest)
        size = path.stat().st_size
        path.unlink()
        return size
