"""``runstack artifact ...``: put, get, list, lineage and garbage-collect artifacts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from rich.table import Table

from runstack.core.artifacts import Artifact, ArtifactRegistry
from runstack.core.store import Store


def _registry(store_dir: str | None, create: bool = False) -> ArtifactRegistry:
    """The store's artifacts; only ``put`` may create the store."""
    return ArtifactRegistry(Store(store_dir, create=create))


def register(main: click.Group, dir_option: click.Option, console: object) -> None:
    @main.group("artifact")
    def artifact() -> None:
        """Versioned, content-addressed files (datasets, models, ...)."""

    @artifact.command("put")
    @dir_option
    @click.argument("path", type=click.Path(exists=True, path_type=Path))
    @click.option("--name", required=True, help="Artifact name.")
    @click.option("--type", "kind", required=True, help="Artifact type, e.g. dataset or model.")
    @click.option("--alias", "aliases", multiple=True, help="Alias to move to this version (repeatable).")
    @click.option("--description", default=None)
    def put(store_dir: str | None, path: Path, name: str, kind: str, aliases: tuple[str, ...],
            description: str | None) -> None:  # fmt: skip
        """Log a file or folder as a new version of NAME."""
        art = Artifact(name, kind, description=description)
        art.add_dir(path) if path.is_dir() else art.add_file(path)
        logged = _registry(store_dir, create=True).log(art, None, list(aliases))
        console.print(
            f"{name}:v{logged.version} ({len(logged.files)} files, {logged.size:,} bytes) aliases: {', '.join(logged.aliases)}"
        )  # type: ignore[attr-defined]

    @artifact.command("get")
    @dir_option
    @click.argument("spec")
    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Folder to place the files in (default ./artifacts/NAME-vN).")  # fmt: skip
    @click.option("--link", is_flag=True, help="Read-only hardlinks to the stored blobs instead of copies.")
    def get(store_dir: str | None, spec: str, root: Path | None, link: bool) -> None:
        """Download NAME[:vN|:ALIAS] as copies (checksums verified)."""
        art = _registry(store_dir).get(spec)
        target = art.download(root, link=link)
        console.print(f"{art.name}:v{art.version} -> {target} ({len(art.files)} files)")  # type: ignore[attr-defined]

    @artifact.command("ls")
    @dir_option
    @click.argument("name", required=False)
    def ls(store_dir: str | None, name: str | None) -> None:
        """List artifact versions with aliases, size and producing run."""
        table = Table("artifact", "version", "type", "aliases", "size", "created", "produced by")
        for item in _registry(store_dir).versions(name):
            created = dt.datetime.fromtimestamp(item["created_at"]).strftime("%Y-%m-%d %H:%M")
            table.add_row(item["name"], f"v{item['version']}", item["type"], ", ".join(item["aliases"]),
                          f"{item['size']:,}", created, item["produced_by"] or "-")  # fmt: skip
        console.print(table)  # type: ignore[attr-defined]

    @artifact.command("lineage")
    @dir_option
    @click.argument("name")
    def lineage(store_dir: str | None, name: str) -> None:
        """Which run produced each version of NAME and which runs used it."""
        versions = _registry(store_dir).versions(name)
        if not versions:
            raise click.UsageError(f"no artifact named {name!r}: see `runstack artifact ls`")
        for item in versions:
            aliases = f" [{', '.join(item['aliases'])}]" if item["aliases"] else ""
            console.print(f"{name}:v{item['version']}{aliases}", markup=False)  # type: ignore[attr-defined]
            console.print(f"  produced by: {item['produced_by'] or '(no run: artifact put)'}")  # type: ignore[attr-defined]
            console.print(f"  used by:     {', '.join(item['used_by']) or '-'}")  # type: ignore[attr-defined]

    @artifact.command("gc")
    @dir_option
    @click.option("--dry-run", is_flag=True)
    def gc(store_dir: str | None, dry_run: bool) -> None:
        """Remove stored files that no artifact version references."""
        count, freed = _registry(store_dir).gc(dry_run)
        verb = "would free" if dry_run else "freed"
        console.print(f"unreferenced blobs: {count}, {verb} {freed:,} bytes")  # type: ignore[attr-defined]
