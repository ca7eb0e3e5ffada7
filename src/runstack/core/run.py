"""The ``Run``: one experiment's lifecycle, config, history and summary.

``log()`` is the hot path. A dict whose keys and value types match the previous
call is packed with a cached ``struct`` format and copied straight into the
memory-mapped history file: no queue, no thread hand-off, no system call, and
the step is durable against ``kill -9`` the moment ``log()`` returns.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runstack.core import values as _values
from runstack.core.background import Background
from runstack.core.config import Config
from runstack.core.logfile import RECORD_HEADER, Encoder, LogWriter
from runstack.core.media import Media
from runstack.core.ranks import RankInfo
from runstack.core.summary import Summary, check_reduction
from runstack.errors import InvalidArgumentError, InvalidMetricError, RunStateError, StepOrderError

if TYPE_CHECKING:
    from runstack.core.artifacts import Artifact
    from runstack.core.logread import LogContents
    from runstack.core.store import Store

MAX_SCHEMAS = 65_535  # schema ids are u16 in the history format
_pack_header = RECORD_HEADER.pack
_crc32 = zlib.crc32
_now = time.time


class Run:
    """A run being logged by this process. Create it with ``runstack.init()``."""

    disabled = False

    def __init__(self, store: Store, row: dict[str, Any], rank: RankInfo, log_rank: int,
                 previous: LogContents | None, strict_steps: bool, system_interval: float | None = None) -> None:  # fmt: skip
        self._store = store
        self._row = row
        self.rank = rank
        self._is_owner = rank.rank == 0  # only rank 0 writes the catalogue; others add history files
        self._strict = strict_steps
        self._lock = threading.Lock()
        self._metrics: dict[str, dict[str, Any]] = dict(row.get("metrics") or {})
        self._last: dict[int, tuple[int, bytes]] = {}
        self._by_sig: dict[tuple[Any, ...], Encoder] = {}
        self._by_shape: dict[tuple[tuple[str, ...], tuple[str, ...]], Encoder] = {}
        self._sig: tuple[Any, ...] = ()
        self._enc: Encoder | None = None
        self._step = 0
        self._closed: str | None = None  # "finished", or "forked" in a fork child
        self.forced_status: str | None = None  # set by a sweep's pruner: the status finish() records
        # Training an integration started and has not ended: (what, completion check).
        self._activity: tuple[str, Callable[[], bool] | None] | None = None
        self._summary_cache: tuple[Any, dict[str, Any]] | None = None
        self._last_step = -(2**63)
        start = None
        if previous is not None:
            start = previous.valid_end
            for enc in previous.schemas.values():
                self._by_shape[(enc.keys, enc.codes)] = enc
            if previous.blocks:
                self._step = int(previous.blocks[-1].rows["step"][-1]) + 1
        store.run_dir(self.id).mkdir(parents=True, exist_ok=True)
        if self._is_owner:  # a copy of the catalogue row: the catalogue can be rebuilt from run folders
            from runstack.core.recovery import write_run_file

            write_run_file(store.run_dir(self.id), {**row, "status": "running"})
        self._writer = LogWriter(store.log_path(self.id, log_rank), log_rank, start)
        self.config = Config(row.get("config") or {}, self._save_config if self._is_owner else None)
        self.summary = Summary(self._computed_summary, dict(row.get("summary_set") or {}), self._save_summary)
        self._pid = os.getpid()
        self._background = Background(self)
        self._background.start()
        self._system = None
        if system_interval is not None:
            from runstack.core.system import SystemSampler

            self._system = SystemSampler(store.run_dir(self.id), log_rank, system_interval)
            self._system.start()
        self._uploader: Any = None

    def upload_to(self, client: Any) -> None:
        """Ship this run to the team server in the background (``init(server=...)``)."""
        from runstack.core.uploader import start_uploader

        writers = [self._writer, *([self._system.writer] if self._system is not None else [])]
        self._uploader = start_uploader(client, self._store, self.id, writers, ship_row=self._is_owner)

    # -- identity -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self._row["id"])

    @property
    def name(self) -> str:
        return str(self._row["name"])

    @property
    def project(self) -> str:
        return str(self._row["project"])

    @property
    def tags(self) -> list[str]:
        return list(self._row.get("tags") or [])

    @property
    def dir(self) -> str:
        return str(self._store.run_dir(self.id))

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step=`` will use."""
        return self._step

    @property
    def status(self) -> str:
        return "running" if self._closed is None else "finished"

    @property
    def finished(self) -> bool:
        """True once ``finish()`` has run (then ``runstack.init(id=run.id, resume="allow")`` continues it)."""
        return self._closed in ("finished", "forked")

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, project={self.project!r}, step={self._step})"

    # -- logging --------------------------------------------------------------------------
    def log(self, data: dict[str, Any], step: int | None = None, commit: bool = True) -> None:
        """Record metrics at a step.

        Args:
            data: metric name -> number or bool (Python, numpy or torch scalars); nested
                dicts are flattened with "/". NaN and infinities are stored as they are.
            step: the step to record at; by default the run's current step. A step smaller
                than the last one is kept as its own row (``strict_steps=True`` raises instead).
            commit: when False, the next ``log()`` uses the same step, so several calls
                build one row.

        Raises:
            InvalidMetricError: a key or value that cannot be stored (nothing is written).
            StepOrderError: a backwards step with ``strict_steps=True``.
        """
        if self._closed is not None:
            return self._log_when_closed()
        try:
            sig = (*data, *map(type, data.values()))
        except (AttributeError, TypeError):
            _values.flatten(data)  # not a dict: raises InvalidMetricError
            raise
        with self._lock:
            if step is None:
                step = self._step
            elif type(step) is not int or not -(2**63) <= step < 2**63:
                step = _values.check_step(step)
            if step < self._last_step and self._strict:
                raise StepOrderError(step, self._last_step)
            if sig == self._sig:
                enc: Encoder | None = self._enc
                vals: Any = data.values()
                media = None
            else:
                enc, vals, media = self._prepare(data, sig)
            payload = None
            if enc is not None:  # None when the call logged media only
                try:
                    payload = enc.pack(enc.prefix, step, _now(), *vals)
                except struct.error:
                    self._explain_pack_error(data)
                    raise
            if media:  # written only once the whole call is known to be valid
                self._writer.append_media(step, _now(), media)
            if payload is not None:
                w = self._writer
                off = w.off
                end = off + 8 + len(payload)
                if end > w.cap:
                    w.grow(end)
                w.mm[off:end] = _pack_header(len(payload), _crc32(payload)) + payload  # type: ignore[index]
                w.off = end
                if end > w.seal_at:
                    w.seal()
                self._last[enc.sid] = (off, payload)  # type: ignore[union-attr]
            self._last_step = step
            if commit:
                self._step = step + 1

    def _prepare(self, data: Any, sig: tuple[Any, ...]) -> tuple[Encoder | None, Any, dict[str, Any] | None]:
        """The slow path: validate, flatten and convert; define a schema the first time.

        Media values are stored (files by content hash) only after every scalar has been
        checked, and returned as references that ``log`` writes as their own record.
        """
        enc = self._by_sig.get(sig)
        if enc is not None:
            self._sig, self._enc = sig, enc
            return enc, data.values(), None
        flat = _values.flatten(data)
        keys, codes, converted, media = [], [], [], {}
        for key, value in flat.items():
            if isinstance(value, Media):
                media[key] = value
                continue
            code, plain = _values.classify(key, value)
            keys.append(key)
            codes.append(code)
            converted.append(plain)
        refs = None
        if media:
            refs = {key: value.checked_encode(key, self._store.media) for key, value in media.items()}
            if not keys:
                return None, (), refs
        shape = (tuple(keys), tuple(codes))
        enc = self._by_shape.get(shape)
        if enc is None:
            if len(self._by_shape) >= MAX_SCHEMAS:
                raise InvalidMetricError(
                    "<data>", sorted(flat)[:5], f"this run already logged {MAX_SCHEMAS:,} different sets of keys: "
                    "log a steady set of keys per call (several calls with commit=False build one row)",
                )  # fmt: skip
            enc = self._writer.define(len(self._by_shape) + 1, *shape)
            self._by_shape[shape] = enc
        # Cacheable when the dict needs no conversion: plain values, or numpy scalars, which
        # struct packs exactly (float64/float32 through __float__, integers through __index__).
        direct = (
            not media
            and flat.keys() == data.keys()
            and all(
                type(a) is type(b) or _values.numpy_scalar(b) for a, b in zip(converted, data.values(), strict=False)
            )
        )
        if direct:
            self._by_sig[sig] = enc
            self._sig, self._enc = sig, enc
        return enc, converted, refs

    def _explain_pack_error(self, data: dict[str, Any]) -> None:
        for key, value in _values.flatten(data).items():
            _values.classify(key, value)
        raise InvalidMetricError("<data>", data, "a value changed type during log(): log it again")

    def define_metric(self, name: str, summary: str = "last", step_metric: str | None = None) -> None:
        """Choose how ``name`` (or a glob such as ``"val/*"``) is summarised and its x-axis.

        Args:
            name: a metric name or a glob pattern.
            summary: "last" (default), "min", "max", "mean", "first" or "none".
            step_metric: another metric to plot this one against (e.g. "epoch").
        """
        if not isinstance(name, str):
            raise InvalidArgumentError("name", name, "a metric name or glob pattern such as 'val/*'")
        _values.check_key(name.replace("*", "x"))
        spec: dict[str, Any] = {"summary": check_reduction(summary)}
        if step_metric is not None:
            spec["step_metric"] = _values.check_key(step_metric)
        self._metrics[name] = spec
        self._summary_cache = None
        if self._is_owner:
            self._store.catalog.update_run(self.id, metrics=self._metrics)

    # -- summary and config persistence ----------------------------------------------------
    def _computed_summary(self) -> dict[str, Any]:
        if self._metrics or self._closed is not None:
            # Reading the history back is costly: reuse it until something new is written.
            key = (self._writer.off, self._closed)
            if self._summary_cache is None or self._summary_cache[0] != key:
                self._summary_cache = key, self._store.summarize(self.id, self._metrics)[0]
            return dict(self._summary_cache[1])
        out: dict[str, Any] = {}
        for sid, (_off, payload) in sorted(self._last.items(), key=lambda item: item[1][0]):
            enc = next(e for e in self._by_shape.values() if e.sid == sid)
            out.update(enc.unpack(payload))
        return out

    def _save_config(self, data: dict[str, Any]) -> None:
        self._store.catalog.update_run(self.id, config=data)

    def _save_summary(self, explicit: dict[str, Any]) -> None:
        if self._is_owner:
            self._store.catalog.update_run(self.id, summary_set=explicit)

    # -- artifacts ----------------------------------------------------------------------
    def log_artifact(self, artifact: Artifact, aliases: list[str] | None = None) -> Artifact:
        """Store ``artifact`` as a new version (or the existing one with the same content),
        move ``latest`` and ``aliases`` to it, and record this run as its producer."""
        from runstack.core.artifacts import ArtifactRegistry

        return ArtifactRegistry(self._store).log(artifact, self.id, aliases)

    def use_artifact(self, spec: str) -> Artifact:
        """The artifact version ``name[:vN|:alias]`` (default ``latest``), recorded as this run's input."""
        from runstack.core.artifacts import ArtifactRegistry

        return ArtifactRegistry(self._store).get(spec, self.id)

    # -- history --------------------------------------------------------------------------
    def history(self, keys: list[str] | None = None, x_axis: str | None = None, format: str = "pandas") -> Any:
        """This run's history so far; see ``runstack.Api`` for the arguments."""
        from runstack.core.api import history_of

        return history_of(self._store, self.id, keys, x_axis, format)

    # -- lifecycle ------------------------------------------------------------------------
    def finish(self, exit_code: int | None = None, status: str | None = None, error: str | None = None) -> None:
        """Close the run: seal and sync the history, compute the summary, set the status.

        Args:
            exit_code: 0 (finished) or non-zero (failed), as with a process.
            status: "finished", "failed" or "pruned" (a sweep stopped it early); overrides ``exit_code``.
            error: what went wrong, stored with a failed run and shown by ``runstack show``.

        A run closed while an integration's training has not reached its end (the training
        raised, even if the script caught the exception) is marked failed.
        """
        if status is None:
            status = self.forced_status or ("failed" if exit_code else "finished")
        if status not in ("finished", "failed", "pruned"):
            raise InvalidArgumentError("status", status, "'finished', 'failed' or 'pruned'")
        if self._closed in ("finished", "forked"):
            return
        if self._activity is not None and status != "pruned" and not self._activity_completed():  # may log
            status = "failed"
            error = error or (
                f"{self._activity[0]} did not reach its end: it raised an exception (handled by the calling code)"
            )
        self._activity = None
        # Each stage may fail (a full disk) and is retried by calling finish() again; until the
        # run is marked finished, log() is refused and the status stays "running".
        with self._lock:
            if self._closed in ("finished", "forked"):
                return
            self._closed = "closing"
            self._background.stop.set()
            self._background.join()
            if self._system is not None:
                self._system.close()
            self._writer.close()
        if self._is_owner:
            summary, last_ts = self._store.summarize(self.id, self._metrics)
            fields = dict(status=status, ended_at=time.time(), summary=summary, config=self.config.as_dict(),
                          error=error if status == "failed" else None)  # fmt: skip
            self._store.catalog.update_run(self.id, **fields)
            from runstack.core.recovery import write_run_file

            write_run_file(self._store.run_dir(self.id), {**self._row, **fields, "metrics": self._metrics})
        self._closed = "finished"
        if self._uploader is not None:  # the local run is complete: now the server, for a bounded time
            uploader, self._uploader = self._uploader, None
            uploader.finish(self.id)
        from runstack.core import session

        session.forget(self)

    def begin_activity(self, what: str, on_close: Callable[[], bool] | None = None) -> None:
        """An integration's training started: until ``end_activity``, finishing the run means
        it failed, unless ``on_close()`` (asked then) says the training completed after all."""
        self._activity = (what, on_close)

    def end_activity(self) -> None:
        """The training an integration started reached its end."""
        self._activity = None

    def _activity_completed(self) -> bool:
        check = self._activity[1] if self._activity else None
        try:
            return bool(check()) if check is not None else False
        except Exception:  # noqa: BLE001 - a broken check must not stop the run from closing
            return False

    def _log_when_closed(self) -> None:
        if self._closed == "forked":
            return  # a fork child (e.g. a DataLoader worker): the parent owns the run
        if self._closed == "closing":
            raise RunStateError(f"run {self.id!r} is being finished: its finish() failed, call run.finish() again")
        raise RunStateError(
            f"run {self.id!r} is finished: call runstack.init(id={self.id!r}, resume='allow') to log more"
        )

    def _forked(self) -> None:
        """In a forked child (e.g. a DataLoader worker): this process must not write."""
        self._writer.abandon()
        if self._system is not None:
            self._system.abandon()
        self._lock = threading.Lock()
        self._closed = "forked"

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=1 if exc_type is not None else 0,
                    error=f"{exc_type.__name__}: {exc}" if exc_type is not None else None)  # fmt: skip
