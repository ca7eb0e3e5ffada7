"""Where this process sits in a distributed job, decided once for the whole package.

Sources, first match wins: an initialised ``torch.distributed`` process group (only
looked at when the user already imported torch), then the environment variables of
torchrun / accelerate (``RANK``/``WORLD_SIZE``), Open MPI, MPICH/Intel MPI (``PMI_*``)
and SLURM.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

_ENV_SOURCES = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)
# Variables that are equal on every process of one job and differ between jobs.
_JOB_KEYS = ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "SLURM_JOB_ID", "SLURM_STEP_ID",
             "OMPI_MCA_orte_hnp_uri", "PMI_PORT", "ACCELERATE_RUN_ID")  # fmt: skip


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int
    source: str  # "torch.distributed", "torchrun", "openmpi", "pmi", "slurm" or "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _torch_group() -> RankInfo | None:
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return RankInfo(dist.get_rank(), dist.get_world_size(), local, "torch.distributed")


def detect(environ: Mapping[str, str] | None = None, hint: tuple[int, int] | None = None) -> RankInfo:
    """This process's rank, world size and local rank, and where they came from.

    ``hint`` is a framework's own (rank, world size), e.g. Lightning's global rank. It wins
    over environment variables, which a launcher may have left stale or never set (Lightning's
    DDP children get LOCAL_RANK but no RANK); an initialised process group wins over both.
    """
    env = os.environ if environ is None else environ
    if environ is None:
        found = _torch_group()
        if found is not None:
            return found
    if hint is not None and hint[1] > 1:
        rank, size = int(hint[0]), int(hint[1])
        return RankInfo(rank, size, int(env.get("LOCAL_RANK", rank)), "framework")
    for source, rank_key, size_key, local_key in _ENV_SOURCES:
        if rank_key in env and size_key in env:
            try:
                rank, size = int(env[rank_key]), int(env[size_key])
                local = int(env.get(local_key, rank))
            except ValueError:
                continue
            if size > 1 or source == "torchrun":
                return RankInfo(rank, size, local, source)
    return RankInfo(0, 1, 0, "single")


def job_run_id(environ: Mapping[str, str] | None = None, parent: tuple[int, float | None] | None = None) -> str | None:
    """A run id every process of this job derives alike, or None outside a launcher.

    Launcher variables alone repeat between jobs (a static rendezvous sets
    ``TORCHELASTIC_RUN_ID=none`` and the same ``MASTER_PORT`` every time), so on a single node,
    where every worker is a child of one launcher process, that process (pid and start time)
    is part of the identity too.
    """
    env = os.environ if environ is None else environ
    parts = [f"{k}={env[k]}" for k in _JOB_KEYS if env.get(k) and env[k].lower() != "none"]
    if not parts:
        return None
    if env.get("LOCAL_WORLD_SIZE") and env.get("LOCAL_WORLD_SIZE") == env.get("WORLD_SIZE"):
        if parent is None:
            from runstack.core.envinfo import process_started

            parent = (os.getppid(), process_started(os.getppid()))
        parts.append(f"launcher={parent[0]}@{parent[1]}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def group_is_up() -> bool:
    """Whether a torch.distributed process group is initialised in this process."""
    dist = sys.modules.get("torch.distributed")
    return bool(dist is not None and dist.is_available() and dist.is_initialized())


def share_run_id(run_id: str) -> str:
    """Rank 0's ``run_id`` on every rank, via torch.distributed when a group is up."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return run_id
    box = [run_id]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])
