"""``runstack data ...``: build a code dataset, manage opt-outs, look up and diff versions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

registry_option = click.option("--registry", type=click.Path(dir_okay=False, path_type=Path), default=None,
                               envvar="RUNSTACK_OPTOUT", help="Opt-out registry (default ./optout.jsonl).")  # fmt: skip


def _summary(report: Any) -> Table:
    table = Table("", "count", title="build summary", title_justify="left")
    table.add_row("files in", str(report.files_in))
    for step in report.steps:
        for reason, count in sorted(step.dropped.items()):
            table.add_row(f"dropped by {step.name}: {reason}", str(count))
    table.add_row("exact duplicates", str(report.exact_duplicates))
    table.add_row(f"near duplicates ({report.near_verified_pairs} of {report.near_candidate_pairs} pairs verified)",
                  str(report.near_duplicates))  # fmt: skip
    stats = report.manifest["stats"]
    for language, count in stats["languages"].items():
        table.add_row(f"language: {language}", str(count))
    for kind, count in stats["license_types"].items():
        table.add_row(f"licence: {kind}", str(count))
    for kind, count in sorted(report.manifest["counts"]["pii"].items()):
        table.add_row(Text(f"PII replaced: {kind}"), str(count))
    table.add_row("files out", str(report.files_out))
    return table


def register(main: click.Group, console: Any) -> None:
    @main.group("data")
    def data() -> None:
        """Turn source code into a deduplicated, licence-filtered, PII-free dataset."""

    @data.command("build")
    @click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
    @click.option("--version", "version", required=True, help="Dataset version, e.g. v1.")
    @click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="Build settings (TOML or JSON).")  # fmt: skip
    @click.option(
        "--workers",
        default=1,
        show_default=True,
        help="Workers for the per-source stage (processes, Dask workers or Spark cores).",
    )
    @click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
    @click.option(
        "--repo-dedup",
        type=click.Choice(["drop", "mark", "off"]),
        default=None,
        help="Repositories that mostly copy another (forks): drop them, mark them (default) or keep as is.",
    )
    @click.option("--pii", type=click.Choice(["strict", "balanced", "off"]), default=None,
                  help="Redaction: strict adds every high-entropy string literal; default balanced.")  # fmt: skip
    @click.option("--pipeline", "pipeline_file", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="Steps from a YAML file (see `runstack.datasets_hub.steps`); default the standard ones.")  # fmt: skip
    @click.option("--executor", type=click.Choice(["local", "dask", "spark"]), default="local", show_default=True,
                  help="Where the per-source stage runs.")  # fmt: skip
    @click.option("--address", "--master", "address", default=None,
                  help="Dask scheduler (tcp://...) or Spark master (spark://...); default a local cluster.")  # fmt: skip
    @click.option("--project", default="datasets", show_default=True, help="Project of the build's run.")
    @click.option("--no-track", is_flag=True, help="Do not record the build as a run with a dataset artifact.")
    @click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Keep per-source results here: later builds re-read only changed sources.")  # fmt: skip
    @click.option("--resume", is_flag=True, help="Continue a killed build from the sources it had finished.")
    @registry_option
    def build_command(sources: tuple[str, ...], out: Path, version: str, config_file: str | None, workers: int,
                      overwrite: bool, repo_dedup: str | None, pii: str | None, pipeline_file: str | None,
                      executor: str, address: str | None, project: str, no_track: bool, cache_dir: Path | None,
                      resume: bool, registry: Path | None) -> None:  # fmt: skip
        """Build SOURCE... (folders, git repositories, tar/zip archives) into OUT."""
        from runstack.datasets_hub.build import build
        from runstack.datasets_hub.config import BuildConfig
        from runstack.datasets_hub.optout import OptOutRegistry, default_path
        from runstack.datasets_hub.steps import load_pipeline

        config = BuildConfig.load(config_file) if config_file else BuildConfig()
        if pii is not None:
            import dataclasses

            config = dataclasses.replace(config, pii=pii)
        if repo_dedup is not None:
            import dataclasses

            config = dataclasses.replace(config, repo_dedup=repo_dedup)
        path = registry or default_path()
        optout = OptOutRegistry(path) if path.exists() else None
        steps = load_pipeline(pipeline_file, config, optout) if pipeline_file else None
        # Without --cache, results are kept beside OUT until the build completes, so that a killed
        # build can be resumed; a build started without --resume starts from nothing.
        own_cache = cache_dir is None
        if own_cache:
            cache_dir = out.parent / f".{out.name}.cache"
            if not resume and cache_dir.exists():
                shutil.rmtree(cache_dir)
        report = build(list(sources), out, version, config, optout, workers=workers, overwrite=overwrite or resume,
                       steps=steps, executor=executor, address=address, progress=True,
                       track=None if no_track else project, cache=cache_dir)  # fmt: skip
        if own_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
        console.print(_summary(report))
        console.print(
            f"wrote {out} ({len(report.manifest['shards'])} shards; {report.sources_reused} sources from the cache)"
        )
        if report.run_id is not None:
            console.print(f"recorded as run {report.run_id} with artifact {report.artifact} (project {project})")

    @data.command("query")
    @click.argument("dataset", type=click.Path(exists=True, file_okay=False))
    @click.option("--language", default=None, help="e.g. Python (case-insensitive).")
    @click.option("--license", "license_id", default=None, help="An SPDX id among detected_licenses, e.g. MIT.")
    @click.option("--license-type", type=click.Choice(["permissive", "non_permissive", "no_license"]), default=None)
    @click.option("--repo", default=None, help="owner/name, or an owner.")
    @click.option("--grep", default=None, help="A regular expression searched in the code.")
    @click.option("--limit", default=20, show_default=True, help="At most this many rows (0: all).")
    @click.option(
        "--format", "fmt", type=click.Choice(["table", "jsonl", "parquet"]), default="table", show_default=True
    )
    @click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="File for --format parquet (default query.parquet).")  # fmt: skip
    def query_command(dataset: str, language: str | None, license_id: str | None, license_type: str | None,
                      repo: str | None, grep: str | None, limit: int, fmt: str, output: Path | None) -> None:  # fmt: skip
        """Files of a release by language, licence, repository or code pattern (DuckDB over the shards)."""
        import json

        from runstack.datasets_hub.query import query

        columns = ("repo_name", "path", "language", "license_type", "detected_licenses", "length_bytes", "blob_id")
        table = query(dataset, language, license_id, license_type, repo, grep, limit or None,
                      columns=columns + (("content",) if fmt != "table" else ()))  # fmt: skip
        if fmt == "parquet":
            import pyarrow.parquet as pq

            target = output or Path("query.parquet")
            pq.write_table(table, target)
            console.print(Text(f"wrote {target} ({table.num_rows} rows)"))
        elif fmt == "jsonl":
            for row in table.to_pylist():
                click.echo(json.dumps(row))
        else:
            shown = Table(*columns[:-1], title=Text(f"{table.num_rows} file(s)"), title_justify="left")
            for row in table.to_pylist():
                shown.add_row(*(Text(", ".join(v) if isinstance(v, list) else str(v)) for k, v in row.items()
                                if k != "blob_id"))  # fmt: skip
            console.print(shown)

    @data.group("optout")
    def optout() -> None:
        """The opt-out registry applied at every build."""

    @optout.command("add")
    @registry_option
    @click.argument("name")
    def optout_add(registry: Path | None, name: str) -> None:
        """Opt out an owner ("alice") or a repository ("alice/tool")."""
        from runstack.datasets_hub.optout import OptOutRegistry

        store = OptOutRegistry(registry)
        console.print(f"added {name}" if store.add(name) else f"{name} was already opted out")

    @optout.command("rm")
    @registry_option
    @click.argument("name")
    def optout_rm(registry: Path | None, name: str) -> None:
        """Remove an opt-out entry."""
        from runstack.datasets_hub.optout import OptOutRegistry

        console.print(f"removed {name}" if OptOutRegistry(registry).remove(name) else f"{name} was not opted out")

    @optout.command("ls")
    @registry_option
    def optout_ls(registry: Path | None) -> None:
        """List opt-out entries."""
        from runstack.datasets_hub.optout import OptOutRegistry

        for entry in OptOutRegistry(registry).entries():
            console.print(entry.get("repo") or entry.get("owner"))

    @data.command("lookup")
    @click.option("--repo", required=True, help="owner/name, or an owner.")
    @click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False), help="A built dataset.")
    def lookup_command(repo: str, dataset: str) -> None:
        """Am I in the dataset? Which files of REPO, in which version."""
        from runstack.datasets_hub.publish import lookup

        version, files = lookup(dataset, repo)
        console.print(f"{repo}: {len(files)} file(s) in version {version}")
        for row in files:
            console.print(f"  {row['repo_name']}/{row['path']}  {row['language']}  {row['blob_id']}", markup=False)

    @data.command("diff")
    @click.argument("old", type=click.Path(exists=True, file_okay=False))
    @click.argument("new", type=click.Path(exists=True, file_okay=False))
    def diff_command(old: str, new: str) -> None:
        """Blobs added and removed between two versions."""
        from runstack.datasets_hub.publish import diff

        changes = diff(old, new)
        for sign, key in (("+", "added"), ("-", "removed")):
            for row in changes[key]:
                console.print(f"{sign} {row['blob_id']}  {row['repo_name']}/{row['path']}", markup=False)
        console.print(f"{len(changes['added'])} added, {len(changes['removed'])} removed")
