"""Quality filters, each with its own drop reason (The Stack's heuristics)."""

from __future__ import annotations

import re

import numpy as np

from runstack.datasets_hub.config import QualityConfig
from runstack.datasets_hub.language import has_generated_marker
from runstack.datasets_hub.pipeline import Filter
from runstack.datasets_hub.record import SourceFile

_BREAK = np.zeros(128, dtype=bool)
_BREAK[[10, 11, 12, 13, 28, 29, 30]] = True  # str.splitlines' line boundaries below 128
_SPACE = np.array([chr(c).isspace() for c in range(128)])  # str.split's white space
_ALNUM = np.array([chr(c).isalnum() for c in range(128)])


def _classes(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The text's code points, which are line boundaries, which are white space, and how many are
    letters or digits; each distinct non-ASCII character is asked once."""
    if text.isascii():
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        return codes, _BREAK[codes], _SPACE[codes], int(np.count_nonzero(_ALNUM[codes]))
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    low = codes < 128
    index = np.where(low, codes, 0)
    breaks, space, alnum = _BREAK[index] & low, _SPACE[index] & low, _ALNUM[index] & low
    distinct, inverse = np.unique(codes[~low], return_inverse=True)
    chars = [chr(c) for c in distinct]
    for mask, test in ((breaks, lambda ch: ch in "\x85\u2028\u2029"), (space, str.isspace), (alnum, str.isalnum)):
        mask[~low] = np.array([test(ch) for ch in chars], dtype=bool)[inverse]
    return codes, breaks, space, int(np.count_nonzero(alnum))


def _profile(text: str, word: int) -> tuple[int, int, int, list[str]]:
    """(lines, longest line, letters and digits, words of at least ``word`` characters), as
    ``splitlines``, ``isalnum`` and ``split`` count them, without a string per line or word."""
    if text.isascii():
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        if not np.any((codes < 32) & (codes != 10) & (codes != 9)):  # only "\n" ends a line: compare, no lookups
            folded = codes | 32  # upper case to lower, digits unchanged
            alnum = np.count_nonzero((folded >= 97) & (folded <= 122) | (codes >= 48) & (codes <= 57))
            return _measure(text, codes, codes == 10, codes <= 32, int(alnum), word)
    return _measure(text, *_classes(text), word)  # type: ignore[misc]


def _measure(text: str, codes: np.ndarray, breaks: np.ndarray, space: np.ndarray, alnum: int,
             word: int) -> tuple[int, int, int, list[str]]:  # fmt: skip
    marks = np.flatnonzero(breaks)
    paired = (codes[marks] == 10) & (marks > 0)
    paired[paired] = codes[marks[paired] - 1] == 13  # the "\n" of a "\r\n": one boundary with its "\r"
    ends = marks[~paired]
    following = codes[np.minimum(ends + 1, len(codes) - 1)] if len(codes) else codes
    width = 1 + ((codes[ends] == 13) & (ends + 1 < len(codes)) & (following == 10))
    starts = np.concatenate(([0], ends + width))
    lengths = np.concatenate((ends, [len(codes)])) - starts
    if len(lengths) > 1 and starts[-1] >= len(codes):  # no empty line after a final line break
        lengths = lengths[:-1]
    return len(lengths), int(lengths.max()), alnum, _long_words(text, space, ends, word)


def _long_words(text: str, space: np.ndarray, ends: np.ndarray, word: int) -> list[str]:
    """Words of at least ``word`` characters, the lines ending at ``ends`` being split: such a word
    covers a whole aligned block of ``word // 2`` characters, so only lines holding a block with no
    white space are split (line boundaries are white space: no word spans two lines)."""
    block = max(1, word // 2)
    usable = len(space) // block * block
    solid = ~space[:usable].reshape(-1, block).any(axis=1)
    if not solid.any():
        return []
    lines = np.unique(np.searchsorted(ends, np.flatnonzero(solid) * block))  # the line of each solid block
    bounds = np.concatenate(([-1], ends, [len(space)]))
    return [w for i in lines for w in text[bounds[i] + 1 : bounds[i + 1]].split() if len(w) >= word]


# Long runs of base64, hex or escaped bytes: embedded data rather than code.
ENCODED = re.compile(
    r"[A-Za-z0-9+/=]{64,}|(?:0x)?[0-9a-fA-F]{64,}|(?:\\x[0-9a-fA-F]{2}){16,}|(?:\\u[0-9a-fA-F]{4}){16,}"
)


class QualityFilter(Filter):
    """Drops files with very long lines, long mean lines, little alphanumeric text,
    auto-generated headers or mostly encoded data."""

    name = "quality"

    def __init__(self, config: QualityConfig) -> None:
        super().__init__()
        self.config = config

    def keep(self, record: SourceFile) -> bool | str:
        text, cfg = record.content, self.config
        n_lines, longest, alnum, words = _profile(text, 64)
        if longest > cfg.max_line_length:
            return f"line longer than {cfg.max_line_length}"
        if len(text) / n_lines > cfg.max_mean_line_length:
            return f"mean line length over {cfg.max_mean_line_length:g}"
        if text and alnum / len(text) < cfg.min_alnum_fraction:
            return f"alphanumeric fraction under {cfg.min_alnum_fraction:g}"
        if cfg.drop_autogenerated and has_generated_marker(text):
            return "auto-generated"
        # An encoded run has no white space: it lies inside one word, of 64 characters or more.
        runs = [len(m.group(0)) for word in words for m in ENCODED.finditer(word)]
        if runs and (max(runs) > cfg.max_encoded_run or sum(runs) > cfg.max_encoded_fraction * len(text)):
            return "encoded data"
        return True
