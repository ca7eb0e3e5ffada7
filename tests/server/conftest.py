"""A real PostgreSQL (see pgcluster.py), real ``runstack server`` processes on free ports, and keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("starlette")

from tests.server.pgcluster import Cluster  # noqa: E402

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``runstack server`` in its own process, so that it can be killed with SIGKILL and restarted."""

    def __init__(
        self, dsn: str, storage: Path | str, *extra: str, port: int | None = None, logs: Path | None = None
    ) -> None:
        self.dsn, self.storage, self.extra = dsn, storage, extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = (logs or Path(storage).parent) / f"server-{self.port}.log"

    def start(self) -> ServerProcess:
        args = [sys.executable, "-m", "runstack.cli.main", "server", "--db", self.dsn, "--storage", str(self.storage),
                "--port", str(self.port), *self.extra]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/api/v1/whoami", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # 401: it answers
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start within 60 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def postgres():
    cluster = Cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def database(postgres) -> str:
    return postgres.database()


@pytest.fixture
def make_key(database):
    from runstack.server.db import ServerDB

    db = ServerDB(database, min_size=1, max_size=2)

    def create(grants: dict[str, str], name: str = "test") -> str:
        return db.create_key(name, grants)

    create.db = db  # type: ignore[attr-defined]
    yield create
    db.close()


@pytest.fixture
def server(database, tmp_path):
    started = []

    def start(*extra: str, storage: Path | str | None = None, port: int | None = None) -> ServerProcess:
        proc = ServerProcess(database, storage or tmp_path / "storage", *extra, port=port, logs=tmp_path).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def client_env(tmp_path):
    """The environment of a client process: its own store, the repository importable."""

    def env(url: str, key: str, store: Path | None = None, **more: str) -> dict[str, str]:
        out = {**os.environ, "RUNSTACK_BASE_URL": url, "RUNSTACK_API_KEY": key,
               "RUNSTACK_DIR": str(store or tmp_path / "client"), "RUNSTACK_SYSTEM_METRICS": "0",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        out.update(more)
        return out

    return env
