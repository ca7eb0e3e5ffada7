"""``build()``: sources in, a published dataset out.

Every parallel part runs on the build's engine (``executors.Engine``). Stage 1 runs per
source, in size-balanced groups: ingest -> language -> licence -> quality -> PII, spilling
each source's records with their MinHash signatures and sketches to one file (kept in the
cache when given). Stage 2 is global (``stages``): the workers read back each record's keys
through the opt-out registry, exact dedup runs as a shuffle by digest and near dedup as map,
reduce and verify rounds, and the workers write the shards. Output is written to a temporary folder
and moved into place at the end, so an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import heapq
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstack.datasets_hub.cache import SPILL_FORMAT, source_key, spill_is_whole, write_spill
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.ingest import Ingest
from runstack.datasets_hub.language import language_detector
from runstack.datasets_hub.optout import OptOutRegistry
from runstack.datasets_hub.pipeline import PipelineStep, StepStats
from runstack.datasets_hub.progress import Progress, progress_of
from runstack.datasets_hub.publish import ReleaseWriter, tool_versions
from runstack.datasets_hub.record import SourceFile
from runstack.datasets_hub.stages import TASK_SPILL_BYTES, deduplicate, read_keys, task_count
from runstack.datasets_hub.steps import OptOutFilter, as_step, default_steps, describe, fingerprint
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
    sources_reused: int = 0  # sources whose per-file results came from the cache
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


def _process(sources: Sequence[Source], keys: Sequence[str], config: BuildConfig, steps: Sequence[PipelineStep],
             folder: str) -> list[int]:  # fmt: skip
    """Run the per-file steps over each of ``sources`` not already in ``folder`` (as ``KEY.pkl``,
    ``keys`` in step with ``sources``); returns each one's spill size in bytes."""
    sizes = []
    for source, key in zip(sources, keys, strict=True):
        target = Path(folder) / f"{key}.pkl"
        if not spill_is_whole(target):
            write_spill(target, run_stage_one([source], config, None, steps=steps), config.minhash)
        sizes.append(target.stat().st_size)
    return sizes


def _size(path: str) -> int:
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", "__pycache__")]  # what ingest never reads
        for name in files:
            if name.endswith((".pyc", ".pyo", ".so", ".dll", ".dylib")):
                continue
            with contextlib.suppress(OSError):
                total += (Path(folder) / name).lstat().st_size
    return total


def _survey(sources: Sequence[Source], sized: bool, folder: str) -> list[tuple[str, int, int]]:
    """(cache key, bytes ingest would read, when ``sized``, and the size of its whole spill in
    ``folder``, 0 if none) of each source: a task of its own, on the workers, as listing many large
    folders (or asking git for many trees, or opening many spills on shared storage) is slow."""
    out = []
    for source in sources:
        key = source_key(source)
        spill = Path(folder) / f"{key}.pkl"
        out.append((key, _size(source.path) if sized else 0, spill.stat().st_size if spill_is_whole(spill) else 0))
    return out


def _groups(sizes: Sequence[int], count: int) -> list[list[int]]:
    """Indices of ``sizes`` in at most ``count`` groups of similar total size, largest group first."""
    loads = [(0, g) for g in range(count)]  # a heap: the lightest group on top
    groups: list[list[int]] = [[] for _ in range(count)]
    totals = [0] * count
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        load, target = heapq.heappop(loads)
        groups[target].append(index)
        totals[target] = load + sizes[index]
        heapq.heappush(loads, (totals[target], target))
    order = sorted(range(count), key=lambda g: (-totals[g], g))
    return [sorted(groups[g]) for g in order if groups[g]]


def build(sources: Sequence[Source | str], out: str | Path, version: str, config: BuildConfig | None = None,
          optout: OptOutRegistry | None = None, workers: int = 1, progress: bool | Progress = False,
          overwrite: bool = False, steps: Sequence[PipelineStep | Callable[..., Any]] | None = None,
          executor: str = "local", address: str | None = None, track: str | None = None,
          cache: str | Path | None = None) -> BuildReport:  # fmt: skip
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
        cache: a folder keeping each source's per-file results (keyed by the source's content
            and the steps): a killed build resumes, and a new version re-reads only the
            sources that changed. The opt-out registry is applied to everything each time.

    Raises:
        InvalidArgumentError: a bad source, or ``out`` exists and ``overwrite`` is False.
    """
    from runstack.datasets_hub.executors import EXECUTORS, Engine

    config = config or BuildConfig()
    items = expand_lists([s if isinstance(s, Source) else Source(str(s)) for s in sources])
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
    # The opt-out registry changes between builds: it is applied to every record at the end of
    # stage one, so that cached per-source results stay valid.
    late = [s for s in chosen if isinstance(s, OptOutFilter)]
    cached = [s for s in chosen if not isinstance(s, OptOutFilter)]
    world_size = max(1, min(workers, len(items)))
    report = BuildReport()
    tracker = BuildTracker(track, out, version, config, described, items) if track else None
    try:
        with tempfile.TemporaryDirectory(prefix=".runstack-build-", dir=out.parent if out.parent.exists() else None) as tmp, \
                progress_of(progress) as show, Engine(executor, address, world_size) as engine:  # fmt: skip
            if world_size > 1 or executor != "local":  # the workers' start-up (local: launched, not awaited)
                show("start workers", 0, world_size)
                engine.start()
                show("start workers", world_size, world_size)
            stage_key = fingerprint([*map(describe, cached), {"max_file_bytes": config.max_file_bytes,
                                                               "minhash": dataclasses.asdict(config.minhash),
                                                               "runstack": tool_versions().get("runstack"),
                                                               "spill": SPILL_FORMAT}])  # fmt: skip
            folder = Path(cache) / stage_key if cache is not None else Path(tmp) / "spills"
            folder.mkdir(parents=True, exist_ok=True)
            # The sources' keys and sizes, in contiguous runs on the workers.
            runs = max(1, min(len(items), 8 * world_size))
            bounds = [len(items) * r // runs for r in range(runs + 1)]
            show("list sources", 0, len(items))
            shares = [(items[bounds[r] : bounds[r + 1]], world_size > 1, str(folder)) for r in range(runs)]
            surveyed = [found for part in engine.run(_survey, shares) for found in part]
            show("list sources", len(items), len(items))
            keys, sizes = [key for key, _, _ in surveyed], [size for _, size, _ in surveyed]
            first = {key: i for i, key in reversed(list(enumerate(keys)))}  # a source listed twice is read once
            todo = [i for i, (key, _, whole) in enumerate(surveyed) if first[key] == i and not whole]
            spill_bytes = [whole for _, _, whole in surveyed]  # spill sizes: what stage two's tasks are balanced by
            del surveyed
            report.sources_reused = len(items) - len(todo)
            # Sources in groups balanced by size (largest first onto the lightest), largest group
            # first, each going to whichever worker is free: no worker waits on another's share.
            # Per worker: 64 groups locally (a task costs ~1 ms: a source each on small builds), 8 on
            # Dask (~3 ms: more made builds measurably slower), 8 on Spark (~15 ms to start each; with
            # 4, a source's bytes being a rough guide to its time, workers of a 172 MB build ended
            # ~1 s apart, measured).
            if world_size > 1:
                per_worker = {"local": 64, "dask": 8, "spark": 8}[executor]
                tasks = _groups([sizes[i] for i in todo], per_worker * world_size)
            else:  # one worker: in this process, a task per source (progress per source); elsewhere one task
                tasks = [[j] for j in range(len(todo))] if executor == "local" else [list(range(len(todo)))]
            tasks = [[todo[j] for j in group] for group in tasks]
            show("read, detect, filter", report.sources_reused, len(items))
            tasks = [task for task in tasks if task]
            finished = [report.sources_reused]

            def source_done(index: int) -> None:
                finished[0] += len(tasks[index])
                show("read, detect, filter", finished[0], len(items))

            shares = [
                ([items[i] for i in task], [keys[i] for i in task], config, cached, str(folder)) for task in tasks
            ]
            made = engine.run(_process, shares, source_done)  # each task carries its own sources only
            for task, task_sizes in zip(tasks, made, strict=True):
                for i, size in zip(task, task_sizes, strict=True):
                    spill_bytes[i] = size
            spill_bytes = [spill_bytes[first[key]] for key in keys]  # a source listed twice: its first's
            show("read, detect, filter", len(items), len(items))
            spills = [str(folder / f"{key}.pkl") for key in keys]
            show("exact dedup", 0, len(spills))  # each worker reads its share of the spills for the keys
            work = Path(tmp) / "stage-two"
            late_stats = [StepStats(s.name) for s in late]
            tasks = task_count(world_size, sum(spill_bytes), TASK_SPILL_BYTES)
            indexed = read_keys(engine.run, spills, spill_bytes, late, late_stats, tasks, work)
            merged = indexed.stats  # the per-source steps' counts, added up by the workers
            for step, stats in zip(late, late_stats, strict=True):
                merged.insert(chosen.index(step) + 1, stats)
            report.steps, report.files_in = merged, merged[0].seen
            staging = Path(tmp) / "out"
            writer = ReleaseWriter(staging, config.shard_rows, Path(cache) / "shards" if cache is not None else None,
                                   Path(tmp) / "sort")  # fmt: skip
            written = deduplicate(indexed, spills, config, report, show, writer, engine.run, work, world_size)
            if tracker is not None:
                tracker.stage({f"{s.name}/{k}": v for s in merged for k, v in (("seen", s.seen), ("kept", s.kept))})
                tracker.stage({"dedup/exact_duplicates": report.exact_duplicates,
                               "dedup/near_duplicates": report.near_duplicates, "dedup/files_out": written})  # fmt: skip
            opted_out = sum(s.dropped.get("opted out", 0) for s in merged)
            if not written and opted_out:
                raise InvalidArgumentError(
                    "sources", [i.path for i in items], f"sources whose owners have not opted out: all {opted_out} "
                    "files are in the opt-out registry, so there is nothing to publish",
                )  # fmt: skip
            show("publish", 0, written)
            counts = {"files_in": report.files_in, "exact_duplicates": report.exact_duplicates,
                      "near_duplicates": report.near_duplicates,
                      "dropped": {s.name: dict(s.dropped) for s in merged if s.dropped},
                      "pii": dict(next((s.counters for s in merged if s.name == "pii"), {})),
                      "language_detector": language_detector(), "repository_copies": report.repo_copies}  # fmt: skip
            pipeline = {"steps": described, "fingerprint": fingerprint(described)}
            report.manifest = writer.finish(version, config.to_dict(), counts, pipeline, run=engine.run)
            show("publish", written, written)
            report.files_out = written
            _replace(staging, out)
    except BaseException as exc:
        if tracker is not None:
            tracker.fail(exc)
        raise
    if tracker is not None:
        report.run_id, report.artifact = tracker.finish(report, out)
    return report


def expand_lists(items: list[Source]) -> list[Source]:
    """A ``.txt`` source is a list of sources, one path per line (relative to the list's folder;
    blank lines and ``#`` comments skipped)."""
    out: list[Source] = []
    for item in items:
        path = Path(item.path)
        if not (path.suffix == ".txt" and path.is_file()):
            out.append(item)
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                out.append(Source(str((path.parent / entry) if not Path(entry).is_absolute() else entry),
                                  priority=item.priority))  # fmt: skip
    return out


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
