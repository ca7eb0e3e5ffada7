"""Inside a trial: ``runstack.init()`` joins the sweep, and logging the sweep metric reports it
to the pruner, which may end the trial early.

The agent passes the trial through environment variables (so a trial may be a subprocess):
``RUNSTACK_SWEEP_ID``, ``RUNSTACK_SWEEP_RUN_ID``, ``RUNSTACK_SWEEP_NAME``,
``RUNSTACK_SWEEP_PARAMS`` (JSON), ``RUNSTACK_SWEEP_TRIAL`` and, with ``early_terminate``,
``RUNSTACK_SWEEP_METRIC``. Core reads the first ones without importing Optuna.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV_KEYS = ("RUNSTACK_SWEEP_ID", "RUNSTACK_SWEEP_RUN_ID", "RUNSTACK_SWEEP_NAME", "RUNSTACK_SWEEP_PARAMS",
            "RUNSTACK_SWEEP_TRIAL", "RUNSTACK_SWEEP_METRIC")  # fmt: skip


class TrialPruned(SystemExit):
    """Raised from ``run.log`` when the pruner stops the trial. A ``SystemExit`` (code 0), so
    ``except Exception`` in training code does not swallow it and a trial program exits quietly;
    the run is finished with status ``pruned``."""

    def __init__(self, sweep_id: str, number: int, step: int) -> None:
        super().__init__(0)
        self.sweep_id, self.number, self.step = sweep_id, number, step

    def __str__(self) -> str:
        return f"trial {self.number} of sweep {self.sweep_id} was stopped early (after {self.step} reports)"


def context() -> dict[str, Any] | None:
    """The trial this process runs, from the environment (None outside a sweep)."""
    if not os.environ.get("RUNSTACK_SWEEP_ID"):
        return None
    return {"sweep_id": os.environ["RUNSTACK_SWEEP_ID"], "run_id": os.environ.get("RUNSTACK_SWEEP_RUN_ID"),
            "name": os.environ.get("RUNSTACK_SWEEP_NAME"),
            "params": json.loads(os.environ.get("RUNSTACK_SWEEP_PARAMS") or "{}")}  # fmt: skip


def attach(run: Any) -> None:
    """Report the sweep metric to the pruner each time ``run`` logs it (only with early_terminate)."""
    metric = os.environ.get("RUNSTACK_SWEEP_METRIC")
    if not metric or getattr(run, "_sweep_reporter", None) is not None or run.disabled:
        return
    reporter = _Reporter(run, metric)
    run._sweep_reporter = reporter
    plain_log = run.log

    def log(data: dict[str, Any], step: int | None = None, commit: bool = True) -> None:
        plain_log(data, step=step, commit=commit)
        value = _lookup(data, metric)
        if value is not None:
            reporter.report(float(value))

    run.log = log


def _lookup(data: Any, metric: str) -> Any:
    if not isinstance(data, dict):
        return None
    if metric in data:
        return data[metric]
    head, _, rest = metric.partition("/")
    return _lookup(data.get(head), rest) if rest and isinstance(data.get(head), dict) else None


class _Reporter:
    def __init__(self, run: Any, metric: str) -> None:
        self.run, self.metric, self.count = run, metric, 0
        self.number = int(os.environ["RUNSTACK_SWEEP_TRIAL"])
        self.trial: Any = None

    def _trial(self) -> Any:
        if self.trial is None:
            import optuna

            from runstack.sweeps.study import Sweep

            sweep = Sweep(self.run._store, os.environ["RUNSTACK_SWEEP_ID"])
            storage = sweep.study._storage
            trial_id = storage.get_trial_id_from_study_id_trial_number(sweep.study._study_id, self.number)
            self.trial = optuna.trial.Trial(sweep.study, trial_id)
        return self.trial

    def report(self, value: float) -> None:
        if value != value:  # NaN: nothing to compare
            return
        self.count += 1
        trial = self._trial()
        trial.report(value, self.count)
        if trial.should_prune():
            self.run.forced_status = "pruned"
            raise TrialPruned(os.environ["RUNSTACK_SWEEP_ID"], self.number, self.count)
