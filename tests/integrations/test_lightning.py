from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")
import torch  # noqa: E402

import runstack  # noqa: E402
from runstack.core.noop import NoOpRun  # noqa: E402

from ..conftest import ROOT  # noqa: E402
from .launch import launch  # noqa: E402


def _fit(logger, tmp_path, **trainer_kwargs):
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    sys.path.insert(0, str(ROOT / "examples"))
    from lightning_train import Regressor

    x = torch.randn(64, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    trainer = Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=logger, log_every_n_steps=1,
                      enable_progress_bar=False, default_root_dir=tmp_path,
                      callbacks=[ModelCheckpoint(monitor="val_loss", dirpath=tmp_path / "ckpt")], **trainer_kwargs)  # fmt: skip
    trainer.fit(Regressor(), torch.utils.data.DataLoader(data, batch_size=16), torch.utils.data.DataLoader(data, 32))
    return trainer


@pytest.mark.slow
def test_checkpoint_is_recorded_and_user_run_left_open(tmp_path, store_dir):
    from runstack.integrations.lightning import RunstackLogger

    run = runstack.init(project="mine")
    trainer = _fit(RunstackLogger(run=run), tmp_path)
    best = trainer.checkpoint_callback.best_model_path
    assert best and run.summary["checkpoint/best_model_path"] == best
    assert run.summary["checkpoint/best_model_score"] == pytest.approx(
        float(trainer.checkpoint_callback.best_model_score)
    )
    assert run.status == "running"  # the user's run: finalize() does not finish it
    assert run.config["lr"] == 0.05
    run.finish()


@pytest.mark.slow
def test_pytorch_lightning_namespace(tmp_path, store_dir):
    pl = pytest.importorskip("pytorch_lightning")
    from runstack.integrations.pytorch_lightning import RunstackLogger

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, index):
            loss = self.layer(batch[0]).pow(2).mean()
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    logger = RunstackLogger(project="pl")
    trainer = pl.Trainer(max_epochs=1, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                         enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Tiny(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2))
    view = runstack.Api(store_dir).run(logger.version)
    assert view.status == "finished" and view.metrics()["loss"] == 4


def test_rank_hint_wins_over_missing_launcher_variables(store_dir, monkeypatch):
    """Lightning's DDP children get LOCAL_RANK but no RANK: env detection alone says rank 0.

    The logger passes Lightning's own rank, so a child creating the run early does not
    start a second run.
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from runstack.core import ranks
    from runstack.integrations.lightning import RunstackLogger

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert ranks.detect().rank == 0  # what the environment alone would say
    experiment = RunstackLogger(project="ddp").experiment
    assert isinstance(experiment, NoOpRun) and experiment.rank.rank == 1
    assert not store_dir.exists()


@pytest.mark.slow
def test_ddp_two_processes_give_one_run(tmp_path, store_dir):
    launch(store_dir, sys.executable, str(ROOT / "examples" / "lightning_train.py"), "--devices", "2", "--epochs", "2")
    (run,) = runstack.Api(store_dir).runs()
    assert run.status == "finished" and run.world_size == 2
    frame = run.history(keys=["train_loss"])
    # 256 samples, batch 32, 2 ranks -> 4 steps per epoch per rank; rank 0 logged every step.
    assert frame["_step"].tolist() == list(range(8))
    assert set(run.history(keys=["rank"])["rank"]) == {0.0}
    assert run.summary["checkpoint/best_model_path"].endswith(".ckpt")


@pytest.mark.slow
def test_log_model_stores_checkpoints_as_artifacts(tmp_path, store_dir):
    from runstack.core.artifacts import ArtifactRegistry
    from runstack.core.store import Store
    from runstack.integrations.lightning import RunstackLogger

    logger = RunstackLogger(project="ckpt", log_model=True)
    trainer = _fit(logger, tmp_path)
    registry = ArtifactRegistry(Store(store_dir))
    best = registry.get(f"model-{logger.version}:best")
    assert best.files == [Path(trainer.checkpoint_callback.best_model_path).name]
    best.verify()
    assert registry.versions(f"model-{logger.version}")[0]["produced_by"] == logger.version
