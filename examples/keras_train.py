"""Keras 3 with runstack: ``model.fit(..., callbacks=[RunstackCallback(...)])``.

KERAS_BACKEND=torch python examples/keras_train.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import runstack
from runstack.integrations.keras import RunstackCallback  # noqa: E402

x = np.random.default_rng(0).normal(size=(512, 4)).astype("float32")
y = x.sum(axis=1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse", metrics=["mae"])
model.fit(x, y, epochs=5, batch_size=32, validation_split=0.2, verbose=0,
          callbacks=[RunstackCallback(project="examples", tags=["keras"], log_batches=True)])  # fmt: skip

# What this example logged, and where to look next.
latest = runstack.Api().runs(order="created_at")[-1]
print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
