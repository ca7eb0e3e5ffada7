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
def test_batch_logging_writes_rows_in_step_order_and_epoch_logging_stays_async(store_dir):
    model = _model()
    assert keras.callbacks.CallbackList([RunstackCallback(project="k"), Recorder()], model=model)._async_train
    callback, recorder = RunstackCallback(project="k", log_batches=True), Recorder()
    # Batch rows must reach the history in order, so batch logging asks Keras for synchronous dispatch.
    assert not keras.callbacks.CallbackList([callback, recorder], model=model)._async_train
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model.fit(x, x.sum(1), epochs=2, batch_size=16, verbose=0, callbacks=[callback, recorder])
    view = runstack.Api(store_dir).run(callback._owned.run_id)
    batches = view.history(keys=["batch/loss"])
    assert batches["_step"].tolist() == list(range(8))  # file order, as written
    expected = [recorder.seen[(s // 4, s % 4)]["loss"] for s in range(8)]
    assert batches["batch/loss"].tolist() == pytest.approx(expected, rel=1e-6)
    epochs = view.history(keys=["loss"], x_axis="epoch")
    assert epochs.index.tolist() == [0, 1] and epochs["_step"].tolist() == [3, 7]
    assert view.config["model"]["num_parameters"] == model.count_params()
    assert "Dense" in view.config["model"]["summary"] or "dense" in view.config["model"]["summary"]
