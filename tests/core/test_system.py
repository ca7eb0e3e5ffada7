"""The system-metrics sampler, with real psutil; NVML is faked only to test our GPU logic."""

from __future__ import annotations

import logging
import sys
import time
import types

import pytest

import runstack
from runstack.core.system import GpuProbe, SystemSampler


def test_sampler_records_its_own_series_beside_the_history(store_dir):
    run = runstack.init(system_interval=0.05)
    for i in range(5):
        run.log({"loss": float(i)})
        time.sleep(0.05)
    run.finish()
    view = runstack.Api(store_dir).run(run.id)
    system = view.system_metrics()
    assert len(system) >= 2 and system["_step"].tolist() == list(range(len(system)))
    assert (system["proc.memory.rss"] > 1_000_000).all() and "cpu.percent" in system
    assert view.history()["_step"].tolist() == [0, 1, 2, 3, 4]  # the user's steps are untouched
    assert not any(k.startswith(("cpu", "proc", "gpu")) for k in view.metrics())


def test_switched_off(store_dir, monkeypatch):
    run = runstack.init(system_metrics=False)
    run.finish()
    assert runstack.Api(store_dir).run(run.id).system_metrics().empty
    monkeypatch.setenv("RUNSTACK_SYSTEM_METRICS", "0")
    run = runstack.init(system_interval=0.01)
    time.sleep(0.05)
    run.finish()
    assert runstack.Api(store_dir).run(run.id).system_metrics().empty


def test_no_gpu_says_why_once_at_debug_and_keeps_cpu(tmp_path, caplog, monkeypatch):
    broken = types.ModuleType("pynvml")

    def no_driver():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    with caplog.at_level(logging.DEBUG, logger="runstack"):
        sampler = SystemSampler(tmp_path, 0, interval=60)
        sample = sampler.sample()
    sampler.close()
    assert [r.getMessage() for r in caplog.records].count(
        "runstack: GPU metrics are off: NVML is not available (NVML Shared Library Not Found)"
    ) == 1
    assert "cpu.percent" in sample and not any(k.startswith("gpu.") for k in sample)


def test_gpu_metrics_from_nvml(monkeypatch):
    fake = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=10 + h, memory=5),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=2**30, total=2**34),
        nvmlDeviceGetTemperature=lambda h, sensor: 60,
        nvmlDeviceGetPowerUsage=lambda h: 150_000 if h == 0 else (_ for _ in ()).throw(RuntimeError("unsupported")),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sample = GpuProbe().sample()
    assert sample["gpu.0.util"] == 10 and sample["gpu.1.util"] == 11 and sample["gpu.0.power_watts"] == 150.0
    assert sample["gpu.1.memory_used"] == 2**30 and "gpu.1.power_watts" not in sample


def test_bad_interval_is_rejected(store_dir):
    with pytest.raises(runstack.errors.InvalidArgumentError, match="system_interval=0"):
        runstack.init(system_interval=0)
