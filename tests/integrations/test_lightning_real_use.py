"""The Lightning logger as users really drive it: the behaviours Lightning's own logger tests
(``tests_pytorch/loggers/test_all.py``, ``test_wandb.py``, ``test_mlflow.py``) check, on our logger."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import pickle

import numpy as np
import pytest

pytest.importorskip("lightning")

import torch  # noqa: E402
from lightning.pytorch import LightningModule, Trainer  # noqa: E402

import runstack  # noqa: E402
from runstack.integrations.lightning import RunstackLogger  # noqa: E402


class Tiny(LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.net(x)

    def _loss(self, batch):
        return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

    def training_step(self, batch, index):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, index):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, index):
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(32, 4, generator=gen)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)

    val_dataloader = test_dataloader = train_dataloader


def _trainer(logger, **kwargs):
    options = dict(max_epochs=2, log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                   accelerator="cpu", devices=1, logger=logger)  # fmt: skip
    options.update(kwargs)
    return Trainer(**options)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.slow
def test_fit_then_validate_then_test_log_into_one_run_finished_each_time(store_dir, tmp_path):
    logger = RunstackLogger(project="p")
    trainer = _trainer(logger, enable_checkpointing=False)
    model = Tiny()
    trainer.fit(model)
    api = runstack.Api(store_dir)
    assert api.run(logger.version).status == "finished"
    trainer.validate(model)
    assert api.run(logger.version).status == "finished"
    trainer.test(model)
    (view,) = api.runs()
    assert view.id == logger.version and view.status == "finished"
    frame = view.history()
    assert frame["test_loss"].notna().sum() == 1 and frame["train_loss"].notna().sum() == 8
    assert frame["val_loss"].notna().sum() == 3  # two epochs of fit, then validate()
    assert sorted(os.listdir(tmp_path)) == ["store"]  # nothing written in the working folder


@pytest.mark.slow
def test_lr_find_then_fit_gives_one_finished_run(store_dir):
    from lightning.pytorch.tuner import Tuner

    logger = RunstackLogger(project="p")
    trainer = _trainer(logger, enable_checkpointing=False)
    model = Tiny()
    Tuner(trainer).lr_find(model, min_lr=1e-4, max_lr=1e-1, num_training=10)
    trainer.fit(model)
    views = runstack.Api(store_dir).runs()
    assert [v.status for v in views] == ["finished"] and views[0].id == logger.version
    assert views[0].history()["train_loss"].notna().sum() == 8


@pytest.mark.slow
def test_checkpoints_land_in_the_run_folder_under_save_dir_name_version(store_dir, tmp_path):
    logger = RunstackLogger(project="p", save_dir=str(tmp_path / "elsewhere"))
    trainer = _trainer(logger, max_epochs=1)
    trainer.fit(Tiny())
    run_folder = tmp_path / "elsewhere" / "runs" / logger.version
    assert logger.save_dir == logger.log_dir == str(run_folder) == trainer.log_dir
    assert trainer.checkpoint_callback.dirpath == os.path.join(logger.save_dir, "p", logger.version, "checkpoints")
    assert list((run_folder / "p" / logger.version / "checkpoints").glob("*.ckpt"))
    assert runstack.Api(tmp_path / "elsewhere").run(logger.version).status == "finished"
    assert not store_dir.exists() and sorted(os.listdir(tmp_path)) == ["elsewhere"]


@pytest.mark.slow
def test_lightning_cli_saves_its_config_in_each_runs_folder(store_dir):
    pytest.importorskip("jsonargparse")
    from lightning.pytorch.cli import LightningCLI

    for lr in ("0.1", "0.2"):  # twice: the second must not collide with the first's config.yaml
        args = ["fit", f"--model.lr={lr}", "--trainer.max_epochs=1", "--trainer.accelerator=cpu",
                "--trainer.enable_progress_bar=false", "--trainer.logger=runstack.integrations.lightning.RunstackLogger",
                "--trainer.logger.project=cli", "--trainer.logger.tags=[a, b]", "--trainer.logger.log_model=all"]  # fmt: skip
        cli = LightningCLI(Tiny, args=args, save_config_kwargs={"overwrite": False})
        assert os.path.isfile(os.path.join(cli.trainer.logger.save_dir, "config.yaml"))
    views = runstack.Api(store_dir).runs(order="created_at")
    assert [v.config["lr"] for v in views] == [0.1, 0.2] and all(v.tags == ["a", "b"] for v in views)
    assert all(v.project == "cli" and v.status == "finished" for v in views)


def test_init_arguments_are_visible_to_lightning_cli():
    params = inspect.signature(RunstackLogger.__init__).parameters
    for name in ("project", "name", "save_dir", "version", "tags", "config", "group", "log_model", "prefix"):
        assert name in params and params[name].annotation is not inspect.Parameter.empty, name


@pytest.mark.slow
def test_pickled_trainer_keeps_logging_to_the_same_run(store_dir):
    logger = RunstackLogger(project="p")
    _ = logger.experiment
    logger.log_metrics({"a": 1}, step=0)
    logger.save()
    pickle.dumps(logger)
    trainer = _trainer(logger)
    trainer2 = pickle.loads(pickle.dumps(trainer))
    trainer2.logger.log_metrics({"acc": 1.0}, step=1)
    assert trainer2.logger.name == logger.name and trainer2.logger.save_dir == logger.save_dir
    assert trainer2.logger.version == logger.version
    logger.experiment.finish()
    (view,) = runstack.Api(store_dir).runs()
    assert view.history()["acc"].dropna().tolist() == [1.0]


@pytest.mark.slow
def test_ddp_spawn_gives_one_run_the_parent_knows(store_dir):
    logger = RunstackLogger(project="p")
    trainer = _trainer(logger, strategy="ddp_spawn", devices=2, enable_checkpointing=False, max_epochs=1)
    trainer.fit(Tiny())
    (view,) = runstack.Api(store_dir).runs()
    assert view.id == logger.version and view.status == "finished" and view.world_size == 2
    assert view.history()["train_loss"].notna().sum() == 2  # 32 samples, 2 ranks x batch 8: 2 steps


def test_hyperparameters_of_every_common_shape(store_dir):
    from omegaconf import OmegaConf

    @dataclasses.dataclass
    class Optim:
        name: str = "adam"
        betas: tuple = (0.9, 0.99)

    logger = RunstackLogger(project="p")
    params = {"cfg": OmegaConf.create({"model": {"width": 8, "act": "relu"}, "lr": "${oc.env:HOME,x}"}),
              "optim": Optim(), "ns": argparse.Namespace(inner=argparse.Namespace(k=3)), "z": np.complex128(1 + 2j),
              "arr": np.arange(3), "fn": len}  # fmt: skip
    logger.log_hyperparams(argparse.Namespace(**params), metrics={"hp_metric": 0.5})
    logger.log_hyperparams(OmegaConf.create({"top": {"x": 1}}))
    run = logger.experiment
    assert run.config["cfg"]["model"] == {"width": 8, "act": "relu"}
    assert run.config["optim"] == {"name": "adam", "betas": [0.9, 0.99]}
    assert run.config["ns"] == {"inner": {"k": 3}} and run.config["z"] == "(1+2j)" and run.config["arr"] == [0, 1, 2]
    assert run.config["top"] == {"x": 1} and "len" in run.config["fn"]
    assert run.history()["hp_metric"].tolist() == [0.5]


def test_prefix_media_graph_watch_and_artifacts(store_dir, tmp_path):
    logger = RunstackLogger(project="p", prefix="stage1")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_image("samples", [np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)], step=1,
                     caption=["zero", "one"])  # fmt: skip
    logger.log_text("texts", columns=["q", "a"], data=[["1+1", "2"]], step=1)
    logger.log_table("table", columns=["x"], data=[[1], [2]], step=1)
    logger.log_audio("clip", [np.zeros(800, np.float32)], step=1, sample_rate=[8000])
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    logger.watch(model, log="all", log_freq=1)
    model.train()
    model(torch.ones(1, 2)).sum().backward()
    with pytest.raises(runstack.errors.InvalidArgumentError, match="caption"):
        logger.log_image("bad", [np.zeros((2, 2))], caption=["a", "b"])
    (tmp_path / "w.txt").write_text("weights")
    artifact = runstack.Artifact("weights", "model")
    artifact.add_file(str(tmp_path / "w.txt"))
    logger.experiment.log_artifact(artifact)
    assert logger.use_artifact("weights:latest", artifact_type="model").name == "weights"
    folder = logger.download_artifact("weights:v0", save_dir=str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "w.txt").read_text() == "weights" and folder == str(tmp_path / "dl")
    with pytest.raises(runstack.errors.ArtifactError, match="artifact_type='model'"):
        logger.use_artifact("weights:latest", artifact_type="dataset")
    runstack.unwatch(model)
    logger.finalize("success")
    view = runstack.Api(store_dir).run(logger.version)
    frame = view.history()
    assert frame["stage1-loss"].tolist()[0] == 1.0
    assert frame["samples/0"].dropna().iloc[0].caption == "zero" and frame["samples/1"].notna().any()
    assert frame["texts"].dropna().iloc[0].to_pandas()["a"].tolist() == ["2"]
    assert frame["clip"].dropna().iloc[0].sample_rate == 8000
    assert "Linear" in frame["graph"].dropna().iloc[0].text and view.summary["graph/num_parameters"] == 6
    assert any(c.startswith("gradients/") for c in frame.columns)


def test_two_loggers_and_a_users_own_run_stay_open_together(store_dir):
    mine = runstack.init(project="mine")
    first, second = RunstackLogger(project="a"), RunstackLogger(project="b")
    first.log_metrics({"x": 1}, step=0)
    second.log_metrics({"x": 2}, step=0)
    mine.log({"y": 3})
    runstack.log({"y": 4})  # the module-level log acts on the latest run opened
    first.finalize("success")
    second.finalize("success")
    mine.log({"y": 5})
    mine.finish()
    api = runstack.Api(store_dir)
    assert api.run(first.version).history()["x"].tolist() == [1]
    assert api.run(second.version).history()["y"].dropna().tolist() == [4]
    assert api.run(mine.id).history()["y"].tolist() == [3, 5]
    assert {v.status for v in api.runs()} == {"finished"}


def test_failed_fit_stores_the_exception(store_dir):
    class Broken(Tiny):
        def training_step(self, batch, index):
            raise ValueError("bad batch 0")

    logger = RunstackLogger(project="p")
    with pytest.raises(ValueError):
        _trainer(logger, enable_checkpointing=False).fit(Broken())
    view = runstack.Api(store_dir).run(logger.version)
    assert view.status == "failed" and view.error == "ValueError: bad batch 0"


def test_a_logger_given_a_run_leaves_it_open(store_dir):
    run = runstack.init(project="mine")
    logger = RunstackLogger(run=run)
    _trainer(logger, enable_checkpointing=False, max_epochs=1).fit(Tiny())
    assert logger.version == run.id and not run.finished
    run.finish()
