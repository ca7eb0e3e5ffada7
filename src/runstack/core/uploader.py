"""Shipping a local run to the team server: live (a background thread) and ``runstack sync``.

The local append-only log stays the durable copy; the server gets byte ranges of it. The
server stores each range once (it knows every file's length), so retrying after a lost
answer or a restarted server never duplicates a step, and a sync after a crash continues
from what the server already holds. Blobs (media, artifact files) go before the history that
references them, so whatever the server shows can be opened.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstack.core.client import RETRYABLE, Client, run_path
from runstack.core.logfile import FILE_HEADER, KIND_MEDIA, MEDIA_PREFIX, RECORD_HEADER
from runstack.core.store import Store
from runstack.errors import AuthError, RunstackError, ServerError

CHUNK_BYTES = 8 << 20  # the most history bytes in one request
INTERVAL_S = 1.0


@dataclass
class Shipped:
    """What one pass sent: history bytes, blobs, rows and artifact records."""

    bytes: int = 0
    blobs: int = 0
    rows: int = 0
    artifacts: int = 0
    files: dict[str, int] = field(default_factory=dict)  # name -> length the server holds

    def add(self, other: Shipped) -> None:
        self.bytes += other.bytes
        self.blobs += other.blobs
        self.rows += other.rows
        self.artifacts += other.artifacts
        self.files.update(other.files)


def _records(data: bytes, pos: int) -> Iterator[tuple[int, int]]:
    """(payload start, payload end) of each complete record of ``data``, records beginning at ``pos``."""
    while pos + RECORD_HEADER.size <= len(data):
        length, _ = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        if length == 0 or start + length > len(data):
            return
        yield start, start + length
        pos = start + length


def media_digests(data: bytes, pos: int = 0) -> set[str]:
    """SHA-256 names referenced by the media records in whole records of ``data`` from ``pos``."""
    if b'"sha256"' not in data:  # the common case, found at C speed
        return set()
    found: set[str] = set()
    for start, end in _records(data, pos):
        if data[start] == KIND_MEDIA:
            _collect(json.loads(data[start + MEDIA_PREFIX.size : end]), found)
    return found


def _collect(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        digest = node.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            out.add(digest)
        for value in node.values():
            _collect(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect(value, out)


class RunShipper:
    """Sends one run's row, history files, blobs and artifacts to the server, once each."""

    def __init__(self, client: Client, store: Store, run_id: str, sources: Mapping[str, Callable[[], int]],
                 ship_row: bool = True) -> None:  # fmt: skip
        """``sources``: file name in the run folder -> how many of its bytes are complete."""
        self.client, self.store, self.run_id = client, store, run_id
        self.sources, self.ship_row = sources, ship_row
        self.acked: dict[str, int] | None = None  # what the server holds, once asked
        self.row_hash: str | None = None
        self.sent_blobs: set[str] = set()
        self.artifacts_held: set[tuple[Any, ...]] = set()

    def _state(self) -> None:
        state = self.client.json("GET", run_path(self.run_id, "sync"))
        self.acked = dict(state["files"])
        self.row_hash = state["row_hash"]
        self.artifacts_held = {tuple(a) for a in state["artifacts"]}

    def ship(self, artifacts: bool = False) -> Shipped:
        """One pass: everything complete so far. Raises ServerError when the server is unreachable."""
        out = Shipped()
        if self.ship_row:
            row = {k: v for k, v in self.store.get(self.run_id).items() if k != "damaged"}
            text = json.dumps(row, separators=(",", ":"), sort_keys=True)
            digest = hashlib.sha256(text.encode()).hexdigest()
            if self.acked is None:
                self._state()
            if digest != self.row_hash:
                self.client.request("PUT", run_path(self.run_id), text.encode(), content_type="application/json")
                self.row_hash, out.rows = digest, 1
        if self.acked is None:
            self._state()
        assert self.acked is not None
        for name, end_of in self.sources.items():
            out.add(self._ship_file(name, end_of()))
        if artifacts and self.ship_row:
            out.add(self._ship_artifacts())
        out.files = dict(self.acked)
        return out

    def _ship_file(self, name: str, end: int) -> Shipped:
        assert self.acked is not None
        out = Shipped()
        path = self.store.run_dir(self.run_id) / name
        while self.acked.get(name, 0) < end:
            start = self.acked.get(name, 0)
            with open(path, "rb") as handle:
                handle.seek(start)
                data = handle.read(min(end - start, CHUNK_BYTES))
            first = FILE_HEADER.size if start == 0 else 0
            if len(data) == CHUNK_BYTES:  # cut at a record boundary so media refs are whole
                data = data[: _whole_records(data, first)] or data
            out.blobs += self._ship_blobs(media_digests(data, first), self.store.media.path)
            _, answer = self.client.request("POST", run_path(self.run_id, "files", name), data,
                                            params={"offset": start}, ok=(200, 409))  # fmt: skip
            self.acked[name] = int(json.loads(answer)["length"])
            out.bytes += max(0, self.acked[name] - start)
        return out

    def _ship_blobs(self, digests: set[str], path_of: Callable[[str], Path]) -> int:
        wanted = sorted(digests - self.sent_blobs)
        if not wanted:
            return 0
        missing = self.client.json("POST", run_path(self.run_id, "blobs", "missing"), wanted)
        for digest in missing:
            self.client.request("PUT", run_path(self.run_id, "blobs", digest), path_of(digest).read_bytes())
        self.sent_blobs.update(wanted)
        return len(missing)

    def _ship_artifacts(self) -> Shipped:
        from runstack.core.artifacts import ArtifactRegistry

        out = Shipped()
        registry = ArtifactRegistry(self.store)
        with self.store.catalog.reading() as con:
            found = con.execute("SELECT v.name, v.version, u.role, v.type, v.digest, v.size, v.created_at, "
                                "v.manifest, v.metadata FROM artifact_usage u JOIN artifact_versions v ON "
                                "u.name = v.name AND u.version = v.version WHERE u.run_id = ?",
                                (self.run_id,)).fetchall()  # fmt: skip
        records = []
        for name, version, role, kind, digest, size, created_at, manifest, metadata in found:
            if (role, name, version) in self.artifacts_held:
                continue
            entries = json.loads(manifest)["entries"]
            blobs = {e["sha256"] for e in entries if e.get("sha256") and e.get("ref") is None}
            out.blobs += self._ship_blobs(blobs, registry.blobs.path)
            records.append({"name": name, "version": version, "role": role, "type": kind, "digest": digest,
                            "size": size, "created_at": created_at, "entries": entries,
                            "metadata": json.loads(metadata)})  # fmt: skip
        if records:
            self.client.json("PUT", run_path(self.run_id, "artifacts"), records)
            self.artifacts_held.update((r["role"], r["name"], r["version"]) for r in records)
            out.artifacts = len(records)
        return out


def _whole_records(data: bytes, pos: int) -> int:
    """The length of the complete records at the start of ``data`` (records begin at ``pos``)."""
    return max((end for _, end in _records(data, pos)), default=pos)


class Uploader(threading.Thread):
    """A live run's background shipper: never blocks logging, retries with backoff."""

    def __init__(self, shipper: RunShipper, interval: float = INTERVAL_S) -> None:
        super().__init__(name=f"runstack-upload-{shipper.run_id}", daemon=True)
        self.shipper, self.interval = shipper, interval
        self.stop_event = threading.Event()
        self.error: str | None = None
        self._failures = 0
        self._lock = threading.Lock()  # one pass at a time (the thread, or close())

    def _pass(self, artifacts: bool = False) -> bool:
        with self._lock:
            try:
                self.shipper.ship(artifacts)
            except AuthError as exc:  # retrying cannot help: say so once, keep the local run
                self.error = str(exc)
                return False
            except ServerError as exc:
                if exc.status is not None and exc.status not in RETRYABLE:
                    self.error = str(exc)
                    return False
                self._failures += 1
                return False
            except (RunstackError, OSError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                return False
            self._failures = 0
            return True

    def _backoff(self) -> float:
        if self._failures == 0:
            return self.interval
        return min(30.0, 0.25 * 2 ** min(self._failures, 8)) * (0.5 + random.random() / 2)

    def run(self) -> None:
        while not self.stop_event.wait(self._backoff()):
            if self.error is not None:
                return
            self._pass()

    def finish(self, run_id: str) -> None:
        """``close()``, and a warning naming ``runstack sync`` when the server did not get everything."""
        if not self.close():
            import warnings

            why = self.error or "the server did not answer in time"
            warnings.warn(f"run {run_id}: not everything reached {self.shipper.client.base_url} ({why}); it is "
                          f"safe in the local store: `runstack sync {run_id}` sends the rest", RuntimeWarning,
                          stacklevel=3)  # fmt: skip

    def close(self, timeout: float | None = None) -> bool:
        """Stop the thread and ship the rest, trying for at most ``timeout`` seconds
        (default ``$RUNSTACK_SYNC_TIMEOUT`` or 30); True when the server has everything."""
        if timeout is None:
            timeout = float(os.environ.get("RUNSTACK_SYNC_TIMEOUT") or 30.0)
        self.stop_event.set()
        if self.is_alive():
            self.join()
        deadline = time.monotonic() + timeout
        while self.error is None:
            if self._pass(artifacts=True):
                self.shipper.client.close()
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, self._backoff()))
        self.shipper.client.close()
        return False


def start_uploader(client: Client, store: Store, run_id: str, writers: list[Any], ship_row: bool) -> Uploader:
    """A live run's uploader, started: each writer's file up to its writer's current end."""
    sources = {w.path.name: functools.partial(getattr, w, "off") for w in writers}
    uploader = Uploader(RunShipper(client, store, run_id, sources, ship_row=ship_row))
    uploader.start()
    return uploader


def sync_runs(store: Store, client: Client, run_ids: list[str] | None = None,
              progress: Callable[[str, Shipped], None] | None = None) -> dict[str, Shipped]:  # fmt: skip
    """Send local runs (all, or ``run_ids``) to the server: what it lacks, once.

    Runs whose process died are marked crashed first. Each file goes up to the end of its
    verified records, so a sync after a crash sends exactly what ``history()`` reads locally.
    """
    from runstack.core.logread import read_log

    store.reconcile()
    rows = [store.get(r) for r in run_ids] if run_ids else store.rows()
    out: dict[str, Shipped] = {}
    for row in rows:
        folder = store.run_dir(row["id"])
        sources = {p.name: functools.partial(lambda p: read_log(p).valid_end, p) for p in sorted(folder.glob("*.rsl"))}
        out[row["id"]] = RunShipper(client, store, row["id"], sources).ship(artifacts=True)
        if progress is not None:
            progress(row["id"], out[row["id"]])
    return out
