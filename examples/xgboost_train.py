"""XGBoost with runstack: ``xgb.train(..., callbacks=[RunstackCallback(...)])``.

python examples/xgboost_train.py
"""

import numpy as np
import xgboost as xgb

import runstack
from runstack.integrations.xgboost import RunstackCallback

rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 8))
y = x @ rng.normal(size=8) + rng.normal(scale=0.1, size=2000)
train, valid = xgb.DMatrix(x[:1500], y[:1500]), xgb.DMatrix(x[1500:], y[1500:])
xgb.train({"max_depth": 4, "eta": 0.1, "eval_metric": "rmse"}, train, 200, evals=[(train, "train"), (valid, "valid")],
          early_stopping_rounds=20, verbose_eval=False,
          callbacks=[RunstackCallback(project="examples", tags=["xgboost"])])  # fmt: skip

# What this example logged, and where to look next.
latest = runstack.Api().runs(order="created_at")[-1]
print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
