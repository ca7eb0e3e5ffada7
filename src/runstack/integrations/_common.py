"""What every integration shares: importing its framework, and the run it logs to."""

from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Any

import runstack
from runstack.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import a framework, or raise MissingDependencyError naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra) from exc


def split_numeric(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numbers and bools (loggable) apart from everything else (kept in the summary)."""
    numbers, other = {}, {}
    for key, value in values.items():
        if isinstance(value, (int, float)) or hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            numbers[key] = value
        else:
            other[key] = value
    return numbers, other


def plain_config(value: Any) -> Any:
    """Framework objects in hyperparameters become JSON: containers are walked, the rest is str()."""
    if isinstance(value, dict):
        return {str(k): plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_config(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return str(value)


class OwnedRun:
    """The run an integration logs to: the user's ``run=``, or one it starts on first use.

    A run the integration started is finished by it when training ends; a run the
    user passed is left open for the user.
    """

    def __init__(self, run: Any, init_kwargs: dict[str, Any]) -> None:
        self.run = run
        self.owned = run is None
        self.init_kwargs = init_kwargs

    def get(self, rank_hint: tuple[int, int] | None = None) -> Any:
        if self.run is None:
            self.run = runstack.init(**self.init_kwargs, rank_hint=rank_hint)
        return self.run

    def finish(self, status: str = "finished") -> None:
        if self.owned and self.run is not None:
            self.run.finish(status=status)
