"""Searching a built release by code pattern (DuckDB over the Parquet shards) against ``grep -r``
over the source folders it was built from, on the same files.

    python bench/query_grep.py [--pattern 'def \\w+\\(self'] [--packages json,email,http]

Builds a release from standard-library packages, then times one regular-expression search each
way (files matched, MB/s of code searched). Prints one line; the ratio is grep time / query time.
"""

from __future__ import annotations

import argparse
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

from runstack.datasets_hub.build import Source, build
from runstack.datasets_hub.query import query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default=r"def \w+\(self, \w+=None")
    parser.add_argument("--packages", default="json,email,http,xml,asyncio,unittest,importlib,logging,concurrent")
    args = parser.parse_args()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folders = [stdlib / p for p in args.packages.split(",") if (stdlib / p).is_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        sources = [Source(str(f), repo_name=f"python/{f.name}") for f in folders]
        build(sources, Path(tmp) / "release", "v1", progress=False)
        size = sum(
            len(r["content"].encode())
            for r in query(Path(tmp) / "release", limit=None, columns=("content",)).to_pylist()
        )
        start = time.perf_counter()
        hits = query(Path(tmp) / "release", grep=args.pattern, limit=None, columns=("repo_name", "path")).num_rows
        duck = time.perf_counter() - start
        start = time.perf_counter()
        grep = subprocess.run(["grep", "-rlE", "--include=*.py", args.pattern.replace(r"\w", "[[:alnum:]_]").replace(r"\(", r"\("),
                               *map(str, folders)], capture_output=True, text=True)  # fmt: skip
        grep_s = time.perf_counter() - start
        grep_hits = len(grep.stdout.splitlines())
    print(
        f"query_grep: /{args.pattern}/ over {size / 1e6:.1f} MB of published code: DuckDB {hits} files in "
        f"{duck * 1e3:.0f} ms ({size / 1e6 / duck:.0f} MB/s) | grep -r {grep_hits} files in {grep_s * 1e3:.0f} ms "
        f"over the source folders (ratio {grep_s / duck:.2f}x; the release holds deduplicated, filtered files)"
    )


if __name__ == "__main__":
    main()
