"""XGBoost: ``xgb.train(..., callbacks=[RunstackCallback()])``, ``xgb.cv`` and the sklearn API."""

from __future__ import annotations

import json
from typing import Any

from runstack.integrations._common import OwnedRun, require

xgb = require("xgboost", "xgboost")


def _params(config_json: str) -> dict[str, Any]:
    """The leaf settings of XGBoost's saved config ("max_depth": 3, ...), numbers parsed, plus
    ``eval_metric``, which the config keeps as a list under ``learner.metrics``."""
    out: dict[str, Any] = {}

    def walk(node: Any) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, str) and key not in out:
                try:
                    out[key] = json.loads(value) if value not in ("", "nan") else value
                except ValueError:
                    out[key] = value

    config = json.loads(config_json)
    walk(config)
    metrics = config.get("learner", {}).get("metrics")
    if metrics:
        out["eval_metric"] = [m["name"] for m in metrics if isinstance(m, dict) and "name" in m]
    return out


class RunstackCallback(xgb.callback.TrainingCallback):  # type: ignore[misc, name-defined]
    """Every ``evals_log`` metric per iteration (``<data>/<metric>``; under ``xgb.cv``
    ``-mean`` and ``-std``), best iteration/score and feature importance in the summary.

    Each training is its own run (a new model), finished when training ends; trainings by one
    callback, or by its copies (sklearn's ``clone`` in ``GridSearchCV``), share a group. With
    ``run=`` every training logs into that run, which is left open.
    """

    def __init__(self, run: Any = None, importance_type: str | None = "gain", **init_kwargs: Any) -> None:
        self._owned = OwnedRun(run, init_kwargs, "xgboost")
        self.importance_type = importance_type

    def before_training(self, model: Any) -> Any:
        run = self._owned.new_run()
        booster = model.cvfolds[0].bst if hasattr(model, "cvfolds") else model
        run.config.update(_params(booster.save_config()))
        self._owned.begin("xgboost training")
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
        data: dict[str, float] = {}
        for dataset, metrics in evals_log.items():
            for name, history in metrics.items():
                last = history[-1]
                if isinstance(last, tuple):  # xgb.cv: (mean, std) over folds
                    data[f"{dataset}/{name}-mean"], data[f"{dataset}/{name}-std"] = last
                else:
                    data[f"{dataset}/{name}"] = last
        if data:
            self._owned.get().log(data, step=epoch)
        return False

    def after_training(self, model: Any) -> Any:
        run = self._owned.get()
        if not hasattr(model, "cvfolds"):
            summary = {attr: json.loads(value) for attr in ("best_iteration", "best_score")
                       if (value := model.attr(attr)) is not None}  # fmt: skip
            if self.importance_type:
                summary["feature_importance"] = model.get_score(importance_type=self.importance_type)
            run.summary.update(summary)
        self._owned.end()
        return model
