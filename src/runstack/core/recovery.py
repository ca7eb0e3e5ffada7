"""Keeping a store usable when parts of it are lost or damaged.

Each run folder holds ``run.json``, a copy of the run's catalogue row (identity, config,
tags, status) written at ``init()`` and ``finish()``. When ``catalog.db`` is missing, or
``runstack doctor --rebuild`` is asked for, the catalogue is rebuilt from those files and
the history logs, so losing the database never loses a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstack.core.catalog import JSON_COLUMNS, RUN_COLUMNS, dumps

if TYPE_CHECKING:
    from runstack.core.store import Store

RUN_FILE = "run.json"
_KEPT = ("id", "project", "name", "run_group", "job_type", "notes", "status", "created_at", "ended_at",
         "host", "pid", "git_commit", "python", "config", "summary_set", "metrics", "world_size", "rank_mode",
         "resumed", "error", "tags")  # fmt: skip


def write_run_file(folder: Path, row: dict[str, Any]) -> None:
    """Save the run's row beside its history (atomically: a torn write leaves the old file)."""
    data = {k: row.get(k) for k in _KEPT if k in row}
    tmp = folder / f".{RUN_FILE}.{os.getpid()}"
    with contextlib.suppress(OSError):  # the catalogue is the primary copy: never fail a run for this
        tmp.write_text(dumps(data), encoding="utf-8")
        os.replace(tmp, folder / RUN_FILE)


def read_run_file(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("id") == folder.name else None


@dataclass
class RebuildReport:
    restored: list[str] = field(default_factory=list)
    from_history_only: list[str] = field(default_factory=list)  # no readable run.json
    skipped: dict[str, str] = field(default_factory=dict)  # folder -> why


def rebuild_catalog(store: Store) -> RebuildReport:
    """Insert a catalogue row for every run folder the catalogue does not list."""
    from runstack.core.values import check_run_id

    report = RebuildReport()
    known = store.catalog.run_ids()
    runs = store.root / "runs"
    for folder in sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()) if runs.is_dir() else []:
        if folder.name in known or not _owned_by_a_run(folder):
            continue
        try:
            check_run_id(folder.name)
            saved = read_run_file(folder)
            row = _row_from(folder, saved)
            row["summary"] = store.summarize(folder.name, row.get("metrics") or {})[0]
            tags = [t for t in (saved or {}).get("tags") or [] if isinstance(t, str)]
            store.catalog.create_run(row, tags)
        except Exception as exc:  # noqa: BLE001 - one bad folder must not stop the others
            report.skipped[folder.name] = f"{type(exc).__name__}: {exc}"
            continue
        (report.restored if saved else report.from_history_only).append(folder.name)
    return report


def _row_from(folder: Path, saved: dict[str, Any] | None) -> dict[str, Any]:
    stamp = folder.stat().st_mtime
    row: dict[str, Any] = {"id": folder.name, "project": "recovered", "name": folder.name, "created_at": stamp,
                           "config": {}, "summary": {}, "summary_set": {}, "metrics": {}}  # fmt: skip
    for key, value in (saved or {}).items():
        if key in RUN_COLUMNS and key != "tags":
            row[key] = value
    # A run that was running when its row was lost is found dead or alive by the next reconcile;
    # its summary is recomputed from the history there or here.
    row["status"] = row.get("status") if row.get("status") in ("finished", "failed", "crashed") else "running"
    if row["status"] == "running":
        row.update(pid=None, host=None, heartbeat_at=0.0)
    for col in JSON_COLUMNS:
        if col in row and not isinstance(row[col], dict | list | type(None)):
            row[col] = {}
    row["error"] = row.get("error") or ("restored from the run folder" if saved is None else None)
    row.setdefault("ended_at", None)
    return row


def _owned_by_a_run(folder: Path) -> bool:
    """Written by a run's main process, which creates the catalogue row first. (A folder with
    only another rank's history can appear before rank 0 has created the row.)"""
    return (folder / RUN_FILE).exists() or (folder / "history.0.rsl").exists()


def needs_rebuild(store: Store) -> bool:
    """A catalogue with no runs beside run folders: it was lost (or moved away)."""
    runs = store.root / "runs"
    return runs.is_dir() and not store.catalog.run_ids() and any(_owned_by_a_run(p) for p in runs.iterdir())


def backup_catalog(store: Store) -> Path | None:
    """Move the catalogue aside (for ``doctor --rebuild``); returns where it went."""
    path = store.root / "catalog.db"
    if not path.exists():
        return None
    target = path.with_name(f"catalog.db.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target
