"""The server's catalogue and history in PostgreSQL (psycopg 3, a connection pool).

History files arrive as byte ranges of the clients' append-only logs. A range is stored once:
the server keeps each file's length, takes the bytes past it and ignores bytes it already has,
so a retried upload (the answer was lost, the server restarted) never stores a step twice,
and a range that would leave a gap is refused with the length to resume from.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from runstack.errors import AuthError, InvalidArgumentError, ServerError
from runstack.server.schema import migrate

ROLES = ("read", "write", "admin")
ALL_PROJECTS = "*"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _decode(row_json: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(row_json)
    row.setdefault("tags", [])
    row.setdefault("damaged", [])
    return row


class ServerDB:
    """One server's database: a pool of connections, the schema brought up to date on open."""

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 12) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            from runstack.errors import MissingDependencyError

            raise MissingDependencyError("psycopg", "server") from None
        self.dsn = dsn
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                migrate(conn)
        except psycopg.OperationalError as exc:
            raise ServerError(_shown_dsn(dsn), f"cannot connect to PostgreSQL ({str(exc).strip()})") from None
        self.pool = ConnectionPool(dsn, min_size=min_size, max_size=max_size, open=True,
                                   check=ConnectionPool.check_connection, kwargs={"autocommit": True})  # fmt: skip

    def close(self) -> None:
        self.pool.close()

    # -- keys ------------------------------------------------------------------------------
    def create_key(self, name: str, grants: dict[str, str]) -> str:
        """A new key with ``{project: role}`` grants ("*" = every project); the token is shown once."""
        for project, role in grants.items():
            if role not in ROLES:
                raise InvalidArgumentError("role", role, "read, write or admin")
            if not project:
                raise InvalidArgumentError("project", project, "a project name, or * for every project")
        key_id = secrets.token_hex(6)
        token = f"rsk_{key_id}_{secrets.token_urlsafe(32)}"
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO api_keys VALUES (%s, %s, %s, %s, NULL)", (key_id, _hash(token), name, time.time())
            )
            for project, role in grants.items():
                conn.execute("INSERT INTO grants VALUES (%s, %s, %s)", (key_id, project, role))
        return token

    def keys(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at").fetchall()
            grants: dict[str, dict[str, str]] = {}
            for key_id, project, role in conn.execute("SELECT key_id, project, role FROM grants ORDER BY project"):
                grants.setdefault(key_id, {})[project] = role
        return [{"id": r[0], "name": r[1], "created_at": r[2], "revoked_at": r[3], "grants": grants.get(r[0], {})}
                for r in rows]  # fmt: skip

    def revoke_key(self, key_id: str) -> bool:
        with self.pool.connection() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                               (time.time(), key_id))  # fmt: skip
            return cur.rowcount == 1

    def grants_of(self, token: str) -> dict[str, str]:
        """The ``{project: role}`` grants of a valid, unrevoked token; AuthError otherwise."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "rsk":
            raise AuthError("", "the API key is malformed: keys look like rsk_<id>_<secret>", 401)
        with self.pool.connection() as conn:
            row = conn.execute("SELECT hash, revoked_at FROM api_keys WHERE id = %s", (parts[1],)).fetchone()
            if row is None or not hmac.compare_digest(bytes(row[0]), _hash(token)):
                raise AuthError("", "unknown API key", 401)
            if row[1] is not None:
                raise AuthError("", "this API key was revoked", 401)
            found = conn.execute("SELECT project, role FROM grants WHERE key_id = %s", (parts[1],)).fetchall()
        return {project: role for project, role in found}

    # -- runs ------------------------------------------------------------------------------
    def put_run(self, row: dict[str, Any]) -> bool:
        """Create or update a run's catalogue row; False when the stored row is the same."""
        text = json.dumps(row, separators=(",", ":"), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        now = time.time()
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO projects VALUES (%s, %s) ON CONFLICT DO NOTHING", (row["project"], now))
            old = conn.execute("SELECT project, row_hash FROM runs WHERE id = %s FOR UPDATE", (row["id"],)).fetchone()
            if old is not None and old[0] != row["project"]:
                raise InvalidArgumentError("project", row["project"], f"{old[0]!r}, the project run {row['id']!r} has")
            if old is not None and old[1] == digest:
                return False
            conn.execute(
                "INSERT INTO runs VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "status = EXCLUDED.status, row_json = EXCLUDED.row_json, row_hash = EXCLUDED.row_hash, "
                "updated_at = EXCLUDED.updated_at",
                (row["id"], row["project"], float(row["created_at"]), row["status"], text, digest, now),
            )
        return True

    def delete_run(self, run_id: str) -> None:
        """Remove a run with its history, blob references and artifact records (blob files stay:
        other runs may reference them)."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM runs WHERE id = %s", (run_id,))

    def project_of(self, run_id: str) -> str | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT project FROM runs WHERE id = %s", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def rows(self, project: str | None = None) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            if project is None:
                found = conn.execute("SELECT row_json FROM runs ORDER BY created_at").fetchall()
            else:
                found = conn.execute("SELECT row_json FROM runs WHERE project = %s ORDER BY created_at",
                                     (project,)).fetchall()  # fmt: skip
        return [_decode(r[0]) for r in found]

    def row(self, run_id: str) -> dict[str, Any] | None:
        with self.pool.connection() as conn:
            found = conn.execute("SELECT row_json FROM runs WHERE id = %s", (run_id,)).fetchone()
        return None if found is None else _decode(found[0])

    def sync_state(self, run_id: str) -> dict[str, Any]:
        """What the server holds of a run: each file's length, the row's hash, its artifact records."""
        with self.pool.connection() as conn:
            found = conn.execute("SELECT row_hash FROM runs WHERE id = %s", (run_id,)).fetchone()
            files = dict(conn.execute("SELECT name, length FROM log_files WHERE run_id = %s", (run_id,)).fetchall())
            held = conn.execute("SELECT role, name, version FROM artifacts WHERE run_id = %s", (run_id,)).fetchall()
        return {"row_hash": None if found is None else found[0], "files": files, "artifacts": [list(a) for a in held]}

    # -- history files ---------------------------------------------------------------------
    def append(self, run_id: str, name: str, offset: int, data: bytes) -> tuple[int, bool]:
        """Store ``data`` found at ``offset`` of a run's file, once: (stored length, accepted).

        Not accepted when ``offset`` is past the stored length (a gap): resend from that length."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO log_files VALUES (%s, %s, 0) ON CONFLICT DO NOTHING", (run_id, name))
            length = conn.execute("SELECT length FROM log_files WHERE run_id = %s AND name = %s FOR UPDATE",
                                  (run_id, name)).fetchone()[0]  # fmt: skip
            if offset > length:
                return int(length), False
            fresh = data[length - offset :]
            if not fresh:
                return int(length), True
            conn.execute("INSERT INTO log_chunks VALUES (%s, %s, %s, %s)", (run_id, name, length, fresh))
            conn.execute("UPDATE log_files SET length = %s WHERE run_id = %s AND name = %s",
                         (length + len(fresh), run_id, name))  # fmt: skip
            return int(length + len(fresh)), True

    def files(self, run_id: str) -> dict[str, int]:
        with self.pool.connection() as conn:
            return dict(conn.execute("SELECT name, length FROM log_files WHERE run_id = %s ORDER BY name",
                                     (run_id,)).fetchall())  # fmt: skip

    def read_file(self, run_id: str, name: str) -> bytes:
        with self.pool.connection() as conn:
            parts = conn.execute("SELECT data FROM log_chunks WHERE run_id = %s AND name = %s ORDER BY start_offset",
                                 (run_id, name)).fetchall()  # fmt: skip
        return b"".join(bytes(p[0]) for p in parts)

    # -- blobs and artifacts ---------------------------------------------------------------
    def missing_blobs(self, run_id: str, digests: list[str]) -> list[str]:
        with self.pool.connection() as conn:
            have = {r[0] for r in conn.execute("SELECT digest FROM blob_refs WHERE run_id = %s AND digest = ANY(%s)",
                                                (run_id, digests))}  # fmt: skip
        return sorted(d for d in set(digests) if d not in have)

    def add_blob(self, run_id: str, digest: str, size: int) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO blobs VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (digest, size, time.time()))
            conn.execute("INSERT INTO blob_refs VALUES (%s, %s) ON CONFLICT DO NOTHING", (digest, run_id))

    def blob_projects(self, digest: str) -> set[str]:
        """The projects of the runs that reference a blob (who may read it)."""
        with self.pool.connection() as conn:
            found = conn.execute("SELECT DISTINCT r.project FROM blob_refs b JOIN runs r ON r.id = b.run_id "
                                 "WHERE b.digest = %s", (digest,)).fetchall()  # fmt: skip
        return {r[0] for r in found}

    def put_artifacts(self, run_id: str, records: list[dict[str, Any]]) -> None:
        with self.pool.connection() as conn, conn.transaction():
            for rec in records:
                conn.execute("INSERT INTO artifacts VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                             (run_id, rec["role"], rec["name"], int(rec["version"]),
                              json.dumps(rec, sort_keys=True)))  # fmt: skip

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            found = conn.execute("SELECT record_json FROM artifacts WHERE run_id = %s ORDER BY name, version",
                                 (run_id,)).fetchall()  # fmt: skip
        return [json.loads(r[0]) for r in found]


def _shown_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return dsn
