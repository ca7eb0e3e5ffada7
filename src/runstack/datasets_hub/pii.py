"""PII and secret redaction that catches secrets and leaves code alone.

Exact formats (AWS, GitHub, GitLab, Slack, Stripe, Google, OpenAI, SendGrid keys, private key
blocks, JWTs), secrets in context (passwords in URLs and connection strings, ``password = "..."``,
``.env`` lines, key-named assignments) and personal data (emails, public IPv4/IPv6 addresses,
Luhn-checked card numbers, phone numbers after a phone keyword) are replaced by ``<KEY>``,
``<PASSWORD>``, ``<EMAIL>``, ``<IP_ADDRESS>``, ``<CREDIT_CARD>``, ``<PHONE>``. Look-alikes are kept:
placeholders, example domains, ``git@host:`` addresses, version numbers, private and documentation
addresses, hex checksums. High-entropy string literals count only in ``strict`` mode, or in
``balanced`` mode (the default) on a line that names a key, token, secret or password.

Spans are found on the whole text (line endings of any kind), resolved left to right with the
longest match first, so the same input always gives the same output. A Python file that parsed
before still parses after: where a placeholder would break it, an identifier (``REDACTED_KEY``)
is used instead.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from runstack.datasets_hub.pipeline import PipelineStep
from runstack.datasets_hub.record import SourceFile
from runstack.datasets_hub.secrets_patterns import DETECTORS, KINDS
from runstack.errors import InvalidArgumentError

MODES = ("strict", "balanced", "off")
_CONTEXT_WORDS = ("key", "token", "secret", "passw", "pwd", "auth", "credential", "bearer")
_CONTEXT = re.compile("(?i)" + "|".join(_CONTEXT_WORDS))
_ZERO_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")


def _lines(text: str, positions: Iterable[int]) -> list[tuple[int, int]]:
    """The (start, end) of each line holding one of ``positions``, in order, once each."""
    out: list[tuple[int, int]] = []
    for position in sorted(positions):
        if out and position <= out[-1][1]:
            continue
        end = text.find("\n", position)
        out.append((text.rfind("\n", 0, position) + 1, len(text) if end < 0 else end))
    return out


def _needles(needles: Iterable[str], haystack: str) -> Iterator[int]:
    """Every position of every needle in ``haystack``."""
    for needle in needles:
        at = haystack.find(needle)
        while at >= 0:
            yield at
            at = haystack.find(needle, at + 1)


def _matches(detector: Any, text: str, haystack: str) -> Iterator[re.Match[str]]:
    """The detector's matches: over the whole text, or, for a detector whose matches stay on one
    line and hold a needle or a prefilter match, over just the lines that do."""
    if not (detector.line or detector.lead >= 0) or len(haystack) != len(text):  # lower() changed a length
        yield from detector.pattern.finditer(text)
        return
    if detector.lead >= 0:  # matches begin just before a needle: try a match at those few places only
        tried: set[int] = set()
        for at in _needles(detector.needs, haystack):
            for start in range(max(0, at - detector.lead), at + 1):
                if start not in tried:
                    tried.add(start)
                    found = detector.pattern.match(text, start)
                    if found is not None:
                        yield found
        return
    if detector.needs:
        positions = list(_needles(detector.needs, haystack))
    elif detector.digit_needs:  # one byte per character ("?" for the rest): positions stay the text's
        zeroed = text.encode("ascii", "replace").translate(_ZERO_DIGITS).decode()
        positions = list(_needles(detector.digit_needs, zeroed))
    else:
        positions = [m.start() for m in detector.prefilter.finditer(text)]
    for start, end in _lines(text, positions):
        yield from detector.pattern.finditer(text, start, end)


def find_spans(
    text: str, mode: str = "balanced", disabled: frozenset[str] = frozenset()
) -> list[tuple[int, int, str, str]]:
    """Non-overlapping (start, end, kind, tag) of every secret or PII item in ``text``."""
    if mode == "off":
        return []
    found, lowered = [], text.lower()
    seen: dict[tuple[bool, str], bool] = {}  # needles several detectors share are looked for once

    def holds(lower: bool, needles: tuple[str, ...]) -> bool:
        for needle in needles:
            present = seen.get((lower, needle))
            if present is None:
                present = seen[lower, needle] = needle in (lowered if lower else text)
            if present:
                return True
        return False

    for detector in DETECTORS:
        if detector.kind in disabled:
            continue
        if detector.strict_only and mode != "strict" and not holds(True, _CONTEXT_WORDS):
            continue
        haystack = lowered if detector.lower else text
        if not (detector.trigger.search(haystack) if detector.trigger is not None  # needles rule most files out
                else not detector.needs or holds(detector.lower, detector.needs)):  # fmt: skip
            continue
        if detector.prefilter is not None and not detector.line and not detector.prefilter.search(text):
            continue  # (a line detector runs its prefilter once, to find its lines)
        for match in _matches(detector, text, haystack):
            group = "s" if "s" in detector.pattern.groupindex and match.group("s") is not None else 0
            value = match.group(group)
            if detector.check is not None and not detector.check(value, match):
                continue
            if detector.strict_only and mode != "strict":
                line_start = text.rfind("\n", 0, match.start()) + 1
                if not _CONTEXT.search(text, line_start, match.start()):
                    continue
            found.append((match.start(group), match.end(group), detector.kind, detector.tag))
    found.sort(key=lambda s: (s[0], -(s[1] - s[0]), KINDS.index(s[2])))
    spans, end = [], -1
    for span in found:
        if span[0] >= end:
            spans.append(span)
            end = span[1]
    return spans


def redact(text: str, mode: str = "balanced", disabled: frozenset[str] = frozenset(),
           python: bool = False) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The text with every item replaced, and ``[{kind, start, end}]`` of each replacement in it."""
    spans = find_spans(text, mode, disabled)
    if not spans:
        return text, []
    out = _apply(text, spans, "<{}>")
    if python and not _parses(out[0]) and _parses(text):  # (most placeholders land in strings: one parse)
        out = _apply(text, spans, "REDACTED_{}")
    return out


def _apply(text: str, spans: list[tuple[int, int, str, str]], form: str) -> tuple[str, list[dict[str, Any]]]:
    parts, items, at, length = [], [], 0, 0
    for start, end, kind, tag in spans:
        parts.append(text[at:start])
        length += start - at
        placeholder = form.format(tag)
        items.append({"kind": kind, "start": length, "end": length + len(placeholder)})
        parts.append(placeholder)
        length += len(placeholder)
        at = end
    parts.append(text[at:])
    return "".join(parts), items


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


class PiiStep(PipelineStep):
    """Replaces PII in every file's content; the row keeps what was replaced and where."""

    name = "pii"

    def __init__(self, mode: str = "balanced", disabled: tuple[str, ...] = ()) -> None:
        super().__init__()
        if mode not in MODES:
            raise InvalidArgumentError("pii", mode, " | ".join(MODES))
        unknown = set(disabled) - set(KINDS)
        if unknown:
            raise InvalidArgumentError("pii_disabled_kinds", sorted(unknown), f"kinds among {', '.join(KINDS)}")
        self.mode, self.disabled = mode, frozenset(disabled)

    def process(self, record: SourceFile) -> SourceFile:
        content, items = redact(record.content, self.mode, self.disabled, python=record.path.endswith(".py"))
        if items:
            record.content = content
            record.length_bytes = len(content.encode(record.src_encoding or "utf-8", errors="replace"))
            self.stats.counters.update(Counter(item["kind"] for item in items))
        record.pii = items
        return record
