"""Hugging Face Accelerate: ``Accelerator(log_with=[RunstackTracker(project="llm")])``."""

from __future__ import annotations

from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require, split_numeric

tracking = require("accelerate.tracking", "accelerate")
state = require("accelerate.state", "accelerate")


class RunstackTracker(tracking.GeneralTracker):  # type: ignore[misc, name-defined]
    """A real ``GeneralTracker``: ``init_trackers`` config into config, ``accelerator.log``
    into history, ``end_training`` finishes the run. Rank is decided by runstack's core
    (told accelerate's process index), so every process may call it.
    """

    name = "runstack"
    requires_logging_directory = False
    main_process_only = False

    def __init__(self, run: Any = None, **init_kwargs: Any) -> None:
        super().__init__()
        self._owned = OwnedRun(run, init_kwargs)

    def start(self) -> None:
        partial = state.PartialState()
        self._owned.get(rank_hint=(partial.process_index, partial.num_processes))

    @property
    def tracker(self) -> Any:
        if self._owned.run is None:
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
