"""An existing dataset as a source: the rows of a Parquet or JSONL file sorted by repository and
path (what the per-file steps need: a repository's files together, in a fixed order) in bounded
memory. Rows are read in batches; beyond ``RUN_BYTES`` of content they are sorted in runs kept in
temporary files and merged."""

from __future__ import annotations

import heapq
import json
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

RUN_BYTES = 64 << 20  # content sorted in memory at once

Row = dict[str, Any]


def _key(row: Row) -> tuple[str, str]:
    return str(row["repo_name"]), str(row["path"])


def sorted_rows(path: Path, columns: list[str], refused: Callable[[], None]) -> Iterator[Row]:
    """The rows of ``path`` (``columns`` of a Parquet file; JSONL objects whose ``repo_name``,
    ``path`` and ``content`` are strings, ``refused()`` called for each other line) in (repo_name,
    path) order, the order read among equals."""
    runs: list[IO[bytes]] = []
    held: list[Row] = []
    size = 0
    try:
        for row in _rows(path, columns, refused):
            held.append(row)
            size += len(row["content"]) if isinstance(row["content"], str) else 0
            if size >= RUN_BYTES:
                runs.append(_spill(held))
                held, size = [], 0
        held.sort(key=_key)
        if not runs:
            yield from held
            return
        yield from heapq.merge(*map(_read, runs), held, key=_key)
    finally:
        for run in runs:
            run.close()


def _rows(path: Path, columns: list[str], refused: Callable[[], None]) -> Iterator[Row]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=columns):
            yield from batch.to_pylist()
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not all(
                isinstance(row.get(c), str) for c in ("repo_name", "path", "content")
            ):
                refused()
                continue
            yield row


def _spill(rows: list[Row]) -> IO[bytes]:
    rows.sort(key=_key)
    run = tempfile.TemporaryFile(prefix="runstack-rows-")
    for start in range(0, len(rows), 256):
        pickle.dump(rows[start : start + 256], run, protocol=pickle.HIGHEST_PROTOCOL)
    run.seek(0)
    return run


def _read(run: IO[bytes]) -> Iterator[Row]:
    while True:
        try:
            block = pickle.load(run)
        except EOFError:
            return
        yield from block
