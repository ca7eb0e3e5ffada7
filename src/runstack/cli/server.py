"""``runstack server`` (with ``keys create|ls|revoke``) and ``runstack sync``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from rich.table import Table
from rich.text import Text

db_option = click.option("--db", envvar="RUNSTACK_SERVER_DB", required=True,
                         help="PostgreSQL URL, e.g. postgresql://user@host/runstack ($RUNSTACK_SERVER_DB).")  # fmt: skip


def _database(db: str) -> Any:
    from runstack.server.db import ServerDB

    return ServerDB(db, min_size=1, max_size=2)


def _grants(values: tuple[str, ...]) -> dict[str, str]:
    from runstack.errors import InvalidArgumentError

    out = {}
    for value in values:
        project, _, role = value.rpartition(":")
        if not project or role not in ("read", "write", "admin"):
            raise InvalidArgumentError("--grant", value, "PROJECT:ROLE with ROLE read, write or admin (* = all)")
        out[project] = role
    return out


def register(main: click.Group, dir_option: Any, console: Any) -> None:
    @main.group("server", invoke_without_command=True)
    @click.option("--db", envvar="RUNSTACK_SERVER_DB", default=None, help="PostgreSQL URL ($RUNSTACK_SERVER_DB).")
    @click.option("--storage", envvar="RUNSTACK_SERVER_STORAGE", default=None,
                  help="Folder or fsspec URL (s3://...) for media and artifact files ($RUNSTACK_SERVER_STORAGE).")  # fmt: skip
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
    @click.option("--port", default=8080, show_default=True, help="Port (0 picks a free one).")
    @click.option("--no-auth", is_flag=True, help="Let requests without a key read (loopback only); writes still "
                  "need one.")  # fmt: skip
    @click.option("--max-body", type=int, default=None, help="Largest request body in bytes (default 64 MiB).")
    @click.pass_context
    def server(ctx: click.Context, db: str | None, storage: str | None, host: str, port: int, no_auth: bool,
               max_body: int | None) -> None:  # fmt: skip
        """Serve a team's runs from PostgreSQL: the dashboard, and the API clients ship runs to."""
        if ctx.invoked_subcommand is not None:
            return
        if not db or not storage:
            raise click.UsageError("runstack server needs --db postgresql://... and --storage DIR")
        from runstack.server import serve

        serve(db, storage, host, port, no_auth, max_body,
              ready=lambda url: console.print(f"runstack server: {url} (Ctrl-C stops)"))  # fmt: skip

    @server.group("keys")
    def keys() -> None:
        """API keys: each holds roles (read, write, admin) on projects."""

    @keys.command("create")
    @db_option
    @click.option("--name", required=True, help="Who or what uses the key (shown by `keys ls`).")
    @click.option("--grant", "grants", multiple=True, required=True,
                  help="PROJECT:ROLE, repeatable; ROLE is read, write or admin; PROJECT * means every project.")  # fmt: skip
    def create(db: str, name: str, grants: tuple[str, ...]) -> None:
        """Create a key and print it (once: only its hash is stored)."""
        database = _database(db)
        try:
            token = database.create_key(name, _grants(grants))
        finally:
            database.close()
        click.echo(token)

    @keys.command("ls")
    @db_option
    def ls(db: str) -> None:
        """List keys (never their secrets)."""
        database = _database(db)
        try:
            found = database.keys()
        finally:
            database.close()
        table = Table("id", "name", "grants", "created", "revoked")
        for key in found:
            when = dt.datetime.fromtimestamp(key["created_at"]).strftime("%Y-%m-%d %H:%M")
            revoked = (
                "-"
                if key["revoked_at"] is None
                else dt.datetime.fromtimestamp(key["revoked_at"]).strftime("%Y-%m-%d %H:%M")
            )
            table.add_row(
                key["id"], Text(key["name"]), ", ".join(f"{p}:{r}" for p, r in key["grants"].items()), when, revoked
            )
        console.print(table)

    @keys.command("revoke")
    @db_option
    @click.argument("key_id")
    def revoke(db: str, key_id: str) -> None:
        """Revoke a key by its id (the part after rsk_): it stops working at once."""
        database = _database(db)
        try:
            done = database.revoke_key(key_id)
        finally:
            database.close()
        if not done:
            raise click.ClickException(f"no active key with id {key_id!r}: `runstack server keys ls` lists them")
        console.print(f"revoked key {key_id}")

    @main.command("sync")
    @dir_option
    @click.argument("run_ids", nargs=-1)
    @click.option("--server", "base_url", envvar="RUNSTACK_BASE_URL", required=True,
                  help="The team server ($RUNSTACK_BASE_URL).")  # fmt: skip
    @click.option("--api-key", envvar="RUNSTACK_API_KEY", default=None, help="API key ($RUNSTACK_API_KEY).")
    def sync(store_dir: str | None, run_ids: tuple[str, ...], base_url: str, api_key: str | None) -> None:
        """Send local runs (all, or RUN_IDS) to the team server: only what it does not have yet."""
        from runstack.core.client import Client
        from runstack.core.store import Store
        from runstack.core.uploader import Shipped, sync_runs

        def report(run_id: str, sent: Shipped) -> None:
            if sent.bytes or sent.blobs or sent.rows or sent.artifacts:
                console.print(f"{run_id}: sent {sent.bytes:,} history bytes, {sent.blobs} files, "
                              f"{sent.rows} rows, {sent.artifacts} artifact records")  # fmt: skip
            else:
                console.print(Text(f"{run_id}: up to date", style="dim"))

        client = Client(base_url, api_key)
        try:
            done = sync_runs(Store(store_dir, create=False), client, list(run_ids) or None, report)
        finally:
            client.close()
        console.print(f"{len(done)} runs in sync with {base_url}")
