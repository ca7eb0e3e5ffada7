"""How often the build reads a file's text back exactly, whatever its encoding.

    python bench/encoding_guess.py [--mb 30]

Every file of the real-code corpus (bench/_corpus.py) is written in UTF-8, Latin-1, cp1252
and cp1250 (where the text can be; the others are counted apart), then read back by runstack's
``decode`` (UTF-8 first, then charset-normalizer's guess, with cp1252 preferred where it reads
more Western letters) and, as the baseline in the same run, by charset-normalizer's best guess
alone. A file counts when the text comes back identical. Files that are plain ASCII read back
in any of these encodings; the line reports them apart so the rest is visible.
"""

from __future__ import annotations

import argparse

from _corpus import corpus
from runstack.datasets_hub.ingest import decode

ENCODINGS = ("utf-8", "latin-1", "cp1252", "cp1250")


def main() -> None:
    from charset_normalizer import from_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=30)
    args = parser.parse_args()
    texts = [text for _, text in corpus(args.mb << 20)]
    ascii_files = sum(text.isascii() for text in texts)
    parts = []
    for encoding in ENCODINGS:
        ours = peer = tried = 0
        for text in texts:
            if text.isascii():
                continue
            try:
                data = text.encode(encoding)
            except UnicodeEncodeError:
                continue  # not representable in this encoding
            tried += 1
            found = decode(data)
            ours += found is not None and found[0] == text
            best = from_bytes(data).best()
            peer += best is not None and str(best) == text
        if tried:
            parts.append(f"{encoding}: runstack {ours}/{tried} ({100 * ours / tried:.1f}%) vs charset-normalizer "
                         f"{peer}/{tried} ({100 * peer / tried:.1f}%)")  # fmt: skip
    print(f"encoding_guess: {len(texts)} files, {ascii_files} plain ASCII (read back in every encoding) | "
          + " | ".join(parts))  # fmt: skip


if __name__ == "__main__":
    main()
