"""The dashboard's ASGI app (Starlette): pages, and the JSON API under ``/api/`` they use.

The store is opened read-only for every request: the dashboard never writes into runs. A run
whose process is gone is shown as ``crashed`` without changing the catalogue.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from runstack.core.api import Api
from runstack.core.history import metric_counts
from runstack.core.store import Store
from runstack.errors import AuthError, RunstackError
from runstack.ui import data
from runstack.ui.openapi import SPEC

HERE = Path(__file__).parent
MEDIA_TYPES = {"image": "image/png", "audio": "audio/wav", "table": "application/json", "html": "text/html"}


def create_app(store_dir: str | os.PathLike[str] | None = None, *, opener: Callable[[Request], Any] | None = None,
               label: str | None = None, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:  # fmt: skip
    """The dashboard over the store at ``store_dir`` (default ``$RUNSTACK_DIR`` or ``./runstack``).

    The team server passes ``opener`` (the request's view of its database: only the projects its
    key may read), a ``label`` shown instead of the folder, and its own routes.
    """
    from runstack.core.store import resolve_root

    root = str(resolve_root(store_dir).absolute()) if opener is None else label or "server"
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def store(request: Request) -> Any:
        return opener(request) if opener is not None else Store(root, read_only=True)

    def api(request: Request) -> Api:
        return Api.over(store(request))

    async def page(request: Request) -> Response:
        name = request.scope["route"].name
        try:
            store(request)
        except AuthError:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        except RunstackError as exc:
            return templates.TemplateResponse(request, "missing.html", {"error": str(exc), "root": root},
                                              status_code=404)  # fmt: skip
        return templates.TemplateResponse(request, f"{name}.html", {"root": root, **request.path_params})

    async def projects(request: Request) -> Response:
        views = api(request).runs()
        out: dict[str, dict[str, Any]] = {}
        for view in views:
            entry = out.setdefault(view.project, {"name": view.project, "runs": 0, "last": 0.0})
            entry["runs"] += 1
            entry["last"] = max(entry["last"], view.created_at)
        return JSONResponse(sorted(out.values(), key=lambda e: -e["last"]))

    async def runs(request: Request) -> Response:
        params = request.query_params
        filters = json.loads(params["filters"]) if params.get("filters") else None
        reader = api(request)
        views = reader.runs(
            project=params.get("project") or None, filters=filters, order=params.get("order") or "-created_at"
        )
        return JSONResponse([_row(reader.store, v) for v in views])

    async def run(request: Request) -> Response:
        reader = api(request)
        view = reader.run(request.path_params["run_id"])
        logs = data.logs_of(reader.store, view.id)
        facts = _row(reader.store, view)
        facts.update(host=view.host, pid=view.pid, git_commit=view.git_commit, git_dirty=view.git_dirty,
                     python=view.python, packages=data.jsonable(view.packages), notes=view.notes, error=view.error,
                     job_type=view.job_type, metrics=metric_counts(logs),
                     define=data.jsonable(view._row.get("metrics") or {}), system=data.system_names(reader.store, view.id),
                     skipped_bytes=sum(lg.skipped_bytes for lg in logs))  # fmt: skip
        return JSONResponse(facts)

    async def history(request: Request) -> Response:
        reader, params = api(request), request.query_params
        view = reader.run(request.path_params["run_id"])
        key = params.get("key", "")
        pattern = "system.*.rsl" if params.get("system") else "history.*.rsl"
        logs = data.logs_of(reader.store, view.id, pattern)
        x, y, _ = data.series(logs, key, params.get("x") or "_step")
        if "after" in params:  # live: only what was logged since the client's last point
            start = int(params["after"])
            return JSONResponse({**data.downsample(x[start:], y[start:], 10_000), "next": int(len(y))})
        points = min(max(int(params.get("points", 2000)), 4), 20_000)
        lo = float(params["min"]) if params.get("min") else None
        hi = float(params["max"]) if params.get("max") else None
        return JSONResponse({**data.downsample(x, y, points, lo, hi), "next": int(len(y)), "key": key})

    async def media(request: Request) -> Response:
        reader = api(request)
        view = reader.run(request.path_params["run_id"])
        key = request.query_params.get("key", "")
        items = []
        for log in data.logs_of(reader.store, view.id):
            for record in log.media:
                if key in record.refs:
                    items.append({"step": record.step, "ts": record.ts, "rank": log.rank, **record.refs[key]})
        return JSONResponse(data.jsonable(items))

    async def media_file(request: Request) -> Response:
        path = store(request).media_file(request.path_params["digest"])
        if path is None:
            return JSONResponse({"error": "no such media file"}, status_code=404)
        kind = request.query_params.get("kind", "")
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=31536000, immutable"}
        if kind == "html":  # its own opaque origin: no script in it can reach the dashboard
            headers["Content-Security-Policy"] = "sandbox allow-scripts"
        media_type = MEDIA_TYPES.get(kind, "application/octet-stream")
        if isinstance(path, bytes):  # the team server's remote (fsspec) storage
            return Response(path, media_type=media_type, headers=headers)
        return FileResponse(path, media_type=media_type, headers=headers)

    async def artifacts(request: Request) -> Response:
        reader = api(request)
        run_id = reader.run(request.path_params["run_id"]).id
        return JSONResponse(data.jsonable(reader.store.run_artifacts(run_id)))

    async def sweeps(request: Request) -> Response:
        from runstack.ui.sweeps import sweep_list

        found = store(request)  # sweeps live in a local store (their Optuna journal); the server has none
        return JSONResponse(sweep_list(found) if isinstance(found, Store) else [])

    async def sweep(request: Request) -> Response:
        from runstack.ui.sweeps import sweep_detail

        found = store(request)
        if not isinstance(found, Store):
            return JSONResponse({"error": "sweeps are shown by the dashboard of their own store"}, status_code=404)
        return JSONResponse(sweep_detail(found, request.path_params["sweep_id"]))

    async def openapi(request: Request) -> Response:
        return JSONResponse(SPEC)

    async def on_error(request: Request, exc: Exception) -> Response:
        from runstack.errors import RunNotFoundError, ServerError, StoreError

        status = 404 if isinstance(exc, RunNotFoundError | StoreError) else 400
        if isinstance(exc, ServerError):
            status = exc.status or 503
        return JSONResponse({"error": str(exc)}, status_code=status)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not found"}, status_code=404)
        return HTMLResponse("<!doctype html><title>not found</title><p>Not found. <a href='/'>Projects</a>",
                            status_code=404)  # fmt: skip

    routes = [
        *extra_routes,
        Route("/", page, name="projects"),
        Route("/projects/{project}", page, name="runs"),
        Route("/runs/{run_id}", page, name="run"),
        Route("/compare", page, name="compare"),
        Route("/sweeps/{sweep_id}", page, name="sweep"),
        Route("/api/projects", projects),
        Route("/api/runs", runs),
        Route("/api/runs/{run_id}", run),
        Route("/api/runs/{run_id}/history", history),
        Route("/api/runs/{run_id}/media", media),
        Route("/api/runs/{run_id}/artifacts", artifacts),
        Route("/api/media/{digest}", media_file),
        Route("/api/sweeps", sweeps),
        Route("/api/sweeps/{sweep_id}", sweep),
        Route("/api/openapi.json", openapi),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    handlers = {RunstackError: on_error, ValueError: on_error, 404: not_found}
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


def _row(store: Store, view: Any) -> dict[str, Any]:
    status = view.status
    if status == "running" and not store._alive(view._row, socket.gethostname(), time.time()):
        status = "crashed"  # shown as it is, without writing: the next writer's reconcile records it
    return data.jsonable({"id": view.id, "name": view.name, "project": view.project, "status": status,
                          "created_at": view.created_at, "ended_at": view.ended_at, "duration": view.duration,
                          "tags": view.tags, "group": view.group, "config": view.config, "summary": view.summary})  # fmt: skip
