"""An optional licence backend: ScanCode's licence index (``pip install '.[scancode]'``).

It reads licence files with scancode-toolkit's matcher (thousands of licence texts and notices,
scored) instead of runstack's phrase table; everything around it stays the same (bundled
sections, dual licences, folders, headers, expressions).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

from runstack.errors import MissingDependencyError

MIN_SCORE, FALLBACK_SCORE = 80.0, 50.0  # a weaker match counts only when it is the best there is


@functools.lru_cache(maxsize=1)
def _index() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # typecode's note about the system libmagic
            from licensedcode.cache import get_index, get_licenses_db
    except ImportError as exc:
        raise MissingDependencyError("scancode-toolkit-mini", "scancode") from exc
    return get_index(), get_licenses_db()


def spdx_expression(expression: str) -> str:
    """A ScanCode licence expression (``bsd-new OR apache-2.0``) in SPDX ids."""
    _, licenses = _index()

    def spdx(key: str) -> str:
        found = licenses.get(key)
        return (getattr(found, "spdx_license_key", None) or f"LicenseRef-scancode-{key}") if found else key

    tokens = expression.replace("(", " ( ").replace(")", " ) ").split()
    return " ".join(t if t in ("AND", "OR", "WITH", "(", ")") or t.lower() in ("and", "or", "with") else spdx(t)
                    for t in tokens)  # fmt: skip


def match_expressions(text: str) -> list[str]:
    """The SPDX expressions ScanCode finds in a licence text, in order of appearance."""
    index, _ = _index()
    matches = [m for m in index.match(query_string=text) if "unknown" not in m.rule.license_expression]  # mentions
    strong = [m for m in matches if m.score() >= MIN_SCORE]
    if not strong and matches:
        best = max(matches, key=lambda m: m.score())
        strong = [best] if best.score() >= FALLBACK_SCORE else []
    found: dict[str, int] = {}
    for match in strong:
        found.setdefault(spdx_expression(match.rule.license_expression), match.start_line)
    return sorted(found, key=lambda e: found[e])
