"""Publishing the way Hugging Face ``datasets`` reads it: Parquet shards, a README dataset
card with ``configs:`` (one per language plus ``default``), and ``manifest.json``.

Everything written is a function of the records and the config: rows are sorted, the
schema is fixed and nothing records a time, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from runstack.datasets_hub.record import COLUMNS, SCHEMA

MANIFEST = "manifest.json"


def _schema() -> Any:
    from runstack.datasets_hub.record import arrow_schema

    return arrow_schema()


def config_name(language: str) -> str:
    """A config name for a language: "C++" -> "cpp", "C#" -> "csharp", "Jupyter Notebook" -> "jupyter_notebook"."""
    slug = language.lower().replace("++", "pp").replace("#", "sharp").replace("+", "p")
    return re.sub(r"[^a-z0-9]+", "_", slug).strip("_") or "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tool_versions() -> dict[str, str]:
    out = {}
    for name in ("runstack", "pyarrow", "numpy", "enry-python", "license-expression"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_dataset(rows: list[dict[str, Any]], out: Path, version: str, config: dict[str, Any],
                  counts: dict[str, Any], shard_rows: int, pipeline: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write shards, README.md and manifest.json into ``out``; returns the manifest (with the
    pipeline's steps and fingerprint when given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: (r["language"], r["repo_name"], r["path"], r["blob_id"]))
    by_language: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_language.setdefault(row["language"], []).append(row)
    shards = []
    for language, items in sorted(by_language.items()):
        name = config_name(language)
        total = max(1, -(-len(items) // shard_rows))
        for index in range(total):
            part = items[index * shard_rows : (index + 1) * shard_rows]
            path = out / "data" / name / f"train-{index:05d}-of-{total:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in part], schema=_schema())
            pq.write_table(table, path, compression="zstd", row_group_size=1000)
            shards.append({"path": path.relative_to(out).as_posix(), "config": name, "language": language,
                           "rows": len(part), "bytes": path.stat().st_size, "sha256": _sha256(path)})  # fmt: skip
    stats = {
        "files": len(rows),
        "bytes": sum(r["length_bytes"] for r in rows),
        "languages": dict(sorted(Counter(r["language"] for r in rows).items())),
        "license_types": dict(sorted(Counter(r["license_type"] for r in rows).items())),
    }
    manifest = {"version": version, "tools": tool_versions(), "config": config, "counts": counts, "stats": stats,
                "shards": shards}  # fmt: skip
    if pipeline is not None:
        manifest["pipeline"] = pipeline
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "README.md").write_text(_card(version, by_language, stats))
    return manifest


def _card(version: str, by_language: dict[str, list[dict[str, Any]]], stats: dict[str, Any]) -> str:
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
