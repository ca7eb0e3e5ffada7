"""Run summaries: one value per metric, computed from the history itself.

The summary is derived from the log, not kept beside it, so a run killed
mid-training gets the same summary on recovery as it would have at ``finish()``.
``define_metric`` chooses the reduction per metric (or glob pattern).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from runstack.errors import InvalidArgumentError

if TYPE_CHECKING:
    from runstack.core.logread import LogContents

REDUCTIONS = ("last", "min", "max", "mean", "first", "none")


def metric_spec(metrics: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """The ``define_metric`` settings that apply to ``key``: exact name first, then globs."""
    if key in metrics:
        return metrics[key]
    for pattern, spec in metrics.items():
        if fnmatch.fnmatchcase(key, pattern):
            return spec
    return {}


def check_reduction(summary: str) -> str:
    if summary not in REDUCTIONS:
        raise InvalidArgumentError("summary", summary, " | ".join(repr(r) for r in REDUCTIONS))
    return summary


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def reduce_values(values: Any, how: str) -> Any:
    """Reduce one metric's values (numpy array, file order); NaNs are ignored by min/max/mean."""
    import numpy as np

    if how == "last":
        return _plain(values[-1])
    if how == "first":
        return _plain(values[0])
    if values.dtype == object:
        values = values.astype(np.float64)
    if values.dtype == np.bool_ and how == "mean":
        values = values.astype(np.float64)
    if values.dtype == np.float64:
        finite = values[~np.isnan(values)]
        if not len(finite):
            return math.nan
        values = finite
    reducer: Any = {"min": np.min, "max": np.max, "mean": np.mean}[how]
    return _plain(reducer(values))


def compute_summary(logs: list[LogContents], metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary of a run from its logs (rank 0's log when several ranks logged).

    Works key by key on the values each key actually has, so a run with many keys each
    logged a few times costs memory in proportion to its values, not keys x rows.
    """
    import numpy as np

    if not logs:
        return {}
    primary = min(logs, key=lambda lg: lg.rank)
    parts: dict[str, list[Any]] = {}
    for block in primary.blocks:  # file order
        enc = primary.schemas[block.sid]
        for i, key in enumerate(enc.keys):
            parts.setdefault(key, []).append(block.rows[f"v{i}"])
    out: dict[str, Any] = {}
    for key, arrays in parts.items():
        how = metric_spec(metrics, key).get("summary", "last")
        if how == "none":
            continue
        kinds = {a.dtype.kind for a in arrays}
        if len(kinds) == 1:
            values = np.concatenate(arrays)
        else:  # a key logged with several types keeps each value's type for last/first
            values = np.concatenate([a.astype(object) for a in arrays])
        out[key] = reduce_values(values, how)
    return out


class Summary(MutableMapping[str, Any]):
    """``run.summary``: computed values, overridden by anything set explicitly.

    Setting a key stores it at once; deleting a set key restores the computed value.
    """

    def __init__(self, computed: Callable[[], dict[str, Any]], explicit: dict[str, Any],
                 on_change: Callable[[dict[str, Any]], None]) -> None:  # fmt: skip
        self._computed = computed
        self._explicit = explicit
        self._on_change = on_change

    def _merged(self) -> dict[str, Any]:
        merged = self._computed()
        merged.update(self._explicit)
        return merged

    def __getitem__(self, key: str) -> Any:
        if key in self._explicit:
            return self._explicit[key]
        return self._computed()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        from runstack.core.config import to_json

        self._explicit[key] = to_json(key, value)
        self._on_change(dict(self._explicit))

    def __delitem__(self, key: str) -> None:
        del self._explicit[key]
        self._on_change(dict(self._explicit))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        """Set several values with one write."""
        from runstack.core.config import to_json

        merged = dict(other.items() if hasattr(other, "items") else other, **kwargs)
        self._explicit.update({key: to_json(key, value) for key, value in merged.items()})
        self._on_change(dict(self._explicit))

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def __repr__(self) -> str:
        return f"Summary({self._merged()!r})"
