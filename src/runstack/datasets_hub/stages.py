"""Stage two of a build: every spilled record read again by the engine's workers (through the
late filters, such as the opt-out registry) for its keys, deduplicated exactly, then near
(MinHash LSH, as map and reduce rounds on the build's engine), then by repository, and the
survivors streamed to the release writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runstack.datasets_hub.cache import read_spill_at
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.dedup import exact_survivors, rank_key, repository_copies
from runstack.datasets_hub.neardup import near_dedup, split_counts
from runstack.datasets_hub.pipeline import PipelineStep, StepStats
from runstack.datasets_hub.publish import ReleaseWriter
from runstack.datasets_hub.record import SourceFile

# What stage two needs of a record, never its content:
# (row in its spill, offset there, sha256, rank key, blob id, language, length in bytes, licence type).
Entry = tuple[int, int, str, tuple[Any, ...], str, str, int, str]


def index_spills(spills: list[str], late: list[PipelineStep]) -> tuple[list[list[Entry]], list[StepStats]]:
    """A task of its own (each worker reads its share of the spills, in parallel): every record
    of ``spills`` through the late filters (such as the opt-out registry); for each spill, the
    entries of the records they keep, and the filters' counts."""
    stats = [StepStats(step.name) for step in late]
    found: list[list[Entry]] = []
    for spill in spills:
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
                entries.append((row, offset, record.sha256, rank_key(record), record.blob_id, str(record.language),
                                record.length_bytes, record.license_type))  # fmt: skip
        found.append(entries)
    return found, stats


def read_keys(run: Callable[..., list[Any]], spills: list[Path], late: list[PipelineStep], late_stats: list[StepStats],
          tasks: int) -> list[list[Entry]]:  # fmt: skip
    """``index_spills`` over every spill, in ``tasks`` runs of consecutive spills of similar size,
    on the engine; the late filters' counts are added to ``late_stats``."""
    names = [str(spill) for spill in spills]
    groups = split_counts([spill.stat().st_size for spill in spills], tasks)
    entries: list[list[Entry]] = []
    for found, stats in run(index_spills, [([names[i] for i in group], late) for group in groups]):
        entries += found
        for total, part in zip(late_stats, stats, strict=True):
            total.merge(part)
    return entries


def deduplicate(entries: list[list[Entry]], spills: list[Path], config: BuildConfig, report: Any,
                show: Callable[[str, int, int], None], writer: ReleaseWriter,
                run: Callable[..., list[Any]], work: Path, workers: int) -> int:  # fmt: skip
    """Exact, near and repository-level dedup over the records of every spill (``entries``, per
    spill); the survivors go to ``writer``. Returns how many. The driver keeps per file a key,
    never its content or sketch; near-dedup's rounds go to ``run`` (the build's engine), as the
    shards will."""
    keys, where, blob_ids, rows = [], [], [], []
    for index, found in enumerate(entries):
        for row, offset, digest, key, blob, language, length, licence in found:
            keys.append((digest, key))
            where.append((index, row))
            blob_ids.append(blob)
            rows.append((offset, language, length, licence))
    show("exact dedup", 0, len(keys))
    keep, report.exact_duplicates = exact_survivors(keys)
    show("exact dedup", len(keys), len(keys))
    rows_kept: list[list[int]] = [[] for _ in spills]
    for (index, row), kept in zip(where, keep, strict=True):
        if kept:
            rows_kept[index].append(row)
    kept_keys = [k[1] for k, kept in zip(keys, keep, strict=True) if kept]
    kept_blobs = [b for b, kept in zip(blob_ids, keep, strict=True) if kept]
    show("near dedup", 0, len(kept_keys))
    result = near_dedup(run, spills, [np.array(r, dtype=np.int64) for r in rows_kept], kept_keys, config.minhash,
                        work, 4 * workers, 4 * workers)  # fmt: skip
    show("near dedup", len(kept_keys), len(kept_keys))
    report.near_duplicates = len(result.survivors) - sum(result.survivors)
    report.near_candidate_pairs, report.near_verified_pairs = result.candidate_pairs, result.verified_pairs
    copies = {} if config.repo_dedup == "off" else repository_copies(
        [k[1][2] for k in keys], [k[0] for k in keys], keep, result.cluster_of)  # fmt: skip
    report.repo_copies = copies
    # The survivors go to the writer as keys and origins; the workers make the rows from the spills.
    i = -1
    for (index, row), kept, (_, key), blob, (offset, language, length, licence) in zip(
            where, keep, keys, blob_ids, rows, strict=True):  # fmt: skip
        if not kept:
            continue
        i += 1
        copy_of = copies.get(key[2])
        if not result.survivors[i] or (copy_of is not None and config.repo_dedup == "drop"):
            continue
        cluster = result.cluster_of[i]
        fields = (kept_blobs[cluster] if cluster is not None else None, copy_of["of"] if copy_of is not None else None)
        writer.add(language, (key[2], key[3], blob, index, row), (str(spills[index]), offset, fields), length, licence)
    return writer.count
