"""CPU cost of the system-metrics sampler, per sample and as a share of one core.

Takes ``--samples`` readings (psutil, plus NVML where a GPU is present) in a row, measuring
the thread's CPU time, and compares one reading with the default 10 s interval.

    python bench/system_metrics.py [--samples 500]

Prints one summary line:
    system_metrics: ... ms CPU per sample (... metrics, GPU: ...) | ...% of one core at the 10 s default
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from runstack.core.system import DEFAULT_INTERVAL_S, SystemSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        sampler = SystemSampler(Path(root), 0, interval=DEFAULT_INTERVAL_S)
        sampler.record(sampler.sample())  # warm-up: first schema record
        start = time.thread_time()
        for _ in range(args.samples):
            values = sampler.sample()
            sampler.record(values)
        per_sample = (time.thread_time() - start) / args.samples
        sampler.close()
    gpu = "off: " + sampler.gpu.reason if sampler.gpu and sampler.gpu.reason else f"{len(sampler.gpu.handles)} GPU(s)"
    share = 100 * per_sample / DEFAULT_INTERVAL_S
    print(f"system_metrics: {per_sample * 1000:.3f} ms CPU per sample ({len(values)} metrics, GPU {gpu})"
          f" | {share:.4f}% of one core at the {DEFAULT_INTERVAL_S:g} s default (target <= 1%)")  # fmt: skip


if __name__ == "__main__":
    main()
