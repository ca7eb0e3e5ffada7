"""Reading history logs back: vectorised, verified, and tolerant of a torn tail.

Consecutive rows of one schema have the same length, so a run of them is found by
probing their headers with numpy and then viewed as one structured array without
copying. Sealed blocks are verified with one crc32 each; records after the last
valid seal are verified one by one. The first record that fails its checksum ends
the readable history: everything before it is returned intact.
"""

from __future__ import annotations

import bisect
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstack.core.logfile import (
    FILE_HEADER,
    FORMAT_VERSION,
    KIND_MEDIA,
    KIND_ROW,
    KIND_SCHEMA,
    KIND_SEAL,
    MAGIC,
    MEDIA_PREFIX,
    RECORD_HEADER,
    SEAL,
    Encoder,
)
from runstack.errors import StoreFormatError

if TYPE_CHECKING:
    import numpy as np

_NUMPY_CODE = {"d": "<f8", "q": "<i8", "?": "?"}
_ROW_FIXED = 8 + 3 + 8 + 8  # record header, kind+sid, step, time


@dataclass
class Block:
    """``count`` consecutive rows of schema ``sid`` starting at byte ``pos``."""

    sid: int
    pos: int
    count: int
    rows: Any = None  # numpy structured array view, filled after verification


@dataclass
class MediaRecord:
    """One media record: its byte position, step, time and ``{key: reference}``."""

    pos: int
    step: int
    ts: float
    refs: dict[str, Any]


@dataclass
class LogContents:
    """Everything a history file holds, in file order."""

    path: Path
    rank: int
    schemas: dict[int, Encoder] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    media: list[MediaRecord] = field(default_factory=list)
    valid_end: int = FILE_HEADER.size
    torn_bytes: int = 0  # non-zero bytes after the valid data: a torn or corrupt tail
    skipped_bytes: int = 0  # damaged bytes passed over to reach later sealed data

    @property
    def row_count(self) -> int:
        return sum(b.count for b in self.blocks)


def _row_dtype(enc: Encoder) -> np.dtype:
    import numpy as np

    names = ["step", "ts"] + [f"v{i}" for i in range(len(enc.codes))]
    formats = ["<i8", "<f8"] + [_NUMPY_CODE[c] for c in enc.codes]
    offsets, at = [11, 19], 27
    for code in enc.codes:
        offsets.append(at)
        at += struct.calcsize("<" + code)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": at})


def _run_length(buf: np.ndarray, pos: int, stride: int, pattern: np.ndarray) -> int:
    """How many records from ``pos`` share the header bytes in ``pattern`` (len, kind, sid)."""
    import numpy as np

    available = (len(buf) - pos) // stride
    view = np.lib.stride_tricks.as_strided(buf[pos:], shape=(available, 11), strides=(stride, 1))
    cols = [0, 1, 2, 3, 8, 9, 10]
    lo, chunk = 1, 64  # record 0 was already checked by the caller
    while lo < available:
        hi = min(available, lo + chunk)
        ok = (view[lo:hi][:, cols] == pattern).all(axis=1)
        if not ok.all():
            return lo + int(np.argmin(ok))
        lo, chunk = hi, chunk * 2
    return available


def _record_ok(data: bytes | memoryview, pos: int) -> bool:
    length, crc = RECORD_HEADER.unpack_from(data, pos)
    start = pos + RECORD_HEADER.size
    return zlib.crc32(data[start : start + length]) == crc


def read_log(path: Path, data: bytes | None = None) -> LogContents:
    """Parse and verify one history file (or its bytes, ``data``, named ``path``); never raises
    on a torn or corrupt tail.

    Where a record is damaged (a flipped bit, a bad sector), reading goes on at the start of
    the next seal whose range verifies: everything that seal vouches for is returned, and
    ``skipped_bytes`` says how much was passed over.
    """
    import numpy as np

    if data is None:
        data = path.read_bytes()
    if len(data) < FILE_HEADER.size:
        return LogContents(path, rank=0, torn_bytes=len(data))
    magic, version, rank, _ = FILE_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise StoreFormatError(path, "not a runstack history file (bad magic): was it overwritten?")
    if version > FORMAT_VERSION:
        raise StoreFormatError(path, f"history format v{version} is newer than this runstack: upgrade runstack")
    out = LogContents(path, rank=rank)
    buf = np.frombuffer(data, dtype=np.uint8)
    view = memoryview(data)
    pos = FILE_HEADER.size
    while True:
        first_block, first_media = len(out.blocks), len(out.media)
        end, seals = _parse_segment(out, data, buf, view, pos)
        end = _verify_rows(out, view, seals, end, first_block)
        out.media[first_media:] = [m for m in out.media[first_media:] if m.pos < end]
        out.valid_end = end
        resume = _next_sealed_start(data, view, end)
        if resume is None:
            break
        out.skipped_bytes += resume - end
        pos = resume
    for block in out.blocks:
        dtype = _row_dtype(out.schemas[block.sid])
        block.rows = np.ndarray((block.count,), dtype=dtype, buffer=data, offset=block.pos)
    tail = buf[out.valid_end :]
    out.torn_bytes = int(np.count_nonzero(tail))
    return out


def _parse_segment(out: LogContents, data: bytes, buf: Any, view: memoryview, pos: int) -> tuple[int, list[Any]]:
    """Read records from ``pos`` until the end of data or the first damaged record."""
    import numpy as np

    seals: list[tuple[int, int]] = []  # verified [start, end) ranges
    n = len(data)
    while pos + RECORD_HEADER.size < n:
        length = RECORD_HEADER.unpack_from(data, pos)[0]
        end = pos + RECORD_HEADER.size + length
        if length == 0 or end > n:
            break
        kind = data[pos + 8]
        if kind == KIND_ROW:
            sid = struct.unpack_from("<H", data, pos + 9)[0]
            enc = out.schemas.get(sid)
            if enc is None or length + 8 != _row_dtype(enc).itemsize:
                break
            pattern = np.frombuffer(data[pos : pos + 4] + data[pos + 8 : pos + 11], dtype=np.uint8)
            count = _run_length(buf, pos, length + 8, pattern)
            out.blocks.append(Block(sid, pos, count))
            pos += count * (length + 8)
            continue
        if not _record_ok(view, pos):
            break
        try:
            if kind == KIND_SCHEMA:
                sid = struct.unpack_from("<H", data, pos + 9)[0]
                pairs = json.loads(data[pos + 11 : end])
                out.schemas[sid] = Encoder.build(sid, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))
            elif kind == KIND_MEDIA:
                _, step, ts = MEDIA_PREFIX.unpack_from(data, pos + 8)
                out.media.append(MediaRecord(pos, step, ts, json.loads(data[pos + 8 + MEDIA_PREFIX.size : end])))
            elif kind == KIND_SEAL:
                _, start, stop, crc = SEAL.unpack_from(data, pos + 8)
                if zlib.crc32(view[start:stop]) == crc:
                    seals.append((start, stop))
            else:
                break
        except (ValueError, TypeError, IndexError, KeyError, struct.error):  # valid CRC, nonsense inside
            break
        pos = end
    return pos, seals


_SEAL_HEADER = struct.pack("<I", SEAL.size)


def _next_sealed_start(data: bytes, view: memoryview, after: int) -> int | None:
    """The start of the first seal range beginning after ``after`` whose bytes verify."""
    at = data.find(_SEAL_HEADER, after)
    while at != -1 and at + RECORD_HEADER.size + SEAL.size <= len(data):
        if data[at + 8] == KIND_SEAL and _record_ok(view, at):
            _, start, stop, crc = SEAL.unpack_from(data, at + 8)
            if after < start < stop <= at and zlib.crc32(view[start:stop]) == crc:
                return int(start)
        at = data.find(_SEAL_HEADER, at + 1)
    return None


def _verify_rows(out: LogContents, view: memoryview, seals: list[tuple[int, int]], end: int, first: int = 0) -> int:
    """Check every row (of blocks from index ``first``) not covered by a verified seal. A row
    that fails its CRC inside a run of same-sized rows is dropped alone (its neighbours' headers
    still frame it); the bytes are counted in ``skipped_bytes``."""
    seals.sort()
    starts = [s[0] for s in seals]
    kept = out.blocks[:first]
    for block in out.blocks[first:]:
        stride = _row_dtype(out.schemas[block.sid]).itemsize
        i = good_from = 0
        while i < block.count:
            pos = block.pos + i * stride
            at = bisect.bisect_right(starts, pos) - 1
            if at >= 0 and pos + stride <= seals[at][1]:
                i += (seals[at][1] - pos) // stride  # every row fully inside the sealed range
                continue
            if not _record_ok(view, pos):
                if i > good_from:
                    kept.append(Block(block.sid, block.pos + good_from * stride, i - good_from))
                out.skipped_bytes += stride
                good_from = i + 1
            i += 1
        if block.count > good_from:
            kept.append(Block(block.sid, block.pos + good_from * stride, block.count - good_from))
    out.blocks = kept
    return end
