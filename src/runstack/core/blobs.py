"""Content-addressed files: each distinct content is stored once, under its SHA-256.

    <folder>/<first two hex digits>/<sha256>

Writes go to a temporary file in the same folder and are renamed into place, so a blob
is either complete or absent; blobs are made read-only once written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

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

    def _place(self, digest: str, write: object) -> bool:
        target = self.path(digest)
        if target.exists():
            return False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                write(handle)  # type: ignore[operator]
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
        return digest, len(data), self._place(digest, lambda handle: handle.write(data))

    def put_file(self, source: Path, digest: str | None = None) -> tuple[str, int, bool]:
        """Store a copy of ``source``; returns (digest, size, whether it was new)."""
        if digest is None:
            digest, size = sha256_file(source)
        else:
            size = source.stat().st_size

        def copy(handle: object) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, handle)  # type: ignore[arg-type]

        return digest, size, self._place(digest, copy)

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
