"""System metrics: a background sampler of CPU, memory, disk, network and NVIDIA GPUs.

Samples go to their own log (``system.<rank>.rsl`` beside the history) with the sample
index as step, so they never consume the user's step. GPU metrics come from NVML
(``nvidia-ml-py``); without a GPU or a driver the sampler says why once, at debug
level, and records the CPU side only. Nothing here ever fails the run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from runstack.core.logfile import Encoder, LogWriter
from runstack.core.logread import read_log

log = logging.getLogger("runstack")
DEFAULT_INTERVAL_S = 10.0


class GpuProbe:
    """Per-GPU utilisation, memory, temperature and power through NVML."""

    def __init__(self) -> None:
        self.nvml: Any = None
        self.handles: list[Any] = []
        self.reason = ""
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.nvml = pynvml
            if not self.handles:
                self.reason = "NVML found no GPU"
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install 'runstack[gpu]')"
        except Exception as exc:  # noqa: BLE001 - NVML raises its own error types for "no driver"
            self.reason = f"NVML is not available ({exc})"
        if self.reason:
            log.debug("runstack: GPU metrics are off: %s", self.reason)

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        nvml = self.nvml
        if nvml is None:
            return out
        for i, handle in enumerate(self.handles):
            readers = {
                "util": lambda h: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu),
                "memory_util": lambda h: float(nvml.nvmlDeviceGetUtilizationRates(h).memory),
                "memory_used": lambda h: float(nvml.nvmlDeviceGetMemoryInfo(h).used),
                "memory_total": lambda h: float(nvml.nvmlDeviceGetMemoryInfo(h).total),
                "temperature": lambda h: float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
                "power_watts": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
            }
            for name, read in readers.items():
                try:
                    out[f"gpu.{i}.{name}"] = read(handle)
                except Exception:  # noqa: BLE001,S112 - a metric this GPU does not support
                    continue
        return out


class SystemSampler(threading.Thread):
    """Samples every ``interval`` seconds into ``<run dir>/system.<rank>.rsl`` until stopped."""

    def __init__(self, run_dir: Path, rank: int, interval: float = DEFAULT_INTERVAL_S, gpu: bool = True) -> None:
        super().__init__(name="runstack-system", daemon=True)
        import psutil

        self.psutil, self.interval = psutil, interval
        self.process = psutil.Process(os.getpid())
        self.halt = threading.Event()
        path = run_dir / f"system.{rank}.rsl"
        previous = read_log(path) if path.exists() else None  # a resumed run continues its series
        self.writer = LogWriter(path, rank, previous.valid_end if previous else None)
        self.encoders: dict[tuple[str, ...], Encoder] = {}
        self.samples = 0
        if previous is not None:
            self.encoders = {enc.keys: enc for enc in previous.schemas.values()}
            self.samples = previous.row_count
        self.gpu = GpuProbe() if gpu else None
        self._last_io: tuple[float, Any, Any] | None = None
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._last_io = (time.monotonic(), self._disk(), psutil.net_io_counters())

    def _disk(self) -> Any:
        try:
            return self.psutil.disk_io_counters()
        except (RuntimeError, OSError):
            return None

    def sample(self) -> dict[str, float]:
        """One reading of every metric (rates are since the previous reading)."""
        psutil = self.psutil
        memory = psutil.virtual_memory()
        out = {
            "cpu.percent": psutil.cpu_percent(None),
            "proc.cpu.percent": self.process.cpu_percent(None),
            "proc.memory.rss": float(self.process.memory_info().rss),
            "memory.percent": memory.percent,
            "memory.used": float(memory.used),
        }
        now, disk, net = time.monotonic(), self._disk(), psutil.net_io_counters()
        if self._last_io is not None:
            then, old_disk, old_net = self._last_io
            span = max(now - then, 1e-9)
            if disk is not None and old_disk is not None:
                out["disk.read_bytes_per_s"] = (disk.read_bytes - old_disk.read_bytes) / span
                out["disk.write_bytes_per_s"] = (disk.write_bytes - old_disk.write_bytes) / span
            if net is not None and old_net is not None:
                out["network.sent_bytes_per_s"] = (net.bytes_sent - old_net.bytes_sent) / span
                out["network.recv_bytes_per_s"] = (net.bytes_recv - old_net.bytes_recv) / span
        self._last_io = (now, disk, net)
        if self.gpu is not None:
            out.update(self.gpu.sample())
        return out

    def record(self, values: dict[str, float]) -> None:
        keys = tuple(values)
        enc = self.encoders.get(keys)
        if enc is None:
            enc = self.encoders[keys] = self.writer.define(len(self.encoders) + 1, keys, ("d",) * len(keys))
        self.writer.append(enc.pack(enc.prefix, self.samples, time.time(), *values.values()))
        if self.writer.off > self.writer.seal_at:
            self.writer.seal()
        self.samples += 1

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                self.record(self.sample())
            except Exception as exc:  # noqa: BLE001 - system metrics must never fail the run
                log.debug("runstack: system metrics sample failed: %s", exc)

    def close(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join()
        self.writer.close()

    def abandon(self) -> None:
        """In a forked child: never write."""
        self.halt.set()
        self.writer.abandon()
