"""``build()``: sources in, a published dataset out.

Stage 1 runs per source, in order or in worker processes (``rank``/``world_size`` split
the sources): ingest -> language -> licence -> quality -> opt-out -> PII, spilling records
to a temporary file. Stage 2 is global: exact dedup, then near dedup (signatures only in
memory), then publishing. Output is written to a temporary folder and moved into place at
the end, so an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.dedup import NearDeduplicator, exact_survivors, rank_key, repository_copies
from runstack.datasets_hub.ingest import Ingest
from runstack.datasets_hub.language import LanguageStep, language_detector
from runstack.datasets_hub.licenses import LicenseStep
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.pii import PiiStep
from runstack.datasets_hub.pipeline import Filter, PipelineStep, StepStats
from runstack.datasets_hub.publish import write_dataset
from runstack.datasets_hub.quality import QualityFilter
from runstack.datasets_hub.record import SourceFile
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


class OptOutFilter(Filter):
    name = "opt-out"

    def __init__(self, registry: OptOutRegistry | None) -> None:
        super().__init__()
        self.registry = registry
        self.match = registry.matcher() if registry is not None else (set(), set())

    def keep(self, record: SourceFile) -> bool | str:
        return self.registry is None or not self.registry.excludes(record.repo_name, self.match) or "opted out"


def stage_one_steps(config: BuildConfig, registry: OptOutRegistry | None) -> list[PipelineStep]:
    # Licences first: the language step drops files it cannot name, licence files among them.
    steps: list[PipelineStep] = [LicenseStep(config.permissive_licenses, config.keep_license_types, config.license_backend),
                                 LanguageStep(),
                                 QualityFilter(config.quality), OptOutFilter(registry)]  # fmt: skip
    if config.redact_pii and config.pii != "off":
        steps.append(PiiStep(config.pii, config.pii_disabled_kinds))
    return steps


def run_stage_one(sources: Sequence[Source], config: BuildConfig, registry: OptOutRegistry | None,
                  rank: int = 0, world_size: int = 1,
                  owned: Sequence[int] | None = None) -> Iterator[SourceFile | list[StepStats]]:  # fmt: skip
    """Records of this rank's share of the sources (``owned`` indices, by default every
    ``world_size``-th), then (last) the list of step stats."""
    ingest = Ingest(config.max_file_bytes)
    steps = stage_one_steps(config, registry)
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


def _spill(sources: Sequence[Source], config: BuildConfig, registry_path: str | None, rank: int, world_size: int,
           spill: str, owned: Sequence[int] | None = None) -> list[StepStats]:  # fmt: skip
    registry = OptOutRegistry(registry_path) if registry_path else None
    stats: list[StepStats] = []
    with open(spill, "wb") as handle:
        for item in run_stage_one(sources, config, registry, rank, world_size, owned):
            if isinstance(item, list):
                stats = item
            else:
                import hashlib

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
          optout: OptOutRegistry | None = None, workers: int = 1, progress: bool = True,
          overwrite: bool = False) -> BuildReport:  # fmt: skip
    """Build and publish a dataset from ``sources`` into ``out``.

    Raises:
        InvalidArgumentError: a bad source, or ``out`` exists and ``overwrite`` is False.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    config = config or BuildConfig()
    items = [s if isinstance(s, Source) else Source(str(s)) for s in sources]
    for item in items:
        if not Path(item.path).exists():
            raise InvalidArgumentError("source", item.path, "an existing folder, git repository or archive")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidArgumentError("out", str(out), "an empty or new folder (or pass overwrite=True / --overwrite)")
    world_size = max(1, min(workers, len(items)))
    report = BuildReport()
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory(prefix=".runstack-build-", dir=out.parent if out.parent.exists() else None) as tmp, \
            Progress(*columns, disable=not progress, transient=False) as bar:  # fmt: skip
        spills = [str(Path(tmp) / f"stage1-{rank}.pkl") for rank in range(world_size)]
        task = bar.add_task("read, detect, filter", total=len(items))
        registry_path = str(optout.path) if optout is not None else None
        if world_size == 1:
            stats_per_rank = [_spill(items, config, registry_path, 0, 1, spills[0])]
        else:
            # Spawned, not forked: a forked child inherits go-enry's Go runtime mid-flight and freezes.
            shares = _by_size(items, world_size)
            with ProcessPoolExecutor(world_size, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_spill, items, config, registry_path, r, world_size, spills[r], shares[r])
                           for r in range(world_size)]  # fmt: skip
                stats_per_rank = [f.result() for f in futures]
        bar.update(task, completed=len(items))
        merged = [StepStats(s.name) for s in stats_per_rank[0]]
        for rank_stats in stats_per_rank:
            for total, part in zip(merged, rank_stats, strict=True):
                total.merge(part)
        report.steps, report.files_in = merged, merged[0].seen
        keys = [(r.sha256, rank_key(r)) for spill in spills for r in _read_spill(Path(spill))]
        task = bar.add_task("exact dedup", total=len(keys))
        keep, report.exact_duplicates = exact_survivors(keys)
        bar.update(task, completed=len(keys))
        near = NearDeduplicator(config.minhash)
        task = bar.add_task("near dedup signatures", total=sum(keep))
        for record in _kept(spills, keep):
            near.add(record.content, rank_key(record))
            bar.advance(task)
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
            copy = copies.get(record.repo_name)
            if copy is not None and config.repo_dedup == "drop":
                continue
            record.repo_duplicate_of = copy["of"] if copy is not None else None
            rows.append(record.row())
        opted_out = sum(s.dropped.get("opted out", 0) for s in merged)
        if not rows and opted_out:
            raise InvalidArgumentError(
                "sources", [i.path for i in items], f"sources whose owners have not opted out: all {opted_out} files "
                "are in the opt-out registry, so there is nothing to publish",
            )  # fmt: skip
        staging = Path(tmp) / "out"
        staging.mkdir()
        task = bar.add_task("publish", total=len(rows))
        counts = {"files_in": report.files_in, "exact_duplicates": report.exact_duplicates,
                  "near_duplicates": report.near_duplicates,
                  "dropped": {s.name: dict(s.dropped) for s in merged if s.dropped},
                  "pii": dict(next((s.counters for s in merged if s.name == "pii"), {})),
                  "language_detector": language_detector(), "repository_copies": copies}  # fmt: skip
        report.manifest = write_dataset(rows, staging, version, config.to_dict(), counts, config.shard_rows)
        bar.update(task, completed=len(rows))
        report.files_out = len(rows)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), out)
    return report
