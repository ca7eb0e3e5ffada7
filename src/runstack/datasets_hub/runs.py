"""Rows sorted out of core, for the release writer and for a dataset given as a source: a sorted
stretch of rows is written to a file in pickled blocks (a *section*: the file, where it starts
and how many rows), and sections are merged back in order with at most ``FAN_IN`` files open
(in rounds beyond, through merged sections of their own)."""

from __future__ import annotations

import heapq
import itertools
import pickle
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

# Sorted sections merged at once (each an open file): more are merged in rounds.
FAN_IN = 256
Section = tuple[str, tuple[int, int]]  # a file, and (where the rows start there, how many)


def dump(handle: IO[bytes], rows: Iterable[Any], block: int = 1000) -> tuple[int, int]:
    """Write ``rows`` at ``handle``'s position in pickled blocks of ``block`` (one pickle a row is
    slow, one for them all is big); returns (where they start, how many)."""
    start, count, rows = handle.tell(), 0, iter(rows)
    while part := list(itertools.islice(rows, block)):
        pickle.dump(part, handle, protocol=pickle.HIGHEST_PROTOCOL)
        count += len(part)
    return start, count


def read(section: Section) -> Iterator[Any]:
    """The rows of a section, in order."""
    path, (offset, count) = section
    with open(path, "rb") as handle:
        handle.seek(offset)
        while count > 0:
            part = pickle.load(handle)
            count -= len(part)
            yield from part


def merged(sections: list[Section], key: Callable[[Any], Any], work: Path, tag: str,
           block: int = 1000) -> Iterator[Any]:  # fmt: skip
    """The rows of these sections (each sorted by ``key``) in ``key`` order, the order given among
    equals, at most ``FAN_IN`` files open: beyond, runs of ``FAN_IN`` sections are first merged into
    files of their own in ``work`` (named after ``tag``)."""
    level = 0
    while len(sections) > FAN_IN:
        rounds = []
        for start in range(0, len(sections), FAN_IN):
            path = work / f"merge-{tag}-{level:02d}-{start:08d}.pkl"
            with open(path, "wb") as handle:
                at = dump(handle, _merge(sections[start : start + FAN_IN], key), block)
            rounds.append((str(path), at))
        sections, level = rounds, level + 1
    return _merge(sections, key)


def _merge(sections: list[Section], key: Callable[[Any], Any]) -> Iterator[Any]:
    return heapq.merge(*map(read, sections), key=key)
