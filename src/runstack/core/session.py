"""``runstack.init()`` and the process-wide state around it: the current run,
finishing at exit, marking failures, and staying correct across ``fork()``.
"""

from __future__ import annotations

import atexit
import os
import secrets
import sqlite3
import string
import sys
import time
from typing import Any

from runstack.core import ranks
from runstack.core import values as _values
from runstack.core.config import to_json
from runstack.core.envinfo import describe
from runstack.core.logread import read_log
from runstack.core.noop import NoOpRun
from runstack.core.run import Run
from runstack.core.store import Store
from runstack.errors import InvalidArgumentError, RunExistsError, RunNotFoundError, RunStateError

AnyRun = Run | NoOpRun
_current: AnyRun | None = None
_live: list[AnyRun] = []  # open runs of this process, oldest first; the last is current
_uncaught: list[BaseException] = []
_hooks_installed = False
_ADJECTIVES = ("amber", "brisk", "calm", "deep", "eager", "fair", "gentle", "hardy", "keen", "lucid", "mellow", "noble",
               "proud", "quiet", "rapid", "silent", "steady", "swift", "vivid", "wise")  # fmt: skip
_NOUNS = ("brook", "cedar", "comet", "dawn", "delta", "ember", "fjord", "grove", "harbor", "lake", "meadow", "nova",
          "orbit", "peak", "reef", "river", "spark", "tide", "valley", "wave")  # fmt: skip


def new_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _choose(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgumentError(name, value, " | ".join(repr(a) for a in allowed))
    return str(value)


def init(project: str | None = None, name: str | None = None, config: Any = None, tags: list[str] | None = None,
         notes: str | None = None, group: str | None = None, job_type: str | None = None, dir: str | None = None,
         id: str | None = None, resume: str = "never", mode: str | None = None, log_ranks: str = "zero",
         strict_steps: bool = False, rank_hint: tuple[int, int] | None = None, system_metrics: bool = True,
         system_interval: float = 10.0, reinit: str = "create_new", server: str | None = None,
         api_key: str | None = None) -> AnyRun:  # fmt: skip
    """Start (or resume) a run and make it the current one.

    Args:
        project: group of runs; default ``$RUNSTACK_PROJECT`` or "default".
        name, notes, group, job_type, tags: descriptive fields, shown by ``runstack ls``.
        config: hyperparameters (a dict, dataclass or argparse Namespace).
        dir: the store folder; default ``$RUNSTACK_DIR`` or ``./runstack``.
        id: the run id; with ``resume`` it picks the run to continue.
        resume: "never" (id must be new), "allow" (continue if it exists) or "must".
        mode: "local" (default, or ``$RUNSTACK_MODE``) or "disabled" (log nothing).
        log_ranks: "zero" (one run per job, logged by rank 0; other ranks get a run that
            does nothing) or "all" (every rank logs into the same run, tagged by rank).
        strict_steps: raise StepOrderError when a step goes backwards instead of keeping it.
        system_metrics: sample CPU, memory, disk, network and GPU in the background
            (``$RUNSTACK_SYSTEM_METRICS=0`` turns it off); ``system_interval`` seconds apart.
        rank_hint: a framework's own (rank, world size); integrations pass it so that core's
            rank decision agrees with the framework's even where launcher variables mislead.
        reinit: "create_new" (default: runs already open in this process stay open, and the
            new one becomes current for ``runstack.log``) or "finish_previous" (finish them first).
            ``id=`` of a run still open in this process returns that run (with ``resume``).
        server, api_key: also ship the run to a team server (``runstack server``); default
            ``$RUNSTACK_BASE_URL`` and ``$RUNSTACK_API_KEY``. The local store stays the durable
            copy: a background thread uploads it, retrying while the server is away, and
            ``finish()`` waits for it at most ``$RUNSTACK_SYNC_TIMEOUT`` seconds (default 30);
            ``runstack sync`` sends whatever is left.

    Returns:
        A ``Run``, or a ``NoOpRun`` on ranks that do not log and in disabled mode.

    Raises:
        RunExistsError, RunNotFoundError: ``id``/``resume`` disagree with the store.
        ConfigError: config that is not JSON-serialisable.
        StoreError: the store folder cannot be written.
    """
    resume = _choose("resume", resume, ("never", "allow", "must"))
    mode = _choose("mode", mode or os.environ.get("RUNSTACK_MODE") or "local", ("local", "disabled"))
    log_ranks = _choose("log_ranks", log_ranks, ("zero", "all"))
    if _choose("reinit", reinit, ("create_new", "finish_previous")) == "finish_previous":
        for previous_run in reversed(list(_live)):
            previous_run.finish()
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise InvalidArgumentError("tags", tags, "a list of strings, e.g. tags=['baseline']")
    for label, text in (("name", name), ("notes", notes), ("group", group), ("job_type", job_type),
                        *(("tags", t) for t in tags or ())):  # fmt: skip
        _values.check_text(label, text)
    trial = _sweep_trial() if mode == "local" else None
    if trial is not None:  # inside a sweep trial: join it (wandb's rules: sweep parameters win)
        id, resume = id or trial["run_id"], "allow" if id is None else resume
        name, group, job_type = name or trial["name"], group or trial["sweep_id"], job_type or "sweep"
        config = {**(to_json("config", config) if config is not None else {}), **trial["params"]}
    project = _values.check_project(project or os.environ.get("RUNSTACK_PROJECT") or "default")
    if id is not None:
        _values.check_run_id(id)
    config_data = to_json("config", config if config is not None else {})
    if not isinstance(config_data, dict):
        raise InvalidArgumentError("config", config, "a dict, dataclass or argparse.Namespace")
    if os.environ.get("RUNSTACK_SYSTEM_METRICS", "1").lower() in ("0", "false", "no", "off"):
        system_metrics = False
    if system_metrics and not (isinstance(system_interval, (int, float)) and system_interval > 0):
        raise InvalidArgumentError("system_interval", system_interval, "a positive number of seconds")
    sampling = float(system_interval) if system_metrics else None
    remote = _server_client(server, api_key) if mode == "local" else None
    info = ranks.detect(hint=rank_hint)
    if mode == "disabled" or (log_ranks == "zero" and not info.is_main):
        run_id = id or ranks.job_run_id() or "disabled"
        status = "disabled" if mode == "disabled" else f"not logging on rank {info.rank}"
        return _activate(NoOpRun(run_id, name or run_id, project, info, config_data, dir, status))
    if log_ranks == "all":  # every rank must name the same run, and no other job may name it
        run_id = ranks.share_run_id(id or new_id()) if ranks.group_is_up() else id or ranks.job_run_id() or new_id()
    else:
        run_id = id or new_id()
    store = Store(dir)
    if not info.is_main:  # log_ranks="all": add this rank's history to rank 0's run
        log_path = store.log_path(run_id, info.rank)
        previous = read_log(log_path) if log_path.exists() else None
        rank_row = {"id": run_id, "name": name or run_id, "project": project, "config": config_data}
        return _activate(_uploading(Run(store, rank_row, info, info.rank, previous, strict_steps, sampling), remote))
    open_here = _open_in_process(store, run_id)
    if open_here is not None:
        if resume == "never":
            raise RunExistsError(run_id)
        return _activate(open_here)
    store.reconcile()
    existing = store.catalog.get_run(run_id)
    if existing is not None and resume == "never":
        raise RunExistsError(run_id)
    if existing is None and resume == "must":
        raise RunNotFoundError(run_id, str(store.root))
    facts = describe()
    facts.update(heartbeat_at=time.time(), world_size=info.world_size, rank_mode=log_ranks)
    previous = None
    if existing is None:
        row: dict[str, Any] = {
            "id": run_id, "project": project, "name": name or f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}",
            "run_group": group, "job_type": job_type, "notes": notes, "status": "running",
            "created_at": time.time(), "config": config_data, "summary": {}, "summary_set": {}, "metrics": {},
            **facts,
        }  # fmt: skip
        try:
            store.catalog.create_run(row, list(tags or []))
        except sqlite3.IntegrityError:  # another process created this id a moment ago
            raise RunExistsError(run_id) from None
        row["tags"] = list(tags or [])
        restore: dict[str, Any] | None = None
    else:
        if existing["status"] == "running":
            raise RunStateError(
                f"run {run_id!r} is still running (pid {existing['pid']} on {existing['host']}): finish it first"
            )
        merged = {**existing["config"], **config_data}
        # Claim the run: of several processes resuming it at once, exactly one wins.
        if not store.catalog.update_run_if(run_id, {"status": existing["status"], "resumed": existing["resumed"]},
                                           status="running", ended_at=None, error=None, config=merged,
                                           resumed=existing["resumed"] + 1, **facts):  # fmt: skip
            raise RunStateError(f"run {run_id!r} was just resumed by another process: wait for it to finish")
        restore = {"status": existing["status"], "ended_at": existing["ended_at"], "error": existing["error"]}
        store.catalog.add_tags(run_id, list(tags or []))
        row = {**existing, "config": merged, "tags": sorted({*existing["tags"], *(tags or [])})}
    try:
        log_path = store.log_path(run_id, 0)
        previous = read_log(log_path) if restore is not None and log_path.exists() else None
        run = _uploading(Run(store, row, info, 0, previous, strict_steps, sampling), remote)
        if trial is not None:
            from runstack.sweeps.trial import attach

            attach(run)
        return _activate(run)
    except BaseException:
        if restore is not None:  # the claim failed half-way: give the run back as it was
            store.catalog.update_run(run_id, **restore)
        raise


def _server_client(server: str | None, api_key: str | None) -> Any:
    from runstack.core.client import Client, server_from_env

    found = server_from_env(server, api_key)
    return None if found is None else Client(*found)


def _uploading(run: Run, client: Any) -> Run:
    if client is not None:
        run.upload_to(client)
    return run


def _sweep_trial() -> dict[str, Any] | None:
    if not os.environ.get("RUNSTACK_SWEEP_ID"):
        return None
    from runstack.sweeps.trial import context

    return context()


def _open_in_process(store: Store, run_id: str) -> Run | None:
    """The run with this id that this process has open in the same store, if any."""
    for run in _live:
        if isinstance(run, Run) and run.id == run_id and run._store.root == store.root and not run.finished:
            return run
    return None


def _activate(run: AnyRun) -> AnyRun:
    global _current
    _install_hooks()
    if run in _live:
        _live.remove(run)
    _live.append(run)
    _current = run
    return run


def forget(run: AnyRun) -> None:
    """Called by ``finish()``: the run is no longer open; the latest open run becomes current."""
    global _current
    if run in _live:
        _live.remove(run)
    if _current is run:
        _current = _live[-1] if _live else None


def uncaught_error() -> str | None:
    """``Type: message`` of the exception that is ending this process, if one is."""
    if not _uncaught:
        return None
    exc = _uncaught[-1]
    return f"{type(exc).__name__}: {exc}"


def current() -> AnyRun:
    """The current run, or RunStateError when ``init()`` has not been called."""
    if _current is None:
        raise RunStateError("no active run: call runstack.init() first")
    return _current


def current_or_none() -> AnyRun | None:
    return _current


def _finish_at_exit() -> None:
    for run in reversed(list(_live)):
        if isinstance(run, Run) and run._pid == os.getpid():
            run.finish(exit_code=1 if _uncaught else 0, error=uncaught_error())


def _excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    _uncaught.append(exc)
    _previous_excepthook(kind, exc, tb)


def _after_fork_in_child() -> None:
    # The current run stays current in the child, where its log() does nothing.
    for run in _live:
        if isinstance(run, Run):
            run._forked()
    _live.clear()


_previous_excepthook = sys.excepthook


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_finish_at_exit)
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    from runstack.core.background import FORK_GUARD

    os.register_at_fork(before=FORK_GUARD.acquire, after_in_parent=FORK_GUARD.release,
                        after_in_child=_child_after_fork)  # fmt: skip


def _child_after_fork() -> None:
    from runstack.core.background import FORK_GUARD

    FORK_GUARD.release()
    _after_fork_in_child()
