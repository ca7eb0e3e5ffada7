"""How much survives what users and machines do to a store: kill -9, flipped bits, concurrent
writers and resumers, bad input.

    python bench/reliability.py [--kills 20] [--flips 40] [--writers 8]

Prints one line; the bit-flip figure compares the rows kept with what a reader that stops at
the first damaged record (runstack before format recovery) keeps on the same damaged files.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path

import runstack
from runstack.core.logfile import FILE_HEADER, RECORD_HEADER
from runstack.core.logread import read_log
from runstack.errors import RunstackError

CHILD = """
import sys, runstack
run = runstack.init(id="victim", system_metrics=False)
i = 0
while True:
    for _ in range(100):
        run.log({"i": i, "y": i * 0.5}); i += 1
    print(i, flush=True)
"""
WRITER = """
import sys, runstack
run = runstack.init(id=sys.argv[1], system_metrics=False)
for i in range(3000):
    run.log({"i": i})
run.finish()
"""


def kills(n: int, rng: random.Random) -> tuple[int, int, int]:
    """(trials, acknowledged steps, steps lost or wrong)."""
    acked_total = lost = 0
    for _ in range(n):
        with tempfile.TemporaryDirectory() as root:
            env = {**os.environ, "RUNSTACK_DIR": root}
            child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            deadline, acked = time.monotonic() + rng.uniform(0.3, 1.5), 0
            while time.monotonic() < deadline:
                acked = int(child.stdout.readline())
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            frame = runstack.Api(root).run("victim").history()
            good = frame[(frame["i"] == frame.index) & (frame["y"] == frame["i"] * 0.5)]
            acked_total += acked
            lost += max(0, acked - len(good))
    return n, acked_total, lost


def _stop_at_first_damage(path: Path, rows: int) -> int:
    """Rows a reader keeps that stops at the first record failing its CRC (the baseline)."""
    import zlib

    data, pos, kept = path.read_bytes(), FILE_HEADER.size, 0
    while pos + RECORD_HEADER.size < len(data):
        length, crc = RECORD_HEADER.unpack_from(data, pos)
        end = pos + RECORD_HEADER.size + length
        if length == 0 or end > len(data) or zlib.crc32(data[pos + 8 : end]) != crc:
            break
        kept += data[pos + 8] == 2
        pos = end
    return min(kept, rows)


def flips(n: int, rng: random.Random) -> tuple[int, int, int, float, float]:
    """(files, reader crashes, wrong values, share of rows lost, baseline share lost)."""
    rows = 20_000
    with tempfile.TemporaryDirectory() as root:
        run = runstack.init(dir=root, id="source", system_metrics=False)
        for i in range(rows):
            run.log({"i": i, "y": i * 0.5})
        run.finish()
        original = (Path(root) / "runs" / "source" / "history.0.rsl").read_bytes()
        crashes = wrong = 0
        lost = baseline = 0.0
        for trial in range(n):
            data = bytearray(original)
            at = rng.randrange(FILE_HEADER.size, len(data))
            data[at] ^= 1 << rng.randrange(8)
            path = Path(root) / f"flip{trial}.rsl"
            path.write_bytes(bytes(data))
            try:
                contents = read_log(path)
                values = [
                    (int(a), float(b))
                    for blk in contents.blocks
                    for a, b in zip(blk.rows["v0"], blk.rows["v1"], strict=True)
                ]
            except Exception:  # noqa: BLE001 - counted: a reader must never crash on damage
                crashes += 1
                continue
            wrong += sum(1 for i, y in values if y != i * 0.5)
            lost += (rows - len(values)) / rows
            baseline += (rows - _stop_at_first_damage(path, rows)) / rows
    return n, crashes, wrong, lost / n, baseline / n


def writers(n: int) -> tuple[int, int, int]:
    """(processes, rows lost, 'database is locked' errors) for n processes writing at once."""
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "RUNSTACK_DIR": root}
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{k}"], env=env, stderr=subprocess.PIPE, text=True)
                 for k in range(n)]  # fmt: skip
        errors = [p.communicate()[1] for p in procs]
        locked = sum("locked" in e for e in errors)
        api = runstack.Api(root)
        lost = sum(3000 - len(api.run(f"w{k}").history()) for k in range(n) if procs[k].returncode == 0)
        lost += 3000 * sum(p.returncode != 0 for p in procs)
    return n, lost, locked


def bad_inputs() -> tuple[int, int]:
    """(bad inputs tried, answered by a RunstackError)."""
    with tempfile.TemporaryDirectory() as root:
        run = runstack.init(dir=root, system_metrics=False)
        cases = [lambda: run.log(None), lambda: run.log({"a": 1}, step="5"), lambda: run.log({"a": 1}, step=1.5),
                 lambda: run.log({"a": 1}, step=Decimal(1)), lambda: run.log({"a": 1j}), lambda: run.log({"": 1}),
                 lambda: run.log({"a": "text"}), lambda: run.log({"a\ud800": 1}), lambda: run.log({"a": [1, 2]}),
                 lambda: run.define_metric(5), lambda: run.history(keys=5), lambda: run.use_artifact("x:v99999999999999999999"),
                 lambda: runstack.init(id="../x", dir=root), lambda: runstack.init(tags="t", dir=root),
                 lambda: runstack.init(project="a/b", dir=root), lambda: runstack.Api(root).runs(filters=[1]),
                 lambda: runstack.Api(root).runs(order=5), lambda: runstack.Artifact("..", "x"),
                 lambda: run.log({"h": runstack.Histogram(["a"])}), lambda: run.config.update({1: 2})]  # fmt: skip
        clear = 0
        for case in cases:
            try:
                case()
            except RunstackError:
                clear += 1
            except Exception:  # noqa: BLE001, S110 - counted: a raw exception is the failure measured
                pass
        run.finish()
    return len(cases), clear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--flips", type=int, default=40)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    warnings.simplefilter("ignore", RuntimeWarning)
    k, acked, lost = kills(args.kills, rng)
    f, crashes, wrong, share, base = flips(args.flips, rng)
    w, w_lost, locked = writers(args.writers)
    tried, clear = bad_inputs()
    ratio = share / base if base else 0.0
    print(f"reliability: kill -9 x{k}: {acked:,} acknowledged steps, {lost} lost | bit flips x{f}: {crashes} crashes, "
          f"{wrong} wrong values, {share:.1%} of rows lost vs {base:.1%} stopping at the first damage "
          f"(ratio {ratio:.2f}x) | {w} concurrent writers: {w_lost} rows lost, {locked} locked | "
          f"bad inputs: {clear}/{tried} clear errors")  # fmt: skip


if __name__ == "__main__":
    main()
