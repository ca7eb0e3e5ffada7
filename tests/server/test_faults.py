"""Faults in the middle of a load: the server killed with SIGKILL and restarted, PostgreSQL
restarted. Several client processes keep logging; afterwards every step of every run is on
the server exactly once, and every history file is byte for byte the client's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import runstack
from tests.server.test_sync import assert_exactly_once

JOB = str(Path(__file__).parent / "client_job.py")
CLIENTS, STEPS = 4, 12_000
pytestmark = pytest.mark.slow


def start_clients(env, prefix):
    procs = [subprocess.Popen([sys.executable, JOB, "load", f"{prefix}-{i}", str(STEPS), "0.0003"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(CLIENTS)]  # fmt: skip
    for proc in procs:
        assert proc.stdout.readline().strip() == "started"
    return procs


def finish_and_check(procs, srv_url, key, store: Path, prefix):
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert "runstack sync" not in err  # finish() got everything to the server: no sync needed
    api = runstack.Api(base_url=srv_url, api_key=key)
    for i in range(CLIENTS):
        run_id = f"{prefix}-{i}"
        remote = api.run(run_id)
        assert remote.status == "finished"
        assert_exactly_once(remote, STEPS)
        local = store / "runs" / run_id / "history.0.rsl"
        files = api.store._json(f"/api/v1/runs/{run_id}/files")
        assert files == {"history.0.rsl": local.stat().st_size}


def wait_for_upload(api_url, key, prefix):
    api = runstack.Api(base_url=api_url, api_key=key)
    deadline = time.time() + 60
    while time.time() < deadline:
        if len(api.runs(project="load")) == CLIENTS:
            return
        time.sleep(0.1)
    raise AssertionError("the clients' runs did not reach the server")


def test_server_killed_and_restarted_mid_load_loses_nothing(server, make_key, client_env, tmp_path):
    srv = server()
    key = make_key({"load": "write"})
    env = client_env(srv.url, key, RUNSTACK_SYNC_TIMEOUT="120")
    procs = start_clients(env, "k")
    wait_for_upload(srv.url, key, "k")
    assert all(p.poll() is None for p in procs)  # still logging
    srv.kill()  # SIGKILL: requests in flight are cut; some were stored, their answers lost
    time.sleep(1.5)
    srv = server(port=srv.port)  # the same address, a new process
    finish_and_check(procs, srv.url, key, tmp_path / "client", "k")


def test_postgres_restarted_mid_load_loses_nothing(server, make_key, client_env, tmp_path, postgres):
    srv = server()
    key = make_key({"load": "write"})
    env = client_env(srv.url, key, RUNSTACK_SYNC_TIMEOUT="120")
    procs = start_clients(env, "p")
    wait_for_upload(srv.url, key, "p")
    assert all(p.poll() is None for p in procs)
    postgres.restart()  # every pooled connection breaks; the server answers 503 until it is back
    finish_and_check(procs, srv.url, key, tmp_path / "client", "p")
