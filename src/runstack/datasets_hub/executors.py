"""Where the per-source stage runs: processes on this machine, a Dask cluster, or Spark.

Each executor runs the same task on the same shares of the sources (split by size) and
returns the results in share order, so every executor gives the same spills and therefore
byte-identical shards and manifest. Spill files are written next to the output folder: on a
multi-machine cluster that folder must be on storage every worker sees.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from runstack.errors import InvalidArgumentError, MissingDependencyError

EXECUTORS = ("local", "dask", "spark")


def _call(task: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return task(*args)


def run_shares(task: Callable[..., Any], shares: Sequence[tuple[Any, ...]], executor: str = "local",
               address: str | None = None, workers: int | None = None) -> list[Any]:  # fmt: skip
    """``task(*share)`` for every share, ``workers`` at a time (default one per share), each
    share going to the next free worker; results in share order.

    ``address``: a Dask scheduler (``tcp://host:8786``; default a ``LocalCluster`` of
    ``workers`` processes) or a Spark master (``spark://...``; default ``local[workers]``).
    """
    workers = max(1, min(workers or len(shares), len(shares)))
    if executor not in EXECUTORS:
        raise InvalidArgumentError("executor", executor, " | ".join(EXECUTORS))
    if not shares:  # everything came from the cache
        return []
    if executor == "local":
        if workers == 1:
            return [task(*share) for share in shares]
        # Spawned, not forked: a forked child inherits go-enry's Go runtime mid-flight and freezes.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return [f.result() for f in [pool.submit(task, *share) for share in shares]]
    if executor == "dask":
        return _dask(task, shares, address, workers)
    return _spark(task, shares, address, workers)


def _dask(task: Callable[..., Any], shares: Sequence[tuple[Any, ...]], address: str | None, workers: int) -> list[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError("dask[distributed]", "dask") from None
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(address or cluster)
    try:
        futures = client.map(_call, [task] * len(shares), list(shares), pure=False)
        return list(client.gather(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _spark(task: Callable[..., Any], shares: Sequence[tuple[Any, ...]], address: str | None, workers: int) -> list[Any]:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingDependencyError("pyspark", "spark") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    existing = SparkSession.getActiveSession()
    spark = existing or (SparkSession.builder.master(address or f"local[{workers}]").appName("runstack data build")
                         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                         .getOrCreate())  # fmt: skip
    try:
        indexed = list(enumerate(shares))
        results = spark.sparkContext.parallelize(indexed, len(indexed)).map(lambda item: (item[0], task(*item[1])))
        return [value for _, value in sorted(results.collect(), key=lambda pair: pair[0])]
    finally:
        if existing is None:
            spark.stop()
