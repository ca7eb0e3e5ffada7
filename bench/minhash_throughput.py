"""MinHash signature throughput (MB/s, one core) against datasketch in the same run.

Same parameters for all: word 5-grams, 256 permutations. datasketch runs on a sample
(it is slow); runstack on the whole corpus.

    python bench/minhash_throughput.py [--mb 40] [--peer-mb 3]

Prints one summary line:
    minhash_throughput: runstack ... MB/s | datasketch update ... MB/s, bulk ... MB/s | ...x / ...x
"""

from __future__ import annotations

import argparse
import os
import re
import time

from _corpus import corpus
from runstack.datasets_hub.minhash import shingle_hashes, signatures

WORD = re.compile(rb"[A-Za-z0-9_\x80-\xff]+")


def _shingles(text: bytes) -> list[bytes]:
    words = WORD.findall(text)
    return [b" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=40)
    parser.add_argument("--peer-mb", type=float, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    texts = [t.encode() for _, t in corpus(int(args.mb * (1 << 20)))]
    total = sum(map(len, texts)) / 1e6
    start = time.process_time()
    batch, size = [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= 4 << 20:
            hashes, docs = shingle_hashes(batch)
            signatures(hashes, docs, len(batch))
            batch, size = [], 0
    if batch:
        hashes, docs = shingle_hashes(batch)
        signatures(hashes, docs, len(batch))
    ours = total / (time.process_time() - start)

    from datasketch import MinHash

    sample, size = [], 0
    for text in texts:
        sample.append(text)
        size += len(text)
        if size >= args.peer_mb * 1e6:
            break
    shingled = [_shingles(t) for t in sample]
    mb = size / 1e6
    start = time.process_time()
    for grams in shingled:
        m = MinHash(num_perm=256)
        for g in grams:
            m.update(g)
    update = mb / (time.process_time() - start)
    start = time.process_time()
    MinHash.bulk(shingled, num_perm=256)
    bulk = mb / (time.process_time() - start)
    print(f"minhash_throughput: runstack {ours:.1f} MB/s on {total:.0f} MB | datasketch update {update:.2f} MB/s,"
          f" bulk {bulk:.2f} MB/s on {mb:.1f} MB | {ours / update:.0f}x update, {ours / bulk:.0f}x bulk (CPU time, one core)")  # fmt: skip


if __name__ == "__main__":
    main()
