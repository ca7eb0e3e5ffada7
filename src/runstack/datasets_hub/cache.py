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
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from runstack.datasets_hub.config import MinHashConfig
from runstack.datasets_hub.pipeline import StepStats
from runstack.datasets_hub.record import SourceFile


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


def write_spill(target: Path, records: Iterator[SourceFile | list[StepStats]], minhash: MinHashConfig) -> None:
    """Records into ``target``, and beside it their step stats and their MinHash signatures and
    sketches (computed here, in the parallel stage); the records' rename comes last, so a spill
    that exists is whole."""
    from runstack.datasets_hub.dedup import sign

    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stats: list[StepStats] = []
    texts: list[str] = []
    with open(temporary, "wb") as handle:
        for item in records:
            if isinstance(item, list):
                stats = item
            else:
                item.sha256 = hashlib.sha256(item.content.encode()).hexdigest()
                pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)
                texts.append(item.content)
    sigs, sketches = sign(texts, minhash)
    del texts
    _put(target.with_suffix(".stats"), pickle.dumps(stats, protocol=pickle.HIGHEST_PROTOCOL))
    lengths = np.array([len(s) for s in sketches], dtype=np.int64)
    flat = np.concatenate(sketches) if sketches else np.zeros(0, dtype=np.uint64)
    with io.BytesIO() as buffer:
        np.savez(buffer, sigs=sigs, lengths=lengths, flat=flat)
        _put(target.with_suffix(".sig"), buffer.getvalue())
    os.replace(temporary, target)


def _put(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def read_signatures(spill: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """The signatures and sketches of a spill's records, in order."""
    with np.load(spill.with_suffix(".sig")) as found:
        sigs, lengths, flat = found["sigs"], found["lengths"], found["flat"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return sigs, [flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]


def read_spill_at(path: Path) -> Iterator[tuple[int, SourceFile]]:
    """(offset, record) of every record of a spill: a record can be read again from its offset."""
    with open(path, "rb") as handle:
        while True:
            offset = handle.tell()
            try:
                yield offset, pickle.load(handle)
            except EOFError:
                return


def spill_stats(path: Path) -> list[StepStats]:
    stats: list[StepStats] = pickle.loads(path.with_suffix(".stats").read_bytes())
    return stats
