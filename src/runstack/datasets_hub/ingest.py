"""Reading sources: local folders, git repositories (working tree or bare) and tar/zip archives.

Nothing is extracted to disk: archive members are read in memory, and members whose
names are absolute, contain ``..``, or are links are refused and counted. Files over the
size limit, with NUL bytes, or undecodable (UTF-8, then charset-normalizer) are skipped
with their reason.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import subprocess
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from runstack.core.values import has_surrogates
from runstack.datasets_hub.pipeline import StepStats
from runstack.datasets_hub.record import SourceFile
from runstack.errors import InvalidArgumentError

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__"}


def git_blob_id(data: bytes) -> str:
    """The SHA-1 git gives these bytes as a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def decode(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) or None when no encoding fits."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError as exc:
        from runstack.errors import MissingDependencyError

        raise MissingDependencyError("charset-normalizer", "datasets") from exc

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        return None
    text, encoding = str(best), best.encoding
    if encoding.replace("_", "").startswith(("cp125", "windows125", "iso8859", "latin")) and encoding != "cp1252":
        # Single-byte guesses are close calls; Western European text (naïve, café) reads as
        # cp1250 or iso8859-2 as often as not. Prefer cp1252 when it yields more Latin letters.
        try:
            western = data.decode("cp1252")
        except UnicodeDecodeError:
            return text, encoding
        if _latin_letters(western) > _latin_letters(text):
            return western, "cp1252"
    return text, encoding


def _latin_letters(text: str) -> int:
    return sum(1 for c in text if "\u00c0" <= c <= "\u00ff" and c not in "\u00d7\u00f7")


def _safe_member(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return bool(name) and not pure.is_absolute() and ".." not in pure.parts and not re.match(r"^[A-Za-z]:", name)


class Ingest:
    """Turns sources into SourceFile records; ``stats`` counts files read and skip reasons."""

    def __init__(self, max_file_bytes: int = 1 << 20, max_source_bytes: int = 4 << 30) -> None:
        self.max_file_bytes, self.max_source_bytes = max_file_bytes, max_source_bytes
        self.stats = StepStats("ingest")
        self._source_bytes = 0

    def _budget(self, size: int) -> bool:
        """Count ``size`` bytes against this source's cap; False (and counted) once it is spent."""
        self._source_bytes += size
        if self._source_bytes > self.max_source_bytes:
            self.stats.dropped[f"source over {self.max_source_bytes} bytes: rest skipped"] += 1
            return False
        return True

    def _admit(self, path: str, data: bytes, repo: str, commit: str | None, priority: float) -> SourceFile | None:
        self.stats.seen += 1
        reason = None
        if has_surrogates(path):  # bytes no encoding decoded, kept by surrogateescape
            reason = "file name not UTF-8"
        elif len(data) > self.max_file_bytes:
            reason = f"over {self.max_file_bytes} bytes"
        elif b"\x00" in data:
            reason = "binary (NUL bytes)"
        else:
            decoded = decode(data)
            if decoded is None:
                reason = "undecodable"
        if reason is not None:
            self.stats.dropped[reason] += 1
            return None
        self.stats.kept += 1
        text, encoding = decoded  # type: ignore[misc]
        return SourceFile(content=text, path=path, repo_name=repo, blob_id=git_blob_id(data), commit=commit,
                          src_encoding=encoding, length_bytes=len(data), priority=priority)  # fmt: skip

    def read(self, source: str | os.PathLike[str], repo_name: str | None = None, revision: str | None = None,
             priority: float = 0.0) -> Iterator[SourceFile]:  # fmt: skip
        """Every admitted file of one source, in path order."""
        path = Path(source)
        self._source_bytes = 0
        name = repo_name or f"{path.resolve().parent.name}/{path.name.split('.')[0]}"
        if is_git_repo(path):
            yield from self._git(path, repo_name or _git_repo_name(path) or name, revision, priority)
        elif path.is_dir() and (path / "manifest.json").is_file() and (path / "data").is_dir():
            for shard in sorted((path / "data").rglob("*.parquet")):  # a runstack release
                yield from self._table(shard, priority)
        elif path.is_dir():
            yield from self._folder(path, name, priority)
        elif path.is_file() and path.suffix in (".parquet", ".jsonl"):
            yield from self._table(path, priority)
        elif path.is_file() and (tarfile.is_tarfile(path) or zipfile.is_zipfile(path)):
            yield from self._archive(path, name, priority)
        else:
            raise InvalidArgumentError(
                "source", str(source), "a folder, a git repository, a .tar/.tar.gz/.zip archive, a .parquet or "
                ".jsonl dataset, a runstack release, or a .txt list of such paths",
            )  # fmt: skip

    def _table(self, path: Path, priority: float) -> Iterator[SourceFile]:
        """Rows of an existing dataset (``repo_name``, ``path``, ``content`` columns; ``revision``
        or ``commit`` if present), one repository after another, in bounded memory (``tables``)."""
        from runstack.datasets_hub.tables import sorted_rows

        columns = ["repo_name", "path", "content"]
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            if not set(columns) <= set(names):
                raise InvalidArgumentError(
                    "source", str(path), f"a table with columns {list(columns)} (it has {names})"
                )
            columns += [c for c in ("commit", "revision", "detected_licenses", "license_type") if c in names]

        def refused() -> None:
            self.stats.seen += 1
            self.stats.dropped["dataset row without repo_name/path/content"] += 1

        rows = sorted_rows(path, columns, refused)
        for row in rows:
            content = row["content"]
            if not isinstance(content, str) or not self._budget(len(content)):
                continue
            commit = row.get("commit") or row.get("revision")
            record = self._admit(str(row["path"]), content.encode("utf-8", "surrogatepass"), str(row["repo_name"]),
                                 commit if isinstance(commit, str) else None, priority)  # fmt: skip
            if record is not None:
                ids = row.get("detected_licenses")
                if isinstance(ids, list) and ids:  # what the dataset knew: used where the files say nothing
                    joined = (" OR " if row.get("license_type") == "permissive" else " AND ").join(map(str, ids))
                    record.license_evidence = [{"license": sorted(map(str, ids)), "expression": joined,
                                                "file": str(path.name), "match": "detected_licenses column",
                                                "score": 1.0, "source": "input dataset",
                                                "type": row.get("license_type")}]  # fmt: skip
                yield record

    def _folder(self, root: Path, repo: str, priority: float) -> Iterator[SourceFile]:
        real_root = root.resolve()
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                full = Path(folder) / name
                if name in SKIP_DIRS:  # a .git file (gitdir pointer) is not source code
                    continue
                if full.is_symlink() and not full.resolve().is_relative_to(real_root):
                    self.stats.dropped["link outside the source"] += 1
                    continue
                if not full.is_file():
                    continue
                size = full.stat().st_size  # before reading: a 3 GiB sparse file is never read
                if size > self.max_file_bytes:
                    self.stats.seen += 1
                    self.stats.dropped[f"over {self.max_file_bytes} bytes"] += 1
                    continue
                if not self._budget(size):
                    return
                try:
                    data = full.read_bytes()
                except OSError:
                    self.stats.seen += 1
                    self.stats.dropped["unreadable"] += 1
                    continue
                record = self._admit(full.relative_to(root).as_posix(), data, repo, None, priority)
                if record is not None:
                    yield record

    def _git(self, repo: Path, name: str, revision: str | None, priority: float) -> Iterator[SourceFile]:
        def git(*args: str, data: bytes | None = None) -> bytes:
            return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True).stdout

        try:
            commit = git("rev-parse", "--verify", f"{revision or 'HEAD'}^{{commit}}").decode().strip()
        except subprocess.CalledProcessError as exc:
            raise InvalidArgumentError(
                "revision", revision or "HEAD", f"a commit in {repo} ({exc.stderr.decode().strip()})"
            ) from exc
        facts = git("show", "-s", "--format=%aI%n%cI", commit).decode().split("\n")
        branch = revision or git("rev-parse", "--abbrev-ref", "HEAD").decode().strip()
        trees = {"": git("rev-parse", f"{commit}^{{tree}}").decode().strip()}
        for line in git("ls-tree", "-r", "-d", "-z", commit).split(b"\0"):
            if line:
                meta, folder = line.split(b"\t", 1)
                trees[folder.decode("utf-8", "surrogateescape")] = meta.split()[2].decode()
        entries = []
        for line in git("ls-tree", "-r", "-l", "-z", commit).split(b"\0"):
            if not line:
                continue
            meta, path = line.split(b"\t", 1)
            mode, kind, sha, size = meta.split()
            if kind != b"blob" or mode in (b"120000", b"160000"):
                self.stats.dropped["git link or submodule"] += 1
                continue
            if not size.isdigit():  # ls-tree cannot size a blob that is missing from the repository
                self.stats.seen += 1
                self.stats.dropped["git blob missing"] += 1
                continue
            if int(size) > self.max_file_bytes:
                self.stats.seen += 1
                self.stats.dropped[f"over {self.max_file_bytes} bytes"] += 1
                continue
            entries.append((path.decode("utf-8", "surrogateescape"), sha.decode()))
        entries.sort()
        if not entries:
            return
        batch = git("cat-file", "--batch", data="".join(f"{sha}\n" for _, sha in entries).encode())
        offset = 0
        for path, sha in entries:
            header_end = batch.index(b"\n", offset)
            header = batch[offset:header_end].split()
            if len(header) < 3 or header[1] == b"missing":  # a damaged repository: skip the blob, go on
                offset = header_end + 1
                self.stats.seen += 1
                self.stats.dropped["git blob missing"] += 1
                continue
            size = int(header[2])
            data = batch[header_end + 1 : header_end + 1 + size]
            offset = header_end + 1 + size + 1
            if not self._budget(size):
                return
            record = self._admit(path, data, name, commit, priority)
            if record is not None:
                record.blob_id = sha
                record.directory_id = trees.get(posixpath.dirname(path))
                record.branch_name = branch if branch != "HEAD" else None
                record.revision_date, record.committer_date = facts[0] or None, facts[1] or None
                yield record

    def _archive(self, archive: Path, repo: str, priority: float) -> Iterator[SourceFile]:
        """Members one at a time (never the whole archive in memory), sizes checked before reading;
        a damaged member (bad CRC) is skipped and counted, a truncated archive ends the source."""
        limit = self.max_file_bytes

        def entry(name: str, size: int, plain_file: bool, read: Callable[[], bytes | None]) -> SourceFile | None:
            if not plain_file or not _safe_member(name):
                self.stats.dropped["archive entry escapes or links"] += 1
                return None
            if size > limit:
                self.stats.seen += 1
                self.stats.dropped[f"over {limit} bytes"] += 1
                return None
            try:
                data = read()
            except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                self.stats.seen += 1
                self.stats.dropped[f"damaged archive member ({type(exc).__name__})"] += 1
                return None
            if data is None:
                return None
            if len(data) > limit:  # a header that lied about the size
                self.stats.seen += 1
                self.stats.dropped[f"over {limit} bytes"] += 1
                return None
            return self._admit(posixpath.normpath(name), data, repo, None, priority)

        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for info in sorted(zf.infolist(), key=lambda i: i.filename):
                        if info.is_dir() or not self._budget(min(info.file_size, limit)):
                            continue
                        is_link = stat.S_ISLNK(info.external_attr >> 16)
                        record = entry(info.filename, info.file_size, not is_link,
                                       lambda i=info: zf.open(i).read(limit + 1))  # fmt: skip
                        if record is not None:
                            yield record
            else:
                with tarfile.open(archive, mode="r|*") as tf:  # a stream: members in archive order
                    for member in tf:
                        if member.isdir() or not self._budget(min(member.size, limit)):
                            continue
                        read = lambda m=member: f.read(limit + 1) if (f := tf.extractfile(m)) else None  # noqa: E731
                        record = entry(member.name, member.size, member.isfile(), read)
                        if record is not None:
                            yield record
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            self.stats.dropped[f"damaged archive, rest skipped ({type(exc).__name__})"] += 1


def is_git_repo(path: Path) -> bool:
    """A working tree with its own ``.git`` folder, or a bare repository: read through git."""
    return path.is_dir() and (_own_git_dir(path) or (path / "HEAD").is_file() and (path / "objects").is_dir())


def _own_git_dir(folder: Path) -> bool:
    """Whether ``folder`` is a git work tree whose repository lies inside it. A ``.git`` file that
    points elsewhere (``gitdir: /other/repo/.git``) is not followed: building an untrusted folder
    must never read another repository of this machine; the folder is read as it is."""
    marker = folder / ".git"
    if marker.is_dir() and not marker.is_symlink():
        return True
    if marker.is_file():
        text = marker.read_text(errors="replace").strip()
        target = Path(text[len("gitdir:") :].strip()) if text.startswith("gitdir:") else None
        if target is not None:
            target = (folder / target).resolve() if not target.is_absolute() else target.resolve()
            return target.is_relative_to(folder.resolve())
    return False


def _git_repo_name(repo: Path) -> str | None:
    """owner/name from the origin remote's URL, if there is one."""
    try:
        url = subprocess.run(["git", "-C", str(repo), "config", "--get", "remote.origin.url"], capture_output=True,
                             text=True, check=False).stdout.strip()  # fmt: skip
    except OSError:
        return None
    match = re.search(r"[:/]([^/:]+)/([^/]+?)(?:\.git)?/?$", url)
    return f"{match.group(1)}/{match.group(2)}" if match else None
