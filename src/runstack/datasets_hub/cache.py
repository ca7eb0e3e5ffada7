"""Per-source results of the per-file steps, kept between builds: what makes a build resumable
and a new version incremental.

A source's records go to ``<cache>/<pipeline fingerprint>/<source key>.pkl``, written under a
temporary name and renamed when the source is done, so a killed build leaves only whole files.
The source key covers what was read: a git repository's tree id at the revision, a folder's
listing (path, size, modification time), a file's size and modification time. A build that
finds a source's file skips reading it; a changed source or changed steps get a new key.
The opt-out registry is not part of the key: it is applied to every record at each build.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from runstack.datasets_hub.config import MinHashConfig
from runstack.datasets_hub.pipeline import StepStats
from runstack.datasets_hub.record import SourceFile
from runstack.errors import StoreFormatError


def _identity(path: Path, revision: str | None) -> str:
    """What a source's content depends on, cheaply: never its bytes, except a release's manifest."""
    from runstack.datasets_hub.ingest import is_git_repo

    if is_git_repo(path):
        found = subprocess.run(["git", "-C", str(path), "rev-parse", f"{revision or 'HEAD'}^{{tree}}"],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if found.returncode == 0:
            return "git:" + found.stdout.strip()
    if path.is_dir() and (path / "manifest.json").is_file():
        return "release:" + hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest()
    if path.is_dir():
        listing, root = hashlib.sha256(), os.fspath(path)
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            relative = os.path.relpath(folder, root)
            prefix = "" if relative == "." else relative + os.sep
            for name in sorted(files):
                try:
                    stat = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                listing.update(os.fsencode(prefix + name) + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return "folder:" + listing.hexdigest()
    stat = path.stat()
    return f"file:{stat.st_size}:{stat.st_mtime_ns}"


def source_key(source: Any) -> str:
    """A key that changes whenever the source's files (or how it is named) change."""
    path = Path(source.path).absolute()
    text = "\0".join([str(path), str(source.repo_name), str(source.revision), repr(source.priority),
                      _identity(path, source.revision)])  # fmt: skip
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


# A spill is one file: the records (pickled one after another), then their step stats (pickled),
# then their signatures (uint32, a row of num_perm each), then their sketches (each one's length as
# int64, then every value as uint64), then where each part starts, the records' count and num_perm:
# each part is read alone (the band map needs the signatures only, the verify round the sketches
# only). One file created per source: a file system's inode allocation was ~13% of a build's time
# with a file per part. Signatures and sketches are made batch by batch as the records come and
# wait aside (in memory up to a limit, then in temporary files) until the records end: a source's
# size never sits in memory.
_FOOTER = struct.Struct("<QQQQQQ8s")
SPILL_FORMAT = "rsspill3"  # part of the cache key: a new format is a new cache
_MAGIC = SPILL_FORMAT.encode()


def write_spill(target: Path, records: Iterator[SourceFile | list[StepStats]], minhash: MinHashConfig) -> None:
    """Records into ``target``, with their step stats and their MinHash signatures and sketches
    (computed here, in the parallel stage) after them; written under a temporary name and renamed
    when whole, so a spill that exists is whole."""
    from runstack.datasets_hub.dedup import BATCH_BYTES, sign

    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stats: list[StepStats] = []
    texts: list[str] = []  # signed batch by batch: a large repository's contents are never all in memory
    pending, count = 0, 0
    # Signatures, sketch lengths and sketch values: in memory up to 16 MB each, then in a file.
    parts = [tempfile.SpooledTemporaryFile(max_size=16 << 20, prefix="runstack-spill-") for _ in range(3)]

    def flush() -> None:
        sigs, sketches = sign(texts, minhash)
        parts[0].write(sigs.astype("<u4").tobytes())
        parts[1].write(np.array([len(s) for s in sketches], dtype="<i8").tobytes())
        if sketches:
            parts[2].write(np.concatenate(sketches).astype("<u8").tobytes())
        texts.clear()

    try:
        with open(temporary, "wb") as handle:
            for item in records:
                if isinstance(item, list):
                    stats = item
                    continue
                item.sha256 = hashlib.sha256(item.content.encode()).hexdigest()
                pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)
                texts.append(item.content)
                count, pending = count + 1, pending + len(item.content)
                if pending >= BATCH_BYTES:
                    flush()
                    pending = 0
            flush()
            stats_at = handle.tell()
            pickle.dump(stats, handle, protocol=pickle.HIGHEST_PROTOCOL)
            at = [handle.tell()]
            for part in parts:
                part.seek(0)
                shutil.copyfileobj(part, handle)
                at.append(handle.tell())
            handle.write(_FOOTER.pack(stats_at, at[0], at[1], at[3], count, minhash.num_perm, _MAGIC))
        os.replace(temporary, target)
    except BaseException:  # Ctrl-C or a failure: no half-written spill left in a user's cache
        temporary.unlink(missing_ok=True)
        raise
    finally:
        for part in parts:
            part.close()


def _parts(handle: BinaryIO) -> tuple[int, int, int, int, int, int]:
    """(where the stats, the signatures and the sketches start, where they end, the records' count
    and num_perm) of an open spill."""
    handle.seek(-_FOOTER.size, os.SEEK_END)
    *found, magic = _FOOTER.unpack(handle.read(_FOOTER.size))
    if magic != _MAGIC:
        raise StoreFormatError(getattr(handle, "name", "spill"), "not a whole spill of this runstack version: delete "
                               "the build cache folder (--cache) and build again")  # fmt: skip
    stats_at, signatures_at, sketches_at, end, count, num_perm = found
    return stats_at, signatures_at, sketches_at, end, count, num_perm


def spill_is_whole(path: Path) -> bool:
    """A spill that exists and ends as ``write_spill`` ends one (a damaged one is made again)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < _FOOTER.size:
                return False
            return _parts(handle)[3] == size - _FOOTER.size
    except (OSError, StoreFormatError):
        return False


def _minhash_part(spill: Path, part: int) -> tuple[bytes, int, int]:
    """The bytes of a spill's signatures (``part`` 1) or sketches (2), reading that part only, with
    the records' count and num_perm."""
    with open(spill, "rb") as handle:
        bounds = _parts(handle)
        handle.seek(bounds[part])
        return handle.read(bounds[part + 1] - bounds[part]), bounds[4], bounds[5]


def read_signatures(spill: Path) -> np.ndarray:
    """The MinHash signatures of a spill's records, in order (one row each)."""
    data, count, num_perm = _minhash_part(spill, 1)
    return np.frombuffer(data, dtype="<u4").astype(np.uint32).reshape(count, num_perm)


def read_sketches(spill: Path) -> tuple[np.ndarray, np.ndarray]:
    """The bottom-k sketches of a spill's records: record ``i``'s is ``flat[bounds[i]:bounds[i + 1]]``."""
    data, count, _ = _minhash_part(spill, 2)
    lengths = np.frombuffer(data, dtype="<i8", count=count)
    flat = np.frombuffer(data, dtype="<u8", offset=8 * count).astype(np.uint64)
    return flat, np.concatenate([[0], np.cumsum(lengths)])


def read_spill_at(path: Path) -> Iterator[tuple[int, SourceFile]]:
    """(offset, record) of every record of a spill: a record can be read again from its offset."""
    with open(path, "rb") as handle:
        end = _parts(handle)[0]
        handle.seek(0)
        while (offset := handle.tell()) < end:
            yield offset, pickle.load(handle)


def spill_stats(path: Path) -> list[StepStats]:
    with open(path, "rb") as handle:
        handle.seek(_parts(handle)[0])
        stats: list[StepStats] = pickle.load(handle)
    return stats
