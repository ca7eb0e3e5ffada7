"""The catalogue: one SQLite database (WAL mode) listing projects, runs and tags.

Every operation opens its own short-lived connection. That keeps the catalogue safe
across ``fork()`` (SQLite connections must not cross a fork) and lets many
processes write different runs at once: writes are short ``BEGIN IMMEDIATE``
transactions that wait on a long busy timeout instead of failing with
"database is locked".
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runstack.errors import StoreError, StoreFormatError

CATALOG_VERSION = 1
BUSY_TIMEOUT_S = 120.0
JSON_COLUMNS = ("packages", "config", "summary", "summary_set", "metrics")
RUN_COLUMNS = (
    "id", "project", "name", "run_group", "job_type", "notes", "status", "created_at", "ended_at",
    "heartbeat_at", "host", "pid", "pid_started", "git_commit", "git_dirty", "python", "packages",
    "config", "summary", "summary_set", "metrics", "world_size", "rank_mode", "resumed", "error",
)  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL REFERENCES projects(name), name TEXT NOT NULL,
    run_group TEXT, job_type TEXT, notes TEXT, status TEXT NOT NULL, created_at REAL NOT NULL,
    ended_at REAL, heartbeat_at REAL, host TEXT, pid INTEGER, pid_started REAL, git_commit TEXT,
    git_dirty INTEGER, python TEXT, packages TEXT, config TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}', summary_set TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}', world_size INTEGER, rank_mode TEXT,
    resumed INTEGER NOT NULL DEFAULT 0, error TEXT
);
CREATE TABLE IF NOT EXISTS artifact_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, digest TEXT NOT NULL,
    description TEXT, metadata TEXT NOT NULL DEFAULT '{}', manifest TEXT NOT NULL, size INTEGER NOT NULL,
    created_at REAL NOT NULL, run_id TEXT, PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS artifact_aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS artifact_usage (
    run_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, role TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (run_id, name, version, role)
);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project, created_at);
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
"""


def dumps(value: Any) -> str:
    """JSON text for the catalogue; NaN and infinities are kept (Python's JSON dialect)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class Catalog:
    """The runs database of one store folder."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path, self.read_only = path, read_only
        if read_only:
            return
        # Switching a new database to WAL needs an exclusive lock that SQLite's busy handler does
        # not wait for, so processes creating the same store at once take turns on a file lock.
        try:
            lock = os.open(path.with_name("catalog.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                path.parent, f"cannot write in the store folder ({exc.strerror}): choose a writable dir="
            ) from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._create()
        finally:
            os.close(lock)

    def _create(self) -> None:
        path = self.path
        with self.transaction() as con:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            row = con.execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta VALUES ('catalog_version', ?)", (str(CATALOG_VERSION),))
            elif int(row[0]) > CATALOG_VERSION:
                raise StoreFormatError(path, f"catalogue v{row[0]} is newer than this runstack: upgrade runstack")

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        try:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")  # once per store, under the creation lock
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as exc:
            raise StoreError(
                self.path, f"cannot open the catalogue ({exc}): check that the folder is writable"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(self.path, f"the catalogue is not a database ({exc}): move it away and rerun") from exc
        return con

    def _connect_read_only(self) -> sqlite3.Connection:
        # A WAL database in a folder we cannot write to: read it as an immutable snapshot
        # when SQLite cannot create its shared-memory file there.
        for query in ("mode=ro", "immutable=1"):
            try:
                con = sqlite3.connect(f"file:{self.path}?{query}", uri=True, timeout=BUSY_TIMEOUT_S)
                con.execute("SELECT 1 FROM runs LIMIT 1")
                return con
            except sqlite3.OperationalError as exc:
                error = exc
        raise StoreError(self.path, f"cannot read the catalogue ({error}): check the folder's permissions")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT) on a fresh connection."""
        if self.read_only:
            raise StoreError(self.path, "the store is open read-only: make the folder writable to change it")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                if "full" in str(exc):
                    raise StoreError(self.path, "the disk is full: free space or point RUNSTACK_DIR elsewhere") from exc
                raise StoreError(self.path, f"{exc}: check that the folder is writable") from exc
            raise
        finally:
            con.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads, closed afterwards."""
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    def create_run(self, row: dict[str, Any], tags: list[str]) -> None:
        """Insert a new run (and its project if new)."""
        row = {k: dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}
        cols = ", ".join(row)
        with self.transaction() as con:
            con.execute("INSERT OR IGNORE INTO projects VALUES (?, ?)", (row["project"], time.time()))
            con.execute(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
            con.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?)", [(row["id"], t) for t in tags])

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set some columns of one run."""
        values = [dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as con:
            con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values, run_id))

    def update_run_if(self, run_id: str, expected: dict[str, Any], **fields: Any) -> bool:
        """Set columns only while the row still has the ``expected`` values (a compare-and-set);
        returns whether it did. Two processes claiming one run: exactly one wins."""
        values = [dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        where = " AND ".join(f"{k} IS ?" for k in expected)
        with self.transaction() as con:
            cur = con.execute(f"UPDATE runs SET {sets} WHERE id = ? AND {where}", (*values, run_id, *expected.values()))
            return cur.rowcount == 1

    def add_tags(self, run_id: str, tags: list[str]) -> None:
        with self.transaction() as con:
            con.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?)", [(run_id, t) for t in tags])

    def delete_run(self, run_id: str) -> None:
        with self.transaction() as con:
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def runs(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of the runs table as dicts (JSON columns decoded, ``tags`` added)."""
        with self.reading() as con:
            cur = con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {where}", params)
            rows = [dict(zip(RUN_COLUMNS, r, strict=False)) for r in cur.fetchall()]
            tags: dict[str, list[str]] = {}
            for run_id, tag in con.execute("SELECT run_id, tag FROM tags ORDER BY tag"):
                tags.setdefault(run_id, []).append(tag)
        for row in rows:
            damaged = []
            for col in JSON_COLUMNS:
                try:
                    row[col] = json.loads(row[col]) if row[col] is not None else None
                except (TypeError, ValueError):  # a damaged row must not hide every other run
                    row[col] = {} if col != "packages" else None
                    damaged.append(col)
            row["damaged"] = damaged
            row["tags"] = tags.get(row["id"], [])
        return rows

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.runs("WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def run_ids(self) -> set[str]:
        with self.reading() as con:
            return {r[0] for r in con.execute("SELECT id FROM runs")}
