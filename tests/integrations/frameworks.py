"""One tiny real training per framework, shared by the behaviour suite and the failure test.

Each trainer returns what the framework itself reported (its own history object, CSV
logger or evaluation dict), so tests compare runstack's history with the framework's
record rather than with numbers written here.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Trained:
    run_id: str
    reported: dict[str, dict[int, float]]  # metric -> step -> value, as the framework reported it
    config: dict[str, Any] = field(default_factory=dict)  # dotted config path -> expected value
    summary: dict[str, Any] = field(default_factory=dict)  # summary key -> expected value


class Boom(RuntimeError):
    """Raised inside training to check that a failing run is marked failed."""


def _data(n: int = 64, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x @ np.arange(1, features + 1, dtype=np.float32) + rng.normal(scale=0.1, size=n)).astype(np.float32)
    return x, y


def lightning(tmp: Path, fail: bool = False) -> Trained:
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.loggers import CSVLogger

    from runstack.integrations.lightning import RunstackLogger

    x, y = _data()
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)[:, None])

    class Regressor(LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

        def training_step(self, batch: Any, index: int) -> Any:
            if fail and self.global_step == 3:
                raise Boom("training failed at step 3")
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, index: int) -> None:
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    csv = CSVLogger(tmp / "csv", name="reference")
    logger = RunstackLogger(project="integrations", tags=["lightning"])
    trainer = Trainer(max_epochs=2, logger=[logger, csv], log_every_n_steps=1, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)  # fmt: skip
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    try:
        trainer.fit(Regressor(), loader, torch.utils.data.DataLoader(data, batch_size=32))
    finally:
        run_id = logger.version
    import csv as csv_module

    reported: dict[str, dict[int, float]] = defaultdict(dict)
    with open(Path(csv.log_dir) / "metrics.csv") as handle:
        for row in csv_module.DictReader(handle):
            for key, value in row.items():
                if key != "step" and value != "":
                    reported[key][int(row["step"])] = float(value)
    return Trained(run_id, dict(reported), {"lr": 0.05, "hidden": 8})


def transformers(tmp: Path, fail: bool = False) -> Trained:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    from runstack.integrations.transformers import RunstackCallback

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=32)
    model = GPT2LMHeadModel(config)
    gen = torch.Generator().manual_seed(0)
    samples = [{"input_ids": t, "labels": t} for t in torch.randint(0, 64, (32, 16), generator=gen)]

    class FailAtStep(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if fail and state.global_step == 3:
                raise Boom("training failed at step 3")

    args = TrainingArguments(output_dir=str(tmp / "hf"), per_device_train_batch_size=8, per_device_eval_batch_size=8,
                             num_train_epochs=2, logging_steps=1, eval_strategy="epoch", save_strategy="no",
                             report_to=[], use_cpu=True, learning_rate=1e-3, seed=0, disable_tqdm=True)  # fmt: skip
    callback = RunstackCallback(project="integrations", tags=["transformers"])
    trainer = Trainer(model=model, args=args, train_dataset=samples, eval_dataset=samples[:16],
                      callbacks=[callback, FailAtStep()])  # fmt: skip
    try:
        trainer.train()
    finally:
        run_id = callback._owned.run_id
    reported: dict[str, dict[int, float]] = defaultdict(dict)
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if key == "step" or key in ("train_runtime", "train_samples_per_second", "train_steps_per_second",
                                        "total_flos", "train_loss"):  # fmt: skip
                continue
            if key.startswith("eval_"):
                reported[f"eval/{key[5:]}"][entry["step"]] = value
            elif key != "epoch" or not any(k.startswith("eval_") for k in entry):
                reported[f"train/{key}"][entry["step"]] = value
    expected_loss = next(e["train_loss"] for e in trainer.state.log_history if "train_loss" in e)
    return Trained(run_id, dict(reported), {"trainer.learning_rate": 1e-3, "model.n_layer": 2, "model.n_embd": 32},
                   {"train_loss": expected_loss, "global_step": trainer.state.global_step})  # fmt: skip


def keras(tmp: Path, fail: bool = False) -> Trained:
    import keras as keras_module

    from runstack.integrations.keras import RunstackCallback

    keras_module.utils.set_random_seed(0)
    x, y = _data()
    model = keras_module.Sequential([keras_module.Input((4,)), keras_module.layers.Dense(8, activation="relu"),
                                     keras_module.layers.Dense(1)], name="tiny")  # fmt: skip
    model.compile(optimizer=keras_module.optimizers.SGD(0.01), loss="mse", metrics=["mae"])

    seen = []

    def maybe_fail(batch: int, logs: Any) -> None:
        seen.append(batch)
        if fail and len(seen) == 6:  # the 3rd batch of the 2nd epoch
            raise Boom("training failed in epoch 2")

    callback = RunstackCallback(project="integrations", tags=["keras"])
    fail_cb = keras_module.callbacks.LambdaCallback(on_train_batch_end=maybe_fail)
    try:
        history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                            callbacks=[callback, fail_cb])  # fmt: skip
    finally:
        run_id = callback._owned.run_id
    reported = {key: dict(enumerate(values)) for key, values in history.history.items()}
    return Trained(run_id, reported, {"fit.epochs": 3, "model.name": "tiny", "optimizer.learning_rate": 0.01},
                   {"loss": history.history["loss"][-1], "epoch": 2})  # fmt: skip


def xgboost(tmp: Path, fail: bool = False) -> Trained:
    import xgboost as xgb

    from runstack.integrations.xgboost import RunstackCallback

    x, y = _data(200)
    train, valid = xgb.DMatrix(x[:150], y[:150]), xgb.DMatrix(x[150:], y[150:])

    class FailAt(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if fail and epoch == 5:
                raise Boom("training failed at iteration 5")
            return False

    evals_result: dict[str, Any] = {}
    callback = RunstackCallback(project="integrations", tags=["xgboost"])
    params = {"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror", "eval_metric": ["rmse", "mae"]}
    try:
        booster = xgb.train(params, train, 20, evals=[(train, "train"), (valid, "valid")],
                            evals_result=evals_result, callbacks=[callback, FailAt()], verbose_eval=False)  # fmt: skip
    finally:
        run_id = callback._owned.run_id
    reported = {f"{d}/{m}": dict(enumerate(v)) for d, ms in evals_result.items() for m, v in ms.items()}
    return Trained(run_id, reported, {"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror"},
                   {"feature_importance": booster.get_score(importance_type="gain")})  # fmt: skip


def lightgbm(tmp: Path, fail: bool = False) -> Trained:
    import lightgbm as lgb

    from runstack.integrations.lightgbm import runstack_callback

    x, y = _data(300)
    train = lgb.Dataset(x[:200], y[:200], feature_name=[f"f{i}" for i in range(4)])
    valid = lgb.Dataset(x[200:], y[200:], reference=train)

    def fail_at(env: Any) -> None:
        if fail and env.iteration == 5:
            raise Boom("training failed at iteration 5")

    fail_at.order = 40  # type: ignore[attr-defined]
    evals: dict[str, Any] = {}
    callback = runstack_callback(project="integrations", tags=["lightgbm"])
    params = {"objective": "regression", "metric": ["l2", "l1"], "num_leaves": 7, "learning_rate": 0.2,
              "verbose": -1, "seed": 0}  # fmt: skip
    try:
        booster = lgb.train(params, train, 20, valid_sets=[train, valid], valid_names=["training", "valid"],
                            callbacks=[lgb.record_evaluation(evals), callback, fail_at])  # fmt: skip
    finally:
        run_id = callback._owned.run_id
    reported = {f"{d}/{m}": dict(enumerate(v)) for d, ms in evals.items() for m, v in ms.items()}
    gains = booster.feature_importance(importance_type="gain")
    best = int(np.argmin(evals["valid"]["l2"])) + 1
    return Trained(run_id, reported, {"num_leaves": 7, "learning_rate": 0.2, "objective": "regression"},
                   {"best_iteration": best, "valid/l2": min(evals["valid"]["l2"]),
                    "feature_importance": dict(zip(booster.feature_name(), map(float, gains), strict=False))})  # fmt: skip


def accelerate(tmp: Path, fail: bool = False) -> Trained:
    import torch
    from accelerate import Accelerator

    from runstack.integrations.accelerate import RunstackTracker

    torch.manual_seed(0)
    x, y = _data()
    tracker = RunstackTracker(project="integrations", tags=["accelerate"])
    accelerator = Accelerator(log_with=[tracker], cpu=True)
    accelerator.init_trackers("integrations", config={"lr": 0.05, "batch_size": 16})
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)[:, None]), batch_size=16
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    reported: dict[str, dict[int, float]] = defaultdict(dict)
    step = 0
    for _ in range(3):
        for bx, by in loader:
            if fail and step == 5:
                raise Boom("training failed at step 5")
            loss = torch.nn.functional.mse_loss(model(bx), by)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            accelerator.log({"loss": loss.item(), "phase": "train"}, step=step)
            reported["loss"][step] = loss.item()
            step += 1
    accelerator.end_training()
    return Trained(tracker._owned.run_id, dict(reported), {"lr": 0.05, "batch_size": 16}, {"phase": "train"})


TRAINERS = {
    name: globals()[name] for name in ("lightning", "transformers", "keras", "xgboost", "lightgbm", "accelerate")
}
MODULES = {"lightning": "lightning", "transformers": "transformers", "keras": "keras", "xgboost": "xgboost",
           "lightgbm": "lightgbm", "accelerate": "accelerate"}  # fmt: skip


def available(name: str) -> bool:
    try:
        importlib.import_module(MODULES[name])
    except ImportError:
        return False
    return True
