"""Store safety: names that would become paths, and errors that must cross process boundaries."""

from __future__ import annotations

import inspect
import multiprocessing
import pickle

import pytest

import runstack
import runstack.errors as errors
from runstack.core.catalog import RUN_COLUMNS
from runstack.core.store import Store

from ..conftest import run_python


@pytest.mark.parametrize("bad", ["sweep/lr0.1", "..", ".", "/home/me/thesis", "a\0b", "x" * 200, "", "ü-id", 5])
def test_run_ids_that_are_not_plain_names_are_refused_before_anything_is_written(store_dir, bad):
    with pytest.raises(errors.InvalidArgumentError, match="id="):
        runstack.init(id=bad)
    assert not store_dir.exists() or not list((store_dir / "runs").iterdir())


@pytest.mark.parametrize("bad", ["../..", "a/b", "..", "x\\y", "\ud800", "   ", "p" * 129])
def test_project_names_that_could_become_paths_are_refused(store_dir, bad):
    with pytest.raises(errors.InvalidArgumentError, match="project="):
        runstack.init(project=bad)


def test_rm_and_gc_never_touch_folders_outside_runs(store_dir, tmp_path):
    victim = tmp_path / "thesis"
    victim.mkdir()
    (victim / "chapter1.tex").write_text("precious")
    keep = runstack.init(id="ok-run")
    keep.log({"a": 1})
    keep.finish()
    store = Store(store_dir)
    # A row as an older version (or a hand edit) could have left it: its id points outside runs/.
    row = dict(store.catalog.get_run("ok-run"), id=str(victim))
    store.catalog.create_run({k: v for k, v in row.items() if k in RUN_COLUMNS}, [])
    with pytest.raises(errors.StoreError, match="nothing was deleted"):
        store.delete_run(str(victim))
    store.gc()
    assert (victim / "chapter1.tex").read_text() == "precious"
    assert runstack.Api(store_dir).run("ok-run").history()["a"].tolist() == [1]


def _error_classes():
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.RunstackError)]


def _example(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    args = ["/tmp/x" if p.name == "path" else ["a.txt"] if p.name == "paths" else 7 if "step" in p.name
            else f"<{p.name}>" for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]  # fmt: skip
    return cls(*args) if args else cls("a message naming the fix")


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls):
    error = _example(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == str(error) and copy.__dict__ == error.__dict__


def _raise_in_worker(_):
    raise errors.RunNotFoundError("abc", "/store")


def test_an_error_in_a_pool_worker_reaches_the_parent():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        with pytest.raises(errors.RunNotFoundError, match="no run 'abc'"):
            pool.map(_raise_in_worker, [1], chunksize=1)


def test_cli_rm_of_a_path_like_id_deletes_nothing(store_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f").write_text("x")
    proc = run_python("import sys; from runstack.cli.main import main; sys.argv=['runstack','rm','..','--yes']; main()",
                      env={"RUNSTACK_DIR": str(store_dir)}, check=False)  # fmt: skip
    assert proc.returncode != 0 and (victim / "f").exists()
