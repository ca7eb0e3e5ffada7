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
import io
import os
import pickle
import struct
import subprocess
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
# then their signatures (npz), then their sketches (npz), then where each part starts: each part
# is read alone (the band map needs the signatures only, the verify round the sketches only). One
# file created per source: a file system's inode allocation was ~13% of a build's time with a file
# per part.
_FOOTER = struct.Struct("<QQQQ8s")
SPILL_FORMAT = "rsspill2"  # part of the cache key: a new format is a new cache
_MAGIC = SPILL_FORMAT.encode()


def write_spill(target: Path, records: Iterator[SourceFile | list[StepStats]], minhash: MinHashConfig) -> None:
    """Records into ``target``, with their step stats and their MinHash signatures and sketches
    (computed here, in the parallel stage) after them; written under a temporary name and renamed
    when whole, so a spill that exists is whole."""
    from runstack.datasets_hub.dedup import BATCH_BYTES, sign

    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stats: list[StepStats] = []
    texts: list[str] = []  # signed batch by batch: a large repository's contents are never all in memory
    pending, signed, sketches = 0, [], []  # type: int, list[np.ndarray], list[np.ndarray]
    with open(temporary, "wb") as handle:
        for item in records:
            if isinstance(item, list):
                stats = item
                continue
            item.sha256 = hashlib.sha256(item.content.encode()).hexdigest()
            pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)
            texts.append(item.content)
            pending += len(item.content)
            if pending >= BATCH_BYTES:
                batch_sigs, batch_sketches = sign(texts, minhash)
                signed.append(batch_sigs)
                sketches += batch_sketches
                texts, pending = [], 0
        last_sigs, last_sketches = sign(texts, minhash)
        sigs, sketches = np.concatenate([*signed, last_sigs]), sketches + last_sketches
        del texts
        stats_at = handle.tell()
        pickle.dump(stats, handle, protocol=pickle.HIGHEST_PROTOCOL)
        signatures_at = handle.tell()
        np.savez(handle, sigs=sigs)
        sketches_at = handle.tell()
        lengths = np.array([len(s) for s in sketches], dtype=np.int64)
        flat = np.concatenate(sketches) if sketches else np.zeros(0, dtype=np.uint64)
        np.savez(handle, lengths=lengths, flat=flat)
        handle.write(_FOOTER.pack(stats_at, signatures_at, sketches_at, handle.tell(), _MAGIC))
    os.replace(temporary, target)


def _parts(handle: BinaryIO) -> tuple[int, int, int, int]:
    """(where the stats, the signatures and the sketches start, and where they end) in an open spill."""
    handle.seek(-_FOOTER.size, os.SEEK_END)
    stats_at, signatures_at, sketches_at, end, magic = _FOOTER.unpack(handle.read(_FOOTER.size))
    if magic != _MAGIC:
        raise StoreFormatError(getattr(handle, "name", "spill"), "not a whole spill of this runstack version: delete "
                               "the build cache folder (--cache) and build again")  # fmt: skip
    return stats_at, signatures_at, sketches_at, end


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


def _minhash_part(spill: Path, part: int, *names: str) -> list[np.ndarray]:
    """Arrays of a spill's signatures (``part`` 1) or sketches (2), reading that part only."""
    with open(spill, "rb") as handle:
        bounds = _parts(handle)
        handle.seek(bounds[part])
        data = handle.read(bounds[part + 1] - bounds[part])
    with np.load(io.BytesIO(data)) as found:
        return [found[name] for name in names]


def read_signatures(spill: Path) -> np.ndarray:
    """The MinHash signatures of a spill's records, in order (one row each)."""
    return _minhash_part(spill, 1, "sigs")[0]


def read_sketches(spill: Path) -> tuple[np.ndarray, np.ndarray]:
    """The bottom-k sketches of a spill's records: record ``i``'s is ``flat[bounds[i]:bounds[i + 1]]``."""
    lengths, flat = _minhash_part(spill, 2, "lengths", "flat")
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
