from __future__ import annotations

import sys

import pytest

pytest.importorskip("accelerate")

import runstack  # noqa: E402

from ..conftest import ROOT  # noqa: E402
from .launch import launch  # noqa: E402


@pytest.mark.slow
def test_accelerate_launch_two_processes_give_one_run(store_dir):
    launch(store_dir, sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "examples" / "accelerate_train.py"))  # fmt: skip
    (run,) = runstack.Api(store_dir).runs()
    assert run.status == "finished" and run.world_size == 2 and run.config == {"lr": 0.05, "epochs": 3}
    frame = run.history()
    # 256 samples, batch 16, split over 2 processes -> 8 steps per epoch, 3 epochs.
    assert frame["_step"].tolist() == list(range(24)) and set(frame["process"]) == {0}
