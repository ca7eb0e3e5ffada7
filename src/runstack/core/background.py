"""The thread beside every run: flushes its history every few seconds, records git and package
facts off the path of ``init()``, and beats the catalogue heartbeat."""

from __future__ import annotations

import threading
import time
from typing import Any

FLUSH_S = 5.0

# Held by background threads while they are inside SQLite or starting a subprocess, and by
# fork() (hooks in session): a child forked meanwhile would inherit a held internal lock and hang.
FORK_GUARD = threading.RLock()


class Background(threading.Thread):
    """Flushes the history to disk every few seconds and beats the catalogue heartbeat."""

    def __init__(self, run: Any) -> None:
        super().__init__(name=f"runstack-{run.id}", daemon=True)
        self.target, self.stop = run, threading.Event()

    def run(self) -> None:
        from runstack.core.envinfo import describe_slow
        from runstack.core.store import HEARTBEAT_S

        target, beat = self.target, time.monotonic()
        if target._is_owner:
            try:  # git and package versions: subprocesses kept off the path of init()
                with FORK_GUARD:
                    target._store.catalog.update_run(target.id, **describe_slow())
            except Exception:  # noqa: BLE001 - a missing git commit must never kill training
                pass
        while not self.stop.wait(FLUSH_S):
            target._writer.flush()
            if target._is_owner and time.monotonic() - beat >= HEARTBEAT_S:
                beat = time.monotonic()
                try:
                    with FORK_GUARD:
                        target._store.catalog.update_run(target.id, heartbeat_at=time.time())
                except Exception:  # noqa: BLE001 - a missed heartbeat must never kill training
                    pass
