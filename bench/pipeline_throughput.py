"""Whole-pipeline throughput (MB/s, one core) with every step on, and peak memory.

Builds a dataset from installed packages' source folders (real code nobody here wrote),
and, in the same run, times reading the same sources alone (ingest: walk, read, decode)
as the baseline.

    python bench/pipeline_throughput.py [--packages transformers sklearn numpy]

Prints one summary line:
    pipeline_throughput: ... MB/s per core for the whole pipeline (... MB/s ingest alone, ...x) | peak RSS ... MB | ...
"""

from __future__ import annotations

import argparse
import resource
import sysconfig
import tempfile
import time
from pathlib import Path

from runstack.datasets_hub.build import Source, build
from runstack.datasets_hub.ingest import Ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=["transformers", "sklearn", "numpy"])
    args = parser.parse_args()
    site = Path(sysconfig.get_paths()["purelib"])
    sources = [Source(str(site / p), repo_name=f"pypi/{p}") for p in args.packages if (site / p).exists()]
    start = time.process_time()
    ingest = Ingest()
    size = sum(r.length_bytes for s in sources for r in ingest.read(s.path, s.repo_name))
    ingest_rate = size / 1e6 / (time.process_time() - start)
    with tempfile.TemporaryDirectory() as root:
        start = time.process_time()
        report = build(sources, Path(root) / "out", "bench", progress=False)
        rate = size / 1e6 / (time.process_time() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    language = next(step for step in report.steps if step.name == "language")
    decided = sum(v for k, v in language.counters.items() if k.startswith("strategy:"))
    shares = ", ".join(
        f"{k[9:]} {100 * v / decided:.1f}%" for k, v in language.counters.most_common() if k.startswith("strategy:")
    )
    print(f"pipeline_throughput: {rate:.2f} MB/s per core for the whole pipeline ({ingest_rate:.1f} MB/s ingest alone,"
          f" {ingest_rate / rate:.1f}x) | peak RSS {peak:.0f} MB | {size / 1e6:.0f} MB, {report.files_in} files in,"
          f" {report.files_out} out, {report.exact_duplicates} exact + {report.near_duplicates} near duplicates"
          f" | language decided by: {shares}")  # fmt: skip


if __name__ == "__main__":
    main()
