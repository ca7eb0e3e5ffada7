"""Stage two of a build, as rounds on the build's engine: every spilled record read again by
the workers (through the late filters, such as the opt-out registry) for its keys, kept beside
the spills; exact dedup as a shuffle by digest; near dedup (MinHash LSH: map, reduce and verify
rounds); repository-level copies from the counts both give; then the survivors picked and sorted
into the release writer's runs by the workers. The driver holds per file only its row numbers (one
array) and per near duplicate its component (numpy), never a key, content, signature or sketch."""

from __future__ import annotations

import pickle
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runstack.datasets_hub.cache import read_spill_at, spill_stats
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.dedup import choose_copies, component_roots, rank_key
from runstack.datasets_hub.neardup import SpillRows, near_pairs, split_counts
from runstack.datasets_hub.pipeline import PipelineStep, StepStats
from runstack.datasets_hub.publish import ReleaseWriter, Run
from runstack.datasets_hub.record import SourceFile

# Stage two's task counts grow with the data, so that no task's memory does: at least 4 a worker,
# and an index task per ~1 GB of spills (~40,000 files: the exact and band maps hold ~2 KB a file),
# a bucket per 250,000 files (the reduces hold ~200 to ~700 bytes a file).
TASK_SPILL_BYTES, BUCKET_FILES = 1 << 30, 250_000


def task_count(workers: int, amount: int, per_task: int) -> int:
    return max(4 * workers, -(-amount // per_task))


# What stage two needs of a record, never its content:
# (row in its spill, offset there, sha256, rank key, blob id, language, length in bytes, licence type).
Entry = tuple[int, int, str, tuple[Any, ...], str, str, int, str]


def _entries(folder: str | Path, where: tuple[int, int]) -> list[Entry]:
    """A spill's entries: written by index task ``where[0]`` at offset ``where[1]`` of its file."""
    with open(Path(folder) / f"keys-{where[0]:05d}.pkl", "rb") as handle:
        handle.seek(where[1])
        entries: list[Entry] = pickle.load(handle)
    return entries


def index_spills(task: int, spills: list[str], late: list[PipelineStep],
                 folder: str) -> tuple[SpillRows, list[int], Counter[str], list[StepStats], list[StepStats]]:  # fmt: skip
    """A task of its own: every record of ``spills`` through the late filters; the entries of the
    records they keep written to one file for the task, spill after spill; returns the rows kept
    of each spill and where its entries start, the files per repository, the filters' counts and
    the per-source steps' counts (kept in the spills), added up."""
    stats = [StepStats(step.name) for step in late]
    early: list[StepStats] = []
    rows: list[np.ndarray] = []
    starts: list[int] = []
    repos: Counter[str] = Counter()
    out = open(Path(folder) / f"keys-{task:05d}.pkl", "wb")  # noqa: SIM115  (closed below)
    for spill in spills:
        early = _add_up(early, spill_stats(Path(spill)))
        entries: list[Entry] = []
        for row, (offset, record) in enumerate(read_spill_at(Path(spill))):
            for step, counted in zip(late, stats, strict=True):
                verdict = step.process(record)
                counted.seen += 1
                if not isinstance(verdict, SourceFile):
                    counted.dropped[verdict or step.name] += 1
                    break
                counted.kept += 1
            else:
                record.repo_name = sys.intern(record.repo_name)  # pickled once per file of keys
                entries.append((row, offset, record.sha256, rank_key(record), record.blob_id,
                                sys.intern(str(record.language)), record.length_bytes,
                                sys.intern(record.license_type)))  # fmt: skip
                repos[record.repo_name] += 1
        starts.append(out.tell())
        pickle.dump(entries, out, protocol=pickle.HIGHEST_PROTOCOL)
        rows.append(np.array([entry[0] for entry in entries], dtype=np.int32))
    out.close()
    return SpillRows.of(rows), starts, repos, stats, early


def exact_map(task: int, indices: list[int], where: list[tuple[int, int]], folder: str, buckets: int) -> None:
    """Each record of these spills (their entries ``where``) as (sha256, rank key, spill, row) into a
    file per digest bucket."""
    parts: list[list[tuple[Any, ...]]] = [[] for _ in range(buckets)]
    for index, at in zip(indices, where, strict=True):
        for row, _, digest, key, *_ in _entries(folder, at):
            parts[int(digest[:15], 16) % buckets].append((digest, key, index, row))
    _write_buckets(folder, "exact", task, parts)


def exact_reduce(bucket: int, tasks: int, folder: str) -> tuple[np.ndarray, Counter[tuple[str, str]]]:
    """One bucket's digests: each keeps its best-ranked record (the first read among equals).
    Returns the (spill, row) of every other record, and per (its repository, the survivor's
    repository) pair how many of them are copies from another repository."""
    _, losers, shared = _keep_best(_read_bucket(folder, "exact", range(tasks), bucket))
    return np.array([(item[2], item[3]) for item in losers], dtype=np.int64).reshape(-1, 2), shared


def _write_buckets(folder: str, name: str, task: int, parts: list[list[tuple[Any, ...]]]) -> None:
    """A map task's items, a file per bucket: the shuffle, through the build's folder."""
    for bucket, part in enumerate(parts):
        (Path(folder) / f"{name}-{task:05d}-{bucket:05d}.pkl").write_bytes(pickle.dumps(part))


def _read_bucket(folder: str, name: str, tasks: Iterable[int], bucket: int) -> list[tuple[Any, ...]]:
    """One bucket's items from every map task, in task order."""
    items: list[tuple[Any, ...]] = []
    for task in tasks:
        items += pickle.loads((Path(folder) / f"{name}-{task:05d}-{bucket:05d}.pkl").read_bytes())
    return items


def _keep_best(items: list[tuple[Any, ...]]) -> tuple[dict[Any, tuple[Any, ...]], list[tuple[Any, ...]],
                                                        Counter[tuple[str, str]]]:  # fmt: skip
    """Items (group, rank key, ids that tell them apart, ...): per group the best-ranked (the
    smallest ``item[1:]``), the others, and per (another's repository, its survivor's) pair how
    many of the others are copies from another repository (the rank key's third field)."""
    best: dict[Any, tuple[Any, ...]] = {}
    for item in items:
        current = best.get(item[0])
        if current is None or item[1:] < current[1:]:
            best[item[0]] = item
    losers, shared = [], Counter()  # type: list[tuple[Any, ...]], Counter[tuple[str, str]]
    for item in items:
        winner = best[item[0]]
        if winner is not item:
            losers.append(item)
            if item[1][2] != winner[1][2]:
                shared[(item[1][2], winner[1][2])] += 1
    return best, losers, shared


def _add_up(total: list[StepStats], part: list[StepStats]) -> list[StepStats]:
    """``part``'s counts added to ``total``'s (the same steps'; an empty ``total`` starts from zero)."""
    if not part:
        return total
    total = total or [StepStats(step.name) for step in part]
    for into, counted in zip(total, part, strict=True):
        into.merge(counted)
    return total


@dataclass
class Keys:
    """What ``read_keys`` found: the rows of each spill the late filters kept, the spills of each
    index task (``groups``, consecutive), the task and offset where each spill's entries lie, and
    the files per repository."""

    rows: SpillRows
    groups: list[list[int]]
    tasks: np.ndarray
    starts: np.ndarray
    repos: Counter[str]
    stats: list[StepStats]  # the per-source steps' counts over every spill

    def where(self, spill: int) -> tuple[int, int]:
        """(index task, offset in its file) of a spill's entries."""
        return int(self.tasks[spill]), int(self.starts[spill])


def read_keys(run: Callable[..., list[Any]], spills: list[str], sizes: list[int], late: list[PipelineStep],
              late_stats: list[StepStats], tasks: int, folder: Path) -> Keys:  # fmt: skip
    """``index_spills`` over every spill, in ``tasks`` runs of consecutive spills of similar size
    (``sizes``: bytes each, as the workers found them), on the engine; the late filters' counts are
    added to ``late_stats``."""
    folder.mkdir(parents=True, exist_ok=True)
    groups = split_counts(sizes, tasks)
    found = run(index_spills, [(t, [spills[i] for i in g], late, str(folder)) for t, g in enumerate(groups)])
    repos: Counter[str] = Counter()
    early: list[StepStats] = []
    for _, _, counted, stats, counted_early in found:
        for name, files in counted.items():  # one string per repository, whichever tasks named it
            repos[sys.intern(name)] += files
        for total, part in zip(late_stats, stats, strict=True):
            total.merge(part)
        early = _add_up(early, counted_early)
    owner = np.repeat(np.arange(len(groups), dtype=np.int32), [len(g) for g in groups])
    starts = np.array([start for _, part, *_ in found for start in part], dtype=np.int64)
    return Keys(SpillRows.joined([rows for rows, *_ in found]), groups, owner, starts, repos, early)


def deduplicate(keys: Keys, spills: list[str], config: BuildConfig, report: Any, show: Callable[[str, int, int], None],
                writer: ReleaseWriter, run: Callable[..., list[Any]], work: Path, workers: int) -> int:  # fmt: skip
    """Exact, near and repository-level dedup over the records of every spill (``keys``: those the
    late filters kept, their entries in ``work``); the survivors go to ``writer``. Returns how many."""
    folder, files = str(work), len(keys.rows.flat)
    show("exact dedup", 0, files)
    groups, buckets = keys.groups, task_count(workers, files, BUCKET_FILES)
    run(exact_map, [(t, g, [keys.where(i) for i in g], folder, buckets) for t, g in enumerate(groups)])
    found = run(exact_reduce, [(b, len(groups), folder) for b in range(buckets)])
    shared: Counter[tuple[str, str]] = Counter()
    _count_pairs(shared, [counted for _, counted in found])
    dropped = np.concatenate([d for d, _ in found] or [np.zeros((0, 2), dtype=np.int64)])
    del found
    report.exact_duplicates = len(dropped)
    rows_kept = keys.rows.without(dropped)
    show("exact dedup", files, files)
    kept = len(rows_kept.flat)
    show("near dedup", 0, kept)
    verified, candidates = near_pairs(run, spills, rows_kept, config.minhash, work / "bands", buckets, buckets)
    # Each near duplicate's component (the driver: 16 bytes per document in a verified pair) and its
    # survivor, the best-ranked member (the workers: a map by component into buckets, a reduce per bucket).
    docs, roots = component_roots(verified)
    # Per index task's spills: where their entries lie, their kept rows, their first documents, and
    # the near duplicates among theirs with their components' roots (for the near map and the survivors).
    parts = [(t, g, [keys.where(i) for i in g], [rows_kept[i] for i in g], *_in_group(docs, roots, rows_kept, g))
             for t, g in enumerate(groups) if g]  # fmt: skip
    run(near_map, [(t, *seen, folder, buckets) for t, _, *seen in parts])
    found_near = run(near_reduce, [(b, [t for t, *_ in parts], folder) for b in range(buckets)])
    _count_pairs(shared, [counted for _, counted in found_near])
    report.near_duplicates, report.near_candidate_pairs, report.near_verified_pairs = (
        sum(losers for losers, _ in found_near), candidates, len(verified))  # fmt: skip
    del found_near
    show("near dedup", kept, kept)
    report.repo_copies = copies = {} if config.repo_dedup == "off" else choose_copies(keys.repos, shared)
    # The survivors, as rows for the writer (sort key, origin), sorted into runs by the workers, a
    # task per index task's spills; the writer merges the runs as it plans the shards.
    (work / "copies.pkl").write_bytes(pickle.dumps(copies, protocol=pickle.HIGHEST_PROTOCOL))
    shares = [(t, g, [spills[i] for i in g], *seen, buckets, folder, writer.shard_rows, config.repo_dedup)
              for t, g, *seen in parts]  # fmt: skip
    for made in run(survivors, shares):
        writer.adopt(*made)
    return writer.count


def _count_pairs(shared: Counter[tuple[str, str]], parts: list[Counter[tuple[str, str]]]) -> None:
    """Add up the tasks' counts per repository pair, one string per repository."""
    for part in parts:
        for (copy, source), files in part.items():
            shared[(sys.intern(copy), sys.intern(source))] += files


def _in_group(docs: np.ndarray, roots: np.ndarray, rows_kept: SpillRows,
              group: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:  # fmt: skip
    """For a task over the spills ``group``: the first document of each, and the documents in
    verified pairs among theirs with their components' roots."""
    low, high = np.searchsorted(docs, rows_kept.bounds[[group[0], group[-1] + 1]]).tolist()
    return [int(rows_kept.bounds[i]) for i in group], docs[low:high], roots[low:high]


def _kept_entries(folder: str, at: tuple[int, int], chosen: np.ndarray, first: int) -> Iterator[tuple[int, Entry]]:
    """(document, entry) of a spill's kept rows (``chosen``, ascending, the first of them document
    ``first``; its entries at ``at``), in order."""
    wanted, doc = set(chosen.tolist()), first
    for entry in _entries(folder, at):
        if entry[0] in wanted:
            yield doc, entry
            doc += 1


def _near_entries(folder: str, where: list[tuple[int, int]], rows: list[np.ndarray], firsts: list[int],
                  docs: np.ndarray) -> Iterator[tuple[int, Entry]]:  # fmt: skip
    """(document, entry) of each of ``docs`` (ids in order) among these spills' kept rows."""
    for at, chosen, first in zip(where, rows, firsts, strict=True):
        low, high = np.searchsorted(docs, [first, first + len(chosen)]).tolist()
        if low < high:
            needed = set(docs[low:high].tolist())
            yield from ((doc, entry) for doc, entry in _kept_entries(folder, at, chosen, first) if doc in needed)


def near_map(task: int, where: list[tuple[int, int]], rows: list[np.ndarray], firsts: list[int], docs: np.ndarray,
             roots: np.ndarray, folder: str, buckets: int) -> None:  # fmt: skip
    """Each of ``docs`` (near duplicates among these spills' kept rows) as (its component's root,
    rank key, document, blob id) into a file per bucket of roots."""
    parts: list[list[tuple[Any, ...]]] = [[] for _ in range(buckets)]
    root_of = dict(zip(docs.tolist(), roots.tolist(), strict=True))
    for doc, entry in _near_entries(folder, where, rows, firsts, docs):
        root = root_of[doc]
        parts[root % buckets].append((root, entry[3], doc, entry[4]))
    _write_buckets(folder, "near", task, parts)


def near_reduce(bucket: int, tasks: list[int], folder: str) -> tuple[int, Counter[tuple[str, str]]]:
    """One bucket's components: each keeps its best-ranked member (the smallest (rank key,
    document)), written as root -> (survivor, its blob id) to ``winners-BUCKET.pkl``. Returns how
    many members lose, and per (a loser's repository, its survivor's) pair how many are copies
    from another repository."""
    best, losers, shared = _keep_best(_read_bucket(folder, "near", tasks, bucket))
    winners = {root: (item[2], item[3]) for root, item in best.items()}
    (Path(folder) / f"winners-{bucket:05d}.pkl").write_bytes(pickle.dumps(winners))
    return len(losers), shared


def survivors(task: int, indices: list[int], names: list[str], where: list[tuple[int, int]], rows: list[np.ndarray],
              firsts: list[int], docs: np.ndarray, roots: np.ndarray, buckets: int, folder: str, shard_rows: int,
              repo_dedup: str) -> tuple[list[Run], Counter[str], int, int, Counter[str]]:  # fmt: skip
    """A task of its own: the survivors among these spills' kept rows (spill ``indices[i]``, named
    ``names[i]``, its entries at ``where[i]``, its kept ``rows[i]``, the first of them document
    ``firsts[i]``): not a near duplicate that lost to its component's survivor (``docs``, in
    verified pairs, with their components' ``roots``; the survivors in ``near_reduce``'s files),
    nor (with ``repo_dedup`` "drop") in a repository copied from another (``copies.pkl`` in
    ``folder``). Returns them as the writer's sorted runs and counts."""
    copies = pickle.loads((Path(folder) / "copies.pkl").read_bytes())
    winners: dict[int, tuple[int, str]] = {}
    for bucket in np.unique(roots % buckets).tolist():
        winners.update(pickle.loads((Path(folder) / f"winners-{bucket:05d}.pkl").read_bytes()))
    near = {doc: winners[root] for doc, root in zip(docs.tolist(), roots.tolist(), strict=True)}
    writer = ReleaseWriter(Path(folder), shard_rows, None, Path(folder) / f"runs-{task:05d}")
    for index, name, at, chosen, first in zip(indices, names, where, rows, firsts, strict=True):
        for doc, (row, offset, _, key, blob, language, length, licence) in _kept_entries(folder, at, chosen, first):
            member, copy_of = near.get(doc), copies.get(key[2])
            if (member is not None and member[0] != doc) or (copy_of is not None and repo_dedup == "drop"):
                continue
            fields = (member[1] if member is not None else None, copy_of["of"] if copy_of is not None else None)
            writer.add(language, (key[2], key[3], blob, index, row), (name, offset, fields), length, licence)
    return writer.sorted_runs()
