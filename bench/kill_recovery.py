"""Kill a logging process with SIGKILL after 5,000 steps and count what is recoverable.

    python bench/kill_recovery.py [--steps 5000]

The child logs ``--steps`` steps (no finish()), says so on stdout, and is killed with
SIGKILL. The parent then opens the store as a user would. Prints one line:
    kill_recovery: logged 5000, recovered 5000 (100.0%), status crashed
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile

import runstack

CHILD = """
import sys, time, runstack
run = runstack.init(id="victim")
for i in range(int(sys.argv[1])):
    run.log({"i": i, "loss": 1.0 / (i + 1)})
print("logged", flush=True)
time.sleep(600)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "RUNSTACK_DIR": root}
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(args.steps)], env=env, stdout=subprocess.PIPE, text=True
        )
        if child.stdout is None or child.stdout.readline().strip() != "logged":
            raise SystemExit("the child did not finish logging")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        view = runstack.Api(root).run("victim")
        recovered = len(view.history())
    share = 100.0 * recovered / args.steps
    print(f"kill_recovery: logged {args.steps}, recovered {recovered} ({share:.1f}%), status {view.status}")
    if recovered != args.steps:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
