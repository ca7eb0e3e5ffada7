"""Columnar history: from parsed logs to full-fidelity columns, DataFrames and Arrow tables.

Rows are records in the order they were logged. Consecutive records with the same
step (``commit=False``, or several ``log()`` calls at one ``step=``) merge into one
row; a step that goes backwards starts a new row, so nothing is ever dropped.
Missing values are nulls, distinct from a logged NaN.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runstack.core.logread import Block, LogContents
from runstack.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


Decoder = Callable[[dict[str, Any]], Any]


@dataclass
class Column:
    values: np.ndarray
    present: np.ndarray  # bool mask; False where the row has no value for this key


@dataclass
class Columns:
    step: np.ndarray
    timestamp: np.ndarray
    rank: np.ndarray
    data: dict[str, Column] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.step)


def metric_counts(logs: list[LogContents]) -> dict[str, int]:
    """How many values each metric has, over every rank (media included)."""
    counts: dict[str, int] = {}
    for log in logs:
        for block in log.blocks:
            for key in log.schemas[block.sid].keys:
                counts[key] = counts.get(key, 0) + block.count
        for record in log.media:
            for key in record.refs:
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _segments(log: LogContents) -> list[Any]:
    """Row blocks and media records in file order."""
    return sorted([*log.blocks, *log.media], key=lambda seg: seg.pos)


def _one_log(log: LogContents, keys: list[str] | None, decode: Decoder | None) -> Columns:
    import numpy as np

    segments = _segments(log)
    if not segments:
        empty = np.zeros(0, dtype=np.int64)
        return Columns(empty, empty.astype(np.float64), empty)
    is_block = [isinstance(seg, Block) for seg in segments]
    step = np.concatenate(
        [seg.rows["step"] if blk else np.array([seg.step]) for seg, blk in zip(segments, is_block, strict=True)]
    )
    ts = np.concatenate(
        [seg.rows["ts"] if blk else np.array([seg.ts]) for seg, blk in zip(segments, is_block, strict=True)]
    )
    wanted = keys if keys is not None else list(metric_counts([log]))
    placements: dict[str, list[tuple[int, Any, str]]] = {k: [] for k in wanted}
    starts = np.cumsum([0] + [seg.count if blk else 1 for seg, blk in zip(segments, is_block, strict=True)])
    for si, (seg, blk) in enumerate(zip(segments, is_block, strict=True)):
        if blk:
            enc = log.schemas[seg.sid]
            for fi, key in enumerate(enc.keys):
                if key in placements:
                    placements[key].append((si, fi, enc.codes[fi]))
        else:
            for key, ref in seg.refs.items():
                if key in placements:
                    placements[key].append((si, ref, "m"))
    # Merge consecutive records that share a step into one row.
    new_row = np.empty(len(step), dtype=bool)
    new_row[:1] = True
    np.not_equal(step[1:], step[:-1], out=new_row[1:])
    merged = not new_row.all()
    row_of = np.cumsum(new_row) - 1
    n_rows = int(row_of[-1]) + 1
    out = Columns(step[new_row] if merged else step, ts[new_row] if merged else ts, np.full(n_rows, log.rank))
    for key, places in placements.items():
        codes = {code for _, _, code in places}
        dtype: Any = (
            {"d": np.float64, "q": np.int64, "?": np.bool_}[codes.pop()]
            if len(codes) == 1 and "m" not in codes
            else object
        )
        values = np.zeros(len(step), dtype=dtype)
        present = np.zeros(len(step), dtype=bool)
        for si, where, code in places:
            lo, hi = starts[si], starts[si + 1]
            if code == "m":
                values[lo] = decode(where) if decode is not None else where
            else:
                src = segments[si].rows[f"v{where}"]
                values[lo:hi] = src.astype(object) if dtype is object else src
            present[lo:hi] = True
        if merged:
            idx = np.flatnonzero(present)
            rows = row_of[idx]
            last = np.ones(len(idx), dtype=bool)  # the last value logged within a row wins
            last[:-1] = rows[1:] != rows[:-1]
            merged_values = np.zeros(n_rows, dtype=dtype)
            merged_present = np.zeros(n_rows, dtype=bool)
            merged_values[rows[last]] = values[idx[last]]
            merged_present[rows[last]] = True
            values, present = merged_values, merged_present
        out.data[key] = Column(values, present)
    return out


def assemble(logs: list[LogContents], keys: list[str] | None = None, decode: Decoder | None = None) -> Columns:
    """Columns for ``keys`` (all metrics when None) over every rank's log.

    With ``keys``, rows holding none of them are left out. ``decode`` turns media
    references into objects (they stay dicts without it).
    """
    import numpy as np

    parts = [_one_log(log, keys, decode) for log in sorted(logs, key=lambda lg: lg.rank)]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        parts = [Columns(empty, empty.astype(np.float64), empty)]
    names = keys if keys is not None else sorted({k for p in parts for k in p.data})
    out = Columns(
        np.concatenate([p.step for p in parts]),
        np.concatenate([p.timestamp for p in parts]),
        np.concatenate([p.rank for p in parts]),
    )
    for name in names:
        cols = [p.data.get(name) or Column(np.zeros(len(p), dtype=np.float64), np.zeros(len(p), bool)) for p in parts]
        kinds = {c.values.dtype for c, p in zip(cols, parts, strict=False) if c.present.any()}
        dtype = kinds.pop() if len(kinds) == 1 else (object if kinds else np.float64)
        out.data[name] = Column(
            np.concatenate([c.values.astype(dtype, copy=False) for c in cols]),
            np.concatenate([c.present for c in cols]),
        )
    if keys is not None and out.data:
        keep = np.logical_or.reduce([c.present for c in out.data.values()])
        if not keep.all():
            out = Columns(out.step[keep], out.timestamp[keep], out.rank[keep],
                          {k: Column(c.values[keep], c.present[keep]) for k, c in out.data.items()})  # fmt: skip
    return out


def _pandas_column(col: Column) -> Any:
    import numpy as np
    import pandas as pd

    if col.present.all():
        return col.values
    mask = ~col.present
    kind = col.values.dtype
    if kind == np.float64:
        return pd.arrays.FloatingArray(col.values, mask)
    if kind == np.int64:
        return pd.arrays.IntegerArray(col.values, mask)
    if kind == np.bool_:
        return pd.arrays.BooleanArray(col.values, mask)
    values = col.values.copy()
    values[mask] = None
    return values


def to_pandas(cols: Columns, x_axis: str | None = None, with_rank: bool = False) -> pd.DataFrame:
    """A DataFrame with ``_step``, ``_timestamp`` (and ``_rank``) then one column per metric.

    ``x_axis`` names a metric to index by (e.g. ``epoch``); rows without it are dropped.
    """
    import pandas as pd

    data: dict[str, Any] = {"_step": cols.step, "_timestamp": cols.timestamp}
    if with_rank:
        data["_rank"] = cols.rank
    for name, col in cols.data.items():
        data[name] = _pandas_column(col)
    frame = pd.DataFrame(data)
    if x_axis is None:
        return frame
    if x_axis != "_step" and x_axis not in cols.data:
        raise InvalidArgumentError("x_axis", x_axis, f"a logged metric or '_step' (have {sorted(cols.data)[:10]})")
    if x_axis != "_step":
        frame = frame[cols.data[x_axis].present]
    return frame.set_index(x_axis)


def to_arrow(cols: Columns, with_rank: bool = False) -> pa.Table:
    """The same columns as an Arrow table; missing values are nulls."""
    import pyarrow as pa

    arrays = {"_step": pa.array(cols.step), "_timestamp": pa.array(cols.timestamp)}
    if with_rank:
        arrays["_rank"] = pa.array(cols.rank)
    for name, col in cols.data.items():
        mask = None if col.present.all() else ~col.present
        if col.values.dtype == object:
            # A key logged with several types: Arrow columns have one, so widen bool -> int -> float.
            values = [v if p else None for v, p in zip(col.values.tolist(), col.present.tolist(), strict=False)]
            kinds = {type(v) for v in values if v is not None}
            if dict in kinds:  # media references: kept as JSON text
                arrays[name] = pa.array([None if v is None else json.dumps(v, sort_keys=True) for v in values])
                continue
            widen, kind = (float, pa.float64()) if float in kinds else (int, pa.int64())
            arrays[name] = pa.array([None if v is None else widen(v) for v in values], type=kind)
        else:
            arrays[name] = pa.array(col.values, mask=mask)
    return pa.table(arrays)


def to_long(logs: list[LogContents], keys: list[str] | None, decode: Decoder | None) -> pd.DataFrame:
    """One row per logged value (``_step``, ``_timestamp``, ``_rank``, ``key``, ``value``): memory in
    proportion to the values, however many distinct keys a run has."""
    import numpy as np
    import pandas as pd

    wanted = None if keys is None else set(keys)
    parts: list[pd.DataFrame] = []
    for log in logs:
        for seg in _segments(log):
            if isinstance(seg, Block):
                enc = log.schemas[seg.sid]
                for i, key in enumerate(enc.keys):
                    if wanted is None or key in wanted:
                        parts.append(pd.DataFrame({"_step": seg.rows["step"], "_timestamp": seg.rows["ts"],
                                                   "_rank": log.rank, "key": key,
                                                   "value": seg.rows[f"v{i}"].astype(object)}))  # fmt: skip
            else:
                for key, ref in seg.refs.items():
                    if wanted is None or key in wanted:
                        value = decode(ref) if decode is not None else ref
                        parts.append(pd.DataFrame({"_step": [seg.step], "_timestamp": [seg.ts], "_rank": [log.rank],
                                                   "key": [key], "value": np.array([value], dtype=object)}))  # fmt: skip
    if not parts:
        return pd.DataFrame({"_step": [], "_timestamp": [], "_rank": [], "key": [], "value": []})
    return pd.concat(parts, ignore_index=True)
