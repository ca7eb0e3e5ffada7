"""Publishing the way Hugging Face ``datasets`` reads it: Parquet shards, a README dataset
card with ``configs:`` (one per language plus ``default``), and ``manifest.json``.

Everything written is a function of the records and the config: rows are sorted, the
schema is fixed and nothing records a time, so the same inputs give byte-identical files.
Records stay in their spills; only their sort keys and offsets are held while the shards are planned.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pickle
import re
import shutil
from collections import Counter, OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any

from runstack.datasets_hub import runs
from runstack.datasets_hub.record import SCHEMA

MANIFEST = "manifest.json"
# A Parquet row group holds at most this many rows or (about) this much content: what memory holds while writing.
ROW_GROUP, ROW_GROUP_BYTES = 1000, 8 << 20
OPEN_SPILLS = 16  # spills a shard writer keeps open


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


# A published row's origin: its spill, the record's offset there, and (near_dup_cluster, repo_duplicate_of).
Origin = tuple[str, int, tuple[str | None, str | None]]


def write_shard(path: str, rows: list[Origin] | str, cached: str | None = None) -> tuple[int, str]:
    """One Parquet shard of these records, read from their spills in order, one row group at a time
    (at most ``ROW_GROUP`` rows or about ``ROW_GROUP_BYTES`` of content); returns (bytes, sha256).
    With ``cached`` (a path in the build cache named after exactly these rows), a shard written
    there before is taken as it is, and a new one is kept there for the next build. ``rows`` may be
    the path of a file holding them (pickled), as an out-of-core writer plans them."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if cached is not None and Path(cached).exists():
        _place(Path(cached), target)
        digest = _sha256(target)
        recorded = Path(cached).with_suffix(".sha256")
        if recorded.is_file() and recorded.read_text().strip() == digest:
            return target.stat().st_size, digest
        target.unlink()  # damaged in the cache since: made again
    made = Path(cached or path)
    made.parent.mkdir(parents=True, exist_ok=True)
    temporary = made.with_name(f".{made.name}.{os.getpid()}.tmp")
    try:
        _write_rows(temporary, pickle.loads(Path(rows).read_bytes()) if isinstance(rows, str) else rows)
    except BaseException:  # Ctrl-C or a failure: no half-written shard left in a user's cache
        temporary.unlink(missing_ok=True)
        raise
    digest = _sha256(temporary)
    if cached is not None:
        made.with_suffix(".sha256").write_text(digest + "\n")
    os.replace(temporary, made)  # a killed build leaves no partial shard under its name
    if cached is not None:
        _place(made, target)
    return target.stat().st_size, digest


def _place(cached: Path, target: Path) -> None:
    try:
        os.link(cached, target)  # no second copy where the cache shares the output's file system
    except OSError:
        shutil.copyfile(cached, target)


def _write_rows(target: Path, rows: list[Origin]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from runstack.datasets_hub.record import COLUMNS

    # The spills open at once, the most recently read kept: rows come in repository order, so mostly
    # spill after spill (a shard of many small repositories would otherwise hold thousands of files open).
    handles: OrderedDict[str, Any] = OrderedDict()
    schema = _schema()
    try:
        with pq.ParquetWriter(target, schema, compression="zstd") as parquet:
            part: list[Any] = []
            size = 0
            for position, (spill, offset, (cluster, copy_of)) in enumerate(rows):
                handle = handles.get(spill)
                if handle is None:
                    if len(handles) >= OPEN_SPILLS:
                        handles.popitem(last=False)[1].close()
                    handle = handles[spill] = open(spill, "rb")  # noqa: SIM115  (closed above or below)
                handles.move_to_end(spill)
                handle.seek(offset)
                record = pickle.load(handle)
                record.near_dup_cluster, record.repo_duplicate_of = cluster, copy_of
                part.append(record)
                size += len(record.content)
                if len(part) == ROW_GROUP or size >= ROW_GROUP_BYTES or position == len(rows) - 1:
                    columns = {name: [getattr(r, name) for r in part] for name in COLUMNS}  # column by column: fast
                    parquet.write_table(pa.Table.from_pydict(columns, schema=schema), row_group_size=len(part))
                    part, size = [], 0
    finally:
        for handle in handles.values():
            handle.close()


# Rows the writer sorts in memory; beyond, sorted runs go to its work folder and are merged from there.
SORT_ROWS = 100_000
_Row = tuple[str, tuple[Any, ...], Origin, int]  # (language, sort key, origin, length in bytes)
# A sorted run: its file, and per language where its rows start there and how many there are.
Run = tuple[Path, dict[str, tuple[int, int]]]


def _by_language_and_key(row: _Row) -> tuple[str, tuple[Any, ...]]:
    return row[0], row[1]


class ReleaseWriter:
    """Rows in, shards out, in bounded memory: a row is its sort key and where its record lies (a
    spill and an offset), never its content. Rows are sorted out of core: every ``SORT_ROWS`` rows
    go to ``work`` as a sorted run (a section per language), and writers on the workers hand their
    runs to the driver's (``sorted_runs``, ``adopt``). Each language's sections are merged and cut
    into shards by a task of its own (each shard's rows to a file in ``work``), then each shard is
    made from the spills by a task of its own: on the engine's workers when ``finish`` is given one.
    With ``cache``, shards are kept there by the exact rows they hold: a resumed or next build
    reuses every shard whose rows are unchanged."""

    def __init__(self, out: Path, shard_rows: int, cache: Path | None, work: Path) -> None:
        self.out, self.shard_rows, self.cache, self.work = out, shard_rows, cache, work
        self.rows: list[_Row] = []
        self.runs: list[Run] = []
        self.languages: Counter[str] = Counter()
        self.count, self.bytes = 0, 0
        self.license_types: Counter[str] = Counter()

    def add(self, language: str, key: tuple[Any, ...], origin: Origin, length_bytes: int, license_type: str) -> None:
        self.rows.append((language, key, origin, length_bytes))
        self.languages[language] += 1
        self.count += 1
        self.bytes += length_bytes
        self.license_types[license_type] += 1
        if len(self.rows) >= SORT_ROWS:
            self._spill(self.work)

    def _spill(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.rows.sort(key=_by_language_and_key)
        path = work / f"run-{len(self.runs):05d}.pkl"
        with open(path, "wb") as handle:
            sections = {language: runs.dump(handle, group)
                        for language, group in itertools.groupby(self.rows, key=lambda row: row[0])}  # fmt: skip
        self.runs.append((path, sections))
        self.rows = []

    def sorted_runs(self) -> tuple[list[Run], Counter[str], int, int, Counter[str]]:
        """Everything added, as sorted runs in ``work`` (the rows still in memory as one more), and
        the counts: for another writer's ``adopt`` (a worker's rows, for the driver's writer)."""
        if self.rows:
            self._spill(self.work)
        return self.runs, self.languages, self.count, self.bytes, self.license_types

    def adopt(self, runs: list[Run], languages: Counter[str], count: int, size: int,
              license_types: Counter[str]) -> None:  # fmt: skip
        """Take another writer's ``sorted_runs`` as rows of this one."""
        self.runs += runs
        self.languages.update(languages)
        self.count += count
        self.bytes += size
        self.license_types.update(license_types)

    def finish(self, version: str, config: dict[str, Any], counts: dict[str, Any],
               pipeline: dict[str, Any] | None = None, run: Any = None) -> dict[str, Any]:  # fmt: skip
        """Plan each language's shards and write the shards (tasks given to ``run(task, shares)``
        when set: the largest shards first), README.md and manifest.json; returns the manifest
        (with the pipeline's steps and fingerprint when given)."""
        run = run or (lambda task, todo: [task(*share) for share in todo])
        if self.rows:
            self._spill(self.work)
        writer, cache = tool_versions().get("runstack"), str(self.cache) if self.cache is not None else None
        languages = sorted(self.languages)
        plans = run(plan_language, [
            (number, language, [(str(path), sections[language]) for path, sections in self.runs if language in sections],
             self.shard_rows, str(self.out), cache, writer, str(self.work))
            for number, language in enumerate(languages)
        ])  # fmt: skip
        planned = [plan for plans_of_language in plans for plan, _, _ in plans_of_language]
        shares = [share for plans_of_language in plans for _, share, _ in plans_of_language]
        sizes = [size for plans_of_language in plans for _, _, size in plans_of_language]
        # The largest shards first: the others are written beside them, not after them.
        order = sorted(range(len(shares)), key=lambda i: (-sizes[i], i))
        made = run(write_shard, [shares[i] for i in order])
        written = [result for _, result in sorted(zip(order, made, strict=True))]
        shards = [
            {**plan, "bytes": size, "sha256": digest} for plan, (size, digest) in zip(planned, written, strict=True)
        ]
        by_language = dict(sorted(self.languages.items()))
        stats = {"files": self.count, "bytes": self.bytes, "languages": by_language,
                 "license_types": dict(sorted(self.license_types.items()))}  # fmt: skip
        manifest = {"version": version, "tools": tool_versions(), "config": config, "counts": counts, "stats": stats,
                    "shards": shards}  # fmt: skip
        if pipeline is not None:
            manifest["pipeline"] = pipeline
        (self.out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (self.out / "README.md").write_text(_card(version, by_language, stats))
        return manifest


def plan_language(number: int, language: str, sections: list[runs.Section], shard_rows: int, out: str,
                  cache: str | None, writer: str | None, work: str) -> list[tuple[dict[str, Any], tuple[Any, ...], int]]:  # fmt: skip
    """A task of its own: one language's rows, merged from its sections of the sorted runs, cut
    into shards of ``shard_rows``; each shard's rows go to a file in ``work``. Returns per shard
    its manifest entry (less bytes and digest), its ``write_shard`` share and its content bytes."""
    total = max(1, -(-sum(count for _, (_, count) in sections) // shard_rows))
    Path(work).mkdir(parents=True, exist_ok=True)
    rows = runs.merged(sections, lambda row: row[1], Path(work), f"{number:05d}")
    name, found = config_name(language), []
    for index in range(total):
        part = list(itertools.islice(rows, shard_rows))
        chosen = [origin for _, _, origin, _ in part]
        path = Path(out) / "data" / name / f"train-{index:05d}-of-{total:05d}.parquet"
        planned = {"path": path.relative_to(out).as_posix(), "config": name, "language": language, "rows": len(chosen)}
        held = Path(work) / f"shard-{number:05d}-{index:06d}.pkl"  # the shard's rows wait in a file of their own
        held.write_bytes(pickle.dumps(chosen, protocol=pickle.HIGHEST_PROTOCOL))
        share = (str(path), str(held), _cached(cache, chosen, writer))
        found.append((planned, share, sum(length for _, _, _, length in part)))
    return found


def _cached(cache: str | None, rows: list[Origin], writer: str | None) -> str | None:
    """Where a shard of exactly these rows is kept: named after the spills (whose names cover the
    sources and the steps) and offsets of its records, their dedup fields and the writer."""
    if cache is None:
        return None
    described = [[Path(spill).parent.name, Path(spill).name, offset, fields] for spill, offset, fields in rows]
    text = json.dumps([writer, ROW_GROUP, ROW_GROUP_BYTES, described])
    return str(Path(cache) / f"{hashlib.sha256(text.encode()).hexdigest()}.parquet")


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
