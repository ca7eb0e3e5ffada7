from __future__ import annotations

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

import runstack  # noqa: E402
from runstack.integrations.lightgbm import log_summary, runstack_callback  # noqa: E402


def _datasets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    y = x @ np.arange(5) + rng.normal(scale=0.5, size=600)
    train = lgb.Dataset(x[:450], y[:450])
    return train, lgb.Dataset(x[450:], y[450:], reference=train)


def test_early_stopping_best_iteration(store_dir):
    train, valid = _datasets()
    callback = runstack_callback(project="l")
    booster = lgb.train({"objective": "regression", "learning_rate": 0.5, "verbose": -1}, train, 500,
                        valid_sets=[valid], callbacks=[callback, lgb.early_stopping(5, verbose=False)])  # fmt: skip
    assert 0 < booster.best_iteration < 500
    assert callback.best["valid_0/l2"][1] == booster.best_iteration  # tracked before the stop
    log_summary(booster, callback)
    view = runstack.Api(store_dir).run(callback._owned.run.id)
    assert view.status == "finished" and view.summary["best_iteration"] == booster.best_iteration
    assert view.summary["best_score"] == {"valid_0": {"l2": pytest.approx(booster.best_score["valid_0"]["l2"])}}
    # The iteration that triggered the stop is in the history too.
    assert view.history(keys=["valid_0/l2"])["_step"].tolist() == list(range(booster.best_iteration + 5))


def test_cv_mean_and_stdv(store_dir):
    train, _ = _datasets()
    callback = runstack_callback(project="l")
    result = lgb.cv({"objective": "regression", "verbose": -1, "metric": "l2"}, train, 6, nfold=3, seed=0, stratified=False,
                    callbacks=[callback])  # fmt: skip
    frame = runstack.Api(store_dir).run(callback._owned.run.id).history()
    assert frame["valid/l2-mean"].tolist() == pytest.approx(result["valid l2-mean"])
    assert frame["valid/l2-stdv"].tolist() == pytest.approx(result["valid l2-stdv"])


def test_older_plain_tuple_results(store_dir):
    callback = runstack_callback(project="l", log_feature_importance=False)
    for i, value in enumerate([0.5, 0.3, 0.4]):
        env = lgb.callback.CallbackEnv(model=None, params={"num_leaves": 3}, iteration=i, begin_iteration=0,
                                       end_iteration=3, evaluation_result_list=[("valid_0", "auc", value, True),
                                                                                ("cv_agg", "l1", value, False, 0.1)])  # fmt: skip
        callback(env)
    view = runstack.Api(store_dir).run(callback._owned.run.id)
    assert view.status == "finished" and view.config == {"num_leaves": 3}
    assert view.summary["best_iteration"] == 1 and view.summary["valid_0/auc"] == 0.5
    assert view.summary["cv_agg/l1-mean"] == 0.3 and view.history()["cv_agg/l1-stdv"].tolist() == [0.1] * 3
