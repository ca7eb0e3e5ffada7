"""Content-addressed files: each distinct content is stored once, under its SHA-256.

    <folder>/<first two hex digits>/<sha256>

Writes go to a temporary file in the same folder and are renamed into place, so a blob
is either complete or absent; blobs are made read-only once written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from runstack.errors import StoreError

CHUNK = 1 << 20


def describe_os_error(exc: OSError) -> str:
    """What an OSError means for the store, and what to do about it."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free space or point RUNSTACK_DIR at another disk"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is read-only: make it writable or set RUNSTACK_DIR / dir="
    return f"{exc.strerror or exc}: check the path, or set RUNSTACK_DIR / dir="


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
        """Write a blob through ``write`` unless a good copy exists (a damaged one is replaced);
        ``write`` returning False discards it. No temporary file outlives a failure."""
        target = self.path(digest)
        if target.exists() and self.verify(digest):
            return False
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                keep = write(handle)
            if not keep:
                return False
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise StoreError(self.folder, f"cannot write a blob: {describe_os_error(exc)}") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
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

    def stale_temporaries(self, older_than_s: float = 3600.0) -> list[Path]:
        """Temporary files left by a process killed while writing a blob."""
        if not self.folder.exists():
            return []
        cutoff = time.time() - older_than_s
        return [p for p in self.folder.glob("??/.tmp-*") if p.stat().st_mtime < cutoff]

    def remove(self, digest: str) -> int:
        path = self.path(digest)
        size = path.stat().st_size
        path.unlink()
        return size
