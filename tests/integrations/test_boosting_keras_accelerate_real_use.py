"""Keras, XGBoost, LightGBM and Accelerate as users really drive them: callbacks reused,
estimators refitted and searched, models pickled, trackers picked by name."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import runstack


def _xy(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, x @ np.arange(1, 5, dtype=np.float32) + rng.normal(scale=0.1, size=n).astype(np.float32)


@pytest.mark.slow
def test_keras_callback_reused_across_fits_continues_one_run(store_dir):
    keras = pytest.importorskip("keras")
    from runstack.integrations.keras import RunstackCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _xy()
    callback = RunstackCallback(project="k")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    assert runstack.Api(store_dir).run(callback._owned.run_id).status == "finished"
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0, callbacks=[callback])
    (view,) = runstack.Api(store_dir).runs()
    assert view.status == "finished" and view.history()["epoch"].tolist() == [0, 1, 2, 3]
    pickle.loads(pickle.dumps(callback))  # a reused callback stays picklable


@pytest.mark.slow
def test_xgboost_refit_and_grid_search_give_one_finished_run_per_model_in_one_group(store_dir, tmp_path):
    pytest.importorskip("xgboost")
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV
    from xgboost import XGBRegressor

    from runstack.integrations.xgboost import RunstackCallback

    x, y = _xy()
    model = XGBRegressor(n_estimators=5, callbacks=[RunstackCallback(project="xgb")], eval_metric=["rmse", "mae"])
    model.fit(x, y, eval_set=[(x, y)], verbose=False)
    model.fit(x[:60], y[:60], eval_set=[(x, y)], verbose=False)  # a refit is a new model: a new run
    first, second = runstack.Api(store_dir).runs(order="created_at")
    assert first.status == second.status == "finished" and first.group == second.group is not None
    assert first.config["eval_metric"] == ["rmse", "mae"]
    joblib.dump(model, tmp_path / "model.joblib")
    assert joblib.load(tmp_path / "model.joblib").predict(x[:3]).shape == (3,)

    search = GridSearchCV(XGBRegressor(n_estimators=3, callbacks=[RunstackCallback(project="grid")]),
                          {"max_depth": [2, 3]}, cv=2)  # fmt: skip
    search.fit(x, y, eval_set=[(x, y)], verbose=False)
    grid = runstack.Api(store_dir).runs(project="grid")
    assert len(grid) == 5 and {v.status for v in grid} == {"finished"}  # 2 settings x 2 folds + refit
    assert len({v.group for v in grid}) == 1 and sorted({v.config["max_depth"] for v in grid}) == [2, 3]


@pytest.mark.slow
def test_lightgbm_grid_search_early_stopping_and_cv(store_dir):
    lgb = pytest.importorskip("lightgbm")
    from sklearn.model_selection import GridSearchCV, KFold

    from runstack.integrations.lightgbm import RunstackCallback, runstack_callback

    x, y = _xy(200)
    callback = runstack_callback(project="grid")
    search = GridSearchCV(lgb.LGBMRegressor(n_estimators=5, verbose=-1), {"num_leaves": [3, 7]}, cv=KFold(2))
    search.fit(x, y, eval_set=[(x, y)], callbacks=[callback])
    grid = runstack.Api(store_dir).runs(project="grid")
    assert len(grid) == 5 and {v.status for v in grid} == {"finished"} and len({v.group for v in grid}) == 1

    stop = RunstackCallback(project="stop")
    params = {"objective": "regression", "verbose": -1, "learning_rate": 0.5, "seed": 0}
    train = lgb.Dataset(x[:150], y[:150])
    valid = lgb.Dataset(x[150:], y[150:], reference=train)
    booster = lgb.train(params, train, 200, valid_sets=[valid], callbacks=[stop, lgb.early_stopping(3, verbose=False)])
    assert booster.best_iteration < 200
    lgb.cv(
        params, train, 5, nfold=2, stratified=False, callbacks=[stop]
    )  # the next training closes the early-stopped one
    stopped, cv = runstack.Api(store_dir).runs(project="stop", order="created_at")
    assert stopped.status == "finished" and stopped.summary["best_iteration"] == booster.best_iteration
    assert cv.status == "finished" and "valid/l2-mean" in cv.history().columns


@pytest.mark.slow
@pytest.mark.parametrize("log_with", ["runstack", "all"])
def test_accelerate_picks_the_tracker_by_name(store_dir, log_with):
    pytest.importorskip("accelerate")
    from accelerate import Accelerator

    import runstack.integrations.accelerate  # noqa: F401 - registers "runstack"

    accelerator = Accelerator(log_with=log_with, cpu=True)
    accelerator.init_trackers("named", config={"lr": 0.1}, init_kwargs={"runstack": {"tags": ["t"], "name": "n1"}})
    accelerator.log({"loss": 1.0}, step=0)
    accelerator.end_training()
    (view,) = runstack.Api(store_dir).runs()
    assert (view.project, view.name, view.tags, view.config, view.status) == ("named", "n1", ["t"], {"lr": 0.1},
                                                                              "finished")  # fmt: skip
    assert view.history()["loss"].tolist() == [1.0]
