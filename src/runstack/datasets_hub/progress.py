"""Progress of a build as a callback ``(stage, done, total)``: the CLI draws rich bars from it;
library callers get nothing unless they pass ``progress=True`` or their own callable."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Progress = Callable[[str, int, int], None]


def _silent(stage: str, done: int, total: int) -> None:
    return None


@contextlib.contextmanager
def progress_of(progress: bool | Progress) -> Iterator[Progress]:
    if callable(progress):
        yield progress
        return
    if not progress:
        yield _silent
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    tasks: dict[str, int] = {}
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Bars(*columns, transient=False) as bars:

        def show(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

        yield show
