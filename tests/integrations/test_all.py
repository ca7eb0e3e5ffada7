"""One behaviour suite over every integration, each training its real framework on CPU."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

import runstack

from ..conftest import ROOT
from .frameworks import MODULES, TRAINERS


@pytest.fixture(params=list(TRAINERS))
def framework(request):
    pytest.importorskip(MODULES[request.param])
    return request.param


def _close(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.slow
def test_training_gives_one_finished_run_with_config_history_and_summary(framework, tmp_path, store_dir):
    trained = TRAINERS[framework](tmp_path)
    api = runstack.Api(store_dir)
    assert [r.id for r in api.runs()] == [trained.run_id]
    view = api.run(trained.run_id)
    assert view.status == "finished" and view.tags == [framework]
    for path, value in trained.config.items():
        assert _close(view.get(f"config.{path}"), value), (path, view.get(f"config.{path}"), value)
    rows = view.history(format="arrow").to_pylist()
    assert trained.reported, "the framework reported no metrics"
    for key, by_step in trained.reported.items():
        assert key in rows[0], (key, list(rows[0]))
        logged = {row["_step"]: float(row[key]) for row in rows if row[key] is not None}
        assert logged.keys() == by_step.keys(), (key, sorted(logged), sorted(by_step))
        for step, value in by_step.items():
            assert _close(logged[step], float(value)), (key, step, logged[step], value)
    for key, value in trained.summary.items():
        assert _close(view.summary[key], value), (key, view.summary.get(key), value)


_CAUGHT = """
import sys, pathlib
from tests.integrations.frameworks import TRAINERS, Boom
try:
    TRAINERS[sys.argv[1]](pathlib.Path(sys.argv[2]), fail=True)
except Boom:
    print("caught")
"""


@pytest.mark.slow
@pytest.mark.parametrize("caught", [False, True], ids=["uncaught", "caught"])
def test_failing_training_marks_the_run_failed_with_its_error(framework, tmp_path, store_dir, caught):
    if caught and framework == "accelerate":
        pytest.skip("Accelerate has no end-of-training event (end_training is optional): see README")
    code = _CAUGHT if caught else _CAUGHT.replace("try:\n    ", "").split("except")[0]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "RUNSTACK_DIR": str(store_dir)}
    proc = subprocess.run([sys.executable, "-c", code, framework, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if caught:
        assert proc.returncode == 0 and "caught" in proc.stdout, proc.stderr[-3000:]
    else:
        assert proc.returncode != 0 and "Boom" in proc.stderr, proc.stderr[-3000:]
    (view,) = runstack.Api(store_dir).runs()
    assert view.status == "failed"
    assert len(view.history()) > 0
    if caught and framework != "lightning":  # the exception never reached runstack: say what is known
        assert "did not reach its end" in view.error, view.error
    else:
        assert view.error.startswith("Boom: training failed"), view.error
    shown = subprocess.run([sys.executable, "-m", "runstack", "show", view.id], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert view.error.split(":")[0] in shown.stdout, shown.stdout
