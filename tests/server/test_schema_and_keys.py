"""The server schema's migrations on a real PostgreSQL, and ``runstack server keys``."""

from __future__ import annotations

import threading

import psycopg
import pytest
from click.testing import CliRunner

from runstack.cli.main import main
from runstack.errors import StoreFormatError
from runstack.server.schema import LATEST, MIGRATIONS, current_version, migrate

TABLES = ("projects", "runs", "log_files", "log_chunks", "blobs", "blob_refs", "api_keys", "grants", "artifacts")


def test_migrations_from_an_empty_database(database):
    with psycopg.connect(database, autocommit=True) as conn:
        assert current_version(conn) == 0
        assert migrate(conn) == [number for number, _, _ in MIGRATIONS]
        assert current_version(conn) == LATEST
        for table in TABLES:
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] == table
        assert migrate(conn) == []  # applied once only


def test_an_older_schema_is_upgraded_with_its_data(database):
    with psycopg.connect(database, autocommit=True) as conn:
        assert migrate(conn, target=1) == [1]
        assert conn.execute("SELECT to_regclass('artifacts')").fetchone()[0] is None
        conn.execute("INSERT INTO projects VALUES ('p', 1.0)")
        conn.execute("INSERT INTO runs VALUES ('r1', 'p', 1.0, 'finished', '{}', 'h', 1.0)")
        assert migrate(conn) == [2]
        assert conn.execute("SELECT id, project FROM runs").fetchall() == [("r1", "p")]
        assert conn.execute("SELECT to_regclass('artifacts')").fetchone()[0] == "artifacts"


def test_two_servers_migrating_at_once_apply_each_step_once(database):
    errors, applied = [], []

    def one() -> None:
        try:
            with psycopg.connect(database, autocommit=True) as conn:
                applied.append(migrate(conn))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(applied, key=len) == [[], [], [number for number, _, _ in MIGRATIONS]]


def test_a_newer_schema_is_refused_untouched(database):
    with psycopg.connect(database, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
        with pytest.raises(StoreFormatError, match="v99, newer than this runstack"):
            migrate(conn)
        assert current_version(conn) == 99


def test_keys_create_ls_revoke(database):
    runner = CliRunner()
    created = runner.invoke(main, ["server", "keys", "create", "--db", database, "--name", "alice",
                                   "--grant", "team:write", "--grant", "*:read"])  # fmt: skip
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert token.startswith("rsk_")
    listed = runner.invoke(main, ["server", "keys", "ls", "--db", database])
    key_id = token.split("_")[1]
    assert key_id in listed.output and "alice" in listed.output and "team:write" in listed.output
    assert token.split("_", 2)[2] not in listed.output  # the secret is never shown again
    with psycopg.connect(database) as conn:  # only a hash is stored
        stored = conn.execute("SELECT hash FROM api_keys").fetchone()[0]
        assert token.encode() not in bytes(stored) and len(bytes(stored)) == 32
    assert runner.invoke(main, ["server", "keys", "revoke", "--db", database, key_id]).exit_code == 0
    again = runner.invoke(main, ["server", "keys", "revoke", "--db", database, key_id])
    assert again.exit_code == 1 and "no active key" in again.output
    bad = runner.invoke(main, ["server", "keys", "create", "--db", database, "--name", "x", "--grant", "team:owner"])
    assert bad.exit_code == 1 and "PROJECT:ROLE" in bad.output


def test_an_unreachable_database_is_a_clear_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["server", "keys", "ls", "--db", "postgresql://nobody:secret@127.0.0.1:1/none"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in result.output and "secret" not in result.output
