"""Stage two of a build: every spilled record read again (through the late filters, such as
the opt-out registry), deduplicated exactly, then near (MinHash LSH), then by repository, and
the survivors streamed to the release writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from runstack.datasets_hub.cache import read_signatures, read_spill
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.dedup import NearDeduplicator, exact_survivors, rank_key, repository_copies
from runstack.datasets_hub.pipeline import PipelineStep, StepStats
from runstack.datasets_hub.publish import ReleaseWriter
from runstack.datasets_hub.record import SourceFile


def reader(spills: list[Path], late: list[PipelineStep], late_stats: list[StepStats]) -> Callable[..., Iterator[Any]]:
    """Each call reads every spill again, through the late filters (counted on the first read);
    ``signed=True`` yields (record, signature, sketch) from the signatures stage one stored."""
    passes = [0]

    def read(signed: bool = False) -> Iterator[Any]:
        counting = passes[0] == 0
        passes[0] += 1
        for spill in spills:
            sigs, sketches = read_signatures(spill) if signed else (None, None)
            for position, record in enumerate(read_spill(spill)):
                for step, stats in zip(late, late_stats, strict=True):
                    verdict = step.process(record)
                    if counting:
                        stats.seen += 1
                    if not isinstance(verdict, SourceFile):
                        if counting:
                            stats.dropped[verdict or step.name] += 1
                        break
                    if counting:
                        stats.kept += 1
                else:
                    if signed:
                        assert sigs is not None and sketches is not None
                        yield record, sigs[position], sketches[position]
                    else:
                        yield record

    return read


def _kept(records: Iterator[Any], keep: list[bool]) -> Iterator[Any]:
    """The records that survived exact deduplication, in order."""
    return (record for record, kept in zip(records, keep, strict=True) if kept)


def deduplicate(records: Callable[..., Iterator[Any]], config: BuildConfig, report: Any,
                show: Callable[[str, int, int], None], writer: ReleaseWriter) -> int:  # fmt: skip
    """Exact, near and repository-level dedup over every spilled record; the survivors go to
    ``writer``. Returns how many. Memory: per file a key and a sketch, never its content."""
    keys = [(r.sha256, rank_key(r)) for r in records()]
    show("exact dedup", 0, len(keys))
    keep, report.exact_duplicates = exact_survivors(keys)
    show("exact dedup", len(keys), len(keys))
    near = NearDeduplicator(config.minhash)
    total, done = sum(keep), 0
    blob_ids: list[str] = []  # of the kept records: a cluster is named after its survivor's blob
    batch: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    for record, sig, sketch in _kept(records(signed=True), keep):
        batch[0].append(sig)
        batch[1].append(sketch)
        batch[2].append(rank_key(record))
        blob_ids.append(record.blob_id)
        done += 1
        if len(batch[2]) >= 10_000 or done == total:
            near.extend(np.stack(batch[0]), batch[1], batch[2])
            batch = ([], [], [])
            show("near dedup", done, total)
    result = near.result()
    report.near_duplicates = len(result.survivors) - sum(result.survivors)
    report.near_candidate_pairs, report.near_verified_pairs = result.candidate_pairs, result.verified_pairs
    copies = {} if config.repo_dedup == "off" else repository_copies(
        [k[1][2] for k in keys], [k[0] for k in keys], keep, result.cluster_of)  # fmt: skip
    report.repo_copies = copies
    written = 0
    for i, record in enumerate(_kept(records(), keep)):
        if not result.survivors[i]:
            continue
        cluster = result.cluster_of[i]
        record.near_dup_cluster = blob_ids[cluster] if cluster is not None else None
        copy_of = copies.get(record.repo_name)
        if copy_of is not None and config.repo_dedup == "drop":
            continue
        record.repo_duplicate_of = copy_of["of"] if copy_of is not None else None
        writer.add(record.row())
        written += 1
    return written
