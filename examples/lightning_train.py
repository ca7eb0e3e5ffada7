"""PyTorch Lightning with runstack: one line, ``logger=RunstackLogger(...)``.

python examples/lightning_train.py                       # one process
python examples/lightning_train.py --devices 2           # DDP on 2 CPU processes (gloo): still one run
"""

import argparse

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

import runstack
from runstack.integrations.lightning import RunstackLogger


class Regressor(LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, index):
        loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        self.log("rank", float(self.global_rank))
        return loss

    def validation_step(self, batch, index):
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    trainer = Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        logger=RunstackLogger(project="examples", tags=["lightning"]),
        callbacks=[ModelCheckpoint(monitor="val_loss")],
        log_every_n_steps=1,
        enable_progress_bar=False,
    )
    trainer.fit(Regressor(), torch.utils.data.DataLoader(data, batch_size=32), torch.utils.data.DataLoader(data, 64))


if __name__ == "__main__":
    main()
    # What this example logged, and where to look next.
    latest = runstack.Api().runs(order="created_at")[-1]
    print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
