"""The query API: find runs by project, config, summary, tags and status; read history."""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable
from typing import Any

from runstack.core.history import assemble, metric_counts, to_arrow, to_long, to_pandas
from runstack.core.store import Store
from runstack.core.values import has_surrogates
from runstack.errors import InvalidArgumentError

_MISSING = object()
MAX_DENSE_CELLS = 20_000_000  # rows x metrics of one history() table (about 200 MB)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq, "$ne": operator.ne, "$lt": operator.lt, "$lte": operator.le,
    "$gt": operator.gt, "$gte": operator.ge,
    "$in": lambda a, b: a in b, "$nin": lambda a, b: a not in b,
    "$regex": lambda a, b: isinstance(a, str) and re.search(b, a) is not None,
}  # fmt: skip
_FIELDS = {"id": "id", "name": "name", "project": "project", "status": "status", "group": "run_group",
           "job_type": "job_type", "notes": "notes", "host": "host", "created_at": "created_at",
           "ended_at": "ended_at", "duration": "duration"}  # fmt: skip


def history_of(store: Store, run_id: str, keys: list[str] | None, x_axis: str | None, format: str) -> Any:
    if format not in ("pandas", "arrow", "long"):
        raise InvalidArgumentError("format", format, "'pandas', 'arrow' or 'long'")
    if isinstance(keys, str):
        keys = [keys]
    if keys is not None and (not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys)):
        raise InvalidArgumentError("keys", keys, "a list of metric names, e.g. keys=['loss']")
    if x_axis is not None and not isinstance(x_axis, str):
        raise InvalidArgumentError("x_axis", x_axis, "a metric name such as 'epoch'")
    logs = store.read_logs(run_id)
    skipped = sum(log.skipped_bytes for log in logs)
    if skipped:
        import warnings

        warnings.warn(f"run {run_id}: {skipped:,} damaged history bytes were skipped (see `runstack doctor`)",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
    wanted = None if keys is None else list(dict.fromkeys([*keys, *([x_axis] if x_axis and x_axis != "_step" else [])]))
    decoder = None if format == "arrow" else store.decode_media
    if format == "long":
        return to_long(logs, wanted, decoder)
    counts = metric_counts(logs)
    cells = sum(lg.row_count + len(lg.media) for lg in logs) * len(wanted if wanted is not None else counts)
    if cells > MAX_DENSE_CELLS:
        raise InvalidArgumentError(
            "keys", keys, f"fewer metrics: a table of {cells:,} cells would not fit in memory; pass keys=[...] "
            "or format='long' (one row per logged value)",
        )  # fmt: skip
    cols = assemble(logs, wanted, decoder)
    with_rank = len(logs) > 1
    if format == "arrow":
        table = to_arrow(cols, with_rank)
        return table.replace_schema_metadata({**(table.schema.metadata or {}), b"skipped_bytes": str(skipped).encode()})
    frame = to_pandas(cols, x_axis, with_rank)
    frame.attrs["skipped_bytes"] = skipped
    return frame


class RunView:
    """A run as stored: read-only fields, config, summary and history."""

    def __init__(self, store: Store, row: dict[str, Any]) -> None:
        self._store, self._row = store, row

    def __getattr__(self, name: str) -> Any:
        column = _FIELDS.get(name, name)
        if column in self._row:
            return self._row[column]
        raise AttributeError(name)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._row["config"] or {})

    @property
    def summary(self) -> dict[str, Any]:
        return {**(self._row["summary"] or {}), **(self._row["summary_set"] or {})}

    @property
    def tags(self) -> list[str]:
        return list(self._row["tags"])

    @property
    def duration(self) -> float | None:
        end = self._row["ended_at"] or self._row["heartbeat_at"]
        return None if end is None else end - self._row["created_at"]

    @property
    def dir(self) -> str:
        return str(self._store.run_dir(self._row["id"]))

    def metrics(self) -> dict[str, int]:
        """Every metric name with its number of logged values."""
        return metric_counts(self._store.read_logs(self._row["id"]))

    def history(self, keys: list[str] | None = None, x_axis: str | None = None, format: str = "pandas") -> Any:
        """The full history (no sampling) as a pandas DataFrame, or a pyarrow Table.

        Args:
            keys: metrics to read (default: all); rows with none of them are left out.
            x_axis: index by this metric (e.g. "epoch"), dropping rows without it.
            format: "pandas", "arrow", or "long" (one row per logged value: ``_step``,
                ``_timestamp``, ``_rank``, ``key``, ``value``; for runs with very many keys).
        """
        return history_of(self._store, self._row["id"], keys, x_axis, format)

    def skipped_bytes(self) -> int:
        """Damaged history bytes that reading passes over (0 for an intact run)."""
        return sum(log.skipped_bytes for log in self._store.read_logs(self._row["id"]))

    def system_metrics(self, format: str = "pandas") -> Any:
        """The system series (CPU, memory, disk, network, GPU) with ``_step`` = sample index."""
        from runstack.core.store import SYSTEM_PATTERN

        logs = self._store.read_logs(self._row["id"], SYSTEM_PATTERN)
        cols = assemble(logs)
        return to_arrow(cols, len(logs) > 1) if format == "arrow" else to_pandas(cols, None, len(logs) > 1)

    def get(self, path: str, default: Any = None) -> Any:
        """A field by dotted path: ``"config.optim.lr"``, ``"summary.loss"``, ``"status"``."""
        value = _lookup(self, path)
        return default if value is _MISSING else value

    def __repr__(self) -> str:
        return f"RunView(id={self.id!r}, name={self.name!r}, project={self.project!r}, status={self.status!r})"


def _lookup(run: RunView, path: str) -> Any:
    head, _, rest = path.partition(".")
    if head in ("config", "summary"):
        node: Any = getattr(run, head)
        for part in rest.split(".") if rest else []:
            if not isinstance(node, dict) or part not in node:
                if isinstance(node, dict) and rest in node:  # keys that contain dots, e.g. "val/acc.top1"
                    return node[rest]
                return _MISSING
            node = node[part]
        return node
    if head == "tags":
        return run.tags
    try:
        return getattr(run, head)
    except AttributeError:
        raise InvalidArgumentError("filters", path, "config.X, summary.X, tags or a run field such as status") from None


def _matches(run: RunView, path: str, condition: Any) -> bool:
    value = _lookup(run, path)
    if not isinstance(condition, dict) or not any(k.startswith("$") for k in condition):
        condition = {"$eq": condition}
    for op, expected in condition.items():
        if op == "$exists":
            if (value is not _MISSING) != bool(expected):
                return False
            continue
        if op not in _OPS:
            raise InvalidArgumentError("filter operator", op, " | ".join([*_OPS, "$exists"]))
        if value is _MISSING:
            return False
        if path == "tags" and op in ("$eq", "$in", "$nin"):
            wanted = expected if isinstance(expected, (list, tuple, set)) else [expected]
            hit = any(t in value for t in wanted)
            if hit != (op != "$nin"):
                return False
            continue
        try:
            if not _OPS[op](value, expected):
                return False
        except TypeError:
            return False
    return True


class Api:
    """Read access to a store: ``Api().runs(project="mnist", filters={"summary.acc": {"$gt": 0.9}})``."""

    def __init__(self, dir: str | os.PathLike[str] | None = None, read_only: bool = False,
                 base_url: str | None = None, api_key: str | None = None) -> None:  # fmt: skip
        """Open the store at ``dir`` (default ``$RUNSTACK_DIR`` or ``./runstack``) for queries, or
        the team server at ``base_url`` (``runstack server``) with ``api_key`` (default
        ``$RUNSTACK_API_KEY``): the same calls read the same answers from either.

        Dead runs are marked crashed first, unless ``read_only`` (the dashboard: it never writes).

        Raises:
            StoreError: there is no store there (a reader never creates one).
            AuthError: the server refused the key.
        """
        if base_url is not None:
            from runstack.core.client import Client
            from runstack.core.remote import RemoteStore

            self.store: Any = RemoteStore(Client(base_url, api_key or os.environ.get("RUNSTACK_API_KEY") or None))
            return
        self.store = Store(dir, read_only=True) if read_only else Store(dir, create=False)
        self.store.reconcile()

    @classmethod
    def over(cls, store: Any) -> Api:
        """An Api over an open store, or anything that reads like one (the team server's)."""
        api = cls.__new__(cls)
        api.store = store
        return api

    @property
    def problems(self) -> dict[str, str]:
        """Runs that could not be checked (damaged history or row), by id, with the reason."""
        return dict(self.store.problems)

    def run(self, run_id: str) -> RunView:
        return RunView(self.store, self.store.get(run_id))

    def runs(self, project: str | None = None, filters: dict[str, Any] | None = None,
             order: str = "-created_at") -> list[RunView]:  # fmt: skip
        """Runs matching every filter, sorted.

        Args:
            project: only this project's runs.
            filters: ``{"config.lr": 0.1, "summary.loss": {"$lt": 0.5}, "tags": "baseline",
                "status": {"$in": ["finished", "crashed"]}}``; operators $eq $ne $lt $lte $gt $gte
                $in $nin $regex $exists.
            order: a field path such as "created_at" or "summary.loss"; "-" sorts descending.
                Runs without the field come last.
        """
        if filters is not None and not isinstance(filters, dict):
            raise InvalidArgumentError("filters", filters, 'a dict such as {"config.lr": 0.1, "status": "finished"}')
        if not isinstance(order, str) or not order.lstrip("-+"):
            raise InvalidArgumentError("order", order, 'a field path such as "created_at" or "-summary.loss"')
        if project is not None and (not isinstance(project, str) or has_surrogates(project)):
            raise InvalidArgumentError("project", project, "a project name")
        for condition in (filters or {}).values():
            pattern = condition.get("$regex") if isinstance(condition, dict) else None
            if pattern is not None:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as exc:
                    raise InvalidArgumentError("$regex", pattern, f"a valid regular expression ({exc})") from None
        rows = self.store.rows(project)
        views = [RunView(self.store, r) for r in rows]
        for path, condition in (filters or {}).items():
            views = [v for v in views if _matches(v, path, condition)]
        descending = order.startswith("-")
        path = order.lstrip("-+")
        present = [v for v in views if _lookup(v, path) not in (_MISSING, None)]
        absent = [v for v in views if _lookup(v, path) in (_MISSING, None)]
        try:
            present.sort(key=lambda v: _lookup(v, path), reverse=descending)
        except TypeError:
            present.sort(key=lambda v: str(_lookup(v, path)), reverse=descending)
        return present + absent

    def projects(self) -> list[str]:
        return sorted({r["project"] for r in self.store.rows()})
