"""The server's PostgreSQL schema, as numbered migrations applied in order.

``migrate`` brings any database (an empty one included) to the newest version, in one
transaction per step, under an advisory lock so that two servers starting at once do not
apply a step twice. A database written by a newer runstack is refused, not changed.
"""

from __future__ import annotations

import time
from typing import Any

from runstack.errors import StoreFormatError

_LOCK_ID = 0x72756E73  # "runs": the advisory lock migrations hold

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "catalogue, history files, blobs, keys", """
CREATE TABLE projects (name text PRIMARY KEY, created_at double precision NOT NULL);
CREATE TABLE runs (
    id text PRIMARY KEY, project text NOT NULL REFERENCES projects(name),
    created_at double precision NOT NULL, status text NOT NULL,
    row_json text NOT NULL, row_hash text NOT NULL, updated_at double precision NOT NULL
);
CREATE INDEX runs_by_project ON runs (project, created_at);
CREATE TABLE log_files (
    run_id text NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name text NOT NULL,
    length bigint NOT NULL, PRIMARY KEY (run_id, name)
);
CREATE TABLE log_chunks (
    run_id text NOT NULL, name text NOT NULL, start_offset bigint NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (run_id, name, start_offset),
    FOREIGN KEY (run_id, name) REFERENCES log_files (run_id, name) ON DELETE CASCADE
);
CREATE TABLE blobs (digest text PRIMARY KEY, size bigint NOT NULL, created_at double precision NOT NULL);
CREATE TABLE blob_refs (
    digest text NOT NULL REFERENCES blobs(digest), run_id text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    PRIMARY KEY (digest, run_id)
);
CREATE TABLE api_keys (
    id text PRIMARY KEY, hash bytea NOT NULL, name text NOT NULL,
    created_at double precision NOT NULL, revoked_at double precision
);
CREATE TABLE grants (
    key_id text NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE, project text NOT NULL,
    role text NOT NULL CHECK (role IN ('read', 'write', 'admin')), PRIMARY KEY (key_id, project)
);
"""),
    (2, "artifact versions logged and used by runs", """
CREATE TABLE artifacts (
    run_id text NOT NULL REFERENCES runs(id) ON DELETE CASCADE, role text NOT NULL CHECK (role IN ('output', 'input')),
    name text NOT NULL, version integer NOT NULL, record_json text NOT NULL,
    PRIMARY KEY (run_id, role, name, version)
);
"""),
]  # fmt: skip
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Any) -> int:
    """The schema version of the database (0 when empty)."""
    found = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
    if found is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: Any, target: int = LATEST) -> list[int]:
    """Apply the missing migrations up to ``target``; returns the versions applied."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                     "description text NOT NULL, applied_at double precision NOT NULL)")  # fmt: skip
        version = current_version(conn)
        if version > LATEST:
            raise StoreFormatError("postgresql", f"the server schema is v{version}, newer than this runstack "
                                   f"(v{LATEST}): upgrade runstack")  # fmt: skip
        for number, description, sql in MIGRATIONS:
            if version < number <= target:
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                                 (number, description, time.time()))  # fmt: skip
                applied.append(number)
    return applied
