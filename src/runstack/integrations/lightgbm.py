"""LightGBM: ``lgb.train(..., callbacks=[runstack_callback()])`` (also ``lgb.cv`` and the sklearn API)."""

from __future__ import annotations

from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require

lgb = require("lightgbm", "lightgbm")


class RunstackCallback:
    """Logs every evaluation result per iteration and tracks the best iteration.

    Runs before ``lgb.early_stopping`` (order 30), so the iteration that triggers early
    stopping is logged too. The best iteration (1-based, as LightGBM counts) is that of
    the first validation metric, which is what early stopping with one metric (or
    ``first_metric_only=True``) reports.

    Each training is its own run (a new model), finished at its last iteration; one that
    early stopping ended is finished (with LightGBM's own best iteration) when the next
    training starts, at ``log_summary``, or at exit. Trainings by one callback object or its
    copies (``GridSearchCV``) share a group. With ``run=`` all log into that run, left open.
    """

    order = 25
    before_iteration = False

    def __init__(self, run: Any = None, log_feature_importance: bool = True, **init_kwargs: Any) -> None:
        self._owned = OwnedRun(run, init_kwargs, "lightgbm")
        self.log_feature_importance = log_feature_importance
        self.best: dict[str, tuple[float, int]] = {}
        self._first: str | None = None
        self._model: Any = None

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            self._start(env)
        run = self._owned.get()
        data = {}
        for result in env.evaluation_result_list or []:
            dataset, metric, value, maximize = result[:4]
            std = result[4] if len(result) > 4 else None  # EvalResult (4.7+) or plain tuples (older, cv)
            key = f"{dataset}/{metric}" + ("-mean" if std is not None else "")
            if key not in self.best:
                run.define_metric(key, summary="max" if maximize else "min")
                self._first = self._first or (key if dataset != "training" else None)
            data[key] = value
            if std is not None:
                data[f"{dataset}/{metric}-stdv"] = std
            best = self.best.get(key)
            if best is None or (value > best[0] if maximize else value < best[0]):
                self.best[key] = (value, env.iteration + 1)
        if data:
            run.log(data, step=env.iteration)
        if env.iteration == env.end_iteration - 1:
            self.finish(env.model)

    def _start(self, env: Any) -> None:
        if self._model is not None:
            self._close_early_stopped()
        self.best, self._first, self._model = {}, None, env.model
        run = self._owned.new_run()
        run.config.update(plain_config(env.params))
        self._owned.begin("lightgbm training", on_close=self._close_early_stopped)

    def _close_early_stopped(self) -> bool:
        """Asked when the run closes before the last iteration: early stopping (LightGBM set
        the booster's best iteration) is a completed training; anything else raised."""
        model, self._model = self._model, None
        stopped = (getattr(model, "best_iteration", 0) or 0) > 0
        if stopped:
            scores = getattr(model, "best_score", None)
            best = (model.best_iteration, {d: dict(m) for d, m in scores.items()}) if scores else None
            self._write_summary(model, best)
            self._owned.end()
        return stopped

    def finish(self, model: Any = None, best: tuple[int, Any] | None = None) -> None:
        """Write the best iteration and score (``best`` overrides the tracked one) and feature
        importance, and finish a run this callback started."""
        self._model = None
        self._write_summary(model, best)
        self._owned.end()

    def _write_summary(self, model: Any, best: tuple[int, Any] | None) -> None:
        run = self._owned.get()
        if best is None and self._first is not None:
            best = self.best[self._first][1], self.best[self._first][0]
        summary: dict[str, Any] = {}
        if best is not None:
            summary["best_iteration"], summary["best_score"] = best
        if isinstance(model, lgb.Booster) and self.log_feature_importance:  # a CVBooster has one per fold
            gains = model.feature_importance(importance_type="gain")
            summary["feature_importance"] = dict(zip(model.feature_name(), map(float, gains), strict=True))
        if summary:
            run.summary.update(summary)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}


def runstack_callback(run: Any = None, log_feature_importance: bool = True, **init_kwargs: Any) -> RunstackCallback:
    """A LightGBM callback logging to ``run`` (or a run started with ``init_kwargs``)."""
    return RunstackCallback(run, log_feature_importance, **init_kwargs)


def log_summary(booster: Any, callback: RunstackCallback) -> None:
    """After early stopping: record LightGBM's own best iteration and score, and finish now
    (otherwise that happens at the next training or at exit)."""
    best = None
    if booster.best_iteration:
        best = booster.best_iteration, {d: dict(m) for d, m in booster.best_score.items()}
    callback.finish(booster, best)
