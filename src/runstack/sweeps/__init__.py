"""Hyperparameter sweeps in the YAML wandb users know, searched by Optuna, run by agents that
share one sweep through the store (``pip install '.[sweeps]'``).

    sweep_id = runstack.sweep({"method": "bayes", "metric": {"name": "loss"}, "parameters": {...}})
    runstack.agent(sweep_id, function=train, count=20)

Importing this package imports no Optuna; the functions do when called.
"""

from __future__ import annotations

import os
from typing import Any

from runstack.sweeps.trial import TrialPruned


def sweep(config: dict[str, Any] | str, project: str | None = None, dir: str | os.PathLike[str] | None = None,
          seed: int | None = None) -> str:  # fmt: skip
    """Create a sweep from a config dict (or the path of a YAML file); returns its id.

    Raises:
        SweepConfigError: a field that is missing or invalid (named, with the fix).
        MissingDependencyError: Optuna or PyYAML is not installed.
    """
    from runstack.core.store import Store
    from runstack.sweeps.study import Sweep, load_yaml

    _require()
    raw = load_yaml(config) if isinstance(config, str) else config
    return Sweep.create(Store(dir), raw, project=project, seed=seed).id


def agent(
    sweep_id: str, function: Any = None, count: int | None = None, dir: str | os.PathLike[str] | None = None
) -> int:
    """Run trials of a sweep (see ``runstack.sweeps.runner.agent``); returns how many ran."""
    from runstack.sweeps.runner import agent as run_agent

    _require()
    return run_agent(sweep_id, function=function, count=count, dir=dir)


def _require() -> None:
    from runstack.errors import MissingDependencyError

    for module, package in (("optuna", "optuna"), ("yaml", "pyyaml")):
        try:
            __import__(module)
        except ImportError as exc:
            raise MissingDependencyError(package, "sweeps") from exc


__all__ = ["TrialPruned", "agent", "sweep"]
