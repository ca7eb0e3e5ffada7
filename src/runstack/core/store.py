"""The embedded store: one folder with a catalogue and a folder per run.

    <root>/catalog.db                 SQLite (WAL): projects, runs, config, summary, tags, status
    <root>/runs/<run id>/history.<rank>.rsl   append-only checksummed history, one per logging rank

The root is ``dir=`` when given, else ``$RUNSTACK_DIR``, else ``./runstack``.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstack.core import recovery
from runstack.core.blobs import BlobStore
from runstack.core.catalog import Catalog
from runstack.core.envinfo import process_started
from runstack.core.logfile import history_locked
from runstack.core.logread import LogContents, read_log
from runstack.core.summary import compute_summary
from runstack.core.values import has_surrogates, is_blob_name, shown
from runstack.errors import RunNotFoundError, RunstackError, StoreError

STALE_HEARTBEAT_S = 15 * 60  # a run on another host that has not beaten for this long crashed
HEARTBEAT_S = 60.0
LOG_PATTERN = "history.*.rsl"
SYSTEM_PATTERN = "system.*.rsl"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("RUNSTACK_DIR") or "runstack").expanduser()


def beating(row: dict[str, Any], now: float) -> bool:
    """A running run seen from elsewhere (the team server) lives while it beats."""
    return now - (row.get("heartbeat_at") or row["created_at"]) < STALE_HEARTBEAT_S


class HostedRuns:
    """What a store held elsewhere (the team server, read over HTTP or from its database) answers
    alike: read-only, nothing to reconcile, a run alive while it beats. Subclasses set ``root`` and
    give ``log_files``."""

    read_only = True
    root: Any

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}

    def reconcile(self) -> list[str]:
        return []

    def log_files(self, run_id: str, pattern: str = LOG_PATTERN) -> list[tuple[Any, Callable[[], LogContents]]]:
        raise NotImplementedError

    def read_logs(self, run_id: str, pattern: str = LOG_PATTERN) -> list[LogContents]:
        return [load() for _, load in self.log_files(run_id, pattern)]

    def run_dir(self, run_id: str) -> str:
        return f"{self.root}/runs/{run_id}"

    def _alive(self, row: dict[str, Any], host: str, now: float | None = None) -> bool:
        return beating(row, time.time() if now is None else now)


@dataclass
class GcReport:
    crashed: list[str] = field(default_factory=list)
    orphan_dirs: list[str] = field(default_factory=list)
    bytes_freed: int = 0


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Store:
    """A store folder: its catalogue and its runs' files."""

    def __init__(self, root: str | os.PathLike[str] | None = None, read_only: bool | None = None,
                 create: bool = True) -> None:  # fmt: skip
        """Open the store; ``create`` makes it when missing (readers pass False and get a clear
        error instead of a new empty store); ``read_only`` (default: when the folder is not
        writable) opens an existing store for reading only. A store whose catalogue was lost
        has it rebuilt from its run folders."""
        self.root = resolve_root(root).absolute()
        self.problems: dict[str, str] = {}  # run id -> why it was skipped (damaged run)
        catalog = self.root / "catalog.db"
        if not create and not catalog.exists() and not (self.root / "runs").is_dir():
            raise StoreError(self.root, "there is no runstack store here: check --dir or RUNSTACK_DIR")
        if read_only is None:
            read_only = catalog.exists() and not os.access(self.root, os.W_OK)
        self.read_only = read_only
        if read_only:
            if not catalog.exists():
                raise StoreError(self.root, "there is no store here to read: check the path or RUNSTACK_DIR")
            self.catalog = Catalog(catalog, read_only=True)
            self.media = BlobStore(self.root / "media")
            return
        try:
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise StoreError(
                self.root, "a file is in the way of the store folder: remove it or choose another dir="
            ) from exc
        except OSError as exc:
            raise StoreError(
                self.root, f"cannot create the store folder ({exc.strerror}): choose a writable dir="
            ) from exc
        lost = not catalog.exists()
        self.catalog = Catalog(self.root / "catalog.db")
        self.media = BlobStore(self.root / "media")
        if lost and recovery.needs_rebuild(self):  # run folders without a catalogue: it was lost
            self.rebuilt = recovery.rebuild_catalog(self)

    def decode_media(self, ref: dict[str, Any]) -> Any:
        """The Image/Table/... object a history media reference stands for."""
        from runstack.core.media import decode

        return decode(ref, self.media)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def log_path(self, run_id: str, rank: int) -> Path:
        return self.run_dir(run_id) / f"history.{rank}.rsl"

    def read_logs(self, run_id: str, pattern: str = LOG_PATTERN) -> list[LogContents]:
        """Every rank's history (or, with ``SYSTEM_PATTERN``, system metrics) of one run."""
        return [load() for _, load in self.log_files(run_id, pattern)]

    def log_files(self, run_id: str, pattern: str = LOG_PATTERN) -> list[tuple[Any, Callable[[], LogContents]]]:
        """(version, loader) per history file: the version changes whenever the file does."""
        out: list[tuple[Any, Callable[[], LogContents]]] = []
        for path in sorted(self.run_dir(run_id).glob(pattern)):
            stat = path.stat()
            out.append(((str(path), stat.st_mtime, stat.st_size), functools.partial(read_log, path)))
        return out

    def rows(self, project: str | None = None) -> list[dict[str, Any]]:
        """Catalogue rows, of one project or all."""
        return self.catalog.runs("WHERE project = ?", (project,)) if project else self.catalog.runs()

    def media_file(self, digest: str) -> str | None:
        """The media file of a SHA-256 name, only if it is one (no other path is ever served)."""
        if not is_blob_name(digest):
            return None
        path = self.media.path(digest)
        return str(path) if os.path.isfile(path) else None

    def run_artifacts(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The artifact versions a run logged and used."""
        from runstack.core.artifacts import ArtifactRegistry

        versions = ArtifactRegistry(self).versions()
        return {"logged": [v for v in versions if v["produced_by"] == run_id],
                "used": [v for v in versions if run_id in v["used_by"]]}  # fmt: skip

    def get(self, run_id: str) -> dict[str, Any]:
        if not isinstance(run_id, str) or has_surrogates(run_id):
            raise RunNotFoundError(shown(str(run_id)), str(self.root))
        row = self.catalog.get_run(run_id)
        if row is None:
            raise RunNotFoundError(run_id, str(self.root))
        return row

    def summarize(self, run_id: str, metrics: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
        """The computed summary of a run and the time of its last logged record."""
        logs = self.read_logs(run_id)
        last = [float(b.rows["ts"][-1]) for lg in logs for b in lg.blocks[-1:] if b.count]
        return compute_summary(logs, metrics), max(last, default=None)

    def reconcile(self) -> list[str]:
        """Mark runs whose process died without finishing as ``crashed``; returns their ids.

        A run is alive while a process holds the lock on its history file (whatever PID
        namespace it runs in), or, failing that, while its pid lives (same host) or it beat
        recently (other hosts). A damaged run is skipped and noted in ``problems``; a run that
        finished or was resumed meanwhile is never marked (the update is conditional).
        """
        if self.read_only:
            return []
        host, now, crashed = socket.gethostname(), time.time(), []
        for row in self.catalog.runs("WHERE status = 'running'"):
            try:
                if self._alive(row, host, now):
                    continue
                summary, last_ts = self.summarize(row["id"], row["metrics"] or {})
                marked = self.catalog.update_run_if(
                    row["id"], {"status": "running", "pid": row["pid"], "resumed": row["resumed"]},
                    status="crashed", summary=summary, ended_at=last_ts or row["heartbeat_at"] or row["created_at"],
                    error="the process ended without finish() (killed or crashed)",
                )  # fmt: skip
            except (RunstackError, OSError, ValueError) as exc:
                self.problems[row["id"]] = f"{type(exc).__name__}: {exc}"
                continue
            if marked:
                crashed.append(row["id"])
        return crashed

    def _alive(self, row: dict[str, Any], host: str, now: float) -> bool:
        if history_locked(self.log_path(row["id"], 0)):
            return True
        if row["host"] == host and row["pid"] is not None:
            started = process_started(row["pid"])
            return started is not None and (row["pid_started"] is None or abs(started - row["pid_started"]) < 1.0)
        return beating(row, now)

    def _owned_folder(self, run_id: str) -> Path | None:
        """The run's folder if it lies directly in ``runs/`` (ids written by older versions, or by
        hand, may point elsewhere: such a folder is never deleted)."""
        runs = (self.root / "runs").resolve()
        folder = self.run_dir(run_id)
        if folder.is_symlink() or folder.resolve().parent != runs or folder.name in ("", ".", ".."):
            return None
        return folder

    def delete_run(self, run_id: str) -> int:
        """Remove a run from the catalogue and disk; returns the bytes freed.

        Raises StoreError (deleting nothing) when the id would lead outside ``runs/``."""
        self.get(run_id)
        folder = self._owned_folder(run_id)
        if folder is None:
            raise StoreError(self.root, f"run id {run_id!r} does not name a folder inside runs/: nothing was deleted")
        freed = _folder_bytes(folder) if folder.exists() else 0
        self.catalog.delete_run(run_id)
        shutil.rmtree(folder, ignore_errors=True)
        return freed

    def gc(self, dry_run: bool = False, only: list[str] | None = None) -> GcReport:
        """Mark crashed runs and remove run folders the catalogue no longer knows.

        ``only`` limits deletion to those folder names (what a user confirmed after a dry run);
        a folder the catalogue lists by then is kept.
        """
        report = GcReport(crashed=[] if dry_run else self.reconcile())
        known = self.catalog.run_ids()
        known_tops = {run_id.split("/")[0] for run_id in known}  # ids from older versions held a '/'
        for folder in sorted((self.root / "runs").iterdir()):
            if only is not None and folder.name not in only:
                continue
            if folder.is_dir() and not folder.is_symlink() and folder.name not in known | known_tops:
                report.orphan_dirs.append(folder.name)
                report.bytes_freed += _folder_bytes(folder)
                if not dry_run:
                    shutil.rmtree(folder, ignore_errors=True)
        return report

    def check(self) -> dict[str, str]:
        """Every run that cannot be read in full, with what is wrong (``runstack doctor``)."""
        problems = dict(self.problems)
        for row in self.catalog.runs():
            found = []
            if row["damaged"]:
                found.append(f"damaged catalogue fields {', '.join(row['damaged'])}")
            if not self.run_dir(row["id"]).is_dir():
                found.append("its folder is missing")
            else:
                try:
                    skipped = sum(log.skipped_bytes for log in self.read_logs(row["id"]))
                    if skipped:
                        found.append(f"{skipped:,} damaged history bytes skipped")
                except (RunstackError, OSError, ValueError) as exc:
                    found.append(f"history unreadable ({exc})")
            if found:
                problems[row["id"]] = "; ".join(found)
        return problems
