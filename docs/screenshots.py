"""Make the README's screenshots of the dashboard (needs Debian's chromium and runstack[ui]).

    python docs/screenshots.py        # writes docs/img/{runs,run,compare}.png

Logs three small demo runs into a temporary store, serves the dashboard, and captures the
pages in headless Chromium.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import runstack  # noqa: E402


def _log_runs() -> list[str]:
    ids = []
    for i, lr in enumerate((0.3, 0.1, 0.03)):
        run = runstack.init(project="mnist", name=f"sgd-lr{lr}", config={"lr": lr, "optim": {"name": "sgd"}},
                            tags=["baseline" if i == 0 else "sweep"])  # fmt: skip
        run.define_metric("val/*", step_metric="epoch")
        for step in range(400):
            loss = math.exp(-step * lr / 60) + 0.05 * math.sin(step / 7) ** 2 + 0.1
            run.log({"train/loss": loss, "train/acc": 1 - loss / 2})
            if step % 40 == 39:
                run.log({"val/loss": loss * 1.1, "val/acc": 1 - loss / 1.8, "epoch": step // 40}, commit=False)
        grid = np.indices((32, 32)).sum(axis=0) % (8 + 4 * i) * 20
        run.log({"samples": runstack.Image(np.stack([grid, grid[::-1], grid.T], axis=-1).astype(np.uint8)),
                 "weights": runstack.Histogram(np.random.default_rng(i).normal(size=1000))})  # fmt: skip
        run.finish()
        ids.append(run.id)
    return ids


def main() -> None:
    from playwright.sync_api import sync_playwright
    from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, Server

    with tempfile.TemporaryDirectory() as root:
        os.environ["RUNSTACK_DIR"] = root
        os.environ["RUNSTACK_SYSTEM_METRICS"] = "0"
        ids = _log_runs()
        server = Server(root)
        (HERE / "img").mkdir(exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            for name, path in (("runs", "/projects/mnist"), ("run", f"/runs/{ids[0]}"),
                               ("compare", f"/compare?runs={','.join(ids)}")):  # fmt: skip
                page.goto(server.url + path)
                page.wait_for_function("document.body.dataset.ready === '1'")
                page.screenshot(path=str(HERE / "img" / f"{name}.png"), full_page=name == "run")
                print(f"wrote docs/img/{name}.png")
            browser.close()
        server.stop()


if __name__ == "__main__":
    main()
