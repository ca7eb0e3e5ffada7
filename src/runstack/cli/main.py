"""The ``runstack`` command: list, show, export and remove runs; collect garbage; run a demo."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from runstack.cli.artifacts import register as register_artifacts
from runstack.cli.data import register as register_data
from runstack.cli.server import register as register_server
from runstack.cli.sweeps import register as register_sweeps
from runstack.core.api import Api, RunView
from runstack.core.store import Store
from runstack.errors import RunstackError

console = Console(width=None if sys.stdout.isatty() else 160)
STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "crashed": "magenta", "pruned": "yellow"}


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return str(dt.timedelta(seconds=round(seconds)))


class _Group(click.Group):
    """Turns RunstackError into a one-line message and exit code 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunstackError as exc:
            console.print(Text("error: ", style="red") + Text(str(exc)), highlight=False)
            sys.exit(1)


dir_option = click.option("--dir", "store_dir", envvar="RUNSTACK_DIR", default=None,
                           help="Store folder (default $RUNSTACK_DIR or ./runstack).")  # fmt: skip


@click.group(cls=_Group)
@click.version_option(package_name="runstack")
def main() -> None:
    """runstack: a local-first experiment tracker."""


@main.command("ls")
@dir_option
@click.option("--project", "-p", default=None, help="Only this project.")
@click.option("--status", default=None, type=click.Choice(list(STATUS_STYLE)), help="Only runs in this state.")
@click.option("--limit", "-n", default=50, show_default=True, help="At most this many runs, newest first.")
def ls_command(store_dir: str | None, project: str | None, status: str | None, limit: int) -> None:
    """List runs: id, name, project, status, duration and key summary values."""
    filters = {"status": status} if status else None
    api = Api(store_dir)
    runs = api.runs(project=project, filters=filters)[:limit]
    _report_problems(api)
    if not runs:
        console.print(Text(f"no runs in {api.store.root}" + (f" for project {project!r}" if project else "")))
        return
    table = Table(title=Text(f"runs in {api.store.root}"), title_justify="left")
    for column in ("id", "name", "project", "status", "started", "duration"):
        table.add_column(column, no_wrap=True, min_width=len(column) + 2)
    table.add_column("summary", ratio=1, overflow="fold", min_width=20)
    for run in runs:
        summary = {k: v for k, v in run.summary.items() if isinstance(v, (int, float, str))}
        shown = ", ".join(f"{k}={_fmt_value(v)}" for k, v in list(summary.items())[:4])
        if len(summary) > 4:
            shown += f" (+{len(summary) - 4})"
        style = STATUS_STYLE.get(run.status, "")
        started = dt.datetime.fromtimestamp(run.created_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(Text(run.id), Text(run.name), Text(run.project), Text(run.status, style=style), started,
                      _fmt_duration(run.duration), Text(shown))  # fmt: skip
    console.print(table)


def _report_problems(api: Api) -> None:
    for run_id, reason in api.problems.items():
        console.print(Text(f"warning: run {run_id} skipped: {reason} (see `runstack doctor`)", style="yellow"))


def _run(store_dir: str | None, run_id: str) -> RunView:
    return Api(store_dir).run(run_id)


@main.command("show")
@dir_option
@click.argument("run_id")
def show_command(store_dir: str | None, run_id: str) -> None:
    """Show one run: its facts, config, summary and metric names with counts."""
    run = _run(store_dir, run_id)
    facts = Table(show_header=False, box=None)
    for label, value in (("id", run.id), ("name", run.name), ("project", run.project), ("status", run.status),
                         ("group", run.group), ("job type", run.job_type), ("tags", ", ".join(run.tags)),
                         ("notes", run.notes), ("host", run.host), ("pid", run.pid), ("git", run.git_commit),
                         ("python", run.python), ("duration", _fmt_duration(run.duration)), ("error", run.error),
                         ("folder", run.dir)):  # fmt: skip
        if value not in (None, ""):
            facts.add_row(Text(label, style="bold"), Text(str(value)))
    console.print(facts)
    console.print("[bold]config[/bold]")
    console.print_json(json.dumps(run.config, default=str))
    summary = Table("metric", "summary", "values", title="metrics", title_justify="left")
    counts = run.metrics()
    for key in sorted({*counts, *run.summary}):
        summary.add_row(Text(key), Text(_fmt_value(run.summary.get(key, "-"))), str(counts.get(key, 0)))
    console.print(summary)
    skipped = run.skipped_bytes()
    if skipped:
        console.print(Text(f"warning: {skipped:,} damaged bytes of the history were skipped", style="yellow"))


@main.command("export")
@dir_option
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default RUN_ID.FORMAT; '-' for stdout with csv/jsonl).")  # fmt: skip
@click.option("--keys", default=None, help="Comma-separated metrics (default: all).")
def export_command(store_dir: str | None, run_id: str, fmt: str, output: Path | None, keys: str | None) -> None:
    """Export a run's full history as CSV, JSON lines or Parquet."""
    run = _run(store_dir, run_id)
    wanted = [k.strip() for k in keys.split(",")] if keys else None
    if output is not None and str(output) != "-" and not output.absolute().parent.is_dir():
        raise click.BadParameter(f"{str(output.parent)!r} is not a folder: create it first", param_hint="--output")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        target = output or Path(f"{run_id}.parquet")
        pq.write_table(run.history(keys=wanted, format="arrow"), target)
    else:
        to_stdout = output is not None and str(output) == "-"
        target = output or Path(f"{run_id}.{fmt}")
        sink: Any = sys.stdout if to_stdout else target.open("w", encoding="utf-8", newline="")
        try:
            if fmt == "csv":
                _spreadsheet_safe(run.history(keys=wanted)).to_csv(sink, index=False)
            else:  # json.dumps keeps every float exactly (pandas' to_json rounds to 10 digits)
                for row in run.history(keys=wanted, format="arrow").to_pylist():
                    sink.write(json.dumps({k: _json_number(v) for k, v in row.items()}, allow_nan=False) + "\n")
        finally:
            if not to_stdout:
                sink.close()
        if to_stdout:
            return
    console.print(f"wrote {target} ({target.stat().st_size:,} bytes)")


def _spreadsheet_safe(frame: Any) -> Any:
    """Text cells a spreadsheet would run as a formula (=, +, -, @) get a leading quote (OWASP)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
            )
    frame.columns = [("'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c) for c in frame.columns]
    return frame


def _json_number(value: Any) -> Any:
    """NaN and infinities as the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


@main.command("rm")
@dir_option
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Also remove runs that are still running.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rm_command(store_dir: str | None, run_ids: tuple[str, ...], force: bool, yes: bool) -> None:
    """Remove runs and their files."""
    api = Api(store_dir)
    runs = [api.run(r) for r in run_ids]
    running = [r.id for r in runs if r.status == "running"]
    if running and not force:
        raise click.UsageError(f"{', '.join(running)} still running: finish them first, or pass --force")
    if not yes and not click.confirm(f"remove {len(runs)} run(s): {', '.join(run_ids)}?"):
        raise click.Abort()
    freed = sum(api.store.delete_run(r.id) for r in runs)
    console.print(f"removed {len(runs)} run(s), freed {freed:,} bytes")


@main.command("gc")
@dir_option
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting.")
def gc_command(store_dir: str | None, dry_run: bool, yes: bool) -> None:
    """Mark dead runs as crashed and remove folders of runs the catalogue no longer lists."""
    store = Store(store_dir, create=False)
    plan = store.gc(dry_run=True)
    crashed = store.reconcile() if not dry_run else []
    console.print(Text(f"crashed runs found: {len(crashed)} {' '.join(crashed)}"))
    console.print(Text(f"orphan run folders: {len(plan.orphan_dirs)} {' '.join(plan.orphan_dirs)}"))
    if dry_run or not plan.orphan_dirs:
        console.print(f"would free {plan.bytes_freed:,} bytes" if dry_run else "nothing to delete")
        return
    if not yes and not click.confirm(f"delete {len(plan.orphan_dirs)} folder(s), {plan.bytes_freed:,} bytes?"):
        raise click.Abort()
    report = store.gc(only=plan.orphan_dirs)
    console.print(f"freed {report.bytes_freed:,} bytes")


@main.command("doctor")
@dir_option
@click.option("--rebuild", is_flag=True, help="Move the catalogue aside and rebuild it from the run folders.")
def doctor_command(store_dir: str | None, rebuild: bool) -> None:
    """Check the store: catalogue, run folders, damaged runs; optionally rebuild the catalogue."""
    from runstack.core import recovery

    store = Store(store_dir, create=False)
    if rebuild:
        moved = recovery.backup_catalog(store)
        store = Store(store_dir)
        report = getattr(store, "rebuilt", None) or recovery.rebuild_catalog(store)
        console.print(Text(f"catalogue rebuilt: {len(report.restored)} runs from run.json, "
                           f"{len(report.from_history_only)} from history only; old one kept at {moved}"))  # fmt: skip
        for name, why in report.skipped.items():
            console.print(Text(f"skipped folder {name}: {why}", style="yellow"))
    problems = store.check()
    for run_id, why in problems.items():
        console.print(Text(f"run {run_id}: {why}", style="yellow"))
    console.print(Text(f"{len(store.catalog.run_ids())} runs, {len(problems)} with problems in {store.root}"))
    if problems:
        sys.exit(1)


@main.command("ui")
@dir_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback only by default)."
)
@click.option("--port", default=8765, show_default=True, help="Port (0 picks a free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser.")
def ui_command(store_dir: str | None, host: str, port: int, open_browser: bool) -> None:
    """Serve the dashboard over the store (read-only) until Ctrl-C."""
    try:
        from runstack.ui import serve
    except ImportError as exc:  # pragma: no cover - depends on the extra
        from runstack.errors import MissingDependencyError

        raise MissingDependencyError(exc.name or "starlette", "ui") from exc
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from runstack.errors import MissingDependencyError

        raise MissingDependencyError(exc.name or "starlette", "ui") from exc
    serve(store_dir, host, port, open_browser, ready=lambda url: console.print(f"runstack ui: {url} (Ctrl-C stops)"))


@main.command("demo")
@dir_option
@click.option("--steps", default=300, show_default=True, help="Training steps.")
def demo_command(store_dir: str | None, steps: int) -> None:
    """Train a small logistic-regression model, log it, and list the runs."""
    from runstack.cli.demo import train

    run_id = train(store_dir, steps)
    console.print(f"logged run {run_id}; `runstack show {run_id}` shows it in full\n")
    ls_command.callback(store_dir, None, None, 10)  # type: ignore[misc]


register_artifacts(main, dir_option, console)
register_data(main, console)
register_sweeps(main, dir_option, console)
register_server(main, dir_option, console)

if __name__ == "__main__":
    main()
