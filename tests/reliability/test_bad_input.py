"""Bad input gets a clear RunstackError naming the value, never a raw exception, and leaves
what was already logged intact. Then a property-based fuzz of the same doors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runstack
from runstack.errors import RunstackError

from ..conftest import ROOT


def _deep(n):
    data = {"v": 1.0}
    for _ in range(n):
        data = {"k": data}
    return data


CASES = {
    "log(None)": lambda r: r.log(None),
    "log(list)": lambda r: r.log([1, 2]),
    "step str": lambda r: r.log({"a": 1}, step="5"),
    "step Decimal": lambda r: r.log({"a": 1}, step=Decimal(1)),
    "step complex": lambda r: r.log({"a": 1}, step=1j),
    "step float with media": lambda r: r.log({"t": runstack.Text("x")}, step=1.5),
    "step 2**64 with media": lambda r: r.log({"t": runstack.Text("x")}, step=2**64),
    "step True": lambda r: r.log({"a": 1}, step=True),
    "longdouble complex": lambda r: r.log({"a": np.clongdouble(1 + 1j)}),
    "complex": lambda r: r.log({"a": 1 + 2j}),
    "nested 1000 deep": lambda r: r.log(_deep(1000)),
    "caption not text": lambda r: r.log({"i": runstack.Image(np.zeros((2, 2)), caption={"no": object()})}),
    "histogram bins 10**9": lambda r: r.log({"h": runstack.Histogram([1.0, 2.0], bins=10**9)}),
    "histogram of strings": lambda r: r.log({"h": runstack.Histogram(["a"])}),
    "audio 70000 channels": lambda r: r.log({"au": runstack.Audio(np.zeros((2, 70_000)), sample_rate=8000)}),
    "define_metric(5)": lambda r: r.define_metric(5),
    "define_metric bad summary": lambda r: r.define_metric("a", summary="median"),
    "history(keys=5)": lambda r: r.history(keys=5),
    "history(format=x)": lambda r: r.history(format="xml"),
    "Api filters list": lambda r: runstack.Api().runs(filters=[("a", 1)]),
    "Api order int": lambda r: runstack.Api().runs(order=5),
    "Api bad regex": lambda r: runstack.Api().runs(filters={"name": {"$regex": "("}}),
    "Api project int": lambda r: runstack.Api().runs(project=5),
    "use_artifact huge version": lambda r: r.use_artifact("x:v99999999999999999999"),
    "use_artifact bad spec": lambda r: r.use_artifact("a:b:c"),
    "artifact x and x/y": lambda r: _clashing_artifact(["x", "x/y"]),
    "artifact x/y and x": lambda r: _clashing_artifact(["x/y", "x"]),
    "artifact '.'": lambda r: _clashing_artifact(["."]),
    "artifact bad name": lambda r: runstack.Artifact("../etc", "dataset"),
    "init tags str": lambda r: runstack.init(tags="baseline"),
    "init name lone surrogate": lambda r: runstack.init(name="\ud800"),
    "init config object": lambda r: runstack.init(config={"f": object()}),
    "init id path": lambda r: runstack.init(id="../x"),
    "init resume bad": lambda r: runstack.init(resume="sometimes"),
    "config key not str": lambda r: r.config.update({1: 2}),
    "summary value object": lambda r: r.summary.__setitem__("s", object()),
    "finish bad status": lambda r: r.finish(status="great"),
}


def _clashing_artifact(names):
    import tempfile

    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "f")
    open(path, "w").write("x")
    art = runstack.Artifact("clash", "dataset")
    for name in names:
        art.add_file(path, name=name)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_runstack_error_and_loses_nothing(store_dir, case):
    run = runstack.init(system_metrics=False)
    run.log({"a": 1.0})
    with pytest.raises(RunstackError) as info:
        CASES[case](run)
    assert str(info.value) and "\n" not in str(info.value).strip()
    run.log({"a": 2.0})
    run.finish()
    view = runstack.Api(store_dir).run(run.id)
    assert view.history()["a"].tolist() == [1.0, 2.0] and view.status == "finished"


def test_export_to_a_missing_folder_is_a_clear_error(store_dir, tmp_path):
    run = runstack.init(system_metrics=False)
    run.log({"a": 1.0})
    run.finish()
    proc = _cli(store_dir, "export", run.id, "-o", str(tmp_path / "missing" / "x.csv"))
    assert proc.returncode != 0 and "create it first" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def _cli(store_dir, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNSTACK_DIR": str(store_dir)}
    return subprocess.run([sys.executable, "-m", "runstack", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_exports_are_safe_for_spreadsheets_and_valid_json(store_dir, tmp_path):
    import csv

    run = runstack.init(system_metrics=False)
    run.log({"=cmd|' /C calc'!A0": 1.0, "nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    run.finish()
    assert _cli(store_dir, "export", run.id, "-o", str(tmp_path / "x.csv")).returncode == 0
    header = next(csv.reader(open(tmp_path / "x.csv")))
    assert not any(cell[:1] in "=+-@" for cell in header), header
    assert _cli(store_dir, "export", run.id, "--format", "jsonl", "-o", str(tmp_path / "x.jsonl")).returncode == 0
    (row,) = [json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON")) for line in
              open(tmp_path / "x.jsonl")]  # fmt: skip
    assert (row["nan"], row["inf"], row["ninf"]) == ("NaN", "Infinity", "-Infinity")


# -- fuzz: hostile names and values never escape as a raw exception ----------------------------
_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.text(st.sampled_from(list("/.\0[]\n\\a-_") + ["\ud800", "\u2028"]), max_size=12),
    st.sampled_from(["..", ".", "", "x" * 300, "[/bold]", "runs", "catalog.db"]),
)
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.complex_numbers(), _text,
                    st.lists(st.integers(), max_size=3), st.dictionaries(_text, st.integers(), max_size=3))  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(id=st.one_of(st.none(), _text), project=st.one_of(st.none(), _text), name=st.one_of(st.none(), _text),
       tags=st.one_of(st.none(), st.lists(_text, max_size=3), _text), key=_text, value=_values,
       step=st.one_of(st.none(), st.integers(), st.floats(), _text))  # fmt: skip
def test_fuzz_init_and_log_raise_only_runstack_errors(store_dir, id, project, name, tags, key, value, step):
    try:
        run = runstack.init(id=id, project=project, name=name, tags=tags, system_metrics=False)
    except RunstackError:
        return
    try:
        try:
            run.log({key: value}, step=step)
        except RunstackError:
            pass
        run.log({"ok": 1.0})
    finally:
        run.finish()
    view = runstack.Api(store_dir).run(run.id)
    assert view.history()["ok"].dropna().tolist() == [1.0]
    assert view.name == (name if name else view.name) and view.status == "finished"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_text, type_=_text, entry=_text, spec=_text, path=_text, regex=_text)
def test_fuzz_artifacts_and_queries_raise_only_runstack_errors(store_dir, tmp_path, name, type_, entry, spec, path,
                                                              regex):  # fmt: skip
    runstack.init(system_metrics=False).finish()
    api = runstack.Api(store_dir)
    for call in (
        lambda: runstack.Artifact(name, type_).add_file(tmp_path / "nothing", name=entry),
        lambda: runstack.Api(store_dir).run(spec),
        lambda: api.runs(filters={path: {"$regex": regex}}, order=path or "x"),
        lambda: api.runs(filters={"name": regex, f"config.{path}": {"$gt": 1}}),
    ):
        try:
            call()
        except RunstackError:
            pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(st.sampled_from(["ls", "show", "export", "rm", "gc", "doctor", "--dir", "x", "..", "-o",
                                      "/", "[red]", "--format", "jsonl", "--yes", "\u2028"]), min_size=1, max_size=4))  # fmt: skip
def test_fuzz_cli_never_prints_a_traceback(store_dir, args):
    runstack.init(system_metrics=False).finish()
    proc = _cli(store_dir, *args)
    assert "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
