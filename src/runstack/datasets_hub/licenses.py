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

from runstack.datasets_hub.pipeline import PipelineStep, RecordBuffer
from runstack.datasets_hub.record import SourceFile

# LICENSE, LICENSE.md, LICENSE-MIT, LICENSE.APACHE, COPYING.LESSER, NOTICE, THIRD_PARTY_LICENSE.txt, MIT_LICENSE;
# not code that happens to be called license.py.
LICENSE_FILE = re.compile(r"^(?:[\w-]*[-_.])?(licen[cs]es?|copying|notice|unlicense)(?:[-_.][\w.-]*)?$", re.IGNORECASE)
_CODE_SUFFIX = re.compile(r"\.(py|pyi|js|ts|jsx|tsx|go|rs|java|kt|c|h|cc|cpp|hpp|cs|rb|php|swift|scala|sh|json|ya?ml|toml|"
                          r"cfg|ini|html?|css|xml)$", re.IGNORECASE)  # fmt: skip
_DUAL = re.compile(r"(?i)dual[- ]licen[cs]ed|\*?either\*? (?:of )?the (?:following )?licen[cs]es|at (?:your|the user'?s?) "
                   r"(?:option|choice)|choose (?:either|between|one of)|licen[cs]ed under (?:either|both)")  # fmt: skip
_BUNDLED = re.compile(r"(?im)^.*\b(?:third[- ]party|bundle[sd]?|vendored|included (?:software|libraries)|"
                      r"incorporates|redistributes|portions of|different licen[cs]es?|taken from)\b.*$")  # fmt: skip
_PORTIONS = re.compile(r"(?i)\bportions of\b")
# A horizontal rule on its own, after a blank line (not a title's underline).
_RULE = re.compile(r"(?m)^[ \t]*\n[ \t]*[-=*_]{4,}[ \t]*$")
# Licence texts' own words that look like a heading: MIT's "substantial portions of the Software".
_BOILERPLATE = re.compile(r"(?i)substantial portions of the software")
# A licence file named after another project (LICENSE-antlr4, DATEUTIL_LICENSE, LICENSE_THIRD_PARTY) states the
# licence of that part; the folder's own licence is its plainly named file when there is one.
_PLAIN_NAME = re.compile(r"(?i)^(?:licen[cs]es?|copying|unlicense)(?:\.(?:txt|md|rst|markdown)|[-_.](?:apache[-\w.]*|"
                         r"bsd[-\w.]*|mit[-\w.]*|gpl[-\w.]*|lgpl[-\w.]*|mpl[-\w.]*|isc|lesser|[0-9.]+))?$")  # fmt: skip
_WHEEL_LICENSES = re.compile(r"(?:^|/)[^/]+\.dist-info/licenses/")
# A licence text that quotes or extends another matches it too: keep only the more specific one.
_SUBSUMES = {"LGPL-3.0-only": ("GPL-3.0-only",), "AGPL-3.0-only": ("GPL-3.0-only",), "LGPL-2.1-only": ("GPL-2.0-only",),
             "BSD-3-Clause": ("BSD-2-Clause",)}  # fmt: skip
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
    ("ISC", ("permission to use, copy, modify, and distribute this software for any purpose with or without fee",)),
    (
        "MIT-CMU",
        (
            "permission to use, copy, modify and distribute this software and its associated documentation for "
            "any purpose and without fee is hereby granted",
        ),
    ),
    (
        "MIT-CMU",
        (
            "permission to use, copy, modify, and distribute this software and its associated documentation for "
            "any purpose and without fee is hereby granted",
        ),
    ),
    (
        "MIT-CMU",
        (
            "permission to use, copy, modify and distribute this software and its documentation for any "
            "purpose and without fee is hereby granted",
        ),
    ),
    ("CNRI-Python", ("cnri license agreement",)),
    ("CNRI-Python", ("cnri's python 1.6",)),
    ("MIT", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
    # The third clause, however its wording names the holders ("neither the name", "the name of the author").
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "endorse or promote products derived")),
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
    try:
        from license_expression import get_spdx_licensing
    except ImportError as exc:
        from runstack.errors import MissingDependencyError

        raise MissingDependencyError("license-expression", "datasets") from exc
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


_COMMENT = re.compile(r"(?m)^[ \t]*(?:#+|//+|\*+(?!\*)|;+|--)[ \t]?")


def _fold(text: str) -> str:
    """Lower case, comment markers at line starts removed (a licence pasted as ``# ...`` lines),
    white space folded."""
    return " ".join(_COMMENT.sub("", text.lower()).split())


def _folded_length(text: str) -> int:
    return len(_fold(text))


def match_all(text: str) -> list[tuple[str, str, int]]:
    """Every licence text in ``text`` as (SPDX id, matched phrase, position), in order."""
    folded = _fold(text)
    found: dict[str, tuple[str, str, int]] = {}
    for spdx, phrases in SIGNATURES:
        places = [folded.find(p) for p in phrases]
        if min(places) >= 0 and (spdx not in found or places[0] < found[spdx][2]):
            found[spdx] = (spdx, phrases[0], places[0])
    for specific, generic in _SUBSUMES.items():
        # The LGPL quotes the GPL, and the GPL mentions the LGPL: of such a pair, the text that begins first is it.
        for name in generic:
            if specific in found and name in found:
                found.pop(name if found[specific][2] <= found[name][2] else specific)
    if "MIT" in found and "subject to the following conditions" not in folded:
        entry = found.pop("MIT")  # MIT without the attribution clause
        found["MIT-0"] = ("MIT-0", entry[1], entry[2])
    if "ISC" in found and "provided that the above copyright notice" not in folded:
        entry = found.pop("ISC")  # ISC without the attribution clause
        found["0BSD"] = ("0BSD", entry[1], entry[2])
    return sorted(found.values(), key=lambda f: f[2])


def read_license_file(text: str, backend: str = "phrases") -> tuple[list[str], bool, list[str]]:
    """(licence ids of the project, whether they are alternatives, other files it points at).

    Text after a third-party/bundled heading describes code the project ships from others: it
    is not the project's licence. "dual licensed" / "either of the licenses" makes the found
    licences (or the files named) alternatives rather than all applying.
    """
    own = text
    first = match_all(text)
    if first:
        # A bundled-code heading ends the project's own licence; before the first licence text only a
        # heading close to it counts (a preamble saying which "portions of" the code it covers does not).
        starts = first[0][2]
        cut = next((m.start() for m in _BUNDLED.finditer(text)
                    if not _BOILERPLATE.search(m.group(0))
                    and ((position := _folded_length(text[: m.start()])) > starts
                         or (position > starts // 2 and not _PORTIONS.search(m.group(0))))), None)  # fmt: skip
        if cut is not None:
            own = text[:cut]
        if _DUAL.search(own) is None:  # a rule after the project's licence, then other projects' ones (pillow)
            rule = next((m.start() for m in _RULE.finditer(own) if _folded_length(own[: m.start()]) > starts), None)
            if rule is not None:
                own = own[:rule]
    dual = _DUAL.search(own) is not None
    if backend == "scancode":
        from runstack.datasets_hub.scancode import match_expressions

        expressions = match_expressions(own)
        dual = dual or any(" OR " in e for e in expressions)
        ids = list(dict.fromkeys(i for e in expressions for i in normalise(e) or [e]))
    else:
        ids = [f[0] for f in match_all(own)]
    if not ids:  # a NOTICE that only states identifiers
        ids = list(dict.fromkeys(i for e in SPDX_HEADER.findall(own) for i in normalise(e)))
    pointers = [p.rstrip(".") for p in re.findall(r"(?i)(?<![\w-])((?:licen[cs]e|copying)[-_.][A-Za-z0-9.-]+)", own)]
    return ids, dual, pointers


def is_license_file(path: str) -> bool:
    """A licence file by its name, or any file a wheel's packager put in ``*.dist-info/licenses/`` (PEP 639's
    ``License-File`` entries: a README that states the licence there is licence evidence too)."""
    if _CODE_SUFFIX.search(posixpath.basename(path)):
        return False
    return _named_as_license(path) or _WHEEL_LICENSES.search(path) is not None


def _named_as_license(path: str) -> bool:
    """LICENSE, COPYING, NOTICE...: not a README or AUTHORS kept as licence evidence for its folder."""
    return LICENSE_FILE.match(posixpath.basename(path)) is not None


def permissive_expression(expression: str, permissive: Iterable[str]) -> bool | None:
    """Whether an SPDX expression lets code be used permissively: OR needs one permissive
    alternative, AND needs all, ``X WITH exception`` is X. None when it cannot be parsed."""
    allowed = set(permissive)
    licensing = _licensing()
    try:
        parsed = licensing.parse(expression, validate=False)
    except Exception:  # noqa: BLE001 - license_expression raises several error types
        return None

    def walk(node: Any) -> bool:
        kind = type(node).__name__
        if kind == "OR":
            return any(walk(arg) for arg in node.args)
        if kind == "AND":
            return all(walk(arg) for arg in node.args)
        if kind == "LicenseWithExceptionSymbol":
            return walk(node.license_symbol)
        key = str(getattr(node, "key", node))
        return key in allowed or any(alias in allowed for alias in normalise(key))

    return walk(parsed) if parsed is not None else None


def declared_expression(path: str, content: str) -> str | None:
    """The licence expression package metadata declares, as written."""
    name = posixpath.basename(path)
    declared: Any = None
    try:
        if name in ("METADATA", "PKG-INFO"):
            header = content.split("\n\n", 1)[0]
            for field in ("License-Expression", "License"):
                match = re.search(rf"^{field}:\s*(.+)$", header, re.MULTILINE)
                if match and len(match.group(1)) < 100:
                    return match.group(1).strip()
            return None
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
        return None
    return declared.strip() if isinstance(declared, str) and declared.strip() else None


class LicenseIndex:
    """Licences found in one repository, by folder; a file inherits its nearest folder's.

    Several licence files in one folder all apply (AND), unless one of them says the project
    is dual licensed, when the licences (or the files it names) are alternatives (OR).
    """

    def __init__(self, backend: str = "phrases") -> None:
        self.backend = backend
        self.files: dict[str, list[tuple[str, list[str], bool, list[str]]]] = {}  # folder -> (file, ids, dual, ptrs)
        self.metadata: dict[str, list[tuple[str, str]]] = {}  # folder -> (file, expression)

    def add(self, record: SourceFile) -> None:
        folder = posixpath.dirname(record.path)
        if is_license_file(record.path):
            # A wheel's README or AUTHORS kept as licence evidence: its stated ids and texts, not every mention
            backend = self.backend if _named_as_license(record.path) else "phrases"
            ids, dual, pointers = read_license_file(record.content, backend)
            self.files.setdefault(folder, []).append((record.path, ids, dual, pointers))
        expression = declared_expression(record.path, record.content)
        if expression and normalise(expression):
            self.metadata.setdefault(folder, []).append((record.path, expression))

    def folder_evidence(self, folder: str) -> list[dict[str, Any]]:
        files = self.files.get(folder, [])
        plain = [f for f in files if _PLAIN_NAME.match(posixpath.basename(f[0])) and (f[1] or f[2])]
        if plain:  # the folder's own licence; files named after other projects describe those parts only
            named = {posixpath.basename(p).lower() for f in plain for p in f[3]}
            files = [f for f in files if f in plain or posixpath.basename(f[0]).lower() in named
                     or not _named_as_license(f[0])]  # a wheel's README stating the licence  # fmt: skip
        evidence = []
        dual = next((f for f in files if f[2]), None)
        covered: list[Any] = []
        if dual is not None:
            named = {posixpath.basename(p).lower() for p in dual[3]}
            pointed = [f for f in files if posixpath.basename(f[0]).lower() in named]
            # The files it names say exactly which licences; its own wording only where it names none.
            covered = [dual, *pointed]
            alternatives = sorted({i for f in (pointed or [dual]) for i in f[1]})
            if alternatives:
                evidence.append({"license": alternatives, "expression": " OR ".join(alternatives), "file": dual[0],
                                 "match": "dual licence", "score": 1.0, "source": "license-file"})  # fmt: skip
        for path, ids, _, _ in files:
            if any(path == f[0] for f in covered):
                continue
            for spdx in ids:
                evidence.append({"license": [spdx], "expression": spdx, "file": path, "match": "licence text",
                                 "score": 1.0, "source": "license-file"})  # fmt: skip
        for path, expression in self.metadata.get(folder, []):
            evidence.append({"license": normalise(expression), "expression": expression, "file": path,
                             "match": "declared", "score": 1.0, "source": "metadata"})  # fmt: skip
        return _or_later(evidence)

    def for_path(self, path: str) -> list[dict[str, Any]]:
        folder = posixpath.dirname(path)
        while True:
            evidence = self.folder_evidence(folder)
            if evidence:
                return evidence
            if not folder:
                return []
            folder = posixpath.dirname(folder)


def _or_later(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The GPL family's texts read the same for ``-only`` and ``-or-later``: where a notice in the same folder
    says "or any later version" (an ``X-or-later`` id), the text's ``X-only`` is that licence, not another one."""
    later = {spdx for item in evidence for spdx in item["license"] if spdx.endswith("-or-later")}
    if not later:
        return evidence
    return [item for item in evidence if item["match"] != "licence text" or not item["license"][0].endswith("-only")
            or item["license"][0].replace("-only", "-or-later") not in later]  # fmt: skip


def classify(evidence: list[dict[str, Any]], permissive: Iterable[str]) -> str:
    """no_license, permissive (every piece of evidence allows permissive use) or non_permissive."""
    if not evidence:
        return "no_license"
    allowed = tuple(permissive)
    if all(permissive_expression(item["expression"], allowed) for item in evidence):
        return "permissive"
    return "non_permissive"


HELD_BYTES = 64 << 20  # of a repository's contents in memory while its licences are read; beyond, on disk


class LicenseStep(PipelineStep):
    """Sets detected_licenses, license_type and license_evidence for every file of a repository.

    Needs all files of a repository before deciding (licence files propagate downwards), so it
    holds one repository at a time (on disk beyond ``HELD_BYTES``); inputs come grouped by it."""

    name = "license"

    def __init__(self, permissive: Iterable[str], keep_types: Iterable[str], backend: str = "phrases") -> None:
        super().__init__()
        self.permissive, self.keep_types, self.backend = tuple(permissive), set(keep_types), backend

    def run(self, records: Iterable[SourceFile], rank: int = 0, world_size: int = 1) -> Any:
        batch, index, repo = RecordBuffer(HELD_BYTES), LicenseIndex(self.backend), None
        for record in records:
            if len(batch) and record.repo_name != repo:
                yield from self._flush(batch, index)
                batch, index = RecordBuffer(HELD_BYTES), LicenseIndex(self.backend)
            repo = record.repo_name
            index.add(record)
            batch.add(record)
        yield from self._flush(batch, index)

    def _flush(self, batch: RecordBuffer, index: LicenseIndex) -> Any:
        for record in batch:
            self.stats.seen += 1
            headers = [{"license": normalise(text), "expression": text.strip(), "file": record.path,
                        "match": "SPDX-License-Identifier", "score": 1.0, "source": "spdx-header"}
                       for text in SPDX_HEADER.findall(record.content[:4000]) if normalise(text)]  # fmt: skip
            # A file's own header overrides its folder's; an input dataset's columns come last.
            evidence = headers or list(index.for_path(record.path)) or record.license_evidence
            record.license_evidence = evidence
            record.detected_licenses = sorted({spdx for e in evidence for spdx in e["license"]})
            record.license_type = classify(evidence, self.permissive)
            self.stats.counters[record.license_type] += 1
            if record.license_type not in self.keep_types:
                self.stats.dropped[f"licence {record.license_type}"] += 1
                continue
            self.stats.kept += 1
            yield record
