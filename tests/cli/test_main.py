from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import runstack
from runstack.cli.main import main


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def logged(store_dir):
    run = runstack.init(project="cli", name="alpha", config={"lr": 0.1}, tags=["x"])
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1), "step_id": i})
    run.finish()
    return run.id


def test_ls_shows_the_run_with_summary(runner, logged):
    out = runner.invoke(main, ["ls"])
    assert out.exit_code == 0, out.output
    assert logged in out.output and "alpha" in out.output and "finished" in out.output and "loss=0.2" in out.output
    assert "no runs" in runner.invoke(main, ["ls", "--project", "nope"]).output


def test_show_lists_config_summary_and_counts(runner, logged):
    out = runner.invoke(main, ["show", logged])
    assert out.exit_code == 0, out.output
    assert '"lr": 0.1' in out.output and "step_id" in out.output
    assert any(line.split() == ["│", "loss", "│", "0.2", "│", "5", "│"] for line in out.output.splitlines())


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_round_trips(runner, logged, tmp_path, fmt):
    target = tmp_path / f"out.{fmt}"
    out = runner.invoke(main, ["export", logged, "--format", fmt, "-o", str(target)])
    assert out.exit_code == 0, out.output
    if fmt == "parquet":
        rows = pq.read_table(target).to_pylist()
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in target.read_text().splitlines()]
    else:
        import pandas as pd

        rows = pd.read_csv(target).to_dict("records")
    assert [r["loss"] for r in rows] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]


def test_rm_and_gc_free_space(runner, logged, store_dir):
    keep = runstack.init(project="cli")
    keep.log({"a": 1})
    keep.finish()
    orphan = store_dir / "runs" / "orphan"
    orphan.mkdir()
    (orphan / "history.0.rsl").write_bytes(b"x" * 1000)
    out = runner.invoke(main, ["gc", "--dry-run"])
    assert "would free 1,000 bytes" in out.output and orphan.exists()
    out = runner.invoke(main, ["gc"], input="n\n")
    assert out.exit_code != 0 and "delete 1 folder(s), 1,000 bytes?" in out.output and orphan.exists()
    out = runner.invoke(main, ["gc"], input="y\n")
    assert "freed 1,000 bytes" in out.output and not orphan.exists()
    out = runner.invoke(main, ["rm", logged, "--yes"])
    assert out.exit_code == 0 and "removed 1 run(s)" in out.output
    assert [r.id for r in runstack.Api(store_dir).runs()] == [keep.id]
    assert not (store_dir / "runs" / logged).exists()


def test_rm_refuses_running_runs_without_force(runner, store_dir):
    live = runstack.init()
    out = runner.invoke(main, ["rm", live.id, "--yes"])
    assert out.exit_code != 0 and "still running" in out.output
    live.finish()


def test_errors_are_one_clear_line(runner, logged):
    out = runner.invoke(main, ["show", "nope"])
    assert out.exit_code == 1
    assert out.output.strip().startswith("error: no run 'nope'") and "Traceback" not in out.output


def test_gc_marks_crashed_runs(runner, store_dir):
    from ..conftest import run_python

    run_python(
        """
        import os, runstack
        run = runstack.init(id="dies")
        run.log({"a": 1.5})
        os._exit(3)   # no finish(), no atexit
        """,
        check=False,
    )
    out = runner.invoke(main, ["gc"])
    assert "crashed runs found: 1 dies" in out.output
    view = runstack.Api(store_dir).run("dies")
    assert view.status == "crashed" and view.summary == {"a": 1.5}


@pytest.mark.slow
def test_demo_via_the_installed_command(store_dir):
    exe = shutil.which("runstack", path=sysconfig.get_path("scripts"))
    assert exe, "the runstack console script is installed with the package"
    proc = subprocess.run([exe, "demo", "--steps", "60"], capture_output=True, text=True,
                          env={**os.environ, "RUNSTACK_DIR": str(store_dir)}, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "logged run" in proc.stdout and "demo" in proc.stdout and "finished" in proc.stdout
    (view,) = runstack.Api(store_dir).runs(project="demo")
    assert view.metrics()["train/loss"] == 60 and view.summary["val/acc"] > 0.7
