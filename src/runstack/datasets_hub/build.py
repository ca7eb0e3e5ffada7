"""``build()``: sources in, a published dataset out.

Stage 1 runs per source, in order or in worker processes (``rank``/``world_size`` split
the sources): ingest -> language -> licence -> quality -> opt-out -> PII, spilling records
to a temporary file. Stage 2 is global: exact dedup, then near dedup (signatures only in
memory), then publishing. Output is written to a temporary folder and moved into place at
the end, so an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.dedup import NearDeduplicator, exact_survivors, rank_key, repository_copies
from runstack.datasets_hub.ingest import Ingest
from runstack.datasets_hub.language import language_detector
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.pipeline import PipelineStep, StepStats
from runstack.datasets_hub.progress import Progress, progress_of
from runstack.datasets_hub.publish import write_dataset
from runstack.datasets_hub.record import SourceFile
from runstack.datasets_hub.steps import as_step, default_steps, describe, fingerprint
from runstack.datasets_hub.tracking import BuildTracker
from runstack.errors import InvalidArgumentError


@dataclass(frozen=True)
class Source:
    """One input: a folder, git repository or archive, with optional name, revision and priority."""

    path: str
    repo_name: str | None = None
    revision: str | None = None
    priority: float = 0.0


@dataclass
class BuildReport:
    steps: list[StepStats] = field(default_factory=list)
    files_in: int = 0
    files_out: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    near_candidate_pairs: int = 0
    near_verified_pairs: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    repo_copies: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str | None = None  # the build's run, with track=
    artifact: str | None = None  # its dataset artifact, NAME:vN


def run_stage_one(sources: Sequence[Source], config: BuildConfig, registry: OptOutRegistry | None,
                  rank: int = 0, world_size: int = 1, owned: Sequence[int] | None = None,
                  steps: Sequence[PipelineStep] | None = None) -> Iterator[SourceFile | list[StepStats]]:  # fmt: skip
    """Records of this rank's share of the sources (``owned`` indices, by default every
    ``world_size``-th) through ``steps`` (default: ``default_steps``), then (last) the step stats."""
    ingest = Ingest(config.max_file_bytes)
    steps = default_steps(config, registry) if steps is None else [copy.deepcopy(s) for s in steps]
    for step in steps:  # a step list reused for a second build starts counting from zero
        step.stats = StepStats(step.name)
    mine = set(owned) if owned is not None else {i for i in range(len(sources)) if i % world_size == rank}

    def records() -> Iterator[SourceFile]:
        for index, source in enumerate(sources):
            if index in mine:
                yield from ingest.read(source.path, source.repo_name, source.revision, source.priority)

    stream: Any = records()
    for step in steps:
        stream = step.run(stream, rank, world_size)
    yield from stream
    yield [ingest.stats, *(s.stats for s in steps)]


def _spill(sources: Sequence[Source], config: BuildConfig, steps: Sequence[PipelineStep], rank: int, world_size: int,
           spill: str, owned: Sequence[int] | None = None) -> list[StepStats]:  # fmt: skip
    import hashlib

    stats: list[StepStats] = []
    with open(spill, "wb") as handle:
        for item in run_stage_one(sources, config, None, rank, world_size, owned, steps):
            if isinstance(item, list):
                stats = item
            else:
                item.sha256 = hashlib.sha256(item.content.encode()).hexdigest()
                pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return stats


def _size(path: str) -> int:
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(folder) / name).lstat().st_size
    return total


def _by_size(items: Sequence[Source], world_size: int) -> list[list[int]]:
    """Source indices per worker, largest first onto the least loaded (work split by size, not count)."""
    sizes = [_size(item.path) for item in items]  # walked once: folders can be large
    loads, shares = [0] * world_size, [[] for _ in range(world_size)]  # type: list[int], list[list[int]]
    for index in sorted(range(len(items)), key=lambda i: (-sizes[i], i)):
        target = min(range(world_size), key=lambda r: (loads[r], r))
        shares[target].append(index)
        loads[target] += sizes[index]
    return [sorted(share) for share in shares]


def _read_spill(path: Path) -> Iterator[SourceFile]:
    with open(path, "rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


def _kept(spills: list[str], keep: list[bool]) -> Iterator[SourceFile]:
    """The spilled records that survived exact deduplication, in spill order."""
    records = (record for spill in spills for record in _read_spill(Path(spill)))
    return (record for record, kept in zip(records, keep, strict=True) if kept)


def build(sources: Sequence[Source | str], out: str | Path, version: str, config: BuildConfig | None = None,
          optout: OptOutRegistry | None = None, workers: int = 1, progress: bool | Progress = False,
          overwrite: bool = False, steps: Sequence[PipelineStep | Callable[..., Any]] | None = None,
          executor: str = "local", address: str | None = None, track: str | None = None) -> BuildReport:  # fmt: skip
    """Build and publish a dataset from ``sources`` into ``out``.

    Args:
        steps: the per-file steps (default ``default_steps(config, optout)``); ``Filter``
            subclasses, other ``PipelineStep`` subclasses or functions ``record -> bool | str``.
        workers: shares of the sources processed at once (split by size).
        executor: "local" (processes here), "dask" or "spark"; ``address`` is the Dask
            scheduler or Spark master (default: a local cluster of ``workers``).
        progress: True for progress bars; or a callable ``(stage, done, total)``.
        track: record the build as a runstack run in this project, with the release logged
            as a ``dataset`` artifact (``use_dataset`` links a training run to it).

    Raises:
        InvalidArgumentError: a bad source, or ``out`` exists and ``overwrite`` is False.
    """
    from runstack.datasets_hub.executors import EXECUTORS, run_shares

    config = config or BuildConfig()
    items = [s if isinstance(s, Source) else Source(str(s)) for s in sources]
    for item in items:
        if not Path(item.path).exists():
            raise InvalidArgumentError("source", item.path, "an existing folder, git repository or archive")
    if executor not in EXECUTORS:
        raise InvalidArgumentError("executor", executor, " | ".join(EXECUTORS))
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidArgumentError("out", str(out), "an empty or new folder (or pass overwrite=True / --overwrite)")
    chosen = default_steps(config, optout) if steps is None else [as_step(s) for s in steps]
    described = [describe(s) for s in chosen]
    world_size = max(1, min(workers, len(items)))
    report = BuildReport()
    tracker = BuildTracker(track, out, version, config, described, items) if track else None
    try:
        with tempfile.TemporaryDirectory(prefix=".runstack-build-", dir=out.parent if out.parent.exists() else None) as tmp, \
                progress_of(progress) as show:  # fmt: skip
            spills = [str(Path(tmp) / f"stage1-{rank}.pkl") for rank in range(world_size)]
            show("read, detect, filter", 0, len(items))
            shares = _by_size(items, world_size) if world_size > 1 else [list(range(len(items)))]
            stats_per_rank = run_shares(_spill, [(items, config, chosen, r, world_size, spills[r], shares[r])
                                                 for r in range(world_size)], executor, address)  # fmt: skip
            show("read, detect, filter", len(items), len(items))
            merged = [StepStats(s.name) for s in stats_per_rank[0]]
            for rank_stats in stats_per_rank:
                for total, part in zip(merged, rank_stats, strict=True):
                    total.merge(part)
            report.steps, report.files_in = merged, merged[0].seen
            if tracker is not None:
                tracker.stage({f"{s.name}/{k}": v for s in merged for k, v in (("seen", s.seen), ("kept", s.kept))})
            rows = _deduplicate(spills, config, report, show)
            if tracker is not None:
                tracker.stage({"dedup/exact_duplicates": report.exact_duplicates,
                               "dedup/near_duplicates": report.near_duplicates, "dedup/files_out": len(rows)})  # fmt: skip
            opted_out = sum(s.dropped.get("opted out", 0) for s in merged)
            if not rows and opted_out:
                raise InvalidArgumentError(
                    "sources", [i.path for i in items], f"sources whose owners have not opted out: all {opted_out} "
                    "files are in the opt-out registry, so there is nothing to publish",
                )  # fmt: skip
            staging = Path(tmp) / "out"
            staging.mkdir()
            show("publish", 0, len(rows))
            counts = {"files_in": report.files_in, "exact_duplicates": report.exact_duplicates,
                      "near_duplicates": report.near_duplicates,
                      "dropped": {s.name: dict(s.dropped) for s in merged if s.dropped},
                      "pii": dict(next((s.counters for s in merged if s.name == "pii"), {})),
                      "language_detector": language_detector(), "repository_copies": report.repo_copies}  # fmt: skip
            pipeline = {"steps": described, "fingerprint": fingerprint(described)}
            report.manifest = write_dataset(rows, staging, version, config.to_dict(), counts, config.shard_rows,
                                            pipeline)  # fmt: skip
            show("publish", len(rows), len(rows))
            report.files_out = len(rows)
            _replace(staging, out)
    except BaseException as exc:
        if tracker is not None:
            tracker.fail(exc)
        raise
    if tracker is not None:
        report.run_id, report.artifact = tracker.finish(report, out)
    return report


def _deduplicate(spills: list[str], config: BuildConfig, report: BuildReport,
                 show: Callable[[str, int, int], None]) -> list[dict[str, Any]]:  # fmt: skip
    """Exact, near and repository-level dedup over every spill; the surviving rows."""
    keys = [(r.sha256, rank_key(r)) for spill in spills for r in _read_spill(Path(spill))]
    show("exact dedup", 0, len(keys))
    keep, report.exact_duplicates = exact_survivors(keys)
    show("exact dedup", len(keys), len(keys))
    near = NearDeduplicator(config.minhash)
    total, done = sum(keep), 0
    for record in _kept(spills, keep):
        near.add(record.content, rank_key(record))
        done += 1
        if done % 1000 == 0 or done == total:
            show("near dedup signatures", done, total)
    result = near.result()
    report.near_duplicates = len(result.survivors) - sum(result.survivors)
    report.near_candidate_pairs, report.near_verified_pairs = result.candidate_pairs, result.verified_pairs
    copies = {} if config.repo_dedup == "off" else repository_copies(
        [k[1][2] for k in keys], [k[0] for k in keys], keep, result.cluster_of)  # fmt: skip
    report.repo_copies = copies
    rows, blob_of = [], {}
    pending: list[tuple[SourceFile, int | None]] = []
    for i, record in enumerate(_kept(spills, keep)):
        if result.survivors[i]:
            pending.append((record, result.cluster_of[i]))
        if result.cluster_of[i] == i:  # a cluster is named after its survivor's blob
            blob_of[i] = record.blob_id
    for record, cluster in pending:
        record.near_dup_cluster = blob_of.get(cluster) if cluster is not None else None
        copy_of = copies.get(record.repo_name)
        if copy_of is not None and config.repo_dedup == "drop":
            continue
        record.repo_duplicate_of = copy_of["of"] if copy_of is not None else None
        rows.append(record.row())
    return rows


def _replace(staging: Path, out: Path) -> None:
    """Put the new release in place by renames: the old one is removed only once the new one is
    in place, and a crash in between leaves one of them whole (the old one under a hidden name)."""
    if not out.exists():
        os.replace(staging, out)
        return
    previous = out.with_name(f".{out.name}.previous-{uuid.uuid4().hex[:8]}")
    os.replace(out, previous)
    os.replace(staging, out)
    shutil.rmtree(previous)
