"""runstack: a local-first experiment tracker, and a code-dataset hub.

    import runstack
    run = runstack.init(project="mnist", config={"lr": 1e-3})
    for step in range(100):
        runstack.log({"loss": 1 / (step + 1)})
    runstack.finish()

Importing runstack pulls in no ML framework, numpy, pandas or pyarrow.
"""

from __future__ import annotations

from typing import Any

from runstack.core.api import Api, RunView
from runstack.core.artifacts import Artifact
from runstack.core.config import Config
from runstack.core.media import Audio, Histogram, Image
from runstack.core.media_table import Html, Table, Text
from runstack.core.noop import NoOpRun
from runstack.core.run import Run
from runstack.core.session import init
from runstack.errors import RunstackError

__version__ = "0.1.0"


def log(data: dict[str, Any], step: int | None = None, commit: bool = True) -> None:
    """Log metrics to the current run (see ``Run.log``)."""
    from runstack.core.session import current

    current().log(data, step=step, commit=commit)


def define_metric(name: str, summary: str = "last", step_metric: str | None = None) -> None:
    """Set the summary and x-axis of a metric on the current run (see ``Run.define_metric``)."""
    from runstack.core.session import current

    current().define_metric(name, summary=summary, step_metric=step_metric)


def finish(exit_code: int | None = None, status: str | None = None) -> None:
    """Finish the current run, if any (see ``Run.finish``)."""
    from runstack.core.session import current_or_none

    run = current_or_none()
    if run is not None:
        run.finish(exit_code=exit_code, status=status)


def sweep(config: Any, project: str | None = None, dir: Any = None, seed: int | None = None) -> str:
    """Create a sweep from a wandb-style config dict or YAML path; returns its id (see ``runstack.sweeps``)."""
    from runstack.sweeps import sweep as _sweep

    return _sweep(config, project=project, dir=dir, seed=seed)


def agent(sweep_id: str, function: Any = None, count: int | None = None, dir: Any = None) -> int:
    """Run trials of a sweep, in this process with ``function`` or as the sweep's command."""
    from runstack.sweeps import agent as _agent

    return _agent(sweep_id, function=function, count=count, dir=dir)


def watch(model: Any, log: str = "gradients", log_freq: int = 100, run: Any = None) -> None:
    """Record gradient/parameter norms of a torch model through hooks (see ``integrations.torch.watch``)."""
    from runstack.integrations.torch import watch as _watch

    _watch(model, log=log, log_freq=log_freq, run=run)


def unwatch(model: Any = None) -> None:
    """Remove the hooks ``watch`` added."""
    from runstack.integrations.torch import unwatch as _unwatch

    _unwatch(model)


def __getattr__(name: str) -> Any:
    # runstack.run / runstack.config / runstack.summary follow the current run.
    if name in ("run", "config", "summary"):
        from runstack.core.session import current, current_or_none

        if name == "run":
            return current_or_none()
        return getattr(current(), name)
    raise AttributeError(f"module 'runstack' has no attribute {name!r}")


__all__ = [
    "Api",
    "Artifact",
    "Audio",
    "Config",
    "Histogram",
    "Html",
    "Image",
    "NoOpRun",
    "Run",
    "RunView",
    "RunstackError",
    "Table",
    "Text",
    "agent",
    "define_metric",
    "finish",
    "init",
    "log",
    "sweep",
    "unwatch",
    "watch",
]
