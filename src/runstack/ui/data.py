"""What the dashboard reads: runs as JSON, and metric series cut down to what a chart can show.

A series is read once per history file version (size and modification time) and kept; a
request then slices it to the visible range and keeps, per pixel bucket, the minimum and the
maximum (tsdownsample's MinMax), so a one-step spike anywhere in a million points is drawn.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

from runstack.core.history import metric_counts
from runstack.core.logread import LogContents
from runstack.core.store import LOG_PATTERN, SYSTEM_PATTERN

_CACHE_LIMIT = 16  # parsed history files kept in memory
_cache: OrderedDict[Any, LogContents] = OrderedDict()
_lock = threading.Lock()


def logs_of(store: Any, run_id: str, pattern: str = LOG_PATTERN) -> list[LogContents]:
    """Every rank's parsed log, from the cache while the file is unchanged (a local store, or the
    team server's)."""
    out = []
    for key, load in store.log_files(run_id, pattern):
        with _lock:
            found = _cache.get(key)
            if found is not None:
                _cache.move_to_end(key)
        if found is None:
            found = load()
            with _lock:
                _cache[key] = found
                while len(_cache) > _CACHE_LIMIT:
                    _cache.popitem(last=False)
        out.append(found)
    return out


def series(logs: list[LogContents], key: str, x_axis: str = "_step") -> tuple[Any, Any, Any]:
    """(x, y, wall time) of one metric over rank 0's log, in file order, finite values only.

    ``x_axis`` is "_step", "_timestamp", "_relative" (seconds since the first record) or another
    metric logged in the same rows (a ``define_metric`` step metric such as "epoch").
    """
    import numpy as np

    if not logs:
        empty = np.zeros(0)
        return empty, empty, empty
    log = min(logs, key=lambda lg: lg.rank)
    xs, ys, ts = [], [], []
    for block in log.blocks:
        enc = log.schemas[block.sid]
        if key not in enc.keys:
            continue
        y = block.rows[f"v{enc.keys.index(key)}"].astype(np.float64)
        if x_axis in ("_step", "_timestamp", "_relative"):
            x = block.rows["ts" if x_axis != "_step" else "step"].astype(np.float64)
        elif x_axis in enc.keys:
            x = block.rows[f"v{enc.keys.index(x_axis)}"].astype(np.float64)
        else:
            continue  # rows without the chosen x metric are not drawn against it
        xs.append(x)
        ys.append(y)
        ts.append(block.rows["ts"])
    if not ys:
        empty = np.zeros(0)
        return empty, empty, empty
    x, y, t = np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)
    if x_axis == "_relative":
        first = min(float(b.rows["ts"][0]) for b in log.blocks if b.count)
        x = x - first
    keep = np.isfinite(y)
    return x[keep], y[keep], t[keep]


def downsample(x: Any, y: Any, points: int, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    """The points of ``[lo, hi]`` (all by default), at most ``points`` of them, extremes kept."""
    import numpy as np

    total = len(y)
    if lo is not None or hi is not None:
        mask = np.ones(total, dtype=bool)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x <= hi
        x, y = x[mask], y[mask]
    if len(y) > points >= 4:
        from tsdownsample import MinMaxDownsampler

        index = np.sort(MinMaxDownsampler().downsample(np.ascontiguousarray(y), n_out=points - points % 2))
        x, y, sampled = x[index], y[index], True
    else:
        sampled = False
    return {"x": _floats(x), "y": _floats(y), "total": int(total), "in_range": int(len(y) if not sampled else 0),
            "downsampled": sampled}  # fmt: skip


def _floats(values: Any) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values.tolist()]


def system_names(store: Any, run_id: str) -> list[str]:
    return sorted(metric_counts(logs_of(store, run_id, SYSTEM_PATTERN)))


def jsonable(value: Any) -> Any:
    """Config/summary values for JSON: NaN and infinities as strings (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
