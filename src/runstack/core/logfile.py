"""The append-only history log: on-disk format (version 1) and its writer.

The format is documented in ``docs/FORMAT.md``. In short: a 16-byte file header,
then records ``[u32 length][u32 crc32(payload)][payload]``; the first payload byte
is the record kind. A zero length marks the end of what was written (the file is
preallocated with zeros). Every ``SEAL_BYTES`` a seal record stores one crc32 over
everything since the previous seal, so readers can verify whole blocks at once and
only check records one by one in the unsealed tail.

The writer maps the file with ``mmap``: a record copied into the mapping is in the
kernel's page cache the instant ``log()`` returns, so it survives ``kill -9`` of the
process without a system call per step. A background flush (``msync``) bounds what
a power loss could take.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstack.errors import RunStateError, StoreError

MAGIC = b"RSTKLOG\x00"
FORMAT_VERSION = 1
FILE_HEADER = struct.Struct("<8sHHI")  # magic, version, rank, reserved
RECORD_HEADER = struct.Struct("<II")  # payload length, crc32(payload)
KIND_SCHEMA = 1  # u16 schema id, then JSON [[key, code], ...]
KIND_ROW = 2  # u16 schema id, i64 step, f64 unix time, values packed by the schema's codes
KIND_MEDIA = 3  # i64 step, f64 unix time, then JSON {key: media reference}
KIND_SEAL = 4  # u64 start, u64 end, u32 crc32 of the file bytes [start, end)
ROW_PREFIX = struct.Struct("<BHqd")
SEAL = struct.Struct("<BQQI")
MEDIA_PREFIX = struct.Struct("<Bqd")
SCHEMA_PREFIX = struct.Struct("<BH")
# A value's code is its struct format character: float64, int64 or bool.
CODES = ("d", "q", "?")
SEAL_BYTES = 1 << 16
MIN_CAPACITY = 1 << 20
MAX_GROWTH = 64 << 20


@dataclass(frozen=True)
class Encoder:
    """How one shape of ``log()`` dict (keys and value types) is packed into a row record."""

    sid: int
    keys: tuple[str, ...]
    codes: tuple[str, ...]
    prefix: bytes  # kind and schema id, packed
    pack: Callable[..., bytes]

    @staticmethod
    def build(sid: int, keys: tuple[str, ...], codes: tuple[str, ...]) -> Encoder:
        fmt = "<3sqd" + "".join(codes)
        return Encoder(sid, keys, codes, struct.pack("<BH", KIND_ROW, sid), struct.Struct(fmt).pack)

    def unpack(self, payload: bytes) -> dict[str, float | int | bool]:
        values = struct.unpack("<3sqd" + "".join(self.codes), payload)[3:]
        return dict(zip(self.keys, values, strict=False))


def _store_error(path: Path, exc: OSError) -> StoreError:
    from runstack.core.blobs import describe_os_error

    return StoreError(path, describe_os_error(exc))


def history_locked(path: Path) -> bool:
    """Whether a live process is writing ``path`` (it holds the file's lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class LogWriter:
    """Appends records to one history file through a shared memory map.

    ``off``, ``cap`` and ``mm`` are used directly by ``Run.log``'s inlined fast path,
    under the run's lock; only ``flush`` may be called from another thread.
    """

    def __init__(self, path: Path, rank: int, start: int | None = None) -> None:
        """Open ``path`` for appending; ``start`` is the end of the valid data when resuming."""
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:  # one writer per file: a second process resuming the same run gets an error, not a SIGBUS
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                raise RunStateError(
                    f"{path.name} of run {path.parent.name!r} is being written by another process: "
                    "wait for it to finish, or use another run id"
                ) from None
            if start is None:
                os.ftruncate(self.fd, 0)
                os.write(self.fd, FILE_HEADER.pack(MAGIC, FORMAT_VERSION, rank, 0))
                start = FILE_HEADER.size
            else:
                os.ftruncate(self.fd, start)  # drops a torn tail left by a crash
            self.off = start
            self.seal_from = start
            self.seal_at = start + SEAL_BYTES
            self.cap = 0
            self.mm: mmap.mmap | None = None
            self._map(max(MIN_CAPACITY, start * 2))
        except OSError as exc:
            raise _store_error(path, exc) from exc

    def _map(self, size: int) -> None:
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        # posix_fallocate reserves the blocks now, so a full disk is an error here rather
        # than a SIGBUS on a later write into the mapping.
        os.posix_fallocate(self.fd, 0, size)
        old = self.mm
        self.mm = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.cap = size
        if old is not None:
            old.close()

    def grow(self, needed: int) -> None:
        """Make room for at least ``needed`` bytes; raises StoreError when the disk is full."""
        size = max(needed, self.cap + min(self.cap, MAX_GROWTH))
        try:
            self._map(size)
        except OSError as exc:
            try:
                self._map(needed + MIN_CAPACITY)
            except OSError:
                raise _store_error(self.path, exc) from exc

    def append(self, payload: bytes) -> int:
        """Append one record (the slow path: schemas and seals); returns its offset."""
        off = self.off
        end = off + RECORD_HEADER.size + len(payload)
        if end > self.cap:
            self.grow(end)
        assert self.mm is not None
        self.mm[off:end] = RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self.off = end
        return off

    def define(self, sid: int, keys: tuple[str, ...], codes: tuple[str, ...]) -> Encoder:
        """Write a schema record and return the encoder for rows of that shape."""
        body = json.dumps([[k, c] for k, c in zip(keys, codes, strict=False)], separators=(",", ":"))
        self.append(SCHEMA_PREFIX.pack(KIND_SCHEMA, sid) + body.encode())
        return Encoder.build(sid, keys, codes)

    def append_media(self, step: int, timestamp: float, refs: dict[str, Any]) -> None:
        """Write a media record (references to stored files, or inline values) at ``step``."""
        body = json.dumps(refs, separators=(",", ":"), sort_keys=True)
        self.append(MEDIA_PREFIX.pack(KIND_MEDIA, step, timestamp) + body.encode())
        if self.off > self.seal_at:
            self.seal()

    def seal(self) -> None:
        """Write a seal record covering every byte since the previous seal."""
        start, end = self.seal_from, self.off
        if end > start:
            assert self.mm is not None
            crc = zlib.crc32(memoryview(self.mm)[start:end])
            self.append(SEAL.pack(KIND_SEAL, start, end, crc))
        self.seal_from = self.off
        self.seal_at = self.off + SEAL_BYTES

    def flush(self) -> None:
        """Write the dirty pages to disk; safe from another thread, releases the GIL."""
        try:
            os.fdatasync(self.fd)
        except OSError:
            pass  # closed by finish() meanwhile, which syncs itself

    def close(self) -> None:
        """Seal, flush, trim the preallocated zeros and close the file (again after a failure)."""
        if self.fd < 0:
            return
        if self.mm is not None:
            self.seal()
            mm, self.mm = self.mm, None
            mm.close()
        try:
            os.ftruncate(self.fd, self.off)
            os.fsync(self.fd)
        except OSError as exc:
            raise _store_error(self.path, exc) from exc
        os.close(self.fd)
        self.fd = -1

    def abandon(self) -> None:
        """Forget the mapping without writing (in a forked child, which must not write); the
        child's copy of the descriptor is closed so the parent alone holds the file's lock."""
        self.mm = None
        self.cap = 0
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1
