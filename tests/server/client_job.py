"""One training process shipping its run to the team server (RUNSTACK_BASE_URL/RUNSTACK_API_KEY).

    python client_job.py PROJECT RUN_ID STEPS [PAUSE_S] [--image] [--artifact]

Step s logs m0..m9 = 10*s + i, so a reader can check every step arrived exactly once.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import runstack

project, run_id, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause = float(sys.argv[4]) if len(sys.argv) > 4 and not sys.argv[4].startswith("--") else 0.0
run = runstack.init(project=project, id=run_id, name=f"{run_id}-name", config={"lr": 0.1, "steps": steps})
print("started", flush=True)
for step in range(steps):
    run.log({f"m{i}": 10.0 * step + i for i in range(10)}, step=step)
    if pause:
        time.sleep(pause)
if "--image" in sys.argv:
    pixels = ((np.arange(24 * 32 * 3) + sum(map(ord, run_id))) % 251).astype(np.uint8).reshape(24, 32, 3)
    run.log({"sample": runstack.Image(pixels, caption="a gradient")}, step=steps)
if "--artifact" in sys.argv:
    folder = runstack.Artifact("weights", type="model")
    path = f"{run.dir}/weights.bin"
    with open(path, "wb") as handle:
        handle.write(bytes(range(256)) * 40)
    folder.add_file(path)
    run.log_artifact(folder)
run.summary["best"] = 0.5
run.finish()
print("done", flush=True)
