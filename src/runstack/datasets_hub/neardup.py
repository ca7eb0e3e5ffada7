"""Near-dedup the way it scales on an engine, as datatrove's MinHash stages do.

1. Band map (one task per group of spills): each kept document's signature, computed in the
   per-source stage, gives one key per LSH band; (band, key, document) rows are written to
   ``buckets`` files by key hash: the shuffle, through the build's shared folder.
2. Bucket reduce (one task per bucket): the rows of one bucket from every map task, sorted by
   (band, key, document); a bucket's documents pair with their next neighbours (as
   ``candidate_pairs`` does in memory) and each pair is verified on the two documents'
   bottom-k sketches, read from their spills.
3. The driver joins the verified pairs into connected components (union-find over edges only)
   and keeps each component's best-ranked member.

The driver never holds a signature or sketch; the result equals ``NearDeduplicator``'s on the
same documents, whatever the executor or the number of buckets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runstack.datasets_hub.cache import read_signatures
from runstack.datasets_hub.config import MinHashConfig
from runstack.datasets_hub.dedup import NearDedupResult, clusters, verify_pairs
from runstack.datasets_hub.minhash import _mix, band_keys, neighbour_pairs

_FIELDS = {"band": np.int32, "key": np.uint64, "doc": np.int64, "spill": np.int64, "row": np.int64}


def band_map(task: int, spills: Sequence[str], rows_kept: Sequence[np.ndarray], offsets: Sequence[int],
             indices: Sequence[int], config: MinHashConfig, folder: str, buckets: int) -> None:  # fmt: skip
    """Write this task's (band, key, document, spill, row) rows into one file per bucket."""
    sigs, docs, where, row_of = [], [], [], []
    for spill, rows, offset, index in zip(spills, rows_kept, offsets, indices, strict=True):
        if len(rows):
            sigs.append(read_signatures(Path(spill))[0][rows])
            docs.append(offset + np.arange(len(rows), dtype=np.int64))
            where.append(np.full(len(rows), index, dtype=np.int64))
            row_of.append(np.asarray(rows, dtype=np.int64))
    n, bands = sum(map(len, docs)), config.bands
    keys = band_keys(np.concatenate(sigs), bands, config.rows) if n else np.zeros((0, bands), dtype=np.uint64)
    table = {"band": np.tile(np.arange(bands, dtype=np.int32), n), "key": keys.ravel(),  # document by document
             **{name: np.repeat(np.concatenate(c) if c else np.zeros(0, dtype=np.int64), bands)
                for name, c in (("doc", docs), ("spill", where), ("row", row_of))}}  # fmt: skip
    target = _mix(table["key"] ^ table["band"].astype(np.uint64)) % np.uint64(buckets)
    out = Path(folder)
    for bucket in range(buckets):
        chosen = target == bucket
        np.savez(out / f"{task:05d}-{bucket:05d}.npz", **{name: column[chosen] for name, column in table.items()})


def bucket_reduce(bucket: int, tasks: int, spills: Sequence[str], config: MinHashConfig,
                  folder: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(candidate pairs, which of them verify) among one bucket's documents."""
    found: dict[str, list[np.ndarray]] = {name: [] for name in _FIELDS}
    for task in range(tasks):
        with np.load(Path(folder) / f"{task:05d}-{bucket:05d}.npz") as part:
            for name in _FIELDS:
                found[name].append(part[name])
    table = {name: np.concatenate(columns) for name, columns in found.items()}
    order = np.lexsort((table["doc"], table["key"], table["band"]))
    pairs = neighbour_pairs([table["band"][order], table["key"][order]], table["doc"][order])
    where = dict(zip(table["doc"].tolist(), zip(table["spill"].tolist(), table["row"].tolist(), strict=True),
                     strict=False))  # fmt: skip
    sketches: dict[int, list[np.ndarray]] = {}

    def sketch(doc: int) -> np.ndarray:
        spill, row = where[doc]
        if spill not in sketches:
            sketches[spill] = read_signatures(Path(spills[spill]))[1]
        return sketches[spill][row]

    return pairs, verify_pairs(pairs, sketch, config)


def near_dedup(run: Callable[[Callable[..., Any], list[tuple[Any, ...]]], list[Any]], spills: Sequence[Path],
               rows_kept: Sequence[np.ndarray], keys: list[tuple[Any, ...]], config: MinHashConfig, folder: Path,
               tasks: int, buckets: int) -> NearDedupResult:  # fmt: skip
    """Near duplicates among the kept documents (``rows_kept[s]``: rows of spill ``s``, in document
    order; ``keys``: their rank keys), with the map and reduce rounds given to ``run``."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = [len(rows) for rows in rows_kept]
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(int).tolist() if counts else []
    groups = split_counts(counts, tasks)
    names = [str(s) for s in spills]
    run(band_map, [(t, [names[i] for i in g], [rows_kept[i] for i in g], [offsets[i] for i in g], g, config,
                    str(folder), buckets) for t, g in enumerate(groups)])  # fmt: skip
    found = run(bucket_reduce, [(b, len(groups), names, config, str(folder)) for b in range(buckets)])
    empty = np.zeros((0, 2), dtype=np.int64)
    candidates = np.unique(np.concatenate([p for p, _ in found] or [empty]), axis=0)
    verified = np.unique(np.concatenate([p[ok] for p, ok in found] or [empty]), axis=0)
    return clusters(keys, verified, len(candidates))


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
