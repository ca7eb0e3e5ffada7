"""Stage two of a build: every spilled record read again by the engine's workers (through the
late filters, such as the opt-out registry) for its keys, deduplicated exactly, then near
(MinHash LSH, as map and reduce rounds on the build's engine), then by repository, and the
survivors streamed to the release writer."""

from __future__ import annotations

import sys
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
                # Repeated names as one object each: pickled once per task, held once in the driver.
                record.repo_name = sys.intern(record.repo_name)
                entries.append((row, offset, record.sha256, rank_key(record), record.blob_id,
                                sys.intern(str(record.language)), record.length_bytes,
                                sys.intern(record.license_type)))  # fmt: skip
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
    names = [str(spill) for spill in spills]
    flat: list[Entry] = []  # every file's entry, once: the lists below only point into them
    spill_of = np.zeros(sum(map(len, entries)), dtype=np.int64)
    for index, found in enumerate(entries):
        spill_of[len(flat) : len(flat) + len(found)] = index
        flat += found
        entries[index] = []
    show("exact dedup", 0, len(flat))
    keep, report.exact_duplicates = exact_survivors([e[2] for e in flat], [e[3] for e in flat])
    show("exact dedup", len(flat), len(flat))
    rows_kept: list[list[int]] = [[] for _ in spills]
    for entry, index, kept in zip(flat, spill_of.tolist(), keep, strict=True):
        if kept:
            rows_kept[index].append(entry[0])
    kept_keys = [e[3] for e, kept in zip(flat, keep, strict=True) if kept]
    kept_blobs = [e[4] for e, kept in zip(flat, keep, strict=True) if kept]
    show("near dedup", 0, len(kept_keys))
    result = near_dedup(run, spills, [np.array(r, dtype=np.int64) for r in rows_kept], kept_keys, config.minhash,
                        work, 4 * workers, 4 * workers)  # fmt: skip
    show("near dedup", len(kept_keys), len(kept_keys))
    report.near_duplicates = len(result.survivors) - sum(result.survivors)
    report.near_candidate_pairs, report.near_verified_pairs = result.candidate_pairs, result.verified_pairs
    copies = {} if config.repo_dedup == "off" else repository_copies(
        [e[3][2] for e in flat], [e[2] for e in flat], keep, result.cluster_of)  # fmt: skip
    report.repo_copies = copies
    # The survivors go to the writer as keys and origins; the workers make the rows from the spills.
    i = -1
    for (row, offset, _, key, blob, language, length, licence), index, kept in zip(
            flat, spill_of.tolist(), keep, strict=True):  # fmt: skip
        if not kept:
            continue
        i += 1
        copy_of = copies.get(key[2])
        if not result.survivors[i] or (copy_of is not None and config.repo_dedup == "drop"):
            continue
        cluster = result.cluster_of[i]
        fields = (kept_blobs[cluster] if cluster is not None else None, copy_of["of"] if copy_of is not None else None)
        writer.add(language, (key[2], key[3], blob, index, row), (names[index], offset, fields), length, licence)
    return writer.count
