"""Plain PyTorch with runstack: log your metrics, ``runstack.watch`` adds gradient norms.

python examples/torch_watch.py
"""

import torch

import runstack

run = runstack.init(project="examples", tags=["torch"], config={"lr": 0.05})
model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
runstack.watch(model, log="all", log_freq=10)
optimizer = torch.optim.SGD(model.parameters(), lr=run.config.lr)
for _step in range(100):
    x = torch.randn(32, 4)
    loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    run.log({"loss": loss.item()})
runstack.unwatch(model)
run.finish()

# What this example logged, and where to look next.
latest = runstack.Api().runs(order="created_at")[-1]
print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
