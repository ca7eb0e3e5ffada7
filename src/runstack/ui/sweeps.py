"""The dashboard's view of sweeps: trials for a parallel-coordinates chart, and Optuna's
parameter importances. Empty when Optuna (``runstack[sweeps]``) is not installed."""

from __future__ import annotations

from typing import Any

from runstack.core.store import Store
from runstack.ui.data import jsonable


def sweep_list(store: Store) -> list[dict[str, Any]]:
    try:
        from runstack.sweeps.study import Sweep
    except ImportError:
        return []
    out = []
    for sweep_id in Sweep.ids(store):
        one = Sweep(store, sweep_id)
        trials = one.trials()
        best = one.best(1)
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial["status"]] = counts.get(trial["status"], 0) + 1
        out.append({"id": sweep_id, "project": one.project, "state": one.state, "method": one.config.method,
                    "metric": one.config.metric, "goal": one.config.goal, "counts": counts,
                    "best": best[0]["value"] if best else None})  # fmt: skip
    return jsonable(out)


def sweep_detail(store: Store, sweep_id: str) -> dict[str, Any]:
    import optuna

    from runstack.sweeps.config import flatten
    from runstack.sweeps.study import Sweep

    one = Sweep(store, sweep_id)
    try:
        importances = dict(optuna.importance.get_param_importances(one.study))
    except (ValueError, RuntimeError):  # too few finished trials to tell
        importances = {}
    searched = [p.name for p in one.config.searched]
    trials = [{**t, "config": flatten(t["config"])} for t in one.trials()]
    return jsonable({"id": sweep_id, "project": one.project, "state": one.state, "method": one.config.method,
                     "metric": one.config.metric, "goal": one.config.goal, "params": searched,
                     "trials": trials, "importances": {k: float(v) for k, v in importances.items()}})  # fmt: skip
