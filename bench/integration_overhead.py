"""Wall time of training with the runstack callback divided by the same training without it.

XGBoost and LightGBM: 1,000 boosting rounds on a generated dataset with a validation set.
Lightning: 2,000 tiny training steps. Each configuration runs ``--repeats`` times,
alternating with and without the callback; the ratio of the fastest runs is reported.

    python bench/integration_overhead.py [--repeats 3]

Prints one summary line:
    integration_overhead: xgboost 1.0..x (...), lightgbm ...x, lightning ...x, lightning vs a do-nothing logger ...x
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable

import numpy as np


def _data(n: int = 20_000, features: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features))
    return x, x @ rng.normal(size=features) + rng.normal(scale=0.5, size=n)


def xgboost_job(with_callback: bool) -> None:
    import xgboost as xgb

    from runstack.integrations.xgboost import RunstackCallback

    x, y = _data()
    train, valid = xgb.DMatrix(x[:15000], y[:15000]), xgb.DMatrix(x[15000:], y[15000:])
    callbacks = [RunstackCallback(project="bench")] if with_callback else []
    xgb.train({"max_depth": 4, "eta": 0.05, "nthread": 1}, train, 1000, evals=[(train, "train"), (valid, "valid")],
              verbose_eval=False, callbacks=callbacks)  # fmt: skip


def lightgbm_job(with_callback: bool) -> None:
    import lightgbm as lgb

    from runstack.integrations.lightgbm import runstack_callback

    x, y = _data()
    train = lgb.Dataset(x[:15000], y[:15000])
    valid = lgb.Dataset(x[15000:], y[15000:], reference=train)
    callbacks = [runstack_callback(project="bench")] if with_callback else []
    lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "num_leaves": 15}, train, 1000,
              valid_sets=[train, valid], callbacks=callbacks)  # fmt: skip


def lightning_job(with_callback: bool, null_logger: bool = False) -> None:
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.loggers.logger import DummyLogger

    from runstack.integrations.lightning import RunstackLogger

    class Tiny(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def training_step(self, batch, index):  # type: ignore[no-untyped-def]
            loss = self.layer(batch[0]).pow(2).mean()
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.TensorDataset(torch.randn(2000, 8))
    logger = RunstackLogger(project="bench") if with_callback else DummyLogger() if null_logger else False
    trainer = Trainer(max_steps=2000, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)  # fmt: skip
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=1))


def _measure(job: Callable[[bool], None], repeats: int) -> tuple[float, float, float]:
    timings: dict[bool, list[float]] = {False: [], True: []}
    job(False)  # warm-up: imports, allocator, thread pools
    for _ in range(repeats):
        for flag in (False, True):
            start = time.perf_counter()
            job(flag)
            timings[flag].append(time.perf_counter() - start)
    # Fastest run of each: the least disturbed by the rest of the (shared) machine.
    base, with_cb = min(timings[False]), min(timings[True])
    return with_cb / base, base, with_cb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    parts = []
    with tempfile.TemporaryDirectory() as root:
        os.environ["RUNSTACK_DIR"] = root
        for name, job in (("xgboost", xgboost_job), ("lightgbm", lightgbm_job), ("lightning", lightning_job)):
            ratio, base, with_cb = _measure(job, args.repeats)
            parts.append(f"{name} {ratio:.3f}x ({base:.2f} s -> {with_cb:.2f} s)")
        # Any Lightning logger turns on its metric collection each step; a logger that does
        # nothing isolates runstack's own share from that.
        ratio, base, with_cb = _measure(lambda flag: lightning_job(flag, null_logger=True), args.repeats)
        parts.append(f"lightning vs a do-nothing logger {ratio:.3f}x ({base:.2f} s -> {with_cb:.2f} s)")
    print("integration_overhead: " + ", ".join(parts))


if __name__ == "__main__":
    main()
