"""How fast the dashboard draws a metric of a million points, against reading the raw points.

    python bench/ui_history.py [--points 1000000]

Logs one metric with ``--points`` steps and a one-step spike, serves the dashboard, and times:
the history endpoint for 2,000 display points (first request, which parses the file, and then
warm), reading every raw point the way a client without downsampling would (``RunView.history``),
and, in Debian's headless Chromium, the time from navigation to the first drawn chart and to a
drawn compare view of 100 runs x 10 metrics. Prints one line; the ratio is raw read / warm endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runstack  # noqa: E402


def _get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = json.loads(response.read())
    return time.perf_counter() - start, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, Server

    with tempfile.TemporaryDirectory() as root:
        os.environ["RUNSTACK_SYSTEM_METRICS"] = "0"
        run = runstack.init(dir=root, id="big", project="bench")
        spike = args.points * 2 // 3
        for i in range(args.points):
            run.log({"loss": 1.0 + (i % 100) / 1000 if i != spike else 50.0})
        run.finish()
        server = Server(root)
        url = f"{server.url}/api/runs/big/history?key=loss&points=2000"
        cold, body = _get(url)
        warm = statistics.median(_get(url)[0] for _ in range(20))
        spike_seen = max(v for v in body["y"] if v is not None) == 50.0
        start = time.perf_counter()
        raw = runstack.Api(root).run("big").history(keys=["loss"])
        raw_s = time.perf_counter() - start
        assert len(raw) == args.points
        ids = []
        for r in range(100):  # the compare view: 100 runs x 10 metrics of 500 steps
            many = runstack.init(dir=root, project="compare")
            for step in range(500):
                many.log({f"m{k}": (k + 1) / (step + 1 + r) for k in range(10)})
            many.finish()
            ids.append(many.id)
        first_chart = compare = "n/a (no chromium)"
        if CHROMIUM and shutil.which(CHROMIUM):
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                start = time.perf_counter()
                page.goto(f"{server.url}/runs/big")
                page.wait_for_function("window.__charts && window.__charts['loss']", timeout=120_000)
                first_chart = f"{(time.perf_counter() - start) * 1e3:.0f} ms"
                start = time.perf_counter()
                page.goto(f"{server.url}/compare?runs={','.join(ids)}")
                page.wait_for_function("document.body.dataset.ready === '1'", timeout=300_000)
                charts = page.evaluate("Object.keys(window.__charts).length")
                compare = f"{(time.perf_counter() - start):.1f} s for {charts} charts of 100 runs"
                browser.close()
        server.stop()
    print(
        f"ui_history: {args.points:,} points -> {len(body['y'])} drawn in {warm * 1e3:.1f} ms warm "
        f"({cold * 1e3:.0f} ms first request) vs {raw_s * 1e3:.0f} ms reading the raw points "
        f"(ratio {raw_s / warm:.0f}x) | spike kept: {spike_seen} | first chart in Chromium: {first_chart} | "
        f"compare view: {compare}"
    )


if __name__ == "__main__":
    main()
