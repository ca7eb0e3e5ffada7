"""The team server's ASGI app: the dashboard over PostgreSQL, plus the clients' ``/api/v1``.

Every request carries an API key (``Authorization: Bearer rsk_...``; the dashboard's pages use
a cookie set by ``/login``). Writes take the key from the header only, so a page on another
site cannot write with a browser's cookie. Reads need a key unless the server was started
on loopback with ``--no-auth``. A key reads and writes only the projects it was granted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from runstack.core import values
from runstack.core.logfile import MAGIC
from runstack.errors import AuthError, InvalidArgumentError, RunNotFoundError, RunstackError, ServerError
from runstack.server.blobs import open_blobs
from runstack.server.db import ROLES, ServerDB
from runstack.server.store import ServerStore
from runstack.ui.app import create_app

FILE_NAME = re.compile(r"(history|system)\.\d{1,6}\.rsl")
MAX_BODY = 64 << 20
COOKIE = "runstack_key"
STATUSES = ("running", "finished", "failed", "crashed", "pruned")
_LOGIN = """<!doctype html><meta charset="utf-8"><title>runstack: sign in</title><link rel="icon" href="data:,">
<body style="font-family:system-ui;max-width:32rem;margin:4rem auto">
<h1>runstack server</h1><p>Paste an API key (<code>runstack server keys create</code>).</p>
<form method="post"><input type="hidden" name="next" value="{next}">
<input name="key" type="password" autocomplete="off" size="60" aria-label="API key" autofocus>
<button type="submit">Sign in</button></form><p style="color:#b00">{error}</p></body>"""


def _json(content: Any, status: int = 200) -> Response:
    """JSON in Python's dialect (NaN and infinities kept), as runstack's clients read it."""
    text = json.dumps(content, separators=(",", ":"), allow_nan=True)
    return Response(text, status_code=status, media_type="application/json")


def _allows(grants: dict[str, str], project: str, role: str) -> bool:
    held = [grants[p] for p in (project, "*") if p in grants]
    return any(ROLES.index(h) >= ROLES.index(role) for h in held)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 error once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServerError("", f"payload of {int(declared):,} bytes is over the limit of {limit:,}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServerError("", f"payload is over the limit of {limit:,} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_server_app(db: ServerDB, storage: str | Path, open_reads: bool = False, max_body: int = MAX_BODY,
                      label: str = "runstack server") -> Starlette:  # fmt: skip
    """The server over ``db`` with blobs in ``storage``; ``open_reads`` lets keyless requests read."""
    blobs = open_blobs(storage)

    def grants(request: Request, header_only: bool = False) -> dict[str, str] | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if token is None and not header_only:
            token = request.cookies.get(COOKIE)
        if token is None:
            if open_reads and not header_only:
                return None
            raise AuthError("", "this request needs an API key (Authorization: Bearer rsk_...)", 401)
        return db.grants_of(token)

    def reader(request: Request) -> ServerStore:
        found = grants(request)
        readable = None if found is None or "*" in found else set(found)
        return ServerStore(db, blobs, readable, label)

    def key_of(request: Request) -> dict[str, str]:
        """The grants of the key in the Authorization header (writes never take the cookie)."""
        found = grants(request, header_only=True)
        assert found is not None
        return found

    def writer(found: dict[str, str], run_id: str, create: bool = False, role: str = "write") -> str:
        """The run's project, when the key's ``found`` grants hold ``role`` on it (404 when the run
        is unknown; "" with ``create``)."""
        values.check_run_id(run_id)
        project = db.project_of(run_id)
        if project is None:
            if create:
                return ""
            raise RunNotFoundError(run_id, label)
        if not _allows(found, project, role):
            verb = "write" if role == "write" else "delete runs of"
            raise AuthError("", f"this key may not {verb} project {project!r}", 403)
        return project

    async def put_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = await run_in_threadpool(key_of, request)  # who asks, before reading what
        row = json.loads(await _body(request, max_body))
        if not isinstance(row, dict) or row.get("id") != run_id:
            raise InvalidArgumentError("row", str(row)[:80], f"the run's catalogue row with id {run_id!r}")
        project = values.check_project(row.get("project"))
        if row.get("status") not in STATUSES or not isinstance(row.get("created_at"), int | float):
            raise InvalidArgumentError("row", str(row)[:80], f"a row with a status in {STATUSES} and created_at")

        def put() -> bool:
            writer(found, run_id, create=True)  # the run's project, if it has one
            if not _allows(found, project, "write"):
                raise AuthError("", f"this key may not write project {project!r}", 403)
            return db.put_run(row)

        return _json({"changed": await run_in_threadpool(put)})

    async def delete_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = await run_in_threadpool(key_of, request)

        def delete() -> None:
            writer(found, run_id, role="admin")
            db.delete_run(run_id)

        await run_in_threadpool(delete)
        return _json({"deleted": run_id})

    async def sync_state(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = await run_in_threadpool(key_of, request)

        def state() -> dict[str, Any]:
            writer(found, run_id, create=True)
            return db.sync_state(run_id)

        return _json(await run_in_threadpool(state))

    async def append(request: Request) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        found = await run_in_threadpool(key_of, request)
        if not FILE_NAME.fullmatch(name):
            raise InvalidArgumentError("file", name, "history.<rank>.rsl or system.<rank>.rsl")
        offset = request.query_params.get("offset", "")
        if not offset.isdigit():
            raise InvalidArgumentError("offset", offset, "the byte offset where the data starts")
        await run_in_threadpool(writer, found, run_id)
        data = await _body(request, max_body)
        if int(offset) == 0 and not data.startswith(MAGIC):
            raise InvalidArgumentError("data", data[:8], "a runstack history file, starting with its header")

        def store() -> tuple[int, bool]:
            return db.append(run_id, name, int(offset), data)

        length, accepted = await run_in_threadpool(store)
        return _json({"length": length}, 200 if accepted else 409)

    async def missing(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = await run_in_threadpool(key_of, request)
        digests = json.loads(await _body(request, 1 << 20))
        if not isinstance(digests, list) or not all(values.is_blob_name(d) for d in digests):
            raise InvalidArgumentError("digests", str(digests)[:80], "a list of SHA-256 hex digests")

        def find() -> list[str]:
            writer(found, run_id)
            return db.missing_blobs(run_id, digests)

        return _json(await run_in_threadpool(find))

    async def put_blob(request: Request) -> Response:
        run_id, digest = request.path_params["run_id"], request.path_params["digest"]
        found = await run_in_threadpool(key_of, request)
        if not values.is_blob_name(digest):
            raise InvalidArgumentError("digest", digest, "a SHA-256 hex digest")
        await run_in_threadpool(writer, found, run_id)
        data = await _body(request, max_body)

        def store() -> None:
            got, size, _ = blobs.put_bytes(data)
            if got != digest:
                raise InvalidArgumentError("digest", digest, f"the SHA-256 of the body ({got})")
            db.add_blob(run_id, digest, size)

        await run_in_threadpool(store)
        return _json({"stored": digest})

    async def put_artifacts(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = await run_in_threadpool(key_of, request)
        records = json.loads(await _body(request, max_body))
        keys = {"name", "version", "role", "type", "digest", "size", "created_at", "entries", "metadata"}
        if not isinstance(records, list) or not all(isinstance(r, dict) and keys <= set(r) for r in records):
            raise InvalidArgumentError("artifacts", str(records)[:80], f"a list of records with {sorted(keys)}")
        if any(r["role"] not in ("output", "input") or not isinstance(r["version"], int) for r in records):
            raise InvalidArgumentError("artifacts", str(records)[:80], "role 'output' or 'input', an int version")

        def store() -> None:
            writer(found, run_id)
            db.put_artifacts(run_id, records)

        await run_in_threadpool(store)
        return _json({"stored": len(records)})

    async def rows(request: Request) -> Response:
        project = request.query_params.get("project") or None
        return _json(await run_in_threadpool(lambda: reader(request).rows(project)))

    async def row(request: Request) -> Response:
        return _json(await run_in_threadpool(lambda: reader(request).get(request.path_params["run_id"])))

    async def files(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def listing() -> dict[str, int]:
            reader(request).get(run_id)
            return db.files(run_id)

        return _json(await run_in_threadpool(listing))

    async def file(request: Request) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]

        def content() -> bytes:
            reader(request).get(run_id)
            return db.read_file(run_id, name)

        return Response(await run_in_threadpool(content), media_type="application/octet-stream")

    async def artifacts(request: Request) -> Response:
        return _json(await run_in_threadpool(lambda: reader(request).run_artifacts(request.path_params["run_id"])))

    async def blob(request: Request) -> Response:
        found = await run_in_threadpool(lambda: reader(request).media_file(request.path_params["digest"]))
        if found is None:
            return _json({"error": "no such blob"}, 404)
        if isinstance(found, bytes):
            return Response(found, media_type="application/octet-stream")
        return FileResponse(found, media_type="application/octet-stream")

    async def whoami(request: Request) -> Response:
        return _json({"grants": await run_in_threadpool(grants, request)})

    async def login(request: Request) -> Response:
        target = request.query_params.get("next", "/")
        if request.method == "GET":
            return HTMLResponse(_LOGIN.format(next=_escape(target), error=""))
        form = parse_qs((await _body(request, 1 << 16)).decode("utf-8", "replace"))
        token, target = form.get("key", [""])[0].strip(), form.get("next", ["/"])[0]
        try:
            await run_in_threadpool(db.grants_of, token)
        except AuthError as exc:
            return HTMLResponse(_LOGIN.format(next=_escape(target), error=_escape(str(exc))), status_code=401)
        parts = urlsplit(target)
        safe = target if target.startswith("/") and not parts.netloc and not target.startswith("//") else "/"
        response = RedirectResponse(safe, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    v1 = "/api/v1/runs/{run_id}"
    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/api/v1/whoami", whoami),
        Route("/api/v1/runs", rows),
        Route(v1, row, methods=["GET"]),
        Route(v1, put_run, methods=["PUT"]),
        Route(v1, delete_run, methods=["DELETE"]),
        Route(v1 + "/sync", sync_state),
        Route(v1 + "/files", files),
        Route(v1 + "/files/{name}", file, methods=["GET"]),
        Route(v1 + "/files/{name}", append, methods=["POST"]),
        Route(v1 + "/blobs/missing", missing, methods=["POST"]),
        Route(v1 + "/blobs/{digest}", put_blob, methods=["PUT"]),
        Route(v1 + "/artifacts", artifacts, methods=["GET"]),
        Route(v1 + "/artifacts", put_artifacts, methods=["PUT"]),
        Route("/api/v1/blobs/{digest}", blob),
    ]
    app = create_app(opener=reader, label=label, extra_routes=routes)
    app.add_exception_handler(RunstackError, _error)
    app.add_exception_handler(ValueError, _error)
    _database_errors(app)
    return app


async def _error(request: Request, exc: Exception) -> Response:
    status = 400
    if isinstance(exc, RunNotFoundError):
        status = 404
    elif isinstance(exc, ServerError):
        status = exc.status or 503
    message = str(exc).removeprefix("server : ")
    return _json({"error": message}, status)


def _database_errors(app: Starlette) -> None:
    """PostgreSQL down or restarting: 503 with Retry-After, which clients retry."""
    import psycopg
    from psycopg_pool import PoolTimeout

    async def unavailable(request: Request, exc: Exception) -> Response:
        response = _json({"error": f"the database is unavailable ({type(exc).__name__}): retry shortly"}, 503)
        response.headers["Retry-After"] = "1"
        return response

    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(PoolTimeout, unavailable)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
