"""What a sweep agent adds per trial, against calling the training function in a loop.

    python bench/sweep_overhead.py [--trials 40]

The training function logs 100 steps to a runstack run either way. Three timings per trial:
a plain loop (init, log, finish), the in-process agent (claim from the shared Optuna journal,
run, record the result), and the subprocess agent (the same plus starting Python for the
trial's command, measured with and without that process start). Prints one line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import runstack

PROGRAM = """
import runstack
run = runstack.init(system_metrics=False, config={"a": 0.5})
for step in range(100):
    run.log({"loss": run.config["a"] / (step + 1)})
run.finish()
"""
SPACE = {"method": "random", "metric": {"name": "loss"}, "parameters": {"a": {"min": 0.0, "max": 1.0}}}


def train() -> None:
    run = runstack.init(system_metrics=False, config={"a": 0.5})
    for step in range(100):
        run.log({"loss": run.config["a"] / (step + 1)})
    run.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    n = args.trials
    with tempfile.TemporaryDirectory() as root:
        os.environ["RUNSTACK_DIR"] = root
        os.environ["RUNSTACK_SYSTEM_METRICS"] = "0"
        start = time.perf_counter()
        for _ in range(n):
            train()
        loop = (time.perf_counter() - start) / n

        sweep_id = runstack.sweep(SPACE, seed=0)
        start = time.perf_counter()
        runstack.agent(sweep_id, function=train, count=n)
        in_process = (time.perf_counter() - start) / n

        program = os.path.join(root, "train.py")
        with open(program, "w") as handle:
            handle.write(PROGRAM)
        start = time.perf_counter()
        for _ in range(n):
            subprocess.run([sys.executable, program], check=True, env={**os.environ})
        plain_process = (time.perf_counter() - start) / n
        sweep_id = runstack.sweep({**SPACE, "program": program}, seed=0)
        start = time.perf_counter()
        runstack.agent(sweep_id, count=n)
        agent_process = (time.perf_counter() - start) / n
    print(f"sweep_overhead: loop {loop * 1e3:.1f} ms/trial | in-process agent {in_process * 1e3:.1f} ms/trial "
          f"(+{(in_process - loop) * 1e3:.1f} ms, ratio {in_process / loop:.2f}x) | subprocess agent "
          f"{agent_process * 1e3:.0f} ms/trial vs {plain_process * 1e3:.0f} ms running the program directly "
          f"(+{(agent_process - plain_process) * 1e3:.1f} ms agent, +{(agent_process - loop) * 1e3:.0f} ms with process start)")  # fmt: skip


if __name__ == "__main__":
    main()
