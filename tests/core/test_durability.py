"""Nothing that log() returned is ever lost: kill -9, torn tails, corruption, full disks."""

from __future__ import annotations

import errno
import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runstack
from runstack.core import logfile
from runstack.core.logread import read_log
from runstack.errors import StoreError

from ..conftest import ROOT

VICTIM = """
import mmap, sys, runstack
counter = open(sys.argv[1], "r+b")
done = mmap.mmap(counter.fileno(), 8)
run = runstack.init(id="victim", config={"kind": "victim"})
run.define_metric("x", summary="max")
limit = int(sys.argv[2])
i = 0
while i < limit:
    run.log({"i": i, "x": i * 0.5, "flag": i % 2 == 0})
    done[0:8] = (i + 1).to_bytes(8, "little")  # log() returned i + 1 times
    i += 1
print("logged", flush=True)
import time; time.sleep(600)
"""


def _start_victim(tmp_path: Path, limit: int) -> tuple[subprocess.Popen, Path]:
    counter = tmp_path / "counter"
    counter.write_bytes(b"\0" * 8)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", VICTIM, str(counter), str(limit)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    return proc, counter


def _returned(counter: Path) -> int:
    return int.from_bytes(counter.read_bytes()[:8], "little")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_a_random_instant_loses_nothing_returned(tmp_path, store_dir, seed):
    proc, counter = _start_victim(tmp_path, 10**9)
    deadline = time.monotonic() + 60
    target = random.Random(seed).randint(2_000, 60_000)
    while _returned(counter) < target and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    returned = _returned(counter)
    assert returned >= target
    view = runstack.Api(store_dir).run("victim")
    assert view.status == "crashed" and "without finish()" in view.error
    frame = view.history()
    # Every call that returned is there (one more may be, if it was killed after writing).
    assert returned <= len(frame) <= returned + 1
    assert frame["i"].tolist() == list(range(len(frame)))
    assert (frame["x"] == frame["i"] * 0.5).all()
    assert view.summary["x"] == (len(frame) - 1) * 0.5 and view.config == {"kind": "victim"}


@pytest.mark.slow
def test_kill_9_after_5000_steps_recovers_5000_and_resumes(tmp_path, store_dir):
    proc, counter = _start_victim(tmp_path, 5_000)
    assert proc.stdout.readline().strip() == "logged"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(runstack.Api(store_dir).run("victim").history()) == 5_000
    run = runstack.init(id="victim", resume="allow")
    assert run.step == 5_000
    run.log({"i": 5_000, "x": 2500.0, "flag": True})
    run.finish()
    view = runstack.Api(store_dir).run("victim")
    assert view.status == "finished" and view.history()["i"].tolist() == list(range(5_001))


def _finished_run(n: int = 3000) -> tuple[str, Path]:
    run = runstack.init()
    for i in range(n):
        run.log({"i": i, "y": float(i)})
    run.finish()
    return run.id, Path(run.dir) / "history.0.rsl"


def test_torn_last_record_is_skipped_and_earlier_rows_intact(store_dir):
    run_id, path = _finished_run()
    good = path.read_bytes()
    payload = b"\x02\x01\x00" + b"\x07" * 30
    torn = logfile.RECORD_HEADER.pack(len(payload), 12345) + payload[:20]  # wrong crc, cut short
    path.write_bytes(good + torn)
    contents = read_log(path)
    assert contents.row_count == 3000 and contents.torn_bytes > 0 and contents.valid_end == len(good)
    frame = runstack.Api(store_dir).run(run_id).history()
    assert frame["i"].tolist() == list(range(3000))


def test_a_row_with_a_bad_checksum_is_dropped_alone(store_dir):
    run = runstack.init()
    for i in range(50):
        run.log({"i": i})
    path = Path(run.dir) / "history.0.rsl"
    # Before finish() there is no seal yet: corrupt the value of row 30 in the live file.
    data = bytearray(path.read_bytes())
    row_size = 8 + 3 + 8 + 8 + 8
    first = data.index(b"\x02\x01\x00") - 8
    data[first + 30 * row_size + 27] ^= 0xFF
    copy = path.with_name("copy.rsl")
    copy.write_bytes(bytes(data))
    contents = read_log(copy)
    assert contents.row_count == 49 and contents.skipped_bytes == row_size
    rows = [int(v) for b in contents.blocks for v in b.rows["v0"]]
    assert rows == [i for i in range(50) if i != 30]


@pytest.mark.parametrize("where", [0.01, 0.5, 0.9])
def test_a_flipped_bit_loses_only_its_sealed_block_and_is_reported(store_dir, where):
    run_id, path = _finished_run(20_000)
    data = bytearray(path.read_bytes())
    at = int(len(data) * where)
    data[at] ^= 0x10
    path.write_bytes(bytes(data))
    view = runstack.Api(store_dir).run(run_id)
    frame = view.history()
    rows = frame["i"].tolist()
    lost = 20_000 - len(rows)
    row_bytes = len(data) / 20_000
    assert lost <= 2 * 65536 / row_bytes  # at most the damaged seal range and the record across it
    assert rows == sorted(rows) and rows[-1] == 19_999 and rows[0] == 0
    assert (frame["y"] == frame["i"].astype(float)).all()
    assert (lost > 0) == (view.skipped_bytes() > 0) and view.skipped_bytes() <= 2 * 65536
    # Resuming the run must keep everything a later seal vouches for.
    again = runstack.init(id=run_id, resume="must")
    again.log({"i": 20_000, "y": 20_000.0})
    again.finish()
    assert runstack.Api(store_dir).run(run_id).history()["i"].tolist() == [*rows, 20_000]


def test_bad_magic_is_a_clear_error(store_dir):
    run_id, path = _finished_run(10)
    path.write_bytes(b"not a log at all" * 4)
    with pytest.raises(StoreError, match="not a runstack history file"):
        runstack.Api(store_dir).run(run_id).history()


def test_disk_full_while_growing_raises_and_keeps_logged_rows(store_dir, monkeypatch):
    run = runstack.init()
    for i in range(10):
        run.log({"i": i})

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logfile.os, "posix_fallocate", no_space)
    with pytest.raises(StoreError, match="disk is full: free space or point RUNSTACK_DIR"):
        for i in range(10, 10**7):
            run.log({"i": i})
    logged = i
    monkeypatch.undo()
    run.finish()
    frame = runstack.Api(store_dir).run(run.id).history()
    assert frame["i"].tolist() == list(range(logged))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_real_full_disk_on_a_small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("this sandbox does not allow mounting a tmpfs")
    try:
        run = runstack.init(dir=mount / "store")
        stat = os.statvfs(mount)
        free = stat.f_bavail * stat.f_frsize
        (mount / "filler").write_bytes(b"\1" * (free - 256 * 1024))
        with pytest.raises(StoreError, match="disk is full"):
            for i in range(10**7):
                run.log({"i": i, "pad": float(i)})
        logged = i
        (mount / "filler").unlink()
        run.finish()
        frame = runstack.Api(mount / "store").run(run.id).history()
        assert frame["i"].tolist() == list(range(logged))
    finally:
        runstack.finish()
        subprocess.run(["umount", "-l", str(mount)])


def _as_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run code as an unprivileged user (root ignores file permissions)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": "/tmp"}
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


@pytest.fixture
def shared_dir():
    """A folder under /tmp that an unprivileged user can traverse but not write."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="runstack-ro-"))
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def test_read_only_store_folder_is_a_clear_error_and_stays_readable(shared_dir):
    store = shared_dir / "store"
    run = runstack.init(dir=store, config={"lr": 0.1})
    for i in range(100):
        run.log({"i": i})
    run.finish()
    if os.geteuid() != 0:
        store.chmod(0o555)
    for folder in (shared_dir, store, store / "runs", store / "runs" / run.id):
        folder.chmod(0o755)
    for file in store.rglob("*"):
        if file.is_file():
            file.chmod(0o644)
    write = "import runstack, sys\ntry:\n    runstack.init(dir=sys.argv[1])\nexcept runstack.RunstackError as e:\n    print(type(e).__name__, e)\n"
    out = _as_unprivileged(write, str(store))
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.startswith("StoreError") and "read-only" in out.stdout and "make the folder writable" in out.stdout
    )
    read = "import runstack, sys\nv = runstack.Api(sys.argv[1]).runs()[0]\nprint(v.status, v.config['lr'], len(v.history()))\n"
    out = _as_unprivileged(read, str(store))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["finished", "0.1", "100"]
    new = _as_unprivileged(write, str(shared_dir / "new-store"))
    assert new.stdout.startswith("StoreError") and "cannot create the store folder (Permission denied)" in new.stdout


def test_a_file_in_the_way_of_the_store(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="a file is in the way"):
        runstack.init(dir=blocker)


def test_seal_records_cover_the_file(store_dir):
    _, path = _finished_run(20_000)
    data = path.read_bytes()
    kinds = []
    pos = logfile.FILE_HEADER.size
    while pos < len(data):
        length = struct.unpack_from("<I", data, pos)[0]
        kinds.append(data[pos + 8])
        pos += 8 + length
    assert pos == len(data) and kinds.count(logfile.KIND_SEAL) >= len(data) // logfile.SEAL_BYTES
