"""The run handed to processes that do not log: other ranks, and ``mode="disabled"``.

Every method exists and does nothing, so training code never needs a rank check.
"""

from __future__ import annotations

from typing import Any

from runstack.core.config import Config
from runstack.core.ranks import RankInfo
from runstack.errors import RunStateError


class NoOpRun:
    """A run whose methods do nothing. ``config`` still holds values in memory."""

    disabled = True

    def __init__(self, run_id: str, name: str, project: str, rank: RankInfo, config: dict[str, Any],
                 dir: str | None = None, status: str = "disabled") -> None:  # fmt: skip
        self.id, self.name, self.project, self.rank, self.dir = run_id, name, project, rank, dir
        self.config = Config(config, None)
        self.summary: dict[str, Any] = {}
        self.tags: list[str] = []
        self.step = 0
        self.status = status

    def log(self, data: dict[str, Any], step: int | None = None, commit: bool = True) -> None:
        """Does nothing."""

    def define_metric(self, name: str, summary: str = "last", step_metric: str | None = None) -> None:
        """Does nothing."""

    finished = False

    def finish(self, exit_code: int | None = None, status: str | None = None, error: str | None = None) -> None:
        """Does nothing."""
        from runstack.core import session

        session.forget(self)

    def begin_activity(self, what: str, on_close: Any = None) -> None:
        """Does nothing."""

    def end_activity(self) -> None:
        """Does nothing."""

    def log_artifact(self, artifact: Any, aliases: list[str] | None = None) -> Any:
        """Does nothing: rank 0 logs artifacts."""
        return artifact

    def use_artifact(self, spec: str) -> Any:
        """The artifact version from the store (every rank may need its files); use is not recorded."""
        from runstack.core.artifacts import ArtifactRegistry
        from runstack.core.store import Store

        if self.status == "disabled":
            raise RunStateError("this run is disabled: runstack.init(mode='local') to use artifacts")
        return ArtifactRegistry(Store(self.dir)).get(spec)

    def history(self, *args: Any, **kwargs: Any) -> Any:
        raise RunStateError(
            f"this process does not log (rank {self.rank.rank}, {self.status}): "
            "read the history from rank 0 or with runstack.Api()"
        )

    def __enter__(self) -> NoOpRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    def __repr__(self) -> str:
        return f"NoOpRun(id={self.id!r}, rank={self.rank.rank})"
