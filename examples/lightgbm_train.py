"""LightGBM with runstack: ``lgb.train(..., callbacks=[runstack_callback(...)])``.

python examples/lightgbm_train.py
"""

import lightgbm as lgb
import numpy as np

import runstack
from runstack.integrations.lightgbm import log_summary, runstack_callback

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 8))
y = x @ rng.normal(size=8) + rng.normal(scale=0.1, size=2000)
train = lgb.Dataset(x[:1500], y[:1500])
valid = lgb.Dataset(x[1500:], y[1500:], reference=train)
callback = runstack_callback(project="examples", tags=["lightgbm"])
booster = lgb.train({"objective": "regression", "verbose": -1}, train, 500, valid_sets=[valid],
                    callbacks=[callback, lgb.early_stopping(20, verbose=False)])  # fmt: skip
log_summary(booster, callback)  # early stopping ends training by exception: record LightGBM's best iteration

# What this example logged, and where to look next.
latest = runstack.Api().runs(order="created_at")[-1]
print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
