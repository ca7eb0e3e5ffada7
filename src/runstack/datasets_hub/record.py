"""The record every pipeline step reads and writes: one source file and what was learned about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COLUMNS = ("blob_id", "content", "path", "repo_name", "commit", "language", "extension", "length_bytes",
           "src_encoding", "detected_licenses", "license_type", "is_vendor", "is_generated",
           "near_dup_cluster", "pii")  # fmt: skip


@dataclass
class SourceFile:
    content: str
    path: str  # relative to the repository root, POSIX separators
    repo_name: str  # "owner/name"
    blob_id: str  # git blob SHA-1 of the raw bytes
    commit: str | None = None
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
    pii: list[dict[str, Any]] = field(default_factory=list)  # [{kind, start, end}] of each redaction
    sha256: str = ""

    @property
    def owner(self) -> str:
        return self.repo_name.split("/", 1)[0]

    def row(self) -> dict[str, Any]:
        """The published columns."""
        return {name: getattr(self, name) for name in COLUMNS}
