"""How much a runstack ``log()`` call costs a training loop, and what it costs on disk.

Logs 20,000 steps of 10 floats, timing every call, and the same loop appending to a
Python list in the same run as the baseline; ``--trials`` times, alternating, all calls counted. Then times finish(), measures bytes on
disk per scalar, and reads 1,000,000 points of one metric back.

    python bench/log_overhead.py [--steps 20000] [--read-points 1000000]

Prints one summary line:
    log_overhead: p50 ... us, p99 ... us, mean ... us per log() | list append p50 ... us | ratio ...x | ...
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from pathlib import Path

import runstack


def _timed(fn, payloads) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    append = out.append
    for p in payloads:
        t0 = clock()
        fn(p)
        append(clock() - t0)
    return out


def _pct(ns: list[int], q: float) -> float:
    return sorted(ns)[min(len(ns) - 1, int(q * len(ns)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--read-points", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=5, help="runs of --steps each, alternating with the baseline")
    args = parser.parse_args()
    rng = random.Random(0)
    keys = [f"train/metric_{i}" for i in range(10)]
    payloads = [{k: rng.random() for k in keys} for _ in range(args.steps)]
    with tempfile.TemporaryDirectory() as root:
        base_ns: list[int] = []
        log_ns: list[int] = []
        finish_ms: list[float] = []
        for _ in range(args.trials):  # the machine is shared: several trials, every call counted
            gc.collect()
            gc.disable()
            baseline: list[dict] = []
            base_ns += _timed(baseline.append, payloads)
            run = runstack.init(project="bench", dir=root)
            log_ns += _timed(run.log, payloads)
            gc.enable()
            t0 = time.perf_counter()
            run.finish()
            finish_ms.append((time.perf_counter() - t0) * 1000)
        size = sum(p.stat().st_size for p in Path(run.dir).glob("history.*"))
        bytes_per_scalar = size / (args.steps * len(keys))

        big = runstack.init(project="bench", dir=root)
        for i in range(args.read_points):
            big.log({"loss": 1.0 / (i + 1)})
        big.finish()
        api = runstack.Api(root)
        import pandas  # noqa: F401  - import time is not read time

        t0 = time.perf_counter()
        frame = api.run(big.id).history(keys=["loss"])
        read_s = time.perf_counter() - t0
        assert len(frame) == args.read_points, len(frame)

    p50, p99, mean = _pct(log_ns, 0.5), _pct(log_ns, 0.99), statistics.fmean(log_ns) / 1000
    b50 = _pct(base_ns, 0.5)
    print(
        f"log_overhead: p50 {p50:.2f} us, p99 {p99:.2f} us, mean {mean:.2f} us per log() of 10 floats"
        f" | list append p50 {b50:.2f} us (ratio {p50 / b50:.1f}x)"
        f" | finish {statistics.median(finish_ms):.1f} ms (median of {args.trials}) | {bytes_per_scalar:.1f} bytes/scalar on disk"
        f" | read {args.read_points:,} points in {read_s:.3f} s"
    )


if __name__ == "__main__":
    main()
