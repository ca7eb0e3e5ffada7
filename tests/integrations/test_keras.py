from __future__ import annotations

import threading

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import runstack  # noqa: E402
from runstack.integrations.keras import RunstackCallback  # noqa: E402


class Recorder(keras.callbacks.Callback):
    """Keeps what Keras reported per batch; async-safe too, so dispatch stays asynchronous."""

    def __init__(self):
        super().__init__()
        self.async_safe = True
        self.epoch = 0
        self.seen: dict[tuple[int, int], dict] = {}
        self.lock = threading.Lock()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        with self.lock:
            self.seen[(self.epoch, batch)] = {k: float(v) for k, v in logs.items()}


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.slow
def test_batch_logging_keeps_async_dispatch_and_global_steps(store_dir):
    model = _model()
    callback, recorder = RunstackCallback(project="k", log_batches=True), Recorder()
    callbacks = keras.callbacks.CallbackList([callback, recorder], model=model)
    assert callbacks._async_train, "runstack's callback must not force synchronous batch dispatch"
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model.fit(x, x.sum(1), epochs=2, batch_size=16, verbose=0, callbacks=[callback, recorder])
    view = runstack.Api(store_dir).run(callback._owned.run.id)
    batches = view.history(keys=["batch/loss"])
    assert batches["_step"].tolist() == list(range(8))
    expected = [recorder.seen[(s // 4, s % 4)]["loss"] for s in range(8)]
    assert batches["batch/loss"].tolist() == pytest.approx(expected, rel=1e-6)
    epochs = view.history(keys=["loss"], x_axis="epoch")
    assert epochs.index.tolist() == [0, 1] and epochs["_step"].tolist() == [3, 7]
    assert view.config["model"]["num_parameters"] == model.count_params()
    assert "Dense" in view.config["model"]["summary"] or "dense" in view.config["model"]["summary"]
