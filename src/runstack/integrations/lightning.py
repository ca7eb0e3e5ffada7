"""PyTorch Lightning: ``Trainer(logger=RunstackLogger(project="mnist"))``.

Works with both ``lightning`` and ``pytorch_lightning`` (the latter from
``runstack.integrations.pytorch_lightning``).
"""

from __future__ import annotations

import os
from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require


def build_logger(namespace: str) -> type:
    """The RunstackLogger class for one Lightning namespace ("lightning.pytorch" or "pytorch_lightning")."""
    loggers = require(f"{namespace}.loggers.logger", "lightning")
    rank_zero = require(f"{namespace}.utilities.rank_zero", "lightning")
    fabric_logger = require("lightning_fabric.utilities.logger", "lightning")

    class RunstackLogger(loggers.Logger):  # type: ignore[misc, name-defined]
        """A Lightning ``Logger`` writing to a runstack run.

        Args:
            run: an existing run; otherwise one is started with ``init_kwargs`` on first use
                and finished by ``finalize``.
            log_model: also log each saved checkpoint file as a "model" artifact
                (aliases ``latest``, and ``best`` for the best one so far).
            **init_kwargs: passed to ``runstack.init`` (project, name, config, tags, ...).
        """

        def __init__(self, run: Any = None, log_model: bool = False, **init_kwargs: Any) -> None:
            super().__init__()
            self._owned = OwnedRun(run, init_kwargs)
            self.log_model = log_model

        @property
        def name(self) -> str:
            return str(self._owned.init_kwargs.get("project") or getattr(self._owned.run, "project", "default"))

        @property
        def version(self) -> str | None:
            return getattr(self._owned.run, "id", None)

        @property
        def experiment(self) -> Any:
            """The runstack run (created on first use; a NoOpRun on ranks other than 0)."""
            if self._owned.run is not None:
                return self._owned.run
            world = int(os.environ.get("WORLD_SIZE", "1"))
            return self._owned.get(rank_hint=(rank_zero.rank_zero_only.rank, world))

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            params = fabric_logger._convert_params(params)
            self.experiment.config.update(plain_config(params))

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self.experiment.log(metrics, step=step)

        def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
            summary = self.experiment.summary
            for attr in ("best_model_path", "best_model_score", "last_model_path"):
                value = getattr(checkpoint_callback, attr, None)
                if value not in (None, ""):
                    summary[f"checkpoint/{attr}"] = plain_config(value)
            if self.log_model:
                self._log_checkpoints(checkpoint_callback)

        def _log_checkpoints(self, checkpoint_callback: Any) -> None:
            import runstack

            best = getattr(checkpoint_callback, "best_model_path", "")
            for path in dict.fromkeys(p for p in (getattr(checkpoint_callback, "last_model_path", ""), best) if p):
                if os.path.isfile(path):
                    artifact = runstack.Artifact(f"model-{self.experiment.id}", "model",
                                                 metadata={"score": plain_config(checkpoint_callback.best_model_score)})  # fmt: skip
                    artifact.add_file(path)
                    self.experiment.log_artifact(artifact, aliases=["best"] if path == best else [])

        def save(self) -> None:
            """Nothing to do: every logged step is already on disk."""

        def finalize(self, status: str) -> None:
            self._owned.finish("failed" if status == "failed" else "finished")

    return RunstackLogger


RunstackLogger = build_logger("lightning.pytorch")
