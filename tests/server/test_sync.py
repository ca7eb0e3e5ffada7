"""A client ships its run to a real server (PostgreSQL behind it) and reads it back the same."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import runstack
from runstack.core.client import Client
from runstack.core.store import Store
from runstack.core.uploader import sync_runs

JOB = str(Path(__file__).parent / "client_job.py")
pytestmark = pytest.mark.slow


def run_job(env, *args, check=True):
    result = subprocess.run([sys.executable, JOB, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_exactly_once(remote, steps):
    frame = remote.history(keys=[f"m{i}" for i in range(10)])
    assert frame["_step"].tolist() == list(range(steps))  # every step, in order, none twice
    for i in range(10):
        assert (frame[f"m{i}"] == 10.0 * frame["_step"] + i).all()


def test_a_live_run_reads_the_same_from_the_server(server, make_key, client_env, tmp_path):
    srv = server()
    key = make_key({"team": "write"})
    env = client_env(srv.url, key)
    run_job(env, "team", "run-a", "700", "--image", "--artifact")
    local = runstack.Api(tmp_path / "client").run("run-a")
    remote = runstack.Api(base_url=srv.url, api_key=key).run("run-a")
    assert (remote.status, remote.name, remote.project) == ("finished", "run-a-name", "team")
    assert remote.config == local.config == {"lr": 0.1, "steps": 700}
    assert remote.summary == local.summary and remote.summary["best"] == 0.5
    pd.testing.assert_frame_equal(remote.history(), local.history())
    assert_exactly_once(remote, 700)
    image = remote.history(keys=["sample"])["sample"].dropna().iloc[0]
    assert isinstance(image, runstack.Image) and image.to_numpy().shape == (24, 32, 3)
    assert image == local.history(keys=["sample"])["sample"].dropna().iloc[0]
    assert [r.id for r in runstack.Api(base_url=srv.url, api_key=key).runs(project="team")] == ["run-a"]
    logged = runstack.Api(base_url=srv.url, api_key=key).store.run_artifacts("run-a")["logged"]
    assert [(a["name"], a["version"], a["type"]) for a in logged] == [("weights", 0, "model")]
    # Everything arrived live: a sync afterwards sends nothing, and says so.
    sync = subprocess.run([sys.executable, "-m", "runstack.cli.main", "sync"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    assert "run-a: up to date" in sync.stdout


def test_kill_9_mid_upload_then_sync_completes_it_exactly_once(server, make_key, client_env, tmp_path):
    srv = server()
    key = make_key({"team": "write"})
    env = client_env(srv.url, key)
    proc = subprocess.Popen([sys.executable, JOB, "team", "run-k", "200000", "0.0002"], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "started"
    remote_api = runstack.Api(base_url=srv.url, api_key=key)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until part of the history is on the server
        files = remote_api.store._json("/api/v1/runs/run-k/files") if remote_api.runs() else {}
        if files.get("history.0.rsl", 0) > 20_000:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = Client(srv.url, key)
    sent = sync_runs(Store(tmp_path / "client", create=False), client)["run-k"]
    assert sent.bytes > 0 and sent.rows == 1  # the rest of the history, and the row now marked crashed
    local = runstack.Api(tmp_path / "client").run("run-k")
    remote = runstack.Api(base_url=srv.url, api_key=key).run("run-k")
    assert local.status == remote.status == "crashed"
    steps = len(local.history(keys=["m0"]))
    assert 0 < steps < 200000
    assert_exactly_once(remote, steps)
    pd.testing.assert_frame_equal(remote.history(), local.history())
    again = sync_runs(Store(tmp_path / "client", create=False), client)["run-k"]
    assert (again.bytes, again.blobs, again.rows, again.artifacts) == (0, 0, 0, 0)


def test_server_down_training_goes_on_and_sync_catches_up(server, make_key, client_env, tmp_path):
    from tests.server.conftest import ServerProcess

    srv = ServerProcess(make_key.db.dsn, tmp_path / "storage")  # not started yet: nothing listens there
    key = make_key({"team": "write"})
    env = client_env(srv.url, key, RUNSTACK_SYNC_TIMEOUT="1")
    result = run_job(env, "team", "run-d", "3000", "--image")
    assert "runstack sync run-d" in result.stderr  # finish() waited a bounded time, then said what to do
    local = runstack.Api(tmp_path / "client").run("run-d")
    assert local.status == "finished" and len(local.history()) == 3001  # nothing lost locally
    srv.start()
    try:
        sync = subprocess.run([sys.executable, "-m", "runstack.cli.main", "sync", "run-d"], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert sync.returncode == 0, sync.stderr
        assert "run-d: sent" in sync.stdout and "1 files" in sync.stdout  # the image
        remote = runstack.Api(base_url=srv.url, api_key=key).run("run-d")
        pd.testing.assert_frame_equal(remote.history(), local.history())
        assert remote.status == "finished"
    finally:
        srv.stop()


def test_resumed_run_continues_on_the_server(server, make_key, client_env, tmp_path):
    srv = server()
    key = make_key({"team": "write"})
    env = client_env(srv.url, key)
    run_job(env, "team", "run-r", "300")
    code = ("import runstack; r = runstack.init(project='team', id='run-r', resume='must'); "
            "[r.log({'m0': 10.0 * s, **{f'm{i}': 10.0 * s + i for i in range(1, 10)}}, step=s) for s in range(300, 450)]; "
            "r.finish()")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    remote = runstack.Api(base_url=srv.url, api_key=key).run("run-r")
    assert_exactly_once(remote, 450)
    assert remote.resumed == 1 and remote.status == "finished"


def test_init_server_argument_ships_in_process_and_reports_a_refused_key(server, make_key, tmp_path):
    srv = server()
    key, reader = make_key({"team": "write"}), make_key({"team": "read"})
    run = runstack.init(project="team", id="in-proc", server=srv.url, api_key=key, system_interval=0.05)
    for step in range(100):
        run.log({"m0": 10.0 * step, **{f"m{i}": 10.0 * step + i for i in range(1, 10)}}, step=step)
        time.sleep(0.003)
    run.finish()
    remote = runstack.Api(base_url=srv.url, api_key=reader).run("in-proc")
    assert_exactly_once(remote, 100)
    local_system = runstack.Api().run("in-proc").system_metrics()
    assert len(local_system) > 0  # the system sampler's file went up too
    pd.testing.assert_frame_equal(remote.system_metrics(), local_system)
    # A key that may not write: the run is kept locally, finish() says why at once (no retrying).
    refused = runstack.init(project="team", id="refused", server=srv.url, api_key=reader, system_metrics=False)
    refused.log({"x": 1.0})
    began = time.monotonic()
    with pytest.warns(RuntimeWarning, match="may not write project 'team'.*runstack sync refused"):
        refused.finish()
    assert time.monotonic() - began < 20
    assert runstack.Api().run("refused").status == "finished"


def test_bad_server_arguments_are_clear_errors():
    with pytest.raises(runstack.errors.InvalidArgumentError, match="http:// or https://"):
        runstack.Api(base_url="server:8080")
    with pytest.raises(runstack.errors.ServerError, match="cannot reach the server"):
        runstack.Api(base_url="http://127.0.0.1:9", api_key="rsk_x_y").runs()


def test_media_digests_and_record_boundaries():
    from runstack.core.logfile import FILE_HEADER, RECORD_HEADER, SEAL, LogWriter
    from runstack.core.uploader import _whole_records, media_digests

    store = Store(create=True)
    path = store.root / "h.rsl"
    writer = LogWriter(path, 0)
    enc = writer.define(1, ("a",), ("d",))
    assert enc is not None
    digest = "ab" * 32
    writer.append_media(3, 1.0, {"img": {"_type": "image", "sha256": digest}, "t": {"nested": [{"sha256": "cd" * 32}]}})
    writer.close()
    data = path.read_bytes()
    assert media_digests(data, FILE_HEADER.size) == {digest, "cd" * 32}
    media_end = len(data) - RECORD_HEADER.size - SEAL.size  # close() sealed after the media record
    assert media_digests(data[: media_end - 5], FILE_HEADER.size) == set()  # a cut record is not read
    assert _whole_records(data, FILE_HEADER.size) == len(data)
    assert _whole_records(data[: media_end - 5], FILE_HEADER.size) < media_end


def test_blobs_on_an_fsspec_url(server, make_key, client_env, tmp_path):
    target = tmp_path / "bucket"
    srv = server(storage=f"file://{target}")  # through fsspec, as s3:// or gs:// would be
    key = make_key({"team": "write"})
    run_job(client_env(srv.url, key), "team", "run-f", "20", "--image", "--artifact")
    stored = sorted(p.name for p in target.rglob("*") if p.is_file())
    assert len(stored) == 2 and all(len(name) == 64 for name in stored)  # the image and the weights
    remote = runstack.Api(base_url=srv.url, api_key=key).run("run-f")
    image = remote.history(keys=["sample"])["sample"].dropna().iloc[0]
    assert image.to_numpy().shape == (24, 32, 3)
    local = runstack.Api(tmp_path / "client").run("run-f").history(keys=["sample"])["sample"].dropna().iloc[0]
    assert image == local


def test_an_interrupted_sync_resumes_where_it_stopped(server, make_key, client_env, tmp_path):
    srv = server()
    key = make_key({"team": "write"})
    store = tmp_path / "offline"
    run = runstack.init(project="team", id="big", dir=str(store), system_metrics=False)  # logged with no server
    steps = 400_000
    row = {}
    for step in range(steps):
        for i in range(10):
            row[f"m{i}"] = 10.0 * step + i
        run.log(row, step=step)
    run.finish()
    size = (store / "runs" / "big" / "history.0.rsl").stat().st_size
    assert size > 4 * (8 << 20)  # several requests' worth
    proc = subprocess.Popen([sys.executable, "-m", "runstack.cli.main", "sync", "--dir", str(store)],
                            env=client_env(srv.url, key, store))  # fmt: skip
    api = runstack.Api(base_url=srv.url, api_key=key)
    deadline, held = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None:
        held = api.store._json("/api/v1/runs/big/files").get("history.0.rsl", 0) if api.runs() else 0
        if held > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < held < size  # killed part-way
    held = api.store._json("/api/v1/runs/big/files")["history.0.rsl"]
    sent = sync_runs(Store(store, create=False), Client(srv.url, key))["big"]
    assert sent.bytes == size - held  # only the rest went up
    assert api.store._json("/api/v1/runs/big/files") == {"history.0.rsl": size}
    assert_exactly_once(api.run("big"), steps)
