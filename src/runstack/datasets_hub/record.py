"""The record every pipeline step reads and writes: one source file and what was learned about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The published schema, stated once: the Parquet writer, the ``datasets`` Features and the dataset
# card all derive from it. Types: string, int64, bool, strings (a list of strings), pii (a list of
# {kind, start, end}); a trailing "?" marks a column that may be null.
SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("blob_id", "string", "git blob id (SHA-1) of the original file"),
    ("content_id", "string", "git blob id of the published content (differs from blob_id where redacted)"),
    ("content", "string", "the published text"),
    ("path", "string", "path in the repository"),
    ("repo_name", "string", "owner/name"),
    ("commit", "string?", "commit the file was read at (git sources)"),
    ("revision_id", "string?", "the same commit, under The Stack v2's name"),
    ("directory_id", "string?", "git tree id of the file's folder at that commit"),
    ("branch_name", "string?", "branch or revision the build read"),
    ("revision_date", "string?", "author date of the commit (ISO 8601)"),
    ("committer_date", "string?", "committer date of the commit (ISO 8601)"),
    ("language", "string?", "go-enry's language"),
    ("extension", "string", "file extension"),
    ("length_bytes", "int64", "size of the published content in its source encoding"),
    ("src_encoding", "string", "encoding the file was decoded from"),
    ("detected_licenses", "strings", "SPDX ids that apply to the file"),
    ("license_type", "string", "permissive, non_permissive or no_license"),
    ("is_vendor", "bool", "under a vendored folder"),
    ("is_generated", "bool", "marked or detected as generated"),
    ("near_dup_cluster", "string?", "blob id of the survivor of its near-duplicate cluster"),
    ("repo_duplicate_of", "string?", "the repository this one mostly copies (a fork, a vendored copy)"),
    ("pii", "pii", "each redaction: kind, start and end in content"),
)
COLUMNS = tuple(name for name, _, _ in SCHEMA)


def arrow_schema() -> Any:
    """The published schema as a pyarrow schema."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_(), "strings": pa.list_(pa.string()),
             "pii": pa.list_(pa.struct([("kind", pa.string()), ("start", pa.int64()), ("end", pa.int64())]))}  # fmt: skip
    return pa.schema([(name, types[kind.rstrip("?")]) for name, kind, _ in SCHEMA])


def features() -> Any:
    """The published schema as ``datasets.Features``."""
    import datasets

    value = {"string": datasets.Value("string"), "int64": datasets.Value("int64"), "bool": datasets.Value("bool")}
    types = {**value, "strings": datasets.Sequence(datasets.Value("string")),
             "pii": [{"kind": datasets.Value("string"), "start": datasets.Value("int64"), "end": datasets.Value("int64")}]}  # fmt: skip
    return datasets.Features({name: types[kind.rstrip("?")] for name, kind, _ in SCHEMA})


@dataclass
class SourceFile:
    content: str
    path: str  # relative to the repository root, POSIX separators
    repo_name: str  # "owner/name"
    blob_id: str  # git blob SHA-1 of the raw bytes
    commit: str | None = None
    directory_id: str | None = None
    branch_name: str | None = None
    revision_date: str | None = None
    committer_date: str | None = None
    src_encoding: str = "utf-8"
    length_bytes: int = 0
    priority: float = 0.0  # user-given ranking signal, e.g. stars: higher survives deduplication
    language: str | None = None
    language_strategy: str | None = None
    extension: str = ""
    detected_licenses: list[str] = field(default_factory=list)
    license_type: str = "no_license"
    license_evidence: list[dict[str, Any]] = field(default_factory=list)
    is_vendor: bool = False
    is_generated: bool = False
    near_dup_cluster: str | None = None
    repo_duplicate_of: str | None = None
    pii: list[dict[str, Any]] = field(default_factory=list)  # [{kind, start, end}] of each redaction
    sha256: str = ""

    @property
    def owner(self) -> str:
        return self.repo_name.split("/", 1)[0]

    @property
    def revision_id(self) -> str | None:
        return self.commit

    @property
    def content_id(self) -> str:
        import hashlib

        data = self.content.encode("utf-8")
        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()

    def row(self) -> dict[str, Any]:
        """The published columns."""
        return {name: getattr(self, name) for name in COLUMNS}
