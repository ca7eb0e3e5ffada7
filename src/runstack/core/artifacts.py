"""Versioned, content-addressed artifacts: datasets, models, any files a run makes or uses.

    art = runstack.Artifact("mnist", type="dataset")
    art.add_dir("data/")
    run.log_artifact(art, aliases=["best"])          # v0, v1, ... only when content changes
    run.use_artifact("mnist:latest").download("in/")  # hardlinked where possible, checksums verified

Every version has a manifest (each file's path, size and SHA-256) and the manifest's own
digest. File contents live once per SHA-256 under ``<store>/artifacts/blobs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import posixpath
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from runstack.core.blobs import BlobStore, sha256_file
from runstack.core.catalog import dumps
from runstack.errors import ArtifactCorruptError, ArtifactError

if TYPE_CHECKING:
    from runstack.core.store import Store

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SPEC = re.compile(r"^(?P<name>[^:]+)(?::(?P<alias>[^:]+))?$")


@dataclass(frozen=True)
class Entry:
    path: str
    size: int | None
    sha256: str | None
    ref: str | None = None  # add_reference: the URI; the content is not copied


def _entry_path(name: str) -> str:
    """A normalised relative POSIX path, or ArtifactError if it could escape a folder."""
    text = str(name).replace("\\", "/")
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or ".." in pure.parts or text.startswith("~") or "\0" in text:
        raise ArtifactError(
            f"artifact path {name!r} is absolute or leaves its folder: use a relative path without '..'"
        )
    normal = posixpath.normpath(text)
    if normal in (".", ""):
        raise ArtifactError(f"artifact path {name!r} names the folder itself: give the file a name")
    return normal


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ArtifactError(f"artifact {kind} {value!r} is not valid: use letters, digits, '.', '_' or '-' (max 128)")
    return value


class Artifact:
    """A set of files (plus references) logged as one immutable, versioned unit."""

    def __init__(self, name: str, type: str, description: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:  # fmt: skip
        from runstack.core.config import to_json

        self.name, self.type = _check_name("name", name), _check_name("type", type)
        self.description = description
        self.metadata = to_json("metadata", metadata or {})
        self._entries: dict[str, Entry] = {}
        self._sources: dict[str, Path] = {}
        self.version: int | None = None
        self.aliases: list[str] = []
        self._blobs: BlobStore | None = None

    # -- building ------------------------------------------------------------------------
    def _check_mutable(self) -> None:
        if self.version is not None:
            raise ArtifactError(f"{self.name}:v{self.version} is logged and immutable: create a new runstack.Artifact")

    def _add(self, entry: Entry, source: Path | None) -> None:
        if entry.path in self._entries:
            raise ArtifactError(f"{self.name} already has a file at {entry.path!r}: pass name= to store it elsewhere")
        parents = {str(p) for p in PurePosixPath(entry.path).parents if str(p) != "."}
        clash = next((p for p in parents if p in self._entries), None) or next(
            (p for p in self._entries if p.startswith(entry.path + "/")), None
        )
        if clash is not None:
            raise ArtifactError(
                f"{entry.path!r} and {clash!r} cannot both be in {self.name}: one would be a file and a folder"
            )
        self._entries[entry.path] = entry
        if source is not None:
            self._sources[entry.path] = source

    def add_file(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Add one file, stored as ``name`` (default: its file name)."""
        self._check_mutable()
        source = Path(path)
        if not source.is_file():
            raise ArtifactError(f"{str(source)!r} is not a file: check the path")
        digest, size = sha256_file(source)
        self._add(Entry(_entry_path(name or source.name), size, digest), source)

    def add_dir(self, path: str | os.PathLike[str], prefix: str = "") -> None:
        """Add every file below a folder; symlinks that point outside it are refused."""
        self._check_mutable()
        root = Path(path)
        if not root.is_dir():
            raise ArtifactError(f"{str(root)!r} is not a folder: check the path")
        real_root = root.resolve()
        for folder, dirs, files in os.walk(root):
            for item in sorted(dirs + files):
                full = Path(folder) / item
                if full.is_symlink() and not full.resolve().is_relative_to(real_root):
                    raise ArtifactError(
                        f"{str(full)!r} links outside {str(root)!r}: copy the target in or remove the link"
                    )
            for item in sorted(files):
                full = Path(folder) / item
                rel = full.relative_to(root).as_posix()
                self.add_file(full, posixpath.join(prefix, rel) if prefix else rel)

    def add_reference(self, uri: str, name: str | None = None) -> None:
        """Record a URI without copying it; ``file://`` references get a checksum and size."""
        self._check_mutable()
        digest = size = None
        if uri.startswith("file://"):
            local = Path(uri[len("file://") :])
            if local.is_file():
                digest, size = sha256_file(local)
        self._add(Entry(_entry_path(name or uri.rstrip("/").rsplit("/", 1)[-1]), size, digest, uri), None)

    # -- identity ------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """Every entry (path, size, sha256, ref), sorted by path."""
        return {"entries": [asdict(self._entries[p]) for p in sorted(self._entries)]}

    @property
    def digest(self) -> str:
        """SHA-256 of the manifest: equal digests mean equal content."""
        import hashlib

        return hashlib.sha256(dumps({"type": self.type, **self.manifest()}).encode()).hexdigest()

    @property
    def files(self) -> list[str]:
        return sorted(self._entries)

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self._entries.values() if e.ref is None)

    def __repr__(self) -> str:
        version = "unlogged" if self.version is None else f"v{self.version}"
        return f"Artifact({self.name}:{version}, type={self.type!r}, {len(self._entries)} files)"

    # -- reading -------------------------------------------------------------------------
    def _stored(self) -> BlobStore:
        if self._blobs is None:
            raise ArtifactError(f"{self.name} is not logged yet: run.log_artifact(artifact) first")
        return self._blobs

    def verify(self) -> None:
        """Re-hash every stored file; raise ArtifactCorruptError naming any that changed."""
        blobs = self._stored()
        bad = [e.path for e in self._entries.values() if e.ref is None and not blobs.verify(e.sha256 or "")]
        if bad:
            raise ArtifactCorruptError(f"{self.name}:v{self.version}", bad)

    def download(self, root: str | os.PathLike[str] | None = None, link: bool = False) -> Path:
        """Place the files under ``root`` (default ``./artifacts/<name>-v<N>``): copies, or with
        ``link=True`` read-only hardlinks to the stored blobs (no copy, but writing such a file in
        place would change the stored version).

        Every blob is verified before it is placed; a corrupted one raises instead of being served.
        """
        blobs = self._stored()
        target_root = Path(root) if root is not None else Path("artifacts") / f"{self.name}-v{self.version}"
        target_root.mkdir(parents=True, exist_ok=True)
        real_root = target_root.resolve()
        bad = [e.path for e in self._entries.values() if e.ref is None and not blobs.verify(e.sha256 or "")]
        if bad:
            raise ArtifactCorruptError(f"{self.name}:v{self.version}", bad)
        for entry in self._entries.values():
            if entry.ref is not None:
                continue
            target = (target_root / entry.path).resolve()
            if not target.is_relative_to(real_root):
                raise ArtifactError(f"{entry.path!r} would land outside {str(target_root)!r}: refusing to download it")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            source = blobs.path(entry.sha256 or "")
            if link:
                with contextlib.suppress(OSError):  # another filesystem: copy instead
                    os.link(source, target)
            if not target.exists():
                shutil.copyfile(source, target)
                os.chmod(target, 0o644)
        return target_root


class ArtifactRegistry:
    """The artifacts of one store: versions, aliases, usage (lineage) and blobs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.blobs = BlobStore(store.root / "artifacts" / "blobs")

    def log(self, artifact: Artifact, run_id: str | None, aliases: list[str] | None = None) -> Artifact:
        """Store a new version (or find the existing one with the same digest) and move aliases."""
        aliases = [_check_name("alias", a) for a in (aliases or [])]
        if any(re.fullmatch(r"v\d+", a) for a in aliases):
            raise ArtifactError(f"aliases {aliases} may not look like versions (v0, v1, ...): choose another name")
        with self._gc_lock(fcntl.LOCK_SH):  # artifact gc waits until this version is committed
            return self._log_locked(artifact, run_id, aliases)

    def _log_locked(self, artifact: Artifact, run_id: str | None, aliases: list[str]) -> Artifact:
        for path, source in artifact._sources.items():
            entry = artifact._entries[path]
            digest, _, _ = self.blobs.put_file(source, entry.sha256 or "")
            if digest != entry.sha256:
                raise ArtifactError(f"{str(source)!r} changed while it was being logged: log the artifact again")
        digest = artifact.digest
        with self.store.catalog.transaction() as con:
            found = con.execute("SELECT version FROM artifact_versions WHERE name = ? AND digest = ?",
                                (artifact.name, digest)).fetchone()  # fmt: skip
            if found is None:
                last = con.execute("SELECT MAX(version) FROM artifact_versions WHERE name = ?", (artifact.name,))
                previous = last.fetchone()[0]
                version = 0 if previous is None else previous + 1
                con.execute("INSERT INTO artifact_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (artifact.name, version, artifact.type, digest, artifact.description,
                             dumps(artifact.metadata), dumps(artifact.manifest()), artifact.size, time.time(), run_id))  # fmt: skip
            else:
                version = found[0]
            for alias in ["latest", *aliases]:
                con.execute("INSERT OR REPLACE INTO artifact_aliases VALUES (?, ?, ?)", (artifact.name, alias, version))
            if run_id is not None:
                con.execute("INSERT OR IGNORE INTO artifact_usage VALUES (?, ?, ?, 'output', ?)",
                            (run_id, artifact.name, version, time.time()))  # fmt: skip
        artifact.version, artifact._blobs = version, self.blobs
        artifact.aliases = self.aliases_of(artifact.name, version)
        return artifact

    def aliases_of(self, name: str, version: int) -> list[str]:
        with self.store.catalog.reading() as con:
            rows = con.execute("SELECT alias FROM artifact_aliases WHERE name = ? AND version = ? ORDER BY alias",
                               (name, version)).fetchall()  # fmt: skip
        return [r[0] for r in rows]

    def get(self, spec: str, run_id: str | None = None) -> Artifact:
        """The version named by ``name``, ``name:latest``, ``name:v3`` or ``name:<alias>``; records use by ``run_id``."""
        match = SPEC.match(spec)
        if match is None:
            raise ArtifactError(f"{spec!r} is not NAME, NAME:vN or NAME:ALIAS")
        name, alias = match["name"], match["alias"] or "latest"
        with self.store.catalog.reading() as con:
            if re.fullmatch(r"v\d+", alias):
                version = int(alias[1:])
                if version >= 2**62:
                    raise ArtifactError(f"no artifact {name}:{alias} in {self.store.root}: see `runstack artifact ls`")
            else:
                row = con.execute("SELECT version FROM artifact_aliases WHERE name = ? AND alias = ?", (name, alias))
                found = row.fetchone()
                if found is None:
                    raise ArtifactError(f"no artifact {name}:{alias} in {self.store.root}: see `runstack artifact ls`")
                version = found[0]
            row = con.execute("SELECT type, description, metadata, manifest FROM artifact_versions "
                              "WHERE name = ? AND version = ?", (name, version)).fetchone()  # fmt: skip
        if row is None:
            raise ArtifactError(f"no artifact {name}:v{version} in {self.store.root}: see `runstack artifact ls`")
        artifact = Artifact(name, row[0], row[1], json.loads(row[2]))
        for item in json.loads(row[3])["entries"]:
            artifact._entries[item["path"]] = Entry(**item)
        artifact.version, artifact._blobs = version, self.blobs
        artifact.aliases = self.aliases_of(name, version)
        if run_id is not None:
            with self.store.catalog.transaction() as tx:
                tx.execute("INSERT OR IGNORE INTO artifact_usage VALUES (?, ?, ?, 'input', ?)",
                           (run_id, name, version, time.time()))  # fmt: skip
        return artifact

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every version (of one artifact), oldest first, with aliases, producer and consumers."""
        with self.store.catalog.reading() as con:
            where, params = ("WHERE name = ?", (name,)) if name else ("", ())
            rows = con.execute("SELECT name, version, type, digest, size, created_at, run_id FROM artifact_versions "
                               f"{where} ORDER BY name, version", params).fetchall()  # fmt: skip
            aliases: dict[tuple[str, int], list[str]] = {}
            for n, alias, v in con.execute("SELECT name, alias, version FROM artifact_aliases ORDER BY alias"):
                aliases.setdefault((n, v), []).append(alias)
            users: dict[tuple[str, int], list[str]] = {}
            for run_id, n, v in con.execute("SELECT run_id, name, version FROM artifact_usage WHERE role = 'input'"):
                users.setdefault((n, v), []).append(run_id)
        keys = ("name", "version", "type", "digest", "size", "created_at", "produced_by")
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for item in out:
            item["aliases"] = aliases.get((item["name"], item["version"]), [])
            item["used_by"] = sorted(users.get((item["name"], item["version"]), []))
        return out

    @contextlib.contextmanager
    def _gc_lock(self, mode: int) -> Iterator[None]:
        """Logging holds it shared, gc exclusive: gc never sees blobs of a version being logged."""
        self.blobs.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.blobs.folder.parent / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def gc(self, dry_run: bool = False) -> tuple[int, int]:
        """Remove blobs no version references, and temporary files of killed writers;
        returns (files removed, bytes freed)."""
        with self._gc_lock(fcntl.LOCK_EX):
            with self.store.catalog.reading() as con:
                manifests = [json.loads(r[0]) for r in con.execute("SELECT manifest FROM artifact_versions")]
            used = {e["sha256"] for m in manifests for e in m["entries"] if e["ref"] is None}
            unused = [self.blobs.path(d) for d in self.blobs.digests() - used] + self.blobs.stale_temporaries()
            freed = sum(p.stat().st_size for p in unused)
            if not dry_run:
                for path in unused:
                    path.unlink()
        return len(unused), freed
