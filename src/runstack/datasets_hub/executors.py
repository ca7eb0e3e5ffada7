"""Where a build's parallel work runs: processes on this machine, a Dask cluster, or Spark.

An ``Engine`` is started once per build (Dask's and Spark's workers up and their imports done,
timed as their own stage; local workers come up while this process already runs tasks) and
then given rounds of tasks: listing the sources, the per-source stage, reading back the keys,
exact dedup's map and reduce, near dedup's band map, bucket reduce and verify, the survivors'
sorted runs, each language's shard plan, and the Parquet shards. Each round runs the same tasks on the same shares whatever the executor and returns
the results in share order, so every executor gives byte-identical shards and manifest. Intermediate files are written next to the output folder: on a multi-machine cluster
that folder must be on storage every worker sees.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Executor, Future, ProcessPoolExecutor, wait
from typing import Any

from runstack.errors import InvalidArgumentError, MissingDependencyError

EXECUTORS = ("local", "dask", "spark")


def _call(task: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return task(*args)


def warm() -> int:
    """Get a worker ready for the per-source stage: imports, go-enry's library, the licence index,
    the MinHash tables, each step's first call, by running the default steps over two small files.
    (The Parquet writer is imported by the first shard a worker writes: pyarrow imports pandas, 0.2 s,
    which then overlaps the largest shard, written first.) Returns its pid."""
    import tempfile
    from pathlib import Path

    # One task at a time per worker: go-enry's Go runtime needs no threads of its own on the other
    # cores, where they would only slow the other workers (read when the library loads, just below).
    os.environ.setdefault("GOMAXPROCS", "1")
    from runstack.datasets_hub import neardup  # noqa: F401
    from runstack.datasets_hub.build import Source, run_stage_one
    from runstack.datasets_hub.config import BuildConfig
    from runstack.datasets_hub.dedup import sign

    with tempfile.TemporaryDirectory(prefix="runstack-warm-") as folder:
        Path(folder, "LICENSE").write_text(
            "MIT License\n\nPermission is hereby granted, free of charge, to any "
            "person obtaining a copy, subject to the following conditions:\n"
        )
        Path(folder, "warm.py").write_text('"""Warm up."""\n\n\ndef f(x):\n    return x + 1  # a@b.io\n' * 8)
        config = BuildConfig()
        texts = [r.content for r in run_stage_one([Source(folder, repo_name="warm/up")], config, None)
                 if not isinstance(r, list)]  # fmt: skip
        sign(texts, config.minhash)
    # What is loaded now stays for the worker's life: out of the collector's sight, so that a full
    # collection (PySpark runs one after every task: ~25 ms here with it in sight) sees only new objects.
    gc.collect()
    gc.freeze()
    return os.getpid()


class Engine:
    """``workers`` workers of ``executor`` for one build: ``start()`` once, ``run(task, shares)`` per round.

    ``address``: a Dask scheduler (``tcp://host:8786``; default a ``LocalCluster`` of ``workers``
    processes) or a Spark master (``spark://...``; default ``local[workers]``). Local: this process
    is one of the workers (with one, the only one), the others ``workers - 1`` spawned processes.
    """

    def __init__(self, executor: str = "local", address: str | None = None, workers: int = 1) -> None:
        if executor not in EXECUTORS:
            raise InvalidArgumentError("executor", executor, " | ".join(EXECUTORS))
        self.executor, self.address, self.workers = executor, address, max(1, workers)
        self._pool: Executor | None = None
        self._warming: list[Future[Any]] = []  # one per spawned process: done once it is up and warm
        self._closers: list[Callable[[], None]] = []
        self._client: Any = None
        self._spark: Any = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self) -> None:
        """Bring the workers up and warm them (idempotent)."""
        if self.executor == "local" and self.workers > 1 and self._pool is None:
            # This process is one of the workers and the others come up beside it: spawned, not forked
            # (a forked child inherits go-enry's Go runtime mid-flight and freezes), and warmed while
            # this one already runs tasks, so their start costs the build no wall time of its own.
            os.environ.setdefault("GOMAXPROCS", "1")  # as warm() does in the others (go-enry, loaded later here)
            pool = ProcessPoolExecutor(self.workers - 1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_leave_interrupts_to_the_driver)  # fmt: skip
            self._pool = pool
            # Not waited for at the end: the processes exit on their own once their queue closes.
            # Ctrl-C: queued tasks dropped.
            self._closers.append(lambda: pool.shutdown(wait=False, cancel_futures=True))
            self._warming = [pool.submit(warm) for _ in range(self.workers - 1)]
        elif self.executor == "dask" and self._client is None:
            self._start_dask()
        elif self.executor == "spark" and self._spark is None:
            self._start_spark()

    def run(self, task: Callable[..., Any], shares: Sequence[tuple[Any, ...]],
            done: Callable[[int], None] | None = None) -> list[Any]:  # fmt: skip
        """``task(*share)`` for every share, each to the next free worker; results in share order.
        ``done(i)`` is called as share ``i`` finishes (Spark: once all have)."""
        done = done or (lambda _: None)
        if not shares:
            return []
        if self.executor == "local" and self.workers == 1:
            results = []
            for index, share in enumerate(shares):
                results.append(task(*share))
                done(index)
            return results
        self.start()
        if self._pool is not None:
            return _beside(self._pool, self._warming, task, shares, done)
        if self._client is not None:
            return _in_order(self._client.map(_call, [task] * len(shares), list(shares), pure=False), done)
        indexed = list(enumerate(shares))
        rdd = self._spark.sparkContext.parallelize(indexed, len(indexed))
        results = sorted(rdd.map(lambda item: (item[0], task(*item[1]))).collect(), key=lambda pair: pair[0])
        for index, _ in results:
            done(index)
        return [value for _, value in results]

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
        self._pool = self._client = self._spark = None

    def _start_dask(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise MissingDependencyError("dask[distributed]", "dask") from None
        import dask

        cluster = None
        if self.address is None:
            # Workers of our own: without the statistical profiler (it stops the task's thread every 10 ms to
            # walk its stack) and with glibc's own malloc tuning (Dask's MALLOC_TRIM_THRESHOLD_ turns off
            # its adaptive mmap threshold: every large numpy temporary is then fresh pages to fault in).
            spawn_environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                             if k != "MALLOC_TRIM_THRESHOLD_"}  # fmt: skip
            with dask.config.set({"distributed.worker.profile.enabled": False,
                                  "distributed.nanny.pre-spawn-environ": spawn_environ}):  # fmt: skip
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)  # fmt: skip
            self._closers.append(cluster.close)
        self._client = Client(self.address or cluster)
        self._closers.append(self._client.close)
        if cluster is not None:
            self._client.wait_for_workers(self.workers)
        self._client.run(warm)

    def _start_spark(self) -> None:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise MissingDependencyError("pyspark", "spark") from None
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        existing = SparkSession.getActiveSession()
        builder = (SparkSession.builder.master(self.address or f"local[{self.workers}]").appName("runstack data build")
                   .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   # Each Python task's exchange with its JVM over a Unix socket (Spark >= 4.1): over local
                   # TCP, small writes wait on delayed ACKs, ~55 ms a task here against ~17 ms (measured).
                   .config("spark.python.unix.domain.socket.enabled", "true"))  # fmt: skip
        if self.address is None:
            # Our own local[N] JVM only hands Python tasks out: without its optimising compiler, which
            # otherwise keeps a core ~17% busy compiling during the build (measured), away from the tasks.
            builder = builder.config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1")
        self._spark = existing or builder.getOrCreate()
        if existing is None:
            self._closers.append(self._spark.stop)
        self._spark.sparkContext.parallelize(range(self.workers), self.workers).map(lambda _: warm()).collect()


def _leave_interrupts_to_the_driver() -> None:
    """A terminal's Ctrl-C reaches every process of the build: the driver stops the round and shuts
    the pool down (its queued tasks dropped); a worker ends the task in hand and exits, without a
    KeyboardInterrupt traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _beside(pool: Executor, warming: list[Future[Any]], task: Callable[..., Any], shares: Sequence[tuple[Any, ...]],
            done: Callable[[int], None]) -> list[Any]:  # fmt: skip
    """The shares run in this thread and in the pool's processes, each taking the next share as it
    is free. A pool process is given shares only once it is up (its ``warming`` future done): until
    then this thread takes them all, and never waits on a process still starting. A failure anywhere
    stops the taking and is raised here, as is Ctrl-C (it lands in this thread's task); ``done`` is
    called under a lock, from whichever thread finished."""
    results: list[Any] = [None] * len(shares)
    taken = [0]
    lock = threading.Lock()
    failures: list[BaseException] = []

    def take() -> int | None:
        with lock:
            if failures or taken[0] == len(shares):
                return None
            taken[0] += 1
            return taken[0] - 1

    def finish(index: int, value: Any) -> None:
        results[index] = value
        with lock:
            if not failures:
                done(index)

    def feed() -> None:
        # Two tasks in flight per process that is up: each has its next one queued, so it never waits
        # on this process (busy with a task of its own, it hands the GIL to this thread only every few ms).
        flight: dict[Future[Any], int] = {}
        try:
            while True:
                starting = [future for future in warming if not future.done()]
                while len(flight) < 2 * (len(warming) - len(starting)) and (index := take()) is not None:
                    flight[pool.submit(task, *shares[index])] = index
                if not flight and (not starting or taken[0] == len(shares) or failures):
                    return
                finished, _ = wait([*flight, *starting], timeout=None if flight else 0.01,
                                   return_when=FIRST_COMPLETED)  # fmt: skip
                for future in finished:
                    if future in flight:
                        finish(flight.pop(future), future.result())
        except BaseException as exc:  # noqa: BLE001  (raised again in the calling thread)
            with lock:
                failures.append(exc)
            for future in flight:
                future.cancel()

    feeder = threading.Thread(target=feed, daemon=True, name="runstack-feed")
    try:
        index = take()  # this process takes the first (the largest, where sorted) share: it is warm
        feeder.start()
        while index is not None:
            finish(index, task(*shares[index]))
            index = take()
        while feeder.is_alive():
            feeder.join(0.1)  # in steps: Ctrl-C still reaches this thread
    except BaseException:
        with lock:
            failures.append(CancelledError())  # the feeder takes nothing more
        raise
    if failures:
        raise failures[0]
    return results


def _in_order(futures: list[Any], done: Callable[[int], None]) -> list[Any]:
    """The results of Dask ``futures`` in their order, ``done(i)`` called as each finishes."""
    from distributed import as_completed

    position = {id(future): index for index, future in enumerate(futures)}
    for future in as_completed(futures):
        future.result()  # a task's error is raised as soon as it is known
        done(position[id(future)])
    return [future.result() for future in futures]
