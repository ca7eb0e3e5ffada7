"""Deduplication's pieces, keeping one survivor per group: the ranking, MinHash signing, the
in-memory near deduplicator (streamed datasets; the reference the engine's rounds in
``neardup`` equal), and repository copies. A build's exact dedup runs as engine rounds in
``stages``.

Survivors are chosen by one documented ranking: permissive licence first, then the
higher user-given ``priority`` (e.g. stars), then repository name and path
(alphabetical), then the first read among equals. Near dedup keeps only signatures in
memory, never contents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runstack.datasets_hub.config import MinHashConfig
from runstack.datasets_hub.minhash import bottom_k, bottom_k_jaccard, candidate_pairs, shingle_hashes, signatures
from runstack.datasets_hub.record import SourceFile

BATCH_BYTES = 1 << 18  # text per vectorised batch: its hash arrays (~40x its size) stay in cache


def sign(texts: list[str], config: MinHashConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """MinHash signatures and bottom-k sketches of ``texts`` (in batches of bounded size)."""
    sigs, sketches, start = [], [], 0
    while start < len(texts):
        end, size = start, 0
        while end < len(texts) and (end == start or size < BATCH_BYTES):
            size += len(texts[end])
            end += 1
        hashes, docs = shingle_hashes(texts[start:end], config.ngram)
        sigs.append(signatures(hashes, docs, end - start, config.num_perm, config.seed))
        sketches += bottom_k(hashes, docs, end - start, config.verify_k)
        start = end
    return (np.concatenate(sigs) if sigs else np.zeros((0, config.num_perm), dtype=np.uint32)), sketches


def rank_key(record: SourceFile) -> tuple[Any, ...]:
    """Smaller wins: permissive first, then higher priority, then repo name and path."""
    return (record.license_type != "permissive", -record.priority, record.repo_name, record.path)


def choose_copies(files: Counter[str], shared: Counter[tuple[str, str]],
                  share: float = 0.5) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Repositories more than ``share`` of whose files are exact or near copies of files one other
    repository keeps (forks, vendored copies), as {copy: {"of": source, "shared": n, "files": m}},
    from ``files`` per repository and ``shared`` files per (copy, source) pair. Which one is the
    copy follows the survivor ranking (give the original a higher ``priority``)."""
    copies: dict[str, dict[str, Any]] = {}
    for (copy, source), n in sorted(shared.items(), key=lambda kv: (-kv[1], kv[0])):
        if copy not in copies and n >= 2 and n > share * files[copy] and copy != source:
            copies[copy] = {"of": source, "shared": n, "files": files[copy]}
    return copies


def component_roots(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The documents in ``pairs`` (sorted) and each one's component root (its smallest document), in
    numpy: 16 bytes a document (a union-find of Python ints costs ~10 times more)."""
    docs = np.unique(pairs)
    a, b = np.searchsorted(docs, pairs[:, 0]), np.searchsorted(docs, pairs[:, 1])
    label = np.arange(len(docs))  # each document's label: a smaller member of its component, or itself
    while len(a) and not np.array_equal(label[a], label[b]):
        low = np.minimum(label[a], label[b])
        for ends in (a, b):  # each pair's two documents and their labels hooked onto the smaller label
            np.minimum.at(label, label[ends], low)
            np.minimum.at(label, ends, low)
        while not np.array_equal(jumped := label[label], label):  # every label to its own label's: roots
            label = jumped
    return docs, docs[label]


def components(verified: np.ndarray, rank_of: Callable[[list[int]], list[Any]]) -> dict[int, int]:
    """For each document in a verified pair, its component's survivor: the smallest (rank key,
    id), the rank keys asked of ``rank_of`` for these documents only. (In memory; a build picks the
    survivors on its workers, from the same ``component_roots``.)"""
    docs, roots = component_roots(verified)
    keys = dict(zip(docs.tolist(), rank_of(docs.tolist()), strict=True))
    members: dict[int, list[int]] = {}
    for doc, root in zip(docs.tolist(), roots.tolist(), strict=True):
        members.setdefault(root, []).append(doc)
    return {doc: winner for group in members.values() for winner in [min(group, key=lambda d: (keys[d], d))]
            for doc in group}  # fmt: skip


@dataclass
class NearDedupResult:
    survivors: list[bool]
    cluster_of: list[int | None]  # index of the cluster's survivor, for members of clusters of 2+
    candidate_pairs: int
    verified_pairs: int


class NearDeduplicator:
    """Collects signatures batch by batch, then clusters verified LSH candidate pairs.

    Per document it keeps a MinHash signature (for LSH) and a bottom-k sketch of its
    shingle hashes (``config.verify_k`` values) that verifies candidate pairs: exact
    Jaccard for documents with at most k shingles, a tighter estimate than the signature
    for larger ones. Memory is bounded by these sketches, never by contents.
    """

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config
        self._sketches: list[np.ndarray] = []
        self._sigs: list[np.ndarray] = []
        self._keys: list[tuple[Any, ...]] = []
        self._texts: list[str] = []
        self._pending = 0

    def add(self, content: str, key: tuple[Any, ...]) -> None:
        self._texts.append(content)
        self._keys.append(key)
        self._pending += len(content)
        if self._pending >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._texts:
            hashes, docs = shingle_hashes(self._texts, self.config.ngram)
            self._sigs.append(signatures(hashes, docs, len(self._texts), self.config.num_perm, self.config.seed))
            self._sketches += bottom_k(hashes, docs, len(self._texts), self.config.verify_k)
        self._texts, self._pending = [], 0

    def signatures(self) -> np.ndarray:
        self._flush()
        if not self._sigs:
            return np.zeros((0, self.config.num_perm), dtype=np.uint32)
        return np.concatenate(self._sigs)

    def result(self) -> NearDedupResult:
        sigs = self.signatures()
        cfg = self.config
        pairs = candidate_pairs(sigs, cfg.bands, cfg.rows)
        verified = pairs[verify_pairs(pairs, self._sketches.__getitem__, cfg)]
        return clusters(self._keys, verified, len(pairs))


def verify_pairs(pairs: np.ndarray, sketch: Any, config: MinHashConfig) -> np.ndarray:
    """Which candidate pairs reach the threshold on their bottom-k sketches (``sketch(doc)``)."""
    similarity = [bottom_k_jaccard(sketch(a), sketch(b), config.verify_k) for a, b in pairs.tolist()]
    return np.array(similarity, dtype=float) >= config.threshold if len(pairs) else np.zeros(0, dtype=bool)


def clusters(keys: list[tuple[Any, ...]], verified: np.ndarray, candidates: int) -> NearDedupResult:
    """``components`` for every document (``keys``: each one's rank key)."""
    members = components(verified, lambda docs: [keys[d] for d in docs])
    cluster_of = [members.get(i) for i in range(len(keys))]
    survivors = [winner is None or winner == i for i, winner in enumerate(cluster_of)]
    return NearDedupResult(survivors, cluster_of, candidates, len(verified))
