"""Keras 3: ``model.fit(..., callbacks=[RunstackCallback(project="vision")])``."""

from __future__ import annotations

from typing import Any

from runstack.integrations._common import OwnedRun, plain_config, require

keras = require("keras", "keras")


class RunstackCallback(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
    """Epoch metrics (train and ``val_``) at step = epoch; optional per-batch metrics.

    Args:
        run: an existing run (left open); otherwise one is started at train begin, finished
            at train end, and continued by a later ``fit`` with the same callback (Keras
            reuses callbacks; ``initial_epoch`` continues the epochs).
        log_batches: also log every batch's metrics as ``batch/<name>`` at the global batch step.
            Keras then waits for each batch's logs (the callback is not ``async_safe``), so
            rows are written in step order.
    """

    def __init__(self, run: Any = None, log_batches: bool = False, **init_kwargs: Any) -> None:
        super().__init__()
        self._owned = OwnedRun(run, init_kwargs, "keras")
        self.log_batches = log_batches
        self.async_safe = not log_batches  # batch rows from a thread pool would come out of order
        self._epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        run = self._owned.get()
        lines: list[str] = []
        self.model.summary(print_fn=lambda line, *a, **k: lines.append(line))
        config = {"fit": plain_config(self.params), "model": {"name": self.model.name, "summary": "\n".join(lines),
                                                            "num_parameters": self.model.count_params()}}  # fmt: skip
        if getattr(self.model, "optimizer", None) is not None:
            config["optimizer"] = plain_config(self.model.optimizer.get_config())
        run.config.update(config)
        if self.log_batches:
            run.define_metric("val_*", step_metric="epoch")
        self._owned.begin("keras Model.fit()")

    def _batch_step(self, batch: int) -> int:
        return self._epoch * int(self.params.get("steps") or 0) + batch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.log_batches and logs:
            self._owned.get().log({f"batch/{k}": v for k, v in logs.items()}, step=self._batch_step(batch))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        step = self._batch_step(int(self.params.get("steps") or 1) - 1) if self.log_batches else epoch
        self._owned.get().log({**(logs or {}), "epoch": epoch}, step=step)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._owned.end()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_model"}
