"""Publishing the way Hugging Face ``datasets`` reads it: Parquet shards, a README dataset
card with ``configs:`` (one per language plus ``default``), and ``manifest.json``.

Everything written is a function of the records and the config: rows are sorted, the
schema is fixed and nothing records a time, so the same inputs give byte-identical files.
Rows are spooled to disk by language and only their sort keys stay in memory.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from runstack.datasets_hub.record import COLUMNS, SCHEMA

MANIFEST = "manifest.json"
# A Parquet row group holds at most this many rows or (about) this much content: what memory holds while writing.
ROW_GROUP, ROW_GROUP_BYTES = 1000, 8 << 20


def _schema() -> Any:
    from runstack.datasets_hub.record import arrow_schema

    return arrow_schema()


def config_name(language: str) -> str:
    """A config name for a language: "C++" -> "cpp", "C#" -> "csharp", "Jupyter Notebook" -> "jupyter_notebook"."""
    slug = language.lower().replace("++", "pp").replace("#", "sharp").replace("+", "p")
    return re.sub(r"[^a-z0-9]+", "_", slug).strip("_") or "unknown"


def _sha256(path: Path) -> str:
    from runstack.core.blobs import sha256_file

    return sha256_file(path)[0]


def tool_versions() -> dict[str, str]:
    out = {}
    for name in ("runstack", "pyarrow", "numpy", "enry-python", "license-expression"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


SpoolEntry = tuple[str, tuple[Any, ...], str, int]  # (language, sort key, spool file, offset)


def spool(rows: Iterable[tuple[tuple[Any, ...], dict[str, Any]]], folder: Path, prefix: str) -> dict[str, Any]:
    """Rows (each with its tie-breaking order) to spool files ``folder/prefix-N.pkl``, one per
    language; returns their entries (language, sort key, file, offset) and the rows' stats."""
    handles: dict[str, Any] = {}
    entries: list[SpoolEntry] = []
    count, size, license_types = 0, 0, Counter[str]()
    try:
        for order, row in rows:
            language = row["language"]
            handle = handles.get(language)
            if handle is None:
                handle = handles[language] = open(folder / f"{prefix}-{len(handles)}.pkl", "wb")  # noqa: SIM115
            entries.append((language, (row["repo_name"], row["path"], row["blob_id"], *order),
                            Path(handle.name).name, handle.tell()))  # fmt: skip
            pickle.dump({c: row[c] for c in COLUMNS}, handle, protocol=pickle.HIGHEST_PROTOCOL)
            count, size = count + 1, size + row["length_bytes"]
            license_types[row["license_type"]] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return {"entries": entries, "count": count, "bytes": size, "license_types": license_types}


def write_shard(path: str, folder: str, rows: list[tuple[str, int]]) -> tuple[int, str]:
    """One Parquet shard from spooled rows (file, offset), in order, one row group at a time
    (at most ``ROW_GROUP`` rows or about ``ROW_GROUP_BYTES`` of content); returns (bytes, sha256)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    try:
        with pq.ParquetWriter(target, _schema(), compression="zstd") as parquet:
            part: list[dict[str, Any]] = []
            size = 0
            for position, (name, offset) in enumerate(rows):
                handle = handles.get(name) or handles.setdefault(name, open(Path(folder) / name, "rb"))  # noqa: SIM115
                handle.seek(offset)
                part.append(pickle.load(handle))
                size += len(part[-1]["content"])
                if len(part) == ROW_GROUP or size >= ROW_GROUP_BYTES or position == len(rows) - 1:
                    parquet.write_table(pa.Table.from_pylist(part, schema=_schema()), row_group_size=len(part))
                    part, size = [], 0
    finally:
        for handle in handles.values():
            handle.close()
    return target.stat().st_size, _sha256(target)


class ReleaseWriter:
    """Rows in, shards out, in bounded memory: rows wait on disk (spool files per language, written
    here or by an engine's tasks) with only their sort keys in memory; each shard is then read back
    in order and written, by the engine's workers when ``finish`` is given one."""

    def __init__(self, out: Path, shard_rows: int) -> None:
        self.out, self.shard_rows = out, shard_rows
        self.spool = out / ".rows"
        self.spool.mkdir(parents=True)
        self.keys: dict[str, list[tuple[tuple[Any, ...], str, int]]] = {}
        self.count, self.bytes = 0, 0
        self.license_types: Counter[str] = Counter()

    def extend(self, spooled: dict[str, Any]) -> None:
        """Take the rows ``spool`` wrote into this writer's spool folder."""
        for language, key, name, offset in spooled["entries"]:
            self.keys.setdefault(language, []).append((key, name, offset))
        self.count += spooled["count"]
        self.bytes += spooled["bytes"]
        self.license_types.update(spooled["license_types"])

    def finish(self, version: str, config: dict[str, Any], counts: dict[str, Any],
               pipeline: dict[str, Any] | None = None, run: Any = None) -> dict[str, Any]:  # fmt: skip
        """Write shards (a task each, given to ``run(task, shares)`` when set), README.md and
        manifest.json; returns the manifest (with the pipeline's steps and fingerprint when given)."""
        planned, shares = [], []
        try:
            for language in sorted(self.keys):
                keys, name = sorted(self.keys[language]), config_name(language)
                total = max(1, -(-len(keys) // self.shard_rows))
                for index in range(total):
                    chosen = keys[index * self.shard_rows : (index + 1) * self.shard_rows]
                    path = self.out / "data" / name / f"train-{index:05d}-of-{total:05d}.parquet"
                    planned.append({"path": path.relative_to(self.out).as_posix(), "config": name,
                                    "language": language, "rows": len(chosen)})  # fmt: skip
                    shares.append((str(path), str(self.spool), [(file, offset) for _, file, offset in chosen]))
            written = run(write_shard, shares) if run is not None else [write_shard(*share) for share in shares]
        finally:
            shutil.rmtree(self.spool)
        shards = [
            {**plan, "bytes": size, "sha256": digest} for plan, (size, digest) in zip(planned, written, strict=True)
        ]
        languages = {language: len(keys) for language, keys in sorted(self.keys.items())}
        stats = {"files": self.count, "bytes": self.bytes, "languages": languages,
                 "license_types": dict(sorted(self.license_types.items()))}  # fmt: skip
        manifest = {"version": version, "tools": tool_versions(), "config": config, "counts": counts, "stats": stats,
                    "shards": shards}  # fmt: skip
        if pipeline is not None:
            manifest["pipeline"] = pipeline
        (self.out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (self.out / "README.md").write_text(_card(version, languages, stats))
        return manifest


def _card(version: str, by_language: dict[str, int], stats: dict[str, Any]) -> str:
    lines = ["---", "configs:", "- config_name: default", "  default: true", "  data_files:", "  - split: train",
             "    path: data/*/*.parquet"]  # fmt: skip
    for language in sorted(by_language):
        name = config_name(language)
        lines += [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: data/{name}/*.parquet"]
    lines += ["---", "", f"# Source code dataset, version {version}", "",
              "Built with `runstack data build`: language detection (go-enry), licence detection and filtering,",
              "quality filters, exact and near deduplication (MinHash LSH), PII and secret redaction, opt-out.", "",
              "```python", "from datasets import load_dataset",
              'ds = load_dataset("path/to/this/folder", "python", split="train", streaming=True)', "```", "",
              f"{stats['files']} files, {stats['bytes']} bytes.", "",
              "`blob_id` is the git blob id of the original file; `content` is the published text, with",
              "secrets and personal data replaced (`<KEY>`, `<PASSWORD>`, `<EMAIL>`, `<IP_ADDRESS>`, `<CREDIT_CARD>`,",
              "`<PHONE>`); `pii` lists each replacement's kind and position in `content`, so a trainer can drop",
              "or keep files by it; `length_bytes` is the size of the published content.", "",
              "| column | type | meaning |", "|---|---|---|",
              *(f"| `{name}` | {kind} | {meaning} |" for name, kind, meaning in SCHEMA), "",
              "| language | config | files |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {lang} | `{config_name(lang)}` | {n} |" for lang, n in stats["languages"].items()]
    lines += ["", "| licence type | files |", "|---|---|"]
    lines += [f"| {kind} | {n} |" for kind, n in stats["license_types"].items()]
    return "\n".join(lines) + "\n"


def read_manifest(folder: str | Path) -> dict[str, Any]:
    from runstack.errors import InvalidArgumentError

    path = Path(folder) / MANIFEST
    if not path.exists():
        raise InvalidArgumentError("dataset", str(folder), f"a folder written by `runstack data build` (no {MANIFEST})")
    return json.loads(path.read_text())


def read_column(folder: str | Path, columns: list[str]) -> list[dict[str, Any]]:
    """Some columns of every row of a published dataset."""
    import pyarrow.parquet as pq

    manifest = read_manifest(folder)
    rows: list[dict[str, Any]] = []
    for shard in manifest["shards"]:
        rows += pq.read_table(Path(folder) / shard["path"], columns=columns).to_pylist()
    return rows


def diff(old: str | Path, new: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Blobs added and removed between two published versions."""
    cols = ["blob_id", "repo_name", "path"]
    before = {r["blob_id"]: r for r in read_column(old, cols)}
    after = {r["blob_id"]: r for r in read_column(new, cols)}
    return {"added": [after[b] for b in sorted(after.keys() - before.keys())],
            "removed": [before[b] for b in sorted(before.keys() - after.keys())]}  # fmt: skip


def lookup(folder: str | Path, repo: str) -> tuple[str, list[dict[str, Any]]]:
    """("am I in the dataset") the version and the files of ``repo`` (or owner) it contains."""
    manifest = read_manifest(folder)
    wanted = repo.lower().strip("/")
    rows = read_column(folder, ["repo_name", "path", "blob_id", "language"])
    hits = [r for r in rows if r["repo_name"].lower() == wanted or r["repo_name"].split("/")[0].lower() == wanted]
    return manifest["version"], sorted(hits, key=lambda r: (r["repo_name"], r["path"]))
