from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

import runstack  # noqa: E402
from runstack.integrations.xgboost import RunstackCallback  # noqa: E402


def _data(n=300):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5))
    return x, x @ np.arange(5) + rng.normal(scale=0.5, size=n)


def test_cv_logs_mean_and_std_per_iteration(store_dir):
    x, y = _data()
    callback = RunstackCallback(project="x")
    result = xgb.cv({"max_depth": 2, "eta": 0.3}, xgb.DMatrix(x, y), num_boost_round=8, nfold=3, seed=0,
                    callbacks=[callback], as_pandas=True)  # fmt: skip
    view = runstack.Api(store_dir).run(callback._owned.run.id)
    frame = view.history()
    assert view.status == "finished" and frame["_step"].tolist() == list(range(8))
    for column in ("train-rmse-mean", "train-rmse-std", "test-rmse-mean", "test-rmse-std"):
        data, metric, stat = column.split("-")
        assert frame[f"{data}/{metric}-{stat}"].tolist() == pytest.approx(result[column].tolist(), rel=1e-9)


def test_sklearn_api_and_early_stopping(store_dir):
    x, y = _data(400)
    callback = RunstackCallback(project="x")
    model = xgb.XGBRegressor(n_estimators=200, max_depth=2, learning_rate=0.5, early_stopping_rounds=5,
                             callbacks=[callback])  # fmt: skip
    model.fit(x[:300], y[:300], eval_set=[(x[300:], y[300:])], verbose=False)
    view = runstack.Api(store_dir).run(callback._owned.run.id)
    assert view.status == "finished"
    assert view.summary["best_iteration"] == model.best_iteration < 199
    assert view.summary["best_score"] == pytest.approx(model.best_score)
    rmse = view.history(keys=["validation_0/rmse"])
    assert rmse["validation_0/rmse"].tolist() == pytest.approx(model.evals_result()["validation_0"]["rmse"])
    assert set(view.summary["feature_importance"]) == {f"f{i}" for i in range(5)}
