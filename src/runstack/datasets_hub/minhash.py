"""MinHash signatures and LSH, vectorised with numpy, with datasketch's parameters and verbs.

Shingles are word n-grams (words: runs of ``[A-Za-z0-9_]`` and non-ASCII bytes). Tokens are
hashed for a whole batch of documents at once with a polynomial prefix-sum hash (wrapping
uint64 arithmetic), n-grams combine consecutive token hashes, and signatures use one
permutation hashing: each shingle hash picks one of ``num_perm`` bins and the bin keeps its
minimum; empty bins are filled from the next non-empty bin (rotation densification). That
is one hash per shingle instead of ``num_perm``, which is what makes it fast. The fraction of
equal signature values estimates Jaccard similarity, as with datasketch's ``MinHash``; the
hash values themselves differ from datasketch's (which hashes each shingle ``num_perm`` times).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)
_Q = _U64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
_Q_INV = _U64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_WORD = np.zeros(256, dtype=bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD[_c] = True
_WORD[128:] = True
_GRAM_MULT = np.array([0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xA0761D6478BD642F,
                       0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F],
                      dtype=np.uint64)  # fmt: skip


_WORDS = re.compile(rb"(?:[A-Za-z0-9_]|[\x80-\xff])+")
_POWERS: list[np.ndarray] = []


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Q**i and Q**-i (mod 2**64) for i < n, computed once and grown as needed."""
    if not _POWERS or len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]) if _POWERS else 1 << 21)  # a batch and a file: 32 MB, whatever the data
        _POWERS[:] = [_geometric(_Q, size), _geometric(_Q_INV, size)]
    return _POWERS[0][:n], _POWERS[1][:n]


def _geometric(q: np.uint64, size: int, block: int = 4096) -> np.ndarray:
    """q**1 .. q**size (mod 2**64): a block by cumprod, then every block at once from it (a cumprod
    over ``size`` values is a slow serial loop)."""
    with np.errstate(over="ignore"):
        head = np.cumprod(np.full(block, q, dtype=np.uint64))
        steps = np.cumprod(np.full(-(-size // block) - 1, head[-1], dtype=np.uint64))
        starts = np.concatenate((np.ones(1, dtype=np.uint64), steps))
        return np.multiply.outer(starts, head).ravel()[:size]


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> _U64(27))) * _U64(0x94D049BB133111EB)
        return h ^ (h >> _U64(31))


def shingle_hashes(texts: Sequence[str | bytes], ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word ``ngram`` of every text, and the text index of each.

    A text with fewer than ``ngram`` words gives one shingle of all its words; one with
    no words gives none.
    """
    if ngram > len(_GRAM_MULT):
        raise ValueError(f"ngram={ngram} is more than {len(_GRAM_MULT)}")
    raw = [t.encode("utf-8", "surrogatepass") if isinstance(t, str) else t for t in texts]
    joined = b"\x00".join(raw) + b"\x00"
    buf = np.frombuffer(joined, dtype=np.uint8)
    doc_start = np.cumsum([0] + [len(r) + 1 for r in raw[:-1]]) if raw else np.zeros(0, dtype=np.int64)
    word = _WORD[buf]
    edge = np.diff(word.astype(np.int8), prepend=np.int8(0))
    starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    powers, inverse = _powers(len(buf))
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
        np.cumsum(buf * powers, dtype=np.uint64, out=prefix[1:])
        tokens = (prefix[ends] - prefix[starts]) * inverse[starts]
    tokens = _mix(tokens)
    token_doc = np.searchsorted(doc_start, starts, side="right") - 1
    counts = np.bincount(token_doc, minlength=len(raw))
    hashes, docs = [], []
    n = len(tokens)
    if n >= ngram:
        with np.errstate(over="ignore"):
            gram = np.zeros(n - ngram + 1, dtype=np.uint64)
            for k in range(ngram):
                gram += tokens[k : n - ngram + 1 + k] * _GRAM_MULT[k]
        same_doc = token_doc[: n - ngram + 1] == token_doc[ngram - 1 :]
        hashes.append(_mix(gram[same_doc]))
        docs.append(token_doc[: n - ngram + 1][same_doc])
    short = np.flatnonzero((counts > 0) & (counts < ngram))
    if len(short):
        first = np.searchsorted(token_doc, short)
        with np.errstate(over="ignore"):
            extra = np.array([(tokens[f : f + c] * _GRAM_MULT[:c]).sum(dtype=np.uint64)
                              for f, c in zip(first, counts[short], strict=True)], dtype=np.uint64)  # fmt: skip
        hashes.append(_mix(extra))
        docs.append(short)
    return np.concatenate(hashes), np.concatenate(docs)


def signatures(hashes: np.ndarray, docs: np.ndarray, n_docs: int, num_perm: int = 256, seed: int = 1) -> np.ndarray:
    """One-permutation MinHash signatures, shape (n_docs, num_perm), uint32.

    A document without shingles gets an all-empty signature (equal to nothing but itself).
    """
    h = _mix(hashes ^ _mix(np.array([seed], dtype=np.uint64)))
    with np.errstate(over="ignore"):
        bins = ((h >> _U64(32)) * _U64(num_perm)) >> _U64(32)
    values = (h & _MASK32).astype(np.uint32)
    flat = np.full(n_docs * num_perm, _EMPTY, dtype=np.uint32)
    np.minimum.at(flat, docs.astype(np.int64) * num_perm + bins.astype(np.int64), values)
    sig = flat.reshape(n_docs, num_perm)
    filled = sig != _EMPTY
    if filled.all() or n_docs == 0:
        return sig
    position = np.arange(num_perm)
    index = np.where(filled, position, 2 * num_perm)
    doubled = np.concatenate([index, np.where(filled, position + num_perm, 2 * num_perm)], axis=1)
    nearest = np.minimum.accumulate(doubled[:, ::-1], axis=1)[:, ::-1][:, :num_perm]
    has_any = filled.any(axis=1)
    nearest = np.where(has_any[:, None], nearest, position)
    source = np.take_along_axis(sig, nearest % num_perm, axis=1)
    with np.errstate(over="ignore"):
        shifted = (source.astype(np.uint64) + (nearest - position).astype(np.uint64) * _U64(0x9E3779B1)) & _MASK32
    return np.where(filled | ~has_any[:, None], sig, shifted.astype(np.uint32))


def estimate_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def bottom_k(hashes: np.ndarray, docs: np.ndarray, n_docs: int, k: int) -> list[np.ndarray]:
    """Per document, its ``k`` smallest distinct shingle hashes (all of them if it has fewer)."""
    if len(docs) > 1 and (docs[1:] < docs[:-1]).any():  # shingle_hashes gives each document's hashes together
        order = np.argsort(docs, kind="stable")
        hashes, docs = hashes[order], docs[order]
    bounds = np.searchsorted(docs, np.arange(n_docs + 1))
    return [_smallest_distinct(hashes[bounds[i] : bounds[i + 1]], k) for i in range(n_docs)]


def _smallest_distinct(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest distinct values, sorted: from a partition when the document is long (no full sort)."""
    if len(values) > 4 * k:
        head = np.unique(np.partition(values, 2 * k)[: 2 * k + 1])
        if len(head) >= k:  # the 2k+1 smallest values hold k distinct ones: they are the k smallest distinct
            return head[:k]
    return np.unique(values)[:k]


def bottom_k_jaccard(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Jaccard from two bottom-k sketches: exact when both documents have at most ``k`` shingles."""
    merged = np.concatenate((a, b))  # each sketch's values are distinct: a value twice is in both
    merged.sort()
    twice = np.zeros(len(merged), dtype=bool)
    np.equal(merged[1:], merged[:-1], out=twice[1:])
    union = merged[~twice][:k]
    if len(union) == 0:
        return 1.0
    both = np.count_nonzero(twice & (merged <= union[-1]))  # of the union's k smallest
    return float(both / len(union))


class MinHash:
    """datasketch-style MinHash: ``update(b)`` shingles one by one, ``jaccard(other)``.

    ``MinHash.from_text(text, ngram=5)`` shingles a document in one vectorised call.
    """

    def __init__(self, num_perm: int = 256, seed: int = 1) -> None:
        self.num_perm, self.seed = num_perm, seed
        self._hashes: list[int] = []
        self._signature: np.ndarray | None = None

    def update(self, b: bytes) -> None:
        """Add one shingle. A shingle of 1 to 8 words (``b"def f ( x"``) is hashed exactly as
        ``from_text`` hashes that n-gram, so ``update`` over a text's shingles (see ``shingles``)
        gives ``from_text``'s signature; anything else is hashed as opaque bytes."""
        words = len(_WORDS.findall(b))
        if 1 <= words <= len(_GRAM_MULT):
            hashes, _ = shingle_hashes([b], words)
            if len(hashes) == 1:
                self._hashes.append(int(hashes[0]))
                self._signature = None
                return
        self._hashes.append(int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little"))
        self._signature = None

    @staticmethod
    def shingles(text: str | bytes, ngram: int = 5) -> list[bytes]:
        """The word ``ngram``-shingles of a text, as ``from_text`` sees them (for ``update``)."""
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        words = _WORDS.findall(data)
        if len(words) < ngram:
            return [b" ".join(words)] if words else []
        return [b" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]

    def update_batch(self, items: Iterable[bytes]) -> None:
        for item in items:
            self.update(item)

    @classmethod
    def from_text(cls, text: str | bytes, ngram: int = 5, num_perm: int = 256, seed: int = 1) -> MinHash:
        hashes, _ = shingle_hashes([text], ngram)
        mh = cls(num_perm, seed)
        mh._signature = signatures(hashes, np.zeros(len(hashes), dtype=np.int64), 1, num_perm, seed)[0]
        return mh

    @property
    def hashvalues(self) -> np.ndarray:
        if self._signature is None:
            hashes = np.array(self._hashes, dtype=np.uint64)
            self._signature = signatures(hashes, np.zeros(len(hashes), dtype=np.int64), 1, self.num_perm, self.seed)[0]
        return self._signature

    def digest(self) -> np.ndarray:
        return self.hashvalues.copy()

    def jaccard(self, other: MinHash) -> float:
        if (self.num_perm, self.seed) != (other.num_perm, other.seed):
            raise ValueError("cannot compare MinHash with different num_perm or seed")
        return estimate_jaccard(self.hashvalues, other.hashvalues)


class MinHashLSH:
    """datasketch-style LSH index: ``insert(key, minhash)``, ``query(minhash)`` -> candidate keys."""

    def __init__(self, threshold: float = 0.7, num_perm: int = 256, params: tuple[int, int] | None = None,
                 weights: tuple[float, float] = (0.5, 0.5)) -> None:  # fmt: skip
        """``params`` (bands, rows) as datasketch takes them; by default derived from ``threshold``
        as datasketch does: the split minimising the weighted false positive and negative areas."""
        bands, rows = params if params is not None else optimal_params(threshold, num_perm, weights)
        if bands * rows > num_perm:
            raise ValueError(f"params b={bands} x r={rows} must multiply to at most num_perm={num_perm}")
        self.threshold, self.num_perm, self.bands, self.rows = threshold, num_perm, bands, rows
        self.tables: list[dict[bytes, list[Any]]] = [defaultdict(list) for _ in range(bands)]
        self.keys: dict[Any, np.ndarray] = {}

    def _band_keys(self, signature: np.ndarray) -> list[bytes]:
        return [signature[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]

    def insert(self, key: Any, minhash: MinHash | np.ndarray) -> None:
        signature = minhash.hashvalues if isinstance(minhash, MinHash) else minhash
        if key in self.keys:
            raise ValueError(f"key {key!r} is already in the index")
        self.keys[key] = signature
        for table, band in zip(self.tables, self._band_keys(signature), strict=True):
            table[band].append(key)

    def query(self, minhash: MinHash | np.ndarray) -> list[Any]:
        signature = minhash.hashvalues if isinstance(minhash, MinHash) else minhash
        found: dict[Any, None] = {}
        for table, band in zip(self.tables, self._band_keys(signature), strict=True):
            for key in table.get(band, ()):
                found[key] = None
        return list(found)

    def __contains__(self, key: Any) -> bool:
        return key in self.keys


def optimal_params(threshold: float, num_perm: int, weights: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
    """datasketch's ``_optimal_param``: (bands, rows) with bands x rows <= num_perm minimising
    ``w_fp * P(candidate | J < t) + w_fn * P(not candidate | J >= t)`` (areas under the S-curve)."""
    best, best_error = (1, num_perm), float("inf")
    grid_lo, grid_hi = np.linspace(0.0, threshold, 501), np.linspace(threshold, 1.0, 501)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(1 - (1 - grid_lo**rows) ** bands, grid_lo)
            fn = np.trapezoid((1 - grid_hi**rows) ** bands, grid_hi)
            error = weights[0] * fp + weights[1] * fn
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Shape (documents, bands), uint64: the hash of each document's signature values in each band."""
    chunk = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    key = np.zeros((len(sigs), bands), dtype=np.uint64)
    for r in range(rows):
        key = _mix(key ^ chunk[:, :, r])
    return key


def neighbour_pairs(columns: Sequence[np.ndarray], docs: np.ndarray, max_group: int = 64) -> np.ndarray:
    """Document pairs (i < j) at most ``max_group`` apart in an order sorted by ``columns`` then
    document, whose columns are all equal: each LSH bucket's members with their next neighbours."""
    pairs = []
    for k in range(1, max_group + 1):
        if k >= len(docs):
            break
        same = np.ones(len(docs) - k, dtype=bool)
        for column in columns:
            same &= column[:-k] == column[k:]
        if not same.any():  # equal columns k apart mean the whole run between is one bucket
            break
        a, b = docs[:-k][same], docs[k:][same]
        pairs.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


def candidate_pairs(sigs: np.ndarray, bands: int, rows: int, max_group: int = 64) -> np.ndarray:
    """Index pairs (i < j) that share at least one LSH band; shape (n_pairs, 2).

    Very large buckets link each member to its next ``max_group`` neighbours only.
    """
    n = len(sigs)
    band = np.repeat(np.arange(bands, dtype=np.int64), n)
    key = band_keys(sigs, bands, rows).T.ravel()  # band by band
    docs = np.tile(np.arange(n, dtype=np.int64), bands)
    order = np.lexsort((docs, key, band))
    return neighbour_pairs([band[order], key[order]], docs[order], max_group)
