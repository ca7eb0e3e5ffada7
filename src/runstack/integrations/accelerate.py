"""Hugging Face Accelerate: ``Accelerator(log_with="runstack")`` (or ``log_with=[RunstackTracker(...)]``).

Importing this module registers the tracker by name, so ``log_with="runstack"`` and
``log_with="all"`` pick it up after ``import runstack.integrations.accelerate``.
"""

from __future__ import annotations

from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require, split_numeric

tracking = require("accelerate.tracking", "accelerate")
state = require("accelerate.state", "accelerate")


class RunstackTracker(tracking.GeneralTracker):  # type: ignore[misc, name-defined]
    """A real ``GeneralTracker``: ``init_trackers`` config into config, ``accelerator.log``
    into history, ``end_training`` finishes the run. Rank is decided by runstack's core
    (told accelerate's process index), so every process may call it.

    Args:
        run_name: the project, as Accelerate passes ``init_trackers``' ``project_name`` first.
        run: an existing run to log to (left open).
        **init_kwargs: passed to ``runstack.init``; from ``init_trackers(..., init_kwargs={"runstack": {...}})``
            when Accelerate builds the tracker by name.
    """

    name = "runstack"
    requires_logging_directory = False
    main_process_only = False

    def __init__(self, run_name: str | None = None, run: Any = None, **init_kwargs: Any) -> None:
        super().__init__()
        init_kwargs.setdefault("project", run_name)
        self._owned = OwnedRun(run, init_kwargs, "accelerate")

    def start(self) -> None:
        partial = state.PartialState()
        self._owned.get(rank_hint=(partial.process_index, partial.num_processes))

    @property
    def tracker(self) -> Any:
        if self._owned.run is None or self._owned.run.finished:
            self.start()
        return self._owned.run

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.tracker.config.update(plain_config(values))

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        numbers, other = split_numeric(values)
        if numbers:
            self.tracker.log(numbers, step=step)
        for key, value in other.items():
            self.tracker.summary[key] = plain_config(value)

    def finish(self) -> None:
        self._owned.finish()


tracking.LOGGER_TYPE_TO_CLASS.setdefault(RunstackTracker.name, RunstackTracker)
_available = getattr(tracking, "_available_trackers", None)  # what log_with="all" starts
if isinstance(_available, list) and RunstackTracker.name not in _available:
    _available.append(RunstackTracker.name)
