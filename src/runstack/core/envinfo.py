"""Facts about where a run ran: host, process, Python, git commit, package versions."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from typing import Any

TRACKED_PACKAGES = ("runstack", "numpy", "torch", "lightning", "pytorch-lightning", "transformers", "keras",
                    "xgboost", "lightgbm", "accelerate", "datasets", "scikit-learn", "jax")  # fmt: skip


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if it is gone."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: it will never write again
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def git_state(cwd: str | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out in ``cwd`` and whether the tree has changes, or (None, None)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=5)  # fmt: skip
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of the ML packages installed here (read from metadata, nothing is imported)."""
    from importlib import metadata

    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe() -> dict[str, Any]:
    """Catalogue columns describing this process (cheap ones; see ``describe_slow``)."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_started": process_started(pid),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }


def describe_slow() -> dict[str, Any]:
    """The columns that cost subprocesses or file scans: recorded from a background thread."""
    commit, dirty = git_state()
    return {"git_commit": commit, "git_dirty": dirty, "packages": dict(package_versions())}
