"""The agent: claims trials of a sweep and runs them, in this process or as the sweep's command.

Ctrl-C once: the current trial finishes and no new one starts; twice: the trial stops now.
Several agents (processes, machines sharing the store folder) may work on one sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from runstack.core.store import Store
from runstack.errors import InvalidArgumentError, SweepConfigError
from runstack.sweeps.config import expand_command
from runstack.sweeps.study import Claimed, Sweep
from runstack.sweeps.trial import ENV_KEYS, TrialPruned


class _Interrupts:
    """First SIGINT: stop after this trial. Second: KeyboardInterrupt now."""

    def __init__(self) -> None:
        self.stop_requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        print("runstack agent: stopping after the current trial (Ctrl-C again to stop now)", file=sys.stderr)


@contextlib.contextmanager
def _sigint(handler: _Interrupts) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _trial_env(sweep: Sweep, claimed: Claimed) -> dict[str, str]:
    env = {"RUNSTACK_DIR": str(sweep.store.root), "RUNSTACK_PROJECT": sweep.project, "RUNSTACK_SWEEP_ID": sweep.id,
           "RUNSTACK_SWEEP_RUN_ID": claimed.run_id, "RUNSTACK_SWEEP_NAME": claimed.name,
           "RUNSTACK_SWEEP_PARAMS": json.dumps(claimed.config), "RUNSTACK_SWEEP_TRIAL": str(claimed.number)}  # fmt: skip
    if sweep.config.early_terminate and sweep.config.metric:
        env["RUNSTACK_SWEEP_METRIC"] = sweep.config.metric
    return env


def agent(sweep_id: str, function: Callable[[], Any] | None = None, count: int | None = None,
          dir: str | os.PathLike[str] | None = None) -> int:  # fmt: skip
    """Run trials of a sweep until it is done, stopped, capped, or ``count`` trials ran.

    Args:
        sweep_id: from ``runstack sweep create`` (or ``runstack.sweep``).
        function: a training function run in this process; inside it ``runstack.init()``
            joins the trial (config = the trial's parameters). Without it, the sweep's
            ``command`` runs as a subprocess.
        count: at most this many trials from this agent.
        dir: the store folder (default ``$RUNSTACK_DIR`` or ``./runstack``).

    Returns:
        How many trials this agent ran.
    """
    if count is not None and (not isinstance(count, int) or count < 1):
        raise InvalidArgumentError("count", count, "a positive int, or None for no limit")
    sweep = Sweep(Store(dir, create=False), sweep_id)
    if function is None and not sweep.config.program and "${program}" in sweep.config.command:
        raise SweepConfigError("program", None, "the script the agent runs (or pass function= to runstack.agent)")
    interrupts, ran = _Interrupts(), 0
    with _sigint(interrupts):
        while (count is None or ran < count) and not interrupts.stop_requested:
            claimed = sweep.claim()
            if claimed is None:
                break
            try:
                if function is not None:
                    _in_process(sweep, claimed, function)
                else:
                    _subprocess(sweep, claimed)
            finally:
                sweep.finish_trial(claimed)
            ran += 1
    return ran


def _in_process(sweep: Sweep, claimed: Claimed, function: Callable[[], Any]) -> None:
    from runstack.core import session

    env = _trial_env(sweep, claimed)
    saved = {k: os.environ.get(k) for k in (*ENV_KEYS, "RUNSTACK_DIR", "RUNSTACK_PROJECT")}
    os.environ.update(env)
    outcome: dict[str, Any] = {}
    try:
        function()
    except TrialPruned:
        pass
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded; the sweep goes on
        traceback.print_exc()
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        run = session._open_in_process(sweep.store, claimed.run_id)
        if run is not None:  # the function left its run open: close it with the trial's outcome
            run.finish(**outcome)


def _subprocess(sweep: Sweep, claimed: Claimed) -> None:
    command = expand_command(sweep.config, claimed.config, sys.executable)
    # A session of its own: the terminal's Ctrl-C reaches the agent only, which decides.
    child = subprocess.Popen(command, env={**os.environ, **_trial_env(sweep, claimed)}, start_new_session=True,
                             preexec_fn=_die_with_parent)  # fmt: skip
    try:
        child.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        raise


def _die_with_parent() -> None:
    """In the trial process: receive SIGKILL when the agent dies (Linux), like wandb's agent."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
