"""What every integration shares: importing its framework, the run it logs to, and turning
framework values into config and metrics."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import math
import os
import secrets
from collections.abc import Callable, Mapping
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


def _is_scalar_number(value: Any) -> bool:
    if isinstance(value, bool | int | float):
        return True
    return hasattr(value, "item") and getattr(value, "ndim", 0) == 0 and getattr(value, "dtype", None) is not None


def split_numeric(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Real numbers and bools (loggable) apart from everything else (kept in the summary)."""
    numbers, other = {}, {}
    for key, value in values.items():
        if _is_scalar_number(value) and not getattr(getattr(value, "dtype", None), "kind", "") == "c":
            numbers[key] = value
        else:
            other[key] = value
    return numbers, other


def plain_config(value: Any, _depth: int = 0) -> Any:
    """Framework objects in hyperparameters become JSON.

    Walks dicts and mappings (OmegaConf ``DictConfig`` through ``to_container``), lists, tuples,
    sets, dataclasses, ``argparse.Namespace`` (nested too) and enums; numpy and torch scalars
    and small arrays become numbers and lists; complex numbers become their string; anything
    else becomes ``str(value)``.
    """
    if _depth > 50:
        return str(value)
    deeper = _depth + 1
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, enum.Enum):
        return plain_config(value.value, deeper)
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return plain_config(OmegaConf.to_container(value, resolve=True), deeper)
    if isinstance(value, Mapping):
        return {str(k): plain_config(v, deeper) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_config(v, deeper) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain_config(v, deeper) for v in value), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_config(getattr(value, f.name), deeper) for f in dataclasses.fields(value)}
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return {str(k): plain_config(v, deeper) for k, v in vars(value).items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return plain_config(value.item(), deeper)
    if hasattr(value, "tolist") and getattr(value, "size", 1 << 30) <= 1024 and type(value).__module__ == "numpy":
        return plain_config(value.tolist(), deeper)
    return str(value)


class OwnedRun:
    """The run an integration logs to: the user's ``run=``, or one it starts itself.

    A run the integration started is finished when the framework says training (or
    evaluation) ended, and opened again if the integration logs to it later in the same
    process (``fit`` then ``test``, ``train`` then ``evaluate``): its status is right at every
    moment, and everything lands in one run. A run the user passed is never finished here.

    ``new_run()`` starts a separate run (a hyperparameter trial, a new boosting model); runs
    started by one integration object, or by its copies (sklearn's ``clone``), share a group.
    Pickling keeps the run id, not the open run, so a copy in a spawned process logs to
    the same run.
    """

    def __init__(self, run: Any, init_kwargs: dict[str, Any], kind: str) -> None:
        self.run = run
        self.owned = run is None
        self.init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}
        self.explicit_id = "id" in self.init_kwargs
        self.run_id: str | None = getattr(run, "id", None) or self.init_kwargs.pop("id", None)
        store = getattr(run, "_store", None)
        if store is not None:
            self.init_kwargs.setdefault("dir", str(store.root))
        self.family = f"{kind}-{secrets.token_hex(3)}"
        self.opened = 0  # times this object opened a run
        self.copied = False

    def ensure_id(self) -> str:
        """The id of the run this object logs to, chosen now if no run exists yet."""
        if self.run_id is None:
            from runstack.core.session import new_id

            self.run_id = new_id()
        return self.run_id

    def get(self, rank_hint: tuple[int, int] | None = None) -> Any:
        """The open run: started on first use, opened again when it was finished."""
        run = self.run
        if run is not None and (not run.finished or not self.owned):
            return run  # a user's run is the user's to end
        return self._open(rank_hint)

    def _open(self, rank_hint: tuple[int, int] | None, **overrides: Any) -> Any:
        kwargs = {**self.init_kwargs, **overrides}
        resume = kwargs.pop("resume", "never")
        if self.run_id is not None and (self.opened or self.copied or not self.explicit_id or not self.owned):
            resume = "allow"  # our own run again, or the one a pickled original chose
        self.run = runstack.init(**kwargs, id=self.run_id, resume=resume, rank_hint=rank_hint)
        self.run_id = self.run.id
        self.opened += 1
        return self.run

    def new_run(self, rank_hint: tuple[int, int] | None = None, **overrides: Any) -> Any:
        """Finish the run this object started and start another one, in the same group."""
        if not self.owned:
            return self.get(rank_hint)
        previous = self.run
        if previous is not None and not previous.finished:
            previous.finish()
        if previous is not None or self.copied:
            group = overrides.setdefault("group", self.init_kwargs.get("group") or self.family)
            if previous is not None and not previous.disabled and "group" not in self.init_kwargs:
                previous._store.catalog.update_run(previous.id, run_group=group)
            self.run_id = None  # a new model or trial: a new run
        self.run = None
        return self._open(rank_hint, **overrides)

    # -- training boundaries ---------------------------------------------------------------
    def begin(self, what: str, on_close: Callable[[], bool] | None = None) -> None:
        """Training started: if the run is closed before ``end()``, the training failed
        (unless ``on_close()`` says it completed)."""
        run = self.get()
        if getattr(run, "_activity", None) is not None and self.owned:
            run.finish()  # the previous training never ended: it is recorded as failed
            run = self.get()
        run.begin_activity(what, on_close)

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Training ended: an owned run is finished."""
        if self.run is None:
            return
        self.run.end_activity()
        self.finish(status, error)

    def finish(self, status: str = "finished", error: str | None = None) -> None:
        if self.owned and self.run is not None and not self.run.finished:
            self.run.finish(status=status, error=error)

    # -- pickling --------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if self.owned and self.run is None:
            self.ensure_id()  # a spawned copy logs to the run this object will open too
        return {**self.__dict__, "run": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.copied = True
