"""The team server under load: many writer processes shipping live runs to one server.

    python bench/server_load.py [--clients 64] [--steps 10000]

A throwaway PostgreSQL (tests/server/pgcluster.py) and a ``runstack server`` process on
loopback; ``--clients`` processes each open a run that ships to the server, wait at a common
start line, log ``--steps`` steps of 10 metrics and finish (finish waits for the upload). The
baseline, in the same run, is the same processes logging to their local stores only. Prints
points/s ingested (points / time from the start line until every client has finished and the
server holds everything), the p99 latency of the clients' upload requests, and a check that
every step of every run is on the server exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENT = """
import json, os, sys, time
import runstack
run_id, steps, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = runstack.init(project="load", id=run_id, config={"steps": steps})
uploader = run._uploader
open(os.path.join(folder, run_id + ".ready"), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.005)
values = [0.0] * 10
for step in range(steps):
    run.log({"m0": 10.0 * step, "m1": 10.0 * step + 1, "m2": 10.0 * step + 2, "m3": 10.0 * step + 3,
             "m4": 10.0 * step + 4, "m5": 10.0 * step + 5, "m6": 10.0 * step + 6, "m7": 10.0 * step + 7,
             "m8": 10.0 * step + 8, "m9": 10.0 * step + 9}, step=step)
run.finish()
timings = list(uploader.shipper.client.timings) if uploader is not None else []
with open(os.path.join(folder, run_id + ".json"), "w") as handle:
    json.dump({"timings": timings, "done": time.time()}, handle)
"""


def wave(folder: Path, clients: int, steps: int, env: dict[str, str]) -> tuple[float, list[float]]:
    """Start the clients, release them together; (seconds until all finished, request timings)."""
    folder.mkdir(parents=True)
    script = folder / "client.py"
    script.write_text(CLIENT)
    procs = [subprocess.Popen([sys.executable, str(script), f"run-{i:03d}", str(steps), str(folder)], env=env)
             for i in range(clients)]  # fmt: skip
    while sum(1 for _ in folder.glob("*.ready")) < clients:
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("a client failed to start")
        time.sleep(0.05)
    start = time.time()
    (folder / "go").touch()
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a client failed")
    ends, timings = [], []
    for report in folder.glob("*.json"):
        data = json.loads(report.read_text())
        ends.append(data["done"])
        timings += data["timings"]
    return max(ends) - start, timings


def log_cost(steps: int, store: Path, **server: str) -> float:
    """Microseconds per log() of 10 metrics in this process (the uploader, if any, beside it)."""
    import runstack

    run = runstack.init(project="cost", dir=str(store), system_metrics=False, **server)
    row = {f"m{i}": 0.0 for i in range(10)}
    start = time.perf_counter()
    for step in range(steps):
        row["m0"] = float(step)
        run.log(row, step=step)
    spent = time.perf_counter() - start
    run.finish()
    return spent / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()

    from tests.server.conftest import ServerProcess
    from tests.server.pgcluster import Cluster

    import runstack
    from runstack.server.db import ServerDB

    points = args.clients * args.steps * 10
    cluster = Cluster.start()
    work = Path(tempfile.mkdtemp(prefix="runstack-load-"))
    base = {**os.environ, "RUNSTACK_SYSTEM_METRICS": "0", "OMP_NUM_THREADS": "1", "RUNSTACK_SYNC_TIMEOUT": "600"}
    server = None
    try:
        local_s, _ = wave(work / "local", args.clients, args.steps, {**base, "RUNSTACK_DIR": str(work / "local-store")})
        dsn = cluster.database()
        db = ServerDB(dsn, 1, 2)
        key = db.create_key("bench", {"load": "write"})
        db.close()
        server = ServerProcess(dsn, work / "storage").start()
        env = {**base, "RUNSTACK_DIR": str(work / "client-store"), "RUNSTACK_BASE_URL": server.url,
               "RUNSTACK_API_KEY": key}  # fmt: skip
        server_s, timings = wave(work / "server", args.clients, args.steps, env)
        os.environ["RUNSTACK_SYNC_TIMEOUT"] = "0"
        warnings.filterwarnings("ignore", "run .* not everything reached", RuntimeWarning)  # the dead port
        costs = {"local": log_cost(200_000, work / "cost-local"),
                 "up": log_cost(200_000, work / "cost-up", server=server.url, api_key=key),
                 "down": log_cost(200_000, work / "cost-down", server="http://127.0.0.1:9", api_key=key)}  # fmt: skip
        api = runstack.Api(base_url=server.url, api_key=key)
        exact = 0
        for view in api.runs(project="load"):
            frame = view.history(keys=["m0"])
            exact += frame["_step"].tolist() == list(range(args.steps)) and (frame["m0"] == 10.0 * frame["_step"]).all()
        timings.sort()
        p99 = timings[int(0.99 * (len(timings) - 1))] * 1000 if timings else float("nan")
        print(f"server_load: {args.clients} clients x {args.steps:,} steps x 10 metrics = {points:,} points | "
              f"server {points / server_s:,.0f} points/s ({server_s:.1f} s, p99 request {p99:.0f} ms, "
              f"{len(timings)} requests) | local only {points / local_s:,.0f} points/s ({local_s:.1f} s) "
              f"(ratio {server_s / local_s:.2f}x the time) | runs complete exactly once: {exact}/{args.clients} | "
              f"log() of 10 floats: {costs['local']:.2f} us local, {costs['up']:.2f} us shipping live, "
              f"{costs['down']:.2f} us with the server down")  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
