"""A sweep: an Optuna study kept in the store, shared by every agent that opens it.

    <store>/sweeps/journal.log      Optuna's journal storage: one study per sweep (its id)
    <store>/sweeps/<id>.lock        held while an agent claims its next trial

Claiming (the stop/cap/grid checks, ``ask()`` and the trial's run id) happens under the lock,
so agents in different processes never run a grid point twice or pass ``run_cap``. A trial
whose agent died is found by the next claim and recorded as ``crashed``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runstack.core.envinfo import process_started
from runstack.core.store import Store
from runstack.errors import RunNotFoundError, RunstackError, SweepConfigError
from runstack.sweeps.config import SweepConfig, parse

FINAL = ("finished", "failed", "crashed", "pruned")


@dataclass(frozen=True)
class Claimed:
    """The trial an agent runs next."""

    number: int
    config: dict[str, Any]
    run_id: str
    name: str


def _storage(store: Store) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    folder = store.root / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / "journal.log")))


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


class Sweep:
    """An existing sweep of a store (``Sweep.create`` makes one)."""

    def __init__(self, store: Store, sweep_id: str, seed: int | None = None) -> None:
        import optuna

        _quiet()
        self.store, self.id = store, sweep_id
        storage = _storage(store)
        try:
            attrs = optuna.load_study(study_name=sweep_id, storage=storage).user_attrs
        except KeyError:
            raise RunNotFoundError(f"sweep {sweep_id}", str(store.root)) from None
        self.config: SweepConfig = parse(attrs["config"])
        self.project: str = attrs["project"]
        self.seed = attrs.get("seed") if seed is None else seed
        self.study = optuna.load_study(study_name=sweep_id, storage=storage, sampler=self._sampler(self.seed),
                                       pruner=self.config.pruner())  # fmt: skip

    @classmethod
    def create(cls, store: Store, raw: dict[str, Any], project: str | None = None, seed: int | None = None) -> Sweep:
        """Check ``raw`` (the YAML as a dict) and start a sweep; returns it (its id is ``.id``)."""
        import optuna

        _quiet()
        config = parse(raw)
        project = project or config.project or os.environ.get("RUNSTACK_PROJECT") or "default"
        from runstack.core.values import check_project

        check_project(project)
        sweep_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        direction = "maximize" if config.goal == "maximize" else "minimize"
        study = optuna.create_study(study_name=sweep_id, storage=_storage(store), direction=direction)
        for key, value in {"config": raw, "project": project, "state": "running", "created_at": time.time(),
                           "seed": seed}.items():  # fmt: skip
            study.set_user_attr(key, value)
        return cls(store, sweep_id)

    @staticmethod
    def ids(store: Store) -> list[str]:
        if not (store.root / "sweeps" / "journal.log").exists():
            return []
        return [s.study_name for s in _storage(store).get_all_studies()]

    def _sampler(self, seed: int | None) -> Any:
        import optuna

        if self.config.method == "grid":
            space = {p.name: p.grid() for p in self.config.searched}

            class Grid(optuna.samplers.GridSampler):  # type: ignore[misc]
                def after_trial(self, *args: Any, **kwargs: Any) -> None:
                    """Claims stop at the grid's size; Optuna's study.stop() only works inside optimize()."""

            return Grid(space, seed=seed)
        if self.config.method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return str(self.study._storage.get_study_user_attrs(self.study._study_id).get("state", "running"))

    def stop(self) -> None:
        """Start no new trial; running trials finish."""
        self.study.set_user_attr("state", "stopped")

    def resume(self) -> None:
        self.study.set_user_attr("state", "running")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        fd = os.open(self.store.root / "sweeps" / f"{self.id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- trials ----------------------------------------------------------------------------
    def claim(self) -> Claimed | None:
        """The next trial for this agent, or None when the sweep is stopped, capped or done."""
        from optuna.trial import TrialState

        with self._lock():
            self.reconcile()
            trials = self.study.get_trials(deepcopy=False)
            if self.state != "running":
                return None
            if self.config.run_cap is not None and len(trials) >= self.config.run_cap:
                return None
            if self.config.method == "grid" and len(trials) >= self.config.grid_size():
                return None
            if self.seed is not None:  # a seeded sweep draws the same trials however many agents share it
                self.study.sampler = self._sampler((self.seed * 1_000_003 + len(trials)) % 2**32)
            trial = self.study.ask({p.name: p.distribution() for p in self.config.searched})
            run_id, name = f"{self.id}-t{trial.number}", f"trial-{trial.number}"
            me = {"host": socket.gethostname(), "pid": os.getpid(), "started": process_started(os.getpid())}
            for key, value in {"run_id": run_id, "agent": me, "status": "running"}.items():
                trial.set_user_attr(key, value)
            assert trial._cached_frozen_trial.state == TrialState.RUNNING
            return Claimed(trial.number, self.config.config_of(trial.params), run_id, name)

    def finish_trial(self, claimed: Claimed) -> str:
        """Record the trial's outcome from its run (status, and the metric's summary value); reading
        the run through ``Api`` first marks it crashed if its process died without finish()."""
        return self._settle(claimed.number, claimed.run_id)

    def _settle(self, number: int, run_id: str, dead_agent: bool = False) -> str:
        from optuna.trial import TrialState

        from runstack.core.api import Api

        try:
            view = Api(self.store.root).run(run_id)
            status, summary = view.status, view.summary
        except RunstackError:
            status, summary = "crashed", {}
        if status == "running":
            status = "crashed" if dead_agent else "failed"
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        self.study._storage.set_trial_user_attr(trial_id, "status", status)
        value = summary.get(self.config.metric) if self.config.metric else 0.0
        if status == "finished" and isinstance(value, int | float) and value == value:
            self.study.tell(number, float(value))
        elif status == "pruned":
            self.study.tell(number, state=TrialState.PRUNED)
        else:
            self.study.tell(number, state=TrialState.FAIL)
        return status

    def reconcile(self) -> list[int]:
        """Settle trials whose agent died (killed mid-trial): returns their numbers."""
        from optuna.trial import TrialState

        host, settled = socket.gethostname(), []
        self.store.reconcile()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            agent = trial.user_attrs.get("agent") or {}
            if agent.get("host") != host:
                continue  # another machine's agent: its run's heartbeat decides, via the run status
            started = process_started(agent["pid"]) if agent.get("pid") else None
            alive = started is not None and (agent.get("started") is None or abs(started - agent["started"]) < 1.0)
            if not alive:
                self._settle(trial.number, trial.user_attrs["run_id"], dead_agent=True)
                settled.append(trial.number)
        return settled

    def trials(self) -> list[dict[str, Any]]:
        """Every trial: number, status, config, metric value and run id."""
        out = []
        for t in self.study.get_trials(deepcopy=False):
            status = t.user_attrs.get("status", "running")
            out.append({"number": t.number, "status": status, "config": self.config.config_of(t.params),
                        "value": t.value, "run_id": t.user_attrs.get("run_id")})  # fmt: skip
        return out

    def best(self, n: int = 5) -> list[dict[str, Any]]:
        done = [t for t in self.trials() if t["status"] == "finished" and t["value"] is not None]
        return sorted(done, key=lambda t: t["value"], reverse=self.config.goal == "maximize")[:n]


def load_yaml(path: str) -> dict[str, Any]:
    """A sweep file (YAML or JSON) as a dict, or SweepConfigError saying why not."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise SweepConfigError("<file>", path, f"cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SweepConfigError("<file>", path, f"not valid YAML: {exc}") from exc
    return raw
