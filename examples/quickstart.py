"""The smallest complete use of runstack: log a loop, then read it back.

python examples/quickstart.py
"""

import math

import runstack

run = runstack.init(project="quickstart", config={"lr": 0.01, "epochs": 3})
run.define_metric("val/loss", summary="min", step_metric="epoch")
for epoch in range(run.config.epochs):
    for batch in range(100):
        step = epoch * 100 + batch
        run.log({"train/loss": math.exp(-step / 100), "lr": run.config.lr})
    run.log({"val/loss": math.exp(-epoch), "epoch": epoch})
run.finish()

view = runstack.Api().run(run.id)
print(view.summary)
print(view.history(keys=["val/loss"], x_axis="epoch"))
