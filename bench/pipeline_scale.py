"""The dataset hub at scale, on real code (installed packages' source folders, one source per
folder): throughput per core beside datatrove's MinHash dedup pipeline on the same files,
speed-up from 1 to 2 workers with each executor, peak memory at 1x and 4x the corpus, and the
cost per TB extrapolated from the measured per-core rate (linear in cores: stage one, the keys,
exact dedup's shuffle, near-dedup's map, reduce and verify rounds and the Parquet shards run on
the workers; the driver joins the verified pairs into components and holds per file what the
line prints: the measure of how far one driver goes).

    python bench/pipeline_scale.py [--packages sklearn pandas scipy transformers] [--no-datatrove] [--no-spark]

Every build runs in its own process (clean peak RSS). 4x is every source; 1x every fourth
source by size (so both hold sources of the same sizes, the largest included). datatrove (``pip install datatrove``) runs its four MinHash stages (signatures, buckets,
clusters, filter) with one task on JSONL files holding exactly the texts our ingest admitted.
Prints one line; the ratio is our whole pipeline's MB/s per core over datatrove's dedup alone.
"stage one" is the per-source stage; "whole" is the whole build. Dask's and Spark's workers start
first, as a stage of their own (printed; counted in "whole", not in "stage one"; a cluster given
by ``--address`` would already be up); local workers are this process, warmed before the clock
starts as any long-lived process would be, and (with two) one spawned process that comes up while
this one already works: its start counts in both.
The corpus: sklearn, pandas, scipy and transformers by default (about 100 MB of source; ~30 MB with
``--packages sklearn pandas``, where start-up and the one large Python shard weigh more).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, resource, sys, time
from runstack.datasets_hub.build import Source, build
from runstack.datasets_hub.executors import warm
spec = json.loads(sys.argv[1])
warm()  # this process's first-use costs, untimed: one local worker runs the tasks here
import pyarrow as pa, pyarrow.parquet
pa.array([''])  # and the shard writer's (pyarrow's first array imports pandas)
stages = {}
def show(stage, done, total):
    stages.setdefault(stage, [time.perf_counter(), None])[1] = time.perf_counter()
start = time.perf_counter()
report = build([Source(p, repo_name=n) for p, n in spec["sources"]], spec["out"], "bench", workers=spec["workers"],
               executor=spec["executor"], progress=show)
wall = time.perf_counter() - start
first = stages["read, detect, filter"]
start = stages.get("start workers", [0.0, 0.0])
print(json.dumps({"wall": wall, "stage_one": first[1] - first[0], "start": start[1] - start[0],
                  "files_in": report.files_in,
                  "files_out": report.files_out, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DRIVER = """
import importlib, json, sys, tracemalloc
build_module = importlib.import_module("runstack.datasets_hub.build")
stages = importlib.import_module("runstack.datasets_hub.stages")
spec, marks = json.loads(sys.argv[1]), {}
read_keys, component_roots = build_module.read_keys, stages.component_roots
def keys_read(*args, **kwargs):
    marks["before"] = tracemalloc.get_traced_memory()[0]
    found = read_keys(*args, **kwargs)
    marks["files"] = len(found.rows.flat)
    return found
def dedup_peak(*args):  # exact dedup done, the near pairs' components found: what the driver holds then, per file
    found = component_roots(*args)
    marks["held"] = tracemalloc.get_traced_memory()[0]
    return found
build_module.read_keys, stages.component_roots = keys_read, dedup_peak
tracemalloc.start()
build_module.build([build_module.Source(p, repo_name=n) for p, n in spec["sources"]], spec["out"], "bench")
print((marks["held"] - marks["before"]) / marks["files"])
"""


DATATROVE = """
import sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
data, work = sys.argv[1], sys.argv[2]
config = MinhashConfig()
start = time.perf_counter()
LocalPipelineExecutor([JsonlReader(data), MinhashDedupSignature(f"{work}/sigs", config=config)], tasks=1, workers=1,
                      logging_dir=f"{work}/logs1").run()
LocalPipelineExecutor([MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)],
                      tasks=config.num_buckets, workers=1, logging_dir=f"{work}/logs2").run()
LocalPipelineExecutor([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=config)], tasks=1, workers=1,
                      logging_dir=f"{work}/logs3").run()
LocalPipelineExecutor([JsonlReader(data), MinhashDedupFilter(f"{work}/remove"), JsonlWriter(f"{work}/out")], tasks=1,
                      workers=1, logging_dir=f"{work}/logs4").run()
print(time.perf_counter() - start)
"""


def _folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and p.name != "__pycache__")


def sources_of(packages: list[str]) -> list[tuple[str, str]]:
    """One source per folder two levels under each package (the folder itself when it has none),
    as a corpus of many repositories of varied sizes would give."""
    site = Path(sysconfig.get_paths()["purelib"])
    out = []
    for package in packages:
        for sub in _folders(site / package):
            for leaf in _folders(sub) or [sub]:
                out.append(
                    (str(leaf), f"pypi/{package}.{leaf.relative_to(site / package).as_posix().replace('/', '.')}")
                )
    return out


def admitted(sources: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
    from runstack.datasets_hub.ingest import Ingest

    ingest, texts = Ingest(), []
    for path, name in sources:
        texts += [(f"{r.repo_name}/{r.path}", r.content) for r in ingest.read(path, name)]
    return sum(len(t.encode()) for _, t in texts), texts


def child(sources: list[tuple[str, str]], out: Path, workers: int = 1, executor: str = "local") -> dict:
    spec = json.dumps({"sources": sources, "out": str(out), "workers": workers, "executor": executor})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, spec], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"build failed ({executor}, {workers}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _best(*runs: dict) -> dict:
    return {"wall": min(r["wall"] for r in runs), "stage_one": min(r["stage_one"] for r in runs),
            "start": min(r["start"] for r in runs)}  # fmt: skip


STAGE_ONE = """
import json, sys, tempfile, time
from runstack.datasets_hub.build import Source, _process
from runstack.datasets_hub.cache import source_key
from runstack.datasets_hub.config import BuildConfig
from runstack.datasets_hub.executors import warm
from runstack.datasets_hub.steps import default_steps
warm()
sources = [Source(p, repo_name=n) for p, n in json.loads(sys.argv[1])]
config = BuildConfig()
steps = default_steps(config, None)
def timed(part, folder):
    start = time.perf_counter()
    _process(part, [source_key(s) for s in part], config, steps, folder)
    return time.perf_counter() - start
with tempfile.TemporaryDirectory() as folder:
    if sys.argv[2] == "each":  # every source alone, one after the other
        print(json.dumps([timed([source], folder) for source in sources]))
    else:  # all of them, once told to start (the other half's process being ready too)
        print("ready", flush=True)
        sys.stdin.readline()
        print(timed(sources, folder), flush=True)
"""


def work_ceiling(sources: list[tuple[str, str]]) -> tuple[float, float]:
    """What this machine gives this work in two processes over one, with no engine at all: the
    per-source stage on two halves of equal measured time (each source timed alone first, then
    split largest first onto the lighter half), in two independent warmed processes, one after the
    other and then both at once (the best of two each); with a pure Python loop for comparison (the
    same two pieces of work in one process, then in two at once)."""
    import multiprocessing
    import time

    from runstack.datasets_hub.build import _groups

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    timed = subprocess.run([sys.executable, "-c", STAGE_ONE, json.dumps(sources), "each"], capture_output=True, text=True,
                           env=env, check=True)  # fmt: skip
    times = json.loads(timed.stdout.strip().splitlines()[-1])
    halves = [[sources[i] for i in g] for g in _groups([int(t * 1e6) for t in times], 2)]

    def once(together: bool) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", STAGE_ONE, json.dumps(h), "half"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env) for h in halves]  # fmt: skip
        for proc in procs:
            proc.stdout.readline()  # warm
        start = time.perf_counter()
        for proc in procs:
            proc.stdin.write("\n")
            proc.stdin.flush()
            if not together:
                proc.stdout.readline()
        if together:
            for proc in procs:
                proc.stdout.readline()
        wall = time.perf_counter() - start
        for proc in procs:
            proc.wait()
        return wall

    work = min(once(False) for _ in range(2)) / min(once(True) for _ in range(2))
    one = two = float("inf")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1, 1])  # both processes up
        for _ in range(3):  # the best of three each, both in the pool's processes
            start = time.perf_counter()
            pool.apply(_spin, (8_000_000,))
            one = min(one, time.perf_counter() - start)
            start = time.perf_counter()
            pool.map(_spin, [4_000_000, 4_000_000], chunksize=1)
            two = min(two, time.perf_counter() - start)
    return work, one / two


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=["sklearn", "pandas", "scipy", "transformers"])
    parser.add_argument("--no-datatrove", action="store_true")
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    every = sources_of(args.packages)
    ceiling, spin = work_ceiling(every)
    from runstack.datasets_hub.build import _size

    by_size = sorted(every, key=lambda s: -_size(s[0]))
    quarter = sorted(by_size[::4])  # the same spread of source sizes, a quarter of them
    size4, texts = admitted(every)
    size1, _ = admitted(quarter)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = child(quarter, root / "q")
        base = child(every, root / "l1")
        speedups = {}
        executors = ["local", "dask", *([] if args.no_spark else ["spark"])]
        for executor in executors:  # each the faster of two runs (this machine's timings vary by ~10%)
            single = (
                _best(base, child(every, root / f"{executor}1b", 1, executor))
                if executor == "local"
                else _best(*(child(every, root / f"{executor}1{n}", 1, executor) for n in "ab"))
            )
            double = _best(*(child(every, root / f"{executor}2{n}", 2, executor) for n in "ab"))
            if executor == "local":  # the whole pipeline's rate: the faster of the two single-worker builds
                rate = size4 / 1e6 / single["wall"]
            speedups[executor] = (
                single["stage_one"] / double["stage_one"],
                single["wall"] / double["wall"],
                double["start"],
            )
        peer = ""
        if not args.no_datatrove:
            data = root / "jsonl"
            data.mkdir()
            with open(data / "corpus.jsonl", "w") as handle:
                for key, text in texts:
                    handle.write(json.dumps({"id": key, "text": text}) + "\n")
            done = subprocess.run([sys.executable, "-c", DATATROVE, str(data), str(root / "dt")], capture_output=True,
                                  text=True, check=False)  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"datatrove failed: {done.stderr[-2000:]}")
            peer_rate = size4 / 1e6 / float(done.stdout.strip().splitlines()[-1])
            peer = f" | datatrove MinHash dedup alone {peer_rate:.2f} MB/s per core (ratio {rate / peer_rate:.2f}x)"
        # What the driver holds while deduplicating (row numbers, per-source names and offsets, near duplicates' keys),
        # per file, traced in a build of its own.
        spec = json.dumps({"sources": quarter, "out": str(root / "traced")})
        traced = subprocess.run([sys.executable, "-c", DRIVER, spec], capture_output=True, text=True, check=True)
        per_file = float(traced.stdout.strip().splitlines()[-1]) / 1024
    core_hours = 1e6 / rate / 3600  # per TB
    parallel = ", ".join(f"{name} {s1:.2f}x stage one / {whole:.2f}x whole ("
                         + (f"workers start {start:.1f} s)" if name != "local" else "the second starts beside the work)")
                         for name, (s1, whole, start) in speedups.items())  # fmt: skip
    print(f"pipeline_scale: {size4 / 1e6:.0f} MB, {len(every)} sources: whole pipeline {rate:.2f} MB/s per core"
          f"{peer} | 1 -> 2 workers: {parallel}; this machine's ceiling for this work {ceiling:.2f}x (two independent processes, no engine; a pure Python loop {spin:.2f}x) | peak RSS {one['rss_mb']:.0f} MB at 1x ({size1 / 1e6:.0f} MB) vs "
          f"{base['rss_mb']:.0f} MB at 4x ({size4 / 1e6:.0f} MB) = {base['rss_mb'] / one['rss_mb']:.2f}x, "
          f"the driver holds {per_file:.2f} KB per file while deduplicating (with {one['files_in'] / len(quarter):.1f} files a "
          f"source; {per_file * 50e6 / 1e6:,.0f} GB at 50 million files) | "
          f"per TB: {core_hours:,.0f} core-hours (${core_hours * 0.04:,.0f} at $0.04 per core-hour; "
          f"{core_hours * 3600 / (100 * 32):.0f} s of per-core work on 100 machines x 32 cores)")  # fmt: skip


if __name__ == "__main__":
    main()
