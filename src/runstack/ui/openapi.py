"""The dashboard's HTTP API, described for other tools (OpenAPI 3.1; served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any


def _get(
    summary: str, params: list[tuple[str, str, str]] | None = None, path_param: str | None = None
) -> dict[str, Any]:
    parameters = (
        [{"name": path_param, "in": "path", "required": True, "schema": {"type": "string"}}] if path_param else []
    )
    parameters += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": t}}
                   for n, t, d in params or []]  # fmt: skip
    return {"get": {"summary": summary, "parameters": parameters,
                    "responses": {"200": {"description": "JSON"}, "404": {"description": "no such run or file"},
                                  "400": {"description": "a bad parameter, with the fix"}}}}  # fmt: skip


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "runstack", "version": "1", "description": "Read runs of a runstack store over HTTP."},
    "paths": {
        "/api/projects": _get("Projects with their run counts and last activity."),
        "/api/runs": _get(
            "Runs, filtered and sorted as runstack.Api().runs does.",
            [
                ("project", "string", "only this project"),
                (
                    "filters",
                    "string",
                    'JSON, e.g. {"config.lr": 0.1, "summary.loss": {"$lt": 0.5}, "status": "finished"}',
                ),
                ("order", "string", 'a field path, "-" for descending, e.g. "-summary.acc"'),
            ],
        ),  # fmt: skip
        "/api/runs/{run_id}": _get(
            "One run: facts, config, summary, metric names with counts, system series.", path_param="run_id"
        ),  # fmt: skip
        "/api/runs/{run_id}/history": _get(
            "One metric as {x, y}, at most `points` points keeping each bucket's "
            "minimum and maximum; `min`/`max` zoom; `after` returns only newer points.",
            [
                ("key", "string", "the metric"),
                ("x", "string", "_step, _timestamp, _relative or a step metric"),
                ("points", "integer", "at most this many points (default 2000)"),
                ("min", "number", "x from"),
                ("max", "number", "x to"),
                ("after", "integer", "only points after this many (live updates)"),
                ("system", "boolean", "read the system-metrics series instead"),
            ],
            path_param="run_id",
        ),  # fmt: skip
        "/api/runs/{run_id}/media": _get(
            "Media logged under `key`: steps and references.", [("key", "string", "")], path_param="run_id"
        ),  # fmt: skip
        "/api/runs/{run_id}/artifacts": _get("Artifacts the run logged and used.", path_param="run_id"),
        "/api/sweeps": _get("Sweeps: state, method, metric, trials by status, best value."),
        "/api/sweeps/{sweep_id}": _get(
            "One sweep: its trials (parameters, status, value, run) and parameter importances.", path_param="sweep_id"
        ),  # fmt: skip
        "/api/media/{digest}": _get(
            "A stored media file by SHA-256 (`kind`: image, audio, table, html).",
            [("kind", "string", "")],
            path_param="digest",
        ),  # fmt: skip
    },
}
