"""Rank detection, and real two-process jobs under torchrun (gloo, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import runstack
from runstack.core import ranks
from runstack.core.noop import NoOpRun

from ..conftest import ROOT


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (0, 1, 0, "single")),
        ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (1, 4, 1, "torchrun")),
        (
            {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "0"},
            (2, 3, 0, "openmpi"),
        ),
        ({"PMI_RANK": "1", "PMI_SIZE": "2"}, (1, 2, 1, "pmi")),
        ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, (5, 8, 1, "slurm")),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (0, 1, 0, "single")),
        # torchrun inside a one-task SLURM allocation: torchrun's variables win.
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "RANK": "1", "WORLD_SIZE": "2"}, (1, 2, 1, "torchrun")),
        ({"RANK": "x", "WORLD_SIZE": "2"}, (0, 1, 0, "single")),
    ],
)
def test_detect_from_environment(env, expected):
    info = ranks.detect(env)
    assert (info.rank, info.world_size, info.local_rank, info.source) == expected


def test_job_run_id_is_shared_by_a_job_and_differs_between_jobs():
    a = {"TORCHELASTIC_RUN_ID": "abc", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert ranks.job_run_id(a) == ranks.job_run_id(dict(a))
    assert ranks.job_run_id(a) != ranks.job_run_id({**a, "TORCHELASTIC_RUN_ID": "def"})
    assert ranks.job_run_id({}) is None


def test_non_zero_rank_gets_a_run_that_does_nothing(store_dir, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run = runstack.init(config={"lr": 1})
    assert isinstance(run, NoOpRun) and run.rank.rank == 1
    run.log({"x": 1})
    run.define_metric("x", summary="max")
    run.finish()
    assert run.config.lr == 1 and not store_dir.exists()


DDP_SCRIPT = """
import os, sys, torch, torch.distributed as dist, runstack
mode, init_first = sys.argv[1], sys.argv[2] == "before"
if init_first:
    run = runstack.init(project="ddp", config={"lr": 0.1}, log_ranks=mode)
dist.init_process_group("gloo")
if not init_first:
    run = runstack.init(project="ddp", config={"lr": 0.1}, log_ranks=mode)
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
rank = dist.get_rank()
for step in range(20):
    x = torch.randn(8, 4) + rank
    loss = ((model(x) - 1) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    run.log({"loss": loss.item(), "rank_seen": rank})
run.finish()
dist.barrier()
dist.destroy_process_group()
with open(os.path.join(os.path.dirname(__file__), f"rank{rank}"), "w") as handle:
    handle.write(type(run).__name__)
# The job's work is done and checked above; skip interpreter teardown, where gloo's threads now and
# then abort a process on a loaded machine ("terminate called without an active exception").
os._exit(0)
"""


def _torchrun(tmp_path, *args: str) -> dict[int, str]:
    pytest.importorskip("torch")
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {rank: (tmp_path / f"rank{rank}").read_text() for rank in (0, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_torchrun_two_processes_give_exactly_one_run(tmp_path, store_dir, when):
    assert _torchrun(tmp_path, "zero", when) == {0: "Run", 1: "NoOpRun"}
    runs = runstack.Api(store_dir).runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "finished" and run.world_size == 2 and run.config == {"lr": 0.1}
    frame = run.history()
    assert frame["_step"].tolist() == list(range(20)) and set(frame["rank_seen"]) == {0}
    assert "_rank" not in frame


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_torchrun_every_rank_logs_into_one_run(tmp_path, store_dir, when):
    assert _torchrun(tmp_path, "all", when) == {0: "Run", 1: "Run"}
    runs = runstack.Api(store_dir).runs()
    assert len(runs) == 1
    frame = runs[0].history()
    assert sorted(frame["_rank"].unique().tolist()) == [0, 1]
    for rank in (0, 1):
        part = frame[frame["_rank"] == rank]
        assert part["_step"].tolist() == list(range(20)) and set(part["rank_seen"]) == {rank}
    assert runs[0].status == "finished"
