"""Near-dedup the way it scales on an engine, as datatrove's MinHash stages do.

1. Band map (one task per group of spills): each kept document's signature, computed in the
   per-source stage, gives one key per LSH band; (band, key, document) rows are written to
   ``buckets`` files by key hash: the shuffle, through the build's shared folder.
2. Bucket reduce (one task per bucket): the rows of one bucket from every map task, sorted by
   (band, key, document); a bucket's documents pair with their next neighbours (as
   ``candidate_pairs`` does in memory).
3. Verify (one task per run of the distinct candidate pairs): each pair on the two documents'
   bottom-k sketches, read from their spills. (Verified in the buckets instead, a pair close in
   several bands was verified up to once per bucket: twice the work at 8 buckets, measured.)
4. Components: the driver joins the verified pairs (``dedup.component_roots``, in numpy: 16 bytes
   per document in a pair); a map by component root over the documents in pairs (their rank keys
   read back beside the spills) and a reduce per bucket of roots keep each component's best-ranked
   member, on the workers (``stages.near_map``, ``stages.near_reduce``).

The driver never holds a signature or sketch; the result equals ``NearDeduplicator``'s on the
same documents, whatever the executor or the number of buckets (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runstack.datasets_hub.cache import read_signatures, read_sketches
from runstack.datasets_hub.config import MinHashConfig
from runstack.datasets_hub.dedup import verify_pairs
from runstack.datasets_hub.minhash import _mix, band_keys, neighbour_pairs


@dataclass(frozen=True)
class SpillRows:
    """Some rows of each spill, all in one array: spill ``s``'s are ``flat[bounds[s] : bounds[s + 1]]``,
    ascending. A document's id is its place in ``flat``. (A numpy array per spill would cost the
    driver ~100 bytes a spill on top of its rows.)"""

    flat: np.ndarray  # int32: rows in their spills
    bounds: np.ndarray  # int64: len(spills) + 1

    @classmethod
    def counted(cls, flat: np.ndarray, counts: Sequence[int] | np.ndarray) -> SpillRows:
        """``flat``, spill ``s`` holding the next ``counts[s]`` rows."""
        return cls(flat.astype(np.int32), np.concatenate(([0], np.cumsum(counts, dtype=np.int64))))

    @classmethod
    def of(cls, parts: Sequence[np.ndarray]) -> SpillRows:
        return cls.counted(np.concatenate([np.zeros(0, dtype=np.int32), *parts]), [len(part) for part in parts])

    @classmethod
    def joined(cls, parts: Sequence[SpillRows]) -> SpillRows:
        """The spills of ``parts``, one after the other."""
        return cls.counted(
            np.concatenate([np.zeros(0, dtype=np.int32), *(part.flat for part in parts)]),
            np.concatenate([np.zeros(0, dtype=np.int64), *(np.diff(part.bounds) for part in parts)]),
        )

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, spill: int) -> np.ndarray:
        return self.flat[self.bounds[spill] : self.bounds[spill + 1]]

    def spill_of(self, docs: np.ndarray) -> np.ndarray:
        """The spill of each of these documents."""
        return np.searchsorted(self.bounds, docs, side="right") - 1

    def without(self, pairs: np.ndarray) -> SpillRows:
        """These rows less ``pairs`` ((spill, row) each)."""
        spill = np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.bounds))
        gone = np.isin((spill << 32) | self.flat, (pairs[:, 0].astype(np.int64) << 32) | pairs[:, 1])
        return SpillRows.counted(self.flat[~gone], np.bincount(spill[~gone], minlength=len(self)))


def band_map(task: int, spills: Sequence[str], rows_kept: Sequence[np.ndarray], offsets: Sequence[int],
             config: MinHashConfig, folder: str, buckets: int) -> None:  # fmt: skip
    """Write this task's (band, key, document) rows into one file per bucket."""
    sigs, docs = [], []
    for spill, rows, offset in zip(spills, rows_kept, offsets, strict=True):
        if len(rows):
            sigs.append(read_signatures(Path(spill))[rows])
            docs.append(offset + np.arange(len(rows), dtype=np.int64))
    n, bands = sum(map(len, docs)), config.bands
    keys = band_keys(np.concatenate(sigs), bands, config.rows) if n else np.zeros((0, bands), dtype=np.uint64)
    table = {"band": np.tile(np.arange(bands, dtype=np.int32), n), "key": keys.ravel(),  # document by document
             "doc": np.repeat(np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64), bands)}  # fmt: skip
    target = _mix(table["key"] ^ table["band"].astype(np.uint64)) % np.uint64(buckets)
    out = Path(folder)
    for bucket in range(buckets):
        chosen = target == bucket
        np.savez(out / f"{task:05d}-{bucket:05d}.npz", **{name: column[chosen] for name, column in table.items()})


def bucket_reduce(bucket: int, tasks: int, folder: str) -> np.ndarray:
    """The candidate pairs among one bucket's documents (neighbours in a band's key group)."""
    found: dict[str, list[np.ndarray]] = {name: [] for name in ("band", "key", "doc")}
    for task in range(tasks):
        with np.load(Path(folder) / f"{task:05d}-{bucket:05d}.npz") as part:
            for name in found:
                found[name].append(part[name])
    table = {name: np.concatenate(columns) for name, columns in found.items()}
    order = np.lexsort((table["doc"], table["key"], table["band"]))
    return neighbour_pairs([table["band"][order], table["key"][order]], table["doc"][order])


# Candidate pairs per verify task at most: the task holds the sketches of their documents (~4 KB each).
VERIFY_PAIRS = 20_000


def verify(pairs: np.ndarray, spill_of: np.ndarray, row_of: np.ndarray, spills: Sequence[str],
           config: MinHashConfig) -> np.ndarray:  # fmt: skip
    """Which of ``pairs`` verify on their documents' bottom-k sketches (document ``d`` is row
    ``row_of[i]`` of spill ``spill_of[i]``, ``i`` its place among the sorted documents of ``pairs``).
    Each spill's sketches are read once, keeping only those of these documents."""
    docs = np.unique(pairs)
    held: dict[int, np.ndarray] = {}
    order = np.argsort(spill_of, kind="stable")
    spills_here, firsts = np.unique(spill_of[order], return_index=True)
    for spill, low, high in zip(spills_here.tolist(), firsts.tolist(), [*firsts[1:].tolist(), len(docs)], strict=True):
        flat, bounds = read_sketches(Path(spills[spill]))
        for i in order[low:high].tolist():
            row = int(row_of[i])
            held[int(docs[i])] = flat[bounds[row] : bounds[row + 1]].copy()
    return verify_pairs(pairs, held.__getitem__, config)


def near_pairs(run: Callable[[Callable[..., Any], list[tuple[Any, ...]]], list[Any]], spills: Sequence[str],
               rows_kept: SpillRows, config: MinHashConfig, folder: Path, tasks: int,
               buckets: int) -> tuple[np.ndarray, int]:  # fmt: skip
    """The verified near-duplicate pairs (document ids, in order) among the kept documents
    (``rows_kept[s]``: rows of spill ``s``; a document's id is its place in that order), and how
    many candidate pairs there were, with the map, reduce and verify rounds given to ``run``."""
    folder.mkdir(parents=True, exist_ok=True)
    counts, offsets = np.diff(rows_kept.bounds).tolist(), rows_kept.bounds[:-1].tolist()
    groups = split_counts(counts, tasks)
    run(band_map, [(t, [spills[i] for i in g], [rows_kept[i] for i in g], [offsets[i] for i in g], config,
                    str(folder), buckets) for t, g in enumerate(groups)])  # fmt: skip
    found = run(bucket_reduce, [(b, len(groups), str(folder)) for b in range(buckets)])
    # A pair close in several bands is a candidate in several buckets: each is verified once, in a
    # round of its own over the distinct candidates (in order, so a task reads few spills), with
    # only the spills its documents lie in.
    candidates = np.unique(np.concatenate(found or [np.zeros((0, 2), dtype=np.int64)]), axis=0)
    shares = []
    chunks = max(1, min(max(tasks, -(-len(candidates) // VERIFY_PAIRS)), len(candidates)))
    for chunk in np.array_split(candidates, chunks):
        docs = np.unique(chunk)
        spill_of = rows_kept.spill_of(docs)
        needed, local = np.unique(spill_of, return_inverse=True)
        shares.append((chunk, local, rows_kept.flat[docs], [spills[i] for i in needed.tolist()], config))
    ok = run(verify, shares) if len(candidates) else []
    return (candidates[np.concatenate(ok)] if len(candidates) else candidates), len(candidates)


def split_counts(counts: Sequence[int], tasks: int) -> list[list[int]]:
    """Spill indices in at most ``tasks`` runs of consecutive spills with similar document counts."""
    total, groups, current, done = sum(counts), [], [], 0
    for index, count in enumerate(counts):
        current.append(index)
        done += count
        if done * tasks >= total * (len(groups) + 1) and len(groups) < tasks - 1:
            groups.append(current)
            current = []
    if current or not groups:
        groups.append(current)
    return groups
