"""Run on a machine with an NVIDIA GPU: does GPU work with torch and prints the GPU series recorded.

python examples/gpu_check.py
"""

import time

import torch

import runstack

run = runstack.init(project="gpu-check", system_interval=0.5)
assert torch.cuda.is_available(), "no CUDA device visible to torch"
x = torch.randn(8192, 8192, device="cuda")
deadline = time.time() + 5
while time.time() < deadline:
    x = (x @ x).tanh()
    torch.cuda.synchronize()
run.log({"done": 1})
run.finish()
series = runstack.Api().run(run.id).system_metrics()
print(series[[c for c in series.columns if c.startswith("gpu.") or c == "_step"]].to_string())
