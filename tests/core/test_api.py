from __future__ import annotations

import math

import pyarrow as pa
import pytest

import runstack
from runstack.errors import InvalidArgumentError, RunNotFoundError


@pytest.fixture
def three_runs(store_dir):
    ids = []
    for lr, loss, tags in ((0.1, 0.5, ["base"]), (0.01, 0.2, ["tuned", "best"]), (0.001, 0.9, [])):
        run = runstack.init(project="sweep", config={"optim": {"lr": lr}, "layers": 2}, tags=tags)
        run.log({"loss": loss * 2})
        run.log({"loss": loss})
        run.finish()
        ids.append(run.id)
    other = runstack.init(project="other")
    other.finish(exit_code=1)
    return ids


def test_filters_on_config_summary_tags_and_status(store_dir, three_runs):
    api = runstack.Api(store_dir)
    assert len(api.runs()) == 4 and api.projects() == ["other", "sweep"]
    assert [r.id for r in api.runs(project="sweep", filters={"config.optim.lr": 0.01})] == [three_runs[1]]
    low = api.runs(filters={"summary.loss": {"$lt": 0.6}}, order="summary.loss")
    assert [r.id for r in low] == [three_runs[1], three_runs[0]]
    assert [r.id for r in api.runs(filters={"tags": "best"})] == [three_runs[1]]
    assert len(api.runs(filters={"tags": {"$in": ["base", "best"]}})) == 2
    assert [r.project for r in api.runs(filters={"status": "failed"})] == ["other"]
    assert [
        r.project
        for r in api.runs(filters={"status": {"$in": ["finished", "failed"]}, "config.layers": {"$exists": False}})
    ] == ["other"]
    assert len(api.runs(filters={"config.layers": {"$exists": True}})) == 3
    assert len(api.runs(filters={"name": {"$regex": ".+-.+"}})) == 4
    best_first = api.runs(project="sweep", order="-summary.loss")
    assert [r.summary["loss"] for r in best_first] == [0.9, 0.5, 0.2]
    with pytest.raises(InvalidArgumentError, match="filter operator='\\$near'"):
        api.runs(filters={"summary.loss": {"$near": 1}})
    with pytest.raises(InvalidArgumentError, match="filters='bogus'"):
        api.runs(filters={"bogus": 1})


def test_history_formats_keys_and_metrics(store_dir):
    run = runstack.init()
    for i in range(10):
        data = {"loss": float(i), "flag": i % 2 == 0}
        if i % 3 == 0:
            data["val"] = math.nan if i == 3 else i * 10
        run.log(data)
    run.finish()
    view = runstack.Api(store_dir).run(run.id)
    assert view.metrics() == {"flag": 10, "loss": 10, "val": 4}
    val = view.history(keys=["val"])
    assert val["_step"].tolist() == [0, 3, 6, 9]
    table = view.history(format="arrow")
    assert isinstance(table, pa.Table) and table.num_rows == 10
    column = table.column("val").to_pylist()
    assert column[0] == 0 and column[1] is None and math.isnan(column[3])  # null (missing) is not NaN
    assert view.get("config.missing", "dflt") == "dflt"
    with pytest.raises(InvalidArgumentError, match="format='polars'"):
        view.history(format="polars")
    with pytest.raises(InvalidArgumentError, match="x_axis='nope'"):
        view.history(x_axis="nope")


def test_unknown_run_is_a_clear_error(store_dir):
    runstack.init().finish()
    with pytest.raises(RunNotFoundError, match="no run 'zzz'.*runstack ls"):
        runstack.Api(store_dir).run("zzz")


def test_live_run_is_readable_while_writing(store_dir):
    run = runstack.init()
    for i in range(100):
        run.log({"i": i})
    assert runstack.Api(store_dir).run(run.id).history()["i"].tolist() == list(range(100))
    assert runstack.Api(store_dir).run(run.id).status == "running"
