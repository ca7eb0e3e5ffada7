"""The demo behind ``runstack demo``: a real (small) training loop, logged with runstack."""

from __future__ import annotations

from rich.progress import Progress

import runstack


def train(store_dir: str | None, steps: int = 300, lr: float = 0.5, seed: int = 0) -> str:
    """Fit logistic regression on two Gaussian blobs with gradient descent; returns the run id."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1.0, 1.0, (500, 2)), rng.normal(1.0, 1.0, (500, 2))])
    y = np.concatenate([np.zeros(500), np.ones(500)])
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    train_x, train_y, val_x, val_y = x[:800], y[:800], x[800:], y[800:]
    w, b = np.zeros(2), 0.0
    config = {"model": "logistic-regression", "optimizer": {"name": "sgd", "lr": lr}, "steps": steps, "seed": seed}
    with runstack.init(project="demo", config=config, tags=["demo"], dir=store_dir, job_type="train") as run:
        run.define_metric("val/loss", summary="min")
        run.define_metric("val/acc", summary="max")
        with Progress(transient=True) as progress:
            task = progress.add_task("training", total=steps)
            for step in range(steps):
                p = 1 / (1 + np.exp(-(train_x @ w + b)))
                loss = -np.mean(train_y * np.log(p + 1e-12) + (1 - train_y) * np.log(1 - p + 1e-12))
                w -= lr * train_x.T @ (p - train_y) / len(train_y)
                b -= lr * float(np.mean(p - train_y))
                metrics = {"train": {"loss": float(loss), "acc": float(np.mean((p > 0.5) == train_y))}}
                if step % 25 == 0 or step == steps - 1:
                    q = 1 / (1 + np.exp(-(val_x @ w + b)))
                    val_loss = -np.mean(val_y * np.log(q + 1e-12) + (1 - val_y) * np.log(1 - q + 1e-12))
                    metrics["val"] = {"loss": float(val_loss), "acc": float(np.mean((q > 0.5) == val_y))}
                run.log(metrics)
                progress.advance(task)
        return run.id
