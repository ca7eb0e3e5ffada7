from __future__ import annotations

import math

import numpy as np
import pytest

import runstack
from runstack.errors import (
    InvalidArgumentError,
    RunExistsError,
    RunNotFoundError,
    RunStateError,
    StepOrderError,
)


def test_log_finish_and_read_back(store_dir):
    run = runstack.init(
        project="p", name="first", config={"lr": 0.1}, tags=["a", "b"], notes="n", group="g", job_type="train"
    )
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1), "epoch": step // 2})
    run.finish()
    view = runstack.Api(store_dir).run(run.id)
    assert (view.name, view.project, view.group, view.job_type, view.notes) == ("first", "p", "g", "train", "n")
    assert view.status == "finished" and view.tags == ["a", "b"]
    assert view.config == {"lr": 0.1}
    assert view.summary == {"loss": 0.2, "epoch": 2}
    frame = view.history()
    assert frame["_step"].tolist() == [0, 1, 2, 3, 4]
    assert frame["loss"].tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert frame["epoch"].dtype == np.int64
    assert view.ended_at >= view.created_at
    assert view.pid > 0 and view.host and view.python.startswith("CPython")
    assert "numpy" in view.packages


def test_value_kinds_are_kept_exactly(store_dir):
    torch = pytest.importorskip("torch")
    run = runstack.init()
    values = {"f": 0.1, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "i": 2**62, "neg": -7, "t": True,
              "np32": np.float32(0.5), "np64": np.float64(1e-300), "npi": np.int16(-3), "npb": np.bool_(False),
              "torch": torch.tensor(2.5), "torch_i": torch.tensor(9), "arr1": np.array([4.0])}  # fmt: skip
    run.log(values)
    run.finish()
    frame = runstack.Api(store_dir).run(run.id).history()
    assert frame["t"].dtype == bool and frame["npb"].dtype == bool and frame["i"].dtype == np.int64
    row = frame.iloc[0]
    assert row["f"] == 0.1 and math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert row["i"] == 2**62 and row["neg"] == -7 and bool(row["t"]) is True
    assert row["np32"] == 0.5 and row["np64"] == 1e-300 and row["npi"] == -3 and not row["npb"]
    assert row["torch"] == 2.5 and row["torch_i"] == 9 and row["arr1"] == 4.0


def test_nested_dicts_flatten_with_slash(store_dir):
    run = runstack.init()
    run.log({"train": {"loss": 1.0, "opt": {"lr": 0.01}}, "x": 1})
    assert sorted(run.history().columns) == ["_step", "_timestamp", "train/loss", "train/opt/lr", "x"]


def test_steps_auto_given_and_commit_false(store_dir):
    run = runstack.init()
    run.log({"a": 1})
    run.log({"b": 2}, commit=False)
    run.log({"c": 3})
    run.log({"a": 4}, step=10)
    run.log({"a": 5})
    assert run.step == 12
    frame = run.history()
    assert frame["_step"].tolist() == [0, 1, 10, 11]
    assert frame.loc[1, "b"] == 2 and frame.loc[1, "c"] == 3


def test_backwards_step_is_kept_not_dropped(store_dir):
    run = runstack.init()
    for s in (0, 1, 2, 1, 0):
        run.log({"v": s * 10}, step=s)
    frame = run.history()
    assert frame["_step"].tolist() == [0, 1, 2, 1, 0]
    assert frame["v"].tolist() == [0, 10, 20, 10, 0]


def test_strict_steps_raise_and_keep_what_was_logged(store_dir):
    run = runstack.init(strict_steps=True)
    run.log({"v": 1}, step=5)
    with pytest.raises(StepOrderError, match="step 3 is before the last logged step 5"):
        run.log({"v": 2}, step=3)
    run.log({"v": 3}, step=6)
    assert run.history()["v"].tolist() == [1, 3]


def test_define_metric_summaries_and_x_axis(store_dir):
    run = runstack.init()
    run.define_metric("loss", summary="min")
    run.define_metric("val/*", summary="max", step_metric="epoch")
    run.define_metric("lr", summary="mean")
    for step, loss in enumerate([3.0, 1.0, 2.0, math.nan]):
        run.log({"loss": loss, "lr": float(step)})
    run.log({"val/acc": 0.5, "epoch": 0})
    run.log({"val/acc": 0.9, "epoch": 1})
    run.log({"val/acc": 0.7, "epoch": 2})
    assert run.summary["loss"] == 1.0 and run.summary["val/acc"] == 0.9 and run.summary["lr"] == 1.5
    run.summary["best_note"] = "ok"
    run.finish()
    view = runstack.Api(store_dir).run(run.id)
    assert view.summary["loss"] == 1.0 and view.summary["best_note"] == "ok" and view.summary["epoch"] == 2
    by_epoch = view.history(keys=["val/acc"], x_axis="epoch")
    assert by_epoch.index.tolist() == [0, 1, 2] and by_epoch["val/acc"].tolist() == [0.5, 0.9, 0.7]
    with pytest.raises(InvalidArgumentError, match="summary='median'"):
        run.define_metric("x", summary="median")


def test_config_is_nested_updatable_and_saved_immediately(store_dir):
    run = runstack.init(config={"optim": {"lr": 0.1}, "layers": (1, 2)})
    run.config.update({"optim.momentum": 0.9, "batch": 32})
    run.config.dropout = 0.5
    assert run.config.optim == {"lr": 0.1, "momentum": 0.9} and run.config["optim.lr"] == 0.1
    saved = runstack.Api(store_dir).run(run.id).config  # before finish()
    assert saved == {"optim": {"lr": 0.1, "momentum": 0.9}, "layers": [1, 2], "batch": 32, "dropout": 0.5}


def test_context_manager_marks_failure(store_dir):
    with pytest.raises(ZeroDivisionError):
        with runstack.init() as run:
            run.log({"a": 1})
            raise ZeroDivisionError("boom")
    view = runstack.Api(store_dir).run(run.id)
    assert view.status == "failed" and view.summary == {"a": 1}


def test_module_level_api(store_dir):
    with pytest.raises(RunStateError, match="call runstack.init"):
        runstack.log({"a": 1})
    run = runstack.init(config={"x": 1})
    runstack.log({"a": 1})
    runstack.define_metric("a", summary="max")
    assert runstack.config.x == 1 and runstack.run is run and runstack.summary["a"] == 1
    runstack.finish()
    assert runstack.run is None
    with pytest.raises(RunStateError, match="is finished"):
        run.log({"a": 2})


def test_several_runs_stay_open_and_module_log_acts_on_the_latest(store_dir):
    first = runstack.init(name="mine")
    second = runstack.init(name="logger's")
    assert runstack.Api(store_dir).run(first.id).status == "running"
    assert runstack.run is second
    runstack.log({"a": 1})
    first.log({"b": 2})
    second.finish()
    assert runstack.run is first  # the latest run still open is current again
    runstack.log({"b": 3})
    first.finish()
    api = runstack.Api(store_dir)
    assert list(api.run(second.id).history()["a"]) == [1]
    assert list(api.run(first.id).history()["b"]) == [2, 3]
    assert runstack.run is None


def test_reinit_finish_previous_closes_open_runs(store_dir):
    first = runstack.init()
    second = runstack.init(reinit="finish_previous")
    assert runstack.Api(store_dir).run(first.id).status == "finished"
    assert runstack.run is second
    with pytest.raises(InvalidArgumentError, match="reinit='sometimes'"):
        runstack.init(reinit="sometimes")


def test_init_with_the_id_of_a_run_open_here_returns_it(store_dir):
    run = runstack.init(id="shared-1")
    assert runstack.init(id="shared-1", resume="allow") is run
    with pytest.raises(RunExistsError):
        runstack.init(id="shared-1")
    run.finish()
    again = runstack.init(id="shared-1", resume="allow")
    assert again is not run and again.step == 0 and not again.finished


def test_a_log_method_bound_before_finish_raises_the_documented_error(store_dir):
    run = runstack.init()
    log = run.log
    log({"a": 1})
    run.finish()
    with pytest.raises(RunStateError, match="is finished"):
        log({"a": 2})


@pytest.mark.parametrize("step", ["5", 1.5, 1j, True, 2**64, -(2**70), [3]])
def test_bad_steps_raise_invalid_argument_and_leave_no_trace(store_dir, step):
    from decimal import Decimal

    run = runstack.init()
    run.log({"a": 1.0}, step=0)
    for bad in (step, Decimal(1)):
        with pytest.raises(InvalidArgumentError, match="step="):
            run.log({"a": 2.0, "img": runstack.Text("rejected")}, step=bad)
    run.log({"a": 3.0}, step=4)
    run.finish()
    rows = runstack.Api(store_dir).run(run.id).history()
    assert list(rows["_step"]) == [0, 4] and list(rows["a"]) == [1.0, 3.0]
    assert "img" not in rows.columns  # the rejected call's media was never written


def test_integer_like_steps_are_accepted(store_dir):
    import numpy as np

    run = runstack.init()
    run.log({"a": 1}, step=np.int64(7))
    assert run.step == 8


def test_resume_continues_run_and_step(store_dir):
    run = runstack.init(id="myrun", config={"a": 1})
    run.log({"loss": 1.0})
    run.log({"loss": 0.5})
    run.finish()
    with pytest.raises(RunExistsError, match="resume='allow'"):
        runstack.init(id="myrun")
    again = runstack.init(id="myrun", resume="must", config={"b": 2})
    assert again.step == 2
    again.log({"loss": 0.25})
    again.finish()
    view = runstack.Api(store_dir).run("myrun")
    assert view.history()["_step"].tolist() == [0, 1, 2]
    assert view.config == {"a": 1, "b": 2} and view.resumed == 1 and view.status == "finished"
    with pytest.raises(RunNotFoundError, match="'nope'"):
        runstack.init(id="nope", resume="must")
    fresh = runstack.init(id="newone", resume="allow")
    assert fresh.step == 0


def test_disabled_mode_writes_nothing(store_dir, monkeypatch):
    monkeypatch.setenv("RUNSTACK_MODE", "disabled")
    run = runstack.init(config={"a": 1})
    run.log({"x": 1})
    run.finish()
    assert run.disabled and run.config.a == 1
    assert not store_dir.exists()


def test_bad_arguments_name_the_value(store_dir):
    with pytest.raises(InvalidArgumentError, match="resume='sometimes'"):
        runstack.init(resume="sometimes")
    with pytest.raises(InvalidArgumentError, match="mode='online'"):
        runstack.init(mode="online")
    run = runstack.init()
    with pytest.raises(InvalidArgumentError, match="step=1.5"):
        run.log({"a": 1.0}, step=1.5)
    with pytest.raises(InvalidArgumentError, match="status='done'"):
        run.finish(status="done")


def test_numpy_scalars_on_the_cached_fast_path_keep_values_and_types(store_dir):
    run = runstack.init()
    for i in range(3):  # the 2nd and 3rd calls take the cached path
        run.log(
            {"f32": np.float32(0.1) * i, "f64": np.float64(1e-300) * i, "i": np.int64(2**62) + i, "b": np.bool_(i % 2)}
        )
    frame = run.history()
    assert frame["f32"].tolist() == [float(np.float32(0.1) * i) for i in range(3)]
    assert frame["f64"].tolist() == [1e-300 * i for i in range(3)]
    assert frame["i"].tolist() == [2**62 + i for i in range(3)] and frame["i"].dtype == np.int64
    assert frame["b"].tolist() == [False, True, False] and frame["b"].dtype == bool
    with pytest.raises(runstack.errors.InvalidMetricError, match="must fit in 64 bits"):
        run.log({"f32": np.float32(1), "f64": np.float64(1), "i": np.uint64(2**64 - 1), "b": np.bool_(True)})
    assert len(run.history()) == 3


def test_summary_lookups_reuse_the_history_read_until_something_new_is_logged(store_dir, monkeypatch):
    run = runstack.init()
    run.define_metric("loss", summary="min")
    for step in range(100):
        run.log({"loss": 1.0 / (step + 1)})
    calls = []
    real = run._store.summarize
    monkeypatch.setattr(run._store, "summarize", lambda *a: calls.append(1) or real(*a))
    assert [run.summary["loss"] for _ in range(50)] == [0.01] * 50
    assert len(calls) == 1
    run.log({"loss": 0.001})
    assert run.summary["loss"] == 0.001 and len(calls) == 2
    run.define_metric("loss", summary="max")
    assert run.summary["loss"] == 1.0 and len(calls) == 3


def test_a_bound_log_in_a_fork_child_is_ignored_and_the_parent_keeps_logging(store_dir):
    import os

    run = runstack.init()
    log = run.log
    log({"a": 1})
    pid = os.fork()
    if pid == 0:  # the child: a DataLoader worker, say
        try:
            log({"a": 99})
            runstack.log({"a": 98})
            os._exit(0)
        except BaseException:  # noqa: BLE001 - report any failure through the exit code
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    log({"a": 2})
    run.finish()
    assert runstack.Api(store_dir).run(run.id).history()["a"].tolist() == [1, 2]
