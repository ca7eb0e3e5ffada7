"""Many writers into one store folder, threads sharing a run, and fork() (DataLoader workers)."""

from __future__ import annotations

import os
import threading

import pytest

import runstack

from ..conftest import run_python

WRITER = """
import sys, runstack
run = runstack.init(project="concurrent", id=sys.argv[1], config={"writer": sys.argv[1]})
for i in range(3000):
    run.log({"i": i, "loss": 1.0 / (i + 1)})
    if i % 500 == 0:
        run.config.update({"at": i})
        run.summary["checkpoint"] = i
run.finish()
"""


@pytest.mark.slow
def test_many_processes_write_different_runs_into_one_folder(store_dir):
    import subprocess
    import sys

    from ..conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{n}"], env=env, stderr=subprocess.PIPE, text=True)
             for n in range(6)]  # fmt: skip
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert not any("locked" in e for e in errors)
    runs = runstack.Api(store_dir).runs(project="concurrent")
    assert sorted(r.id for r in runs) == [f"w{n}" for n in range(6)]
    for run in runs:
        assert run.status == "finished" and run.config == {"writer": run.id, "at": 2500}
        assert run.history()["i"].tolist() == list(range(3000))
        assert run.summary["checkpoint"] == 2500


def test_threads_sharing_one_run_never_interleave_records(store_dir):
    run = runstack.init()

    def work(tid: int) -> None:
        for i in range(2000):
            run.log({f"t{tid}": i, "tid": tid})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    frame = runstack.Api(store_dir).run(run.id).history()
    assert len(frame) == 8000
    for tid in range(4):
        assert frame[f"t{tid}"].dropna().tolist() == list(range(2000))


def test_fork_child_does_not_write_or_finish_the_parent_run(store_dir):
    run = runstack.init()
    run.log({"parent": 0})
    pid = os.fork()
    if pid == 0:  # the child: logging is dropped, exiting through atexit must not finish the run
        try:
            run.log({"child": 1})
            runstack.log({"child": 2})
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    run.log({"parent": 1})
    assert runstack.Api(store_dir).run(run.id).status == "running"
    run.finish()
    frame = runstack.Api(store_dir).run(run.id).history()
    assert "child" not in frame and frame["parent"].tolist() == [0, 1]


def test_fork_child_exiting_normally_runs_atexit_without_finishing(store_dir):
    proc = run_python("""
        import os, sys, runstack
        run = runstack.init(id="forky")
        run.log({"a": 1})
        pid = os.fork()
        if pid == 0:
            run.log({"a": 99})
            sys.exit(0)          # runs atexit handlers in the child
        os.waitpid(pid, 0)
        import runstack.core.api as api
        print(api.Api().run("forky").status)
        run.log({"a": 2})
        """)
    assert proc.stdout.strip() == "running"
    view = runstack.Api(store_dir).run("forky")
    assert view.status == "finished" and view.history()["a"].tolist() == [1, 2]


@pytest.mark.slow
def test_dataloader_fork_workers_do_not_deadlock_or_duplicate(store_dir):
    pytest.importorskip("torch")
    proc = run_python(
        """
        import torch, runstack
        from torch.utils.data import DataLoader, Dataset

        class Logging(Dataset):
            def __len__(self):
                return 64
            def __getitem__(self, i):
                runstack.log({"worker_item": i})   # in a forked worker: dropped, never duplicated
                return torch.tensor([float(i)])

        run = runstack.init(id="loader")
        loader = DataLoader(Logging(), batch_size=8, num_workers=2, multiprocessing_context="fork")
        for epoch in range(3):
            for batch in loader:
                run.log({"batch_sum": float(batch.sum()), "epoch": epoch})
        run.finish()
        """,
        timeout=240,
    )
    assert proc.returncode == 0
    frame = runstack.Api(store_dir).run("loader").history()
    assert len(frame) == 24 and "worker_item" not in frame
    assert sorted(frame["batch_sum"].tolist()[:8]) == sorted(float(sum(range(k, k + 8))) for k in range(0, 64, 8))


SIMULTANEOUS = """
import sys, time, runstack
start = float(sys.argv[1])
while time.time() < start:
    pass
run = runstack.init(project="burst")
run.log({"a": 1})
run.finish()
"""


@pytest.mark.slow
def test_processes_creating_a_fresh_store_at_the_same_instant(store_dir):
    import subprocess
    import sys
    import time

    from ..conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for attempt in range(3):
        folder = store_dir / f"fresh{attempt}"
        start = str(time.time() + 3)
        procs = [subprocess.Popen([sys.executable, "-c", SIMULTANEOUS, start], stderr=subprocess.PIPE, text=True,
                                  env={**env, "RUNSTACK_DIR": str(folder)}) for _ in range(8)]  # fmt: skip
        errors = [p.communicate()[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        assert len(runstack.Api(folder).runs(project="burst")) == 8
