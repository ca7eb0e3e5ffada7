"""A throwaway PostgreSQL cluster for the server's tests and benchmark.

``.ci/run`` starts one (Debian's ``postgresql`` package, ``initdb`` + ``pg_ctl`` run as the
``postgres`` user) and exports ``RUNSTACK_TEST_PG`` (its URL) and ``RUNSTACK_TEST_PGDATA``; without
them a cluster is started here the same way, in a temporary folder, and stopped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    return Path(found[-1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, dsn: str, datadir: str, owned: bool) -> None:
        self.dsn, self.datadir, self.owned = dsn, datadir, owned

    @classmethod
    def start(cls) -> Cluster:
        if os.environ.get("RUNSTACK_TEST_PG"):
            return cls(os.environ["RUNSTACK_TEST_PG"], os.environ.get("RUNSTACK_TEST_PGDATA", ""), owned=False)
        root = tempfile.mkdtemp(prefix="runstack-pg-")
        os.chmod(root, 0o755)
        datadir = os.path.join(root, "data")
        os.mkdir(datadir, 0o700)
        if os.geteuid() == 0:
            shutil.chown(datadir, "postgres", "postgres")
            shutil.chown(root, "postgres", "postgres")
        port = _free_port()
        subprocess.run(_as_postgres([str(_bin() / "initdb"), "-D", datadir, "-A", "trust", "-U", "postgres",
                                     "--no-sync"]), check=True, capture_output=True)  # fmt: skip
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(_as_postgres([str(_bin() / "pg_ctl"), "-D", datadir, "-o", options, "-l",
                                     os.path.join(root, "log"), "-w", "start"]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        return cls(f"postgresql://postgres@127.0.0.1:{port}/postgres", datadir, owned=True)

    def database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn.rsplit("/", 1)[0] + f"/{name}"

    def restart(self) -> None:
        """Restart the server (``pg_ctl restart``: same options), as an administrator would."""
        if not self.datadir:
            raise RuntimeError("RUNSTACK_TEST_PGDATA is not set: the cluster cannot be restarted")
        log = os.path.join(os.path.dirname(self.datadir), "log")
        # The new postmaster inherits stdout: a pipe there would never close, so output goes to a file.
        subprocess.run(_as_postgres([str(_bin() / "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "-l", log,
                                     "restart"]), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def stop(self) -> None:
        if self.owned:
            subprocess.run(_as_postgres([str(_bin() / "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "stop"]),
                           check=False, capture_output=True)  # fmt: skip
            shutil.rmtree(os.path.dirname(self.datadir), ignore_errors=True)
