"""Licence detection: licence files (propagated to the folder below them, as The Stack v2
does), ``SPDX-License-Identifier`` headers and package metadata, normalised to SPDX ids
with ``license-expression``. The default matcher is phrase-based and fast; every
decision keeps its evidence (which file, which match, score).
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Iterable
from typing import Any

import tomllib

from runstack.datasets_hub.pipeline import PipelineStep
from runstack.datasets_hub.record import SourceFile

LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|notice|unlicense)([-._].*)?$", re.IGNORECASE)
SPDX_HEADER = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-() ]+?)\s*(?:\*/|-->|$)", re.MULTILINE)
# Each licence: phrases that must all appear (lower-cased, whitespace folded). Where several
# licences match (a licence text that mentions another), the one named earliest wins.
SIGNATURES: list[tuple[str, tuple[str, ...]]] = [
    ("AGPL-3.0-only", ("gnu affero general public license", "version 3, 19 november 2007")),
    ("LGPL-3.0-only", ("gnu lesser general public license", "version 3, 29 june 2007")),
    ("LGPL-2.1-only", ("gnu lesser general public license", "version 2.1, february 1999")),
    ("GPL-3.0-only", ("gnu general public license", "version 3, 29 june 2007")),
    ("GPL-2.0-only", ("gnu general public license", "version 2, june 1991")),
    ("MPL-2.0", ("mozilla public license version 2.0",)),
    ("MPL-2.0", ("mozilla public license, v. 2.0",)),
    ("Apache-2.0", ("apache license", "version 2.0, january 2004")),
    ("Apache-2.0", ("licensed under the apache license, version 2.0",)),
    ("EPL-2.0", ("eclipse public license - v 2.0",)),
    ("BSL-1.0", ("boost software license - version 1.0",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("CC0-1.0", ("cc0 1.0 universal",)),
    ("PSF-2.0", ("python software foundation license version 2",)),
    ("PSF-2.0", ("psf license agreement",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("MIT", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("Zlib", ("altered source versions must be plainly marked",)),
]
_ALIASES = {"mit license": "MIT", "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache 2": "Apache-2.0",
            "apache software license": "Apache-2.0", "bsd": "BSD-3-Clause", "new bsd": "BSD-3-Clause",
            "bsd license": "BSD-3-Clause", "gplv3": "GPL-3.0-only", "gplv2": "GPL-2.0-only", "gpl-3.0": "GPL-3.0-only",
            "gpl-2.0": "GPL-2.0-only", "lgpl": "LGPL-2.1-only", "mpl 2.0": "MPL-2.0", "psf": "PSF-2.0",
            "isc license": "ISC", "public domain": "Unlicense"}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@functools.lru_cache(maxsize=4096)
def _normalise(text: str) -> tuple[str, ...]:
    return tuple(normalise_uncached(text))


def normalise(expression: str) -> list[str]:
    """SPDX ids in a licence expression or name (``"MIT OR Apache-2.0"`` -> both); unknown -> []."""
    return list(_normalise(expression.strip()))


def normalise_uncached(text: str) -> list[str]:
    if text.lower() in _ALIASES:
        return [_ALIASES[text.lower()]]
    licensing = _licensing()
    try:
        parsed = licensing.parse(text, validate=True)
    except Exception:  # noqa: BLE001 - license_expression raises several error types for unknown text
        return []
    if parsed is None:
        return []
    return sorted({str(symbol.key) for symbol in licensing.license_symbols(parsed)})


def match_text(text: str) -> tuple[str, str, float] | None:
    """(SPDX id, matched phrase, score) for a licence text, or None."""
    folded = " ".join(text.lower().split())
    best: tuple[int, str, str] | None = None
    for spdx, phrases in SIGNATURES:
        places = [folded.find(p) for p in phrases]
        if min(places) >= 0 and (best is None or places[0] < best[0]):
            best = (places[0], spdx, phrases[0])
    return (best[1], best[2], 1.0) if best else None


def from_metadata(path: str, content: str) -> list[str]:
    """Licences declared by package metadata (package.json, pyproject.toml, setup.cfg, Cargo.toml)."""
    name = posixpath.basename(path)
    declared: Any = None
    try:
        if name == "package.json":
            declared = json.loads(content).get("license")
        elif name in ("pyproject.toml", "Cargo.toml"):
            data = tomllib.loads(content)
            section = data.get("project") or data.get("package") or {}
            declared = section.get("license")
            if isinstance(declared, dict):
                declared = declared.get("text") or declared.get("file") and None
        elif name == "setup.cfg":
            match = re.search(r"^license\s*=\s*(.+)$", content, re.MULTILINE)
            declared = match.group(1) if match else None
    except (ValueError, AttributeError, tomllib.TOMLDecodeError):
        return []
    return normalise(declared) if isinstance(declared, str) else []


class LicenseIndex:
    """Licences found in one repository, by folder; a file inherits its nearest folder's."""

    def __init__(self) -> None:
        self.by_folder: dict[str, list[dict[str, Any]]] = {}

    def add(self, record: SourceFile) -> None:
        folder = posixpath.dirname(record.path)
        name = posixpath.basename(record.path)
        if LICENSE_FILE.match(name):
            found = match_text(record.content)
            if found:
                self.by_folder.setdefault(folder, []).append(
                    {
                        "license": found[0],
                        "file": record.path,
                        "match": found[1],
                        "score": found[2],
                        "source": "license-file",
                    }
                )
        for spdx in from_metadata(record.path, record.content):
            self.by_folder.setdefault(folder, []).append(
                {"license": spdx, "file": record.path, "match": "declared", "score": 1.0, "source": "metadata"}
            )

    def for_path(self, path: str) -> list[dict[str, Any]]:
        folder = posixpath.dirname(path)
        while True:
            if folder in self.by_folder:
                return self.by_folder[folder]
            if not folder:
                return []
            folder = posixpath.dirname(folder)


def classify(licenses: Iterable[str], permissive: Iterable[str]) -> str:
    found = set(licenses)
    if not found:
        return "no_license"
    return "permissive" if found <= set(permissive) else "non_permissive"


class LicenseStep(PipelineStep):
    """Sets detected_licenses, license_type and license_evidence for every file of a repository.

    Needs all files of a repository before deciding (licence files propagate downwards), so
    it buffers one repository at a time; inputs come grouped by repository.
    """

    name = "license"

    def __init__(self, permissive: Iterable[str], keep_types: Iterable[str]) -> None:
        super().__init__()
        self.permissive, self.keep_types = tuple(permissive), set(keep_types)

    def run(self, records: Iterable[SourceFile], rank: int = 0, world_size: int = 1) -> Any:
        batch: list[SourceFile] = []
        for record in records:
            if batch and record.repo_name != batch[-1].repo_name:
                yield from self._flush(batch)
                batch = []
            batch.append(record)
        yield from self._flush(batch)

    def _flush(self, batch: list[SourceFile]) -> Any:
        index = LicenseIndex()
        for record in batch:
            index.add(record)
        for record in batch:
            self.stats.seen += 1
            evidence = list(index.for_path(record.path))
            for spdx_text in SPDX_HEADER.findall(record.content[:4000]):
                for spdx in normalise(spdx_text):
                    evidence.append({"license": spdx, "file": record.path, "match": "SPDX-License-Identifier",
                                     "score": 1.0, "source": "spdx-header"})  # fmt: skip
            record.license_evidence = evidence
            record.detected_licenses = sorted({e["license"] for e in evidence})
            record.license_type = classify(record.detected_licenses, self.permissive)
            self.stats.counters[record.license_type] += 1
            if record.license_type not in self.keep_types:
                self.stats.dropped[f"licence {record.license_type}"] += 1
                continue
            self.stats.kept += 1
            yield record
