"""Hugging Face Accelerate with runstack: ``Accelerator(log_with=[RunstackTracker(...)])``.

    python examples/accelerate_train.py
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no examples/accelerate_train.py            # 2 CPU processes, one run
"""

import torch
from accelerate import Accelerator

import runstack
from runstack.integrations.accelerate import RunstackTracker


def main() -> None:
    accelerator = Accelerator(log_with=[RunstackTracker(project="examples", tags=["accelerate"])], cpu=True)
    accelerator.init_trackers("examples", config={"lr": 0.05, "epochs": 3})
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    step = 0
    for epoch in range(3):
        for bx, by in loader:
            loss = torch.nn.functional.mse_loss(model(bx), by)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            accelerator.log({"loss": loss.item(), "epoch": epoch, "process": accelerator.process_index}, step=step)
            step += 1
    accelerator.end_training()


if __name__ == "__main__":
    main()
    # What this example logged, and where to look next.
    latest = runstack.Api().runs(order="created_at")[-1]
    print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
