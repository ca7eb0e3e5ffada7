"""Steps a user adds to a build: importable by name, as worker processes need them."""

from __future__ import annotations

import time

from runstack.datasets_hub import Filter, PipelineStep, SourceFile


def no_settings(record: SourceFile) -> bool | str:
    """A filter function: settings modules are not training data here."""
    return "settings file" if record.path.rsplit("/", 1)[-1].startswith("settings") else True


class MaxLines(Filter):
    """A Filter subclass with a parameter the manifest records."""

    name = "max-lines"
    version = "2"

    def __init__(self, limit: int = 1000) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, record: SourceFile) -> bool | str:
        return record.content.count("\n") <= self.limit or f"more than {self.limit} lines"


class Explode(Filter):
    """Fails on a named file: a build that breaks part-way."""

    name = "explode"

    def keep(self, record: SourceFile) -> bool | str:
        if record.path.endswith("app.js"):
            raise RuntimeError("this step broke")
        return True


class Slow(PipelineStep):
    """Takes its time per file: a build long enough to be killed part-way."""

    name = "slow"

    def __init__(self, seconds: float = 0.05) -> None:
        super().__init__()
        self.seconds = seconds

    def process(self, record: SourceFile) -> SourceFile | str | None:
        time.sleep(self.seconds)
        return record
