"""Launching the examples as real multi-process jobs (2 CPU processes, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT


def launch(store: Path, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a launcher command from the store's parent folder, so outputs (checkpoints) land there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNSTACK_DIR": str(store), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(list(command), cwd=store.parent, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def torchrun(store: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return launch(store, sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  str(ROOT / "examples" / script), *args)  # fmt: skip
