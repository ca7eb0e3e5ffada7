"""An existing dataset as a source: the rows of a Parquet or JSONL file sorted by repository and
path (what the per-file steps need: a repository's files together, in a fixed order) in bounded
memory. Rows are read in batches; beyond ``RUN_BYTES`` of content they are sorted in runs kept in
a temporary folder and merged (``runs``: a few files open at once, however many runs)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runstack.datasets_hub import runs

RUN_BYTES = 64 << 20  # content sorted in memory at once

Row = dict[str, Any]


def _key(row: Row) -> tuple[str, str]:
    return str(row["repo_name"]), str(row["path"])


def sorted_rows(path: Path, columns: list[str], refused: Callable[[], None]) -> Iterator[Row]:
    """The rows of ``path`` (``columns`` of a Parquet file; JSONL objects whose ``repo_name``,
    ``path`` and ``content`` are strings, ``refused()`` called for each other line) in (repo_name,
    path) order, the order read among equals."""
    held: list[Row] = []
    size = 0
    with tempfile.TemporaryDirectory(prefix="runstack-rows-") as folder:
        sections: list[runs.Section] = []
        for row in _rows(path, columns, refused):
            held.append(row)
            size += len(row["content"]) if isinstance(row["content"], str) else 0
            if size >= RUN_BYTES:
                sections.append(_spill(held, Path(folder) / f"run-{len(sections):06d}.pkl"))
                held, size = [], 0
        if not sections:
            yield from sorted(held, key=_key)
            return
        sections.append(_spill(held, Path(folder) / f"run-{len(sections):06d}.pkl"))
        del held
        yield from runs.merged(sections, _key, Path(folder), "rows", block=256)


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


def _spill(rows: list[Row], path: Path) -> runs.Section:
    rows.sort(key=_key)
    with open(path, "wb") as handle:
        return str(path), runs.dump(handle, rows, block=256)
