"""Pipeline steps in the datatrove style: a step is a generator over records.

``PipelineStep.run(records, rank, world_size)`` yields records on; a ``Filter`` subclass
writes one method, ``keep(record) -> bool | str`` (a string is the drop reason), and the
base class owns the loop, the counters and the drop reasons.
"""

from __future__ import annotations

import pickle
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runstack.datasets_hub.record import SourceFile


def _plain(value: Any) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return hasattr(value, "__dataclass_fields__")


@dataclass
class StepStats:
    name: str
    seen: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)

    def merge(self, other: StepStats) -> None:
        self.seen += other.seen
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.counters.update(other.counters)


class PipelineStep:
    """A stage: reads records, yields records. Subclasses implement ``process``."""

    name = "step"
    version = "1"  # raise it when the step's output changes for the same input and parameters

    def __init__(self) -> None:
        self.stats = StepStats(self.name)

    def params(self) -> dict[str, Any]:
        """The settings recorded in the manifest: the step's plain-valued attributes by default."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in ("stats", "name")
                and _plain(v)}  # fmt: skip

    def process(self, record: SourceFile) -> SourceFile | str | None:
        """Return the record (possibly changed), or a drop reason."""
        return record

    def run(self, records: Iterable[SourceFile], rank: int = 0, world_size: int = 1) -> Iterator[SourceFile]:
        for record in records:
            self.stats.seen += 1
            result = self.process(record)
            if isinstance(result, SourceFile):
                self.stats.kept += 1
                yield result
            else:
                self.stats.dropped[result or self.name] += 1


class Filter(PipelineStep):
    """A step that only decides: ``keep`` returns True, or False / a drop reason."""

    def keep(self, record: SourceFile) -> bool | str:
        raise NotImplementedError

    def process(self, record: SourceFile) -> SourceFile | str | None:
        verdict = self.keep(record)
        if verdict is True:
            return record
        return verdict if isinstance(verdict, str) else self.name


class RecordBuffer:
    """Records held for a second pass (a step that must see a whole repository first), in memory up
    to ``limit`` bytes of content and in a temporary file beyond: a large repository's files are
    never all in memory. Iterating yields them in the order added, once."""

    def __init__(self, limit: int = 64 << 20) -> None:
        self.limit, self.size, self.count = limit, 0, 0
        self.held: list[SourceFile] = []
        self.file: Any = None  # the records beyond the limit, pickled one after another

    def __len__(self) -> int:
        return self.count

    def add(self, record: SourceFile) -> None:
        self.count += 1
        if self.file is None and self.size + len(record.content) <= self.limit:
            self.size += len(record.content)
            self.held.append(record)
            return
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="runstack-records-")
        pickle.dump(record, self.file, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[SourceFile]:
        held, self.held = self.held, []
        yield from held
        if self.file is not None:
            with self.file:
                self.file.seek(0)
                for _ in range(self.count - len(held)):
                    yield pickle.load(self.file)
            self.file = None
